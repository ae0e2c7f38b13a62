// Global-norm gradient clipping; the squared norms are summed on the host in double.
#include "layers/optim/clip.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "kernels/kernels.h"

namespace dan {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  namespace k = kernels;
  DAN_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got {}", max_norm);
  NoGradGuard no_grad;
  double sq = 0;
  for (const Tensor& p : params) {
    const Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined() || g.numel() == 0) continue;
    sq += k::reduce(k::ReduceOp::sum, k::unary(k::UnaryOp::square, g), {}, false).item();
  }
  const double norm = std::sqrt(sq);
  const double coef = max_norm / (norm + 1e-6);
  if (std::isfinite(norm) && coef < 1.0) {
    for (const Tensor& p : params) {
      const Tensor g = p.defined() ? p.grad() : Tensor();
      if (!g.defined() || g.numel() == 0) continue;
      k::copy_(g, k::binary_scalar(k::BinaryOp::mul, g, coef, false));
    }
  }
  return norm;
}

}  // namespace dan
