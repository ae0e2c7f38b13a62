// SGD with momentum, dampening, Nesterov and (coupled) weight decay, as torch.optim.SGD.
#pragma once

#include "layers/optim/optimizer.h"

namespace dan {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // added to the gradient: d = g + wd * p
  bool nesterov = false;      // needs momentum > 0 and dampening == 0
};

class SGD : public Optimizer {
 public:
  // One group with opts.lr and opts.weight_decay.
  SGD(std::vector<Tensor> params, SGDOptions opts);
  // Groups keep their own lr and weight_decay; opts supplies the rest.
  SGD(std::vector<ParamGroup> groups, SGDOptions opts);
  const SGDOptions& options() const { return opts_; }

 protected:
  void update(const ParamGroup& g, const Tensor& p, const Tensor& grad, ParamState& s) override;
  std::vector<std::string> state_names() const override;

 private:
  SGDOptions opts_;
};

}  // namespace dan
