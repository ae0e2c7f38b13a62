// Linear layer: init as torch.nn.Linear.reset_parameters, forward through the fused kernel.
#include "layers/linear.h"

#include <cmath>

namespace dan {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen)
    : in_(in_features), out_(out_features) {
  DAN_CHECK(in_features > 0 && out_features >= 0,
            "Linear: expected in_features > 0 and out_features >= 0, got {} and {}",
            in_features, out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight_ = register_parameter("weight", empty({out_features, in_features}));
  init_uniform_(weight_, -bound, bound, gen);
  if (bias) {
    bias_ = register_parameter("bias", empty({out_features}));
    init_uniform_(bias_, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) {
  DAN_CHECK(x.dim() >= 1 && x.size(-1) == in_,
            "Linear: input {} does not end in in_features = {}", shape_str(x.shape()), in_);
  if (x.dim() == 2) return linear(x, weight_, bias_);
  // The kernel takes [N, in]: fold leading dims into N and restore them afterwards.
  Shape out_shape = x.shape();
  out_shape.back() = out_;
  return linear(x.reshape({-1, in_}), weight_, bias_).reshape(out_shape);
}

}  // namespace dan
