// Linear: y = x W^T + b, with torch.nn.Linear's parameter names, shapes and default init.
#pragma once

#include "layers/module.h"

namespace dan {

class Linear : public Module {
 public:
  // weight [out, in] and bias [out] ~ U(-1/sqrt(in), 1/sqrt(in)): torch's kaiming_uniform
  // with a = sqrt(5) reduces to exactly this bound, and the bias uses the same one.
  Linear(int64_t in_features, int64_t out_features, bool bias = true,
         Generator& gen = default_generator());

  // x [..., in] -> [..., out].
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Tensor weight_, bias_;
};

}  // namespace dan
