// Normalization layers with torch.nn's parameter and buffer names: LayerNorm (last dim) and
// BatchNorm1d (per feature of [N, C] inputs, running statistics as buffers).
#pragma once

#include "layers/module.h"

namespace dan {

class LayerNorm : public Module {
 public:
  // weight = 1, bias = 0 when elementwise_affine.
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;  // over x's last dim, which must be `dim`
  std::string type_name() const override { return "LayerNorm"; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  int64_t dim_;
  double eps_;
  Tensor weight_, bias_;
};

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;               // learnable weight (1) and bias (0)
  bool track_running_stats = true;  // running_mean (0), running_var (1), num_batches_tracked
};

class BatchNorm1d : public Module {
 public:
  explicit BatchNorm1d(int64_t num_features, BatchNormOptions opts = {});
  // torch.nn.BatchNorm1d's positional order.
  BatchNorm1d(int64_t num_features, double eps, double momentum = 0.1, bool affine = true,
              bool track_running_stats = true)
      : BatchNorm1d(num_features, BatchNormOptions{eps, momentum, affine, track_running_stats}) {}
  // x [N, C]. Training: batch statistics, and (when tracking) the running stats are updated
  // in place and num_batches_tracked += 1. Eval: running stats (batch stats if not tracking).
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchNorm1d"; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  const Tensor& num_batches_tracked() const { return num_batches_tracked_; }  // i64, 0-d

 private:
  int64_t num_features_;
  BatchNormOptions opts_;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

}  // namespace dan
