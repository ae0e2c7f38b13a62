// Adam and AdamW (decoupled weight decay), as torch.optim.Adam / AdamW without amsgrad.
#pragma once

#include "layers/optim/optimizer.h"

namespace dan {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;          // added after dividing sqrt(v) by sqrt(1 - beta2^t), as torch
  double weight_decay = 0.0;  // Adam: added to the gradient; AdamW: p *= 1 - lr * wd
};

class Adam : public Optimizer {
 public:
  // One group with opts.lr and opts.weight_decay.
  Adam(std::vector<Tensor> params, AdamOptions opts = {});
  // Groups keep their own lr and weight_decay; opts supplies betas and eps.
  Adam(std::vector<ParamGroup> groups, AdamOptions opts = {});
  const AdamOptions& options() const { return opts_; }

 protected:
  Adam(std::vector<ParamGroup> groups, AdamOptions opts, bool decoupled);
  void update(const ParamGroup& g, const Tensor& p, const Tensor& grad, ParamState& s) override;
  std::vector<std::string> state_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 private:
  AdamOptions opts_;
  bool decoupled_;
};

// torch.optim.AdamW's default weight decay is 1e-2 (Adam's is 0).
inline constexpr AdamOptions kAdamWDefaults{.weight_decay = 1e-2};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamOptions opts = kAdamWDefaults);
  AdamW(std::vector<ParamGroup> groups, AdamOptions opts = kAdamWDefaults);
};

}  // namespace dan
