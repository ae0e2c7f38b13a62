// LayerNorm and BatchNorm1d: thin modules over the fused normalization ops.
#include "layers/norm.h"

#include "kernels/kernels.h"

namespace dan {

LayerNorm::LayerNorm(int64_t dim, double eps, bool elementwise_affine) : dim_(dim), eps_(eps) {
  DAN_CHECK(dim > 0, "LayerNorm: dim must be > 0, got {}", dim);
  if (elementwise_affine) {
    weight_ = register_parameter("weight", ones({dim}));
    bias_ = register_parameter("bias", zeros({dim}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  DAN_CHECK(x.dim() >= 1 && x.size(-1) == dim_, "LayerNorm: input {} does not end in dim = {}",
            shape_str(x.shape()), dim_);
  return layer_norm(x, weight_, bias_, eps_);
}

BatchNorm1d::BatchNorm1d(int64_t num_features, BatchNormOptions opts)
    : num_features_(num_features), opts_(opts) {
  DAN_CHECK(num_features > 0, "BatchNorm1d: num_features must be > 0, got {}", num_features);
  if (opts.affine) {
    weight_ = register_parameter("weight", ones({num_features}));
    bias_ = register_parameter("bias", zeros({num_features}));
  }
  if (opts.track_running_stats) {
    running_mean_ = register_buffer("running_mean", zeros({num_features}));
    running_var_ = register_buffer("running_var", ones({num_features}));
    num_batches_tracked_ = register_buffer("num_batches_tracked", zeros({}, DType::i64));
  }
}

Tensor BatchNorm1d::forward(const Tensor& x) {
  DAN_CHECK(x.dim() == 2 && x.size(1) == num_features_,
            "BatchNorm1d: expected input [N, {}], got {}", num_features_, shape_str(x.shape()));
  const bool track = opts_.track_running_stats;
  // As torch: without running stats the batch statistics are used in eval mode as well.
  // The running stats are undefined exactly when they are not tracked.
  Tensor y = batch_norm(x, weight_, bias_, running_mean_, running_var_, is_training() || !track,
                        opts_.momentum, opts_.eps);
  if (is_training() && track) {
    // Counted after the op succeeded; one host round trip per forward is cheap next to it.
    NoGradGuard no_grad;
    kernels::fill_(num_batches_tracked_, num_batches_tracked_.item() + 1);
  }
  return y;
}

}  // namespace dan
