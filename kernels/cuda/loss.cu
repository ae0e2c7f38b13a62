// CUDA losses: mean squared error and cross entropy (with ignore_index), forward and backward.
// Means are fixed-shape two-level reductions in double (reproducible bits); out-of-range
// targets raise a device flag that becomes a dan::Error on the host.
#include "kernels/cuda/common.cuh"

namespace dan::kernels::cuda {

namespace {

constexpr int kLossBlock = 256;

__global__ void k_sq_diff_partial(const float* __restrict__ p, const float* __restrict__ t,
                                  int64_t n, double* __restrict__ partial) {
  __shared__ double smem[32];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const double d = static_cast<double>(p[i]) - static_cast<double>(t[i]);
    acc += d * d;
  }
  acc = block_reduce(acc, SumOp{}, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// One block: out = sum(partial) / n (n == 0 gives NaN, as in PyTorch).
__global__ void k_mean_of_partials(const double* __restrict__ partial, int64_t nparts, double n,
                                   float* __restrict__ out) {
  __shared__ double smem[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < nparts; i += blockDim.x) acc += partial[i];
  acc = block_reduce(acc, SumOp{}, smem);
  if (threadIdx.x == 0) out[0] = static_cast<float>(acc / n);
}

struct MseGradFn {
  float* out;
  const float* p;
  const float* t;
  const float* g;  // the 0-d upstream gradient, on the device
  float scale;     // 2 / n
  __device__ void operator()(int64_t, const int64_t* o) const {
    out[o[0]] = g[0] * scale * (p[o[1]] - t[o[2]]);
  }
};

template <typename I>
__device__ __forceinline__ bool valid_target(I t, int64_t classes, int64_t ignore) {
  const int64_t v = static_cast<int64_t>(t);
  return v != ignore && v >= 0 && v < classes;
}

// One block over all rows: loss = -sum(log_probs[i, t_i]) / count over non-ignored rows.
template <typename I>
__global__ void k_cross_entropy_loss(const float* __restrict__ lp, const I* __restrict__ target,
                                     int64_t rows, int64_t classes, int64_t ignore,
                                     float* __restrict__ out, long long* flag) {
  __shared__ double smem[32];
  double acc = 0.0, cnt = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    const int64_t t = static_cast<int64_t>(target[i]);
    if (t == ignore) continue;
    if (t < 0 || t >= classes) {
      raise_flag(flag, t);
      continue;
    }
    acc -= lp[i * classes + t];
    cnt += 1.0;
  }
  acc = block_reduce(acc, SumOp{}, smem);
  cnt = block_reduce(cnt, SumOp{}, smem);
  if (threadIdx.x == 0) out[0] = static_cast<float>(acc / cnt);
}

template <typename I>
__global__ void k_count_targets(const I* __restrict__ target, int64_t rows, int64_t classes,
                                int64_t ignore, double* __restrict__ count) {
  __shared__ double smem[32];
  double cnt = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    cnt += valid_target(target[i], classes, ignore) ? 1.0 : 0.0;
  }
  cnt = block_reduce(cnt, SumOp{}, smem);
  if (threadIdx.x == 0) count[0] = cnt;
}

// dlogits = g * (softmax - onehot(target)) / count on counted rows, 0 on the others.
template <typename I>
__global__ void k_cross_entropy_backward(const float* __restrict__ g, const float* __restrict__ lp,
                                         const I* __restrict__ target,
                                         const double* __restrict__ count, int64_t rows,
                                         int64_t classes, int64_t ignore, float* __restrict__ dx) {
  const int64_t total = rows * classes;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = e / classes, c = e - i * classes;
    const I t = target[i];
    if (!valid_target(t, classes, ignore)) {
      dx[e] = 0.0f;
      continue;
    }
    const float onehot = static_cast<int64_t>(t) == c ? 1.0f : 0.0f;
    dx[e] = g[0] * (expf(lp[e]) - onehot) / static_cast<float>(count[0]);
  }
}

}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target) {
  require_f32(pred, "mse_loss", "input");
  const int dev = pred.device().index;
  DeviceGuard guard(dev);
  Tensor pc = contiguous(pred), tc = contiguous(target);
  const int64_t n = pred.numel();
  const unsigned grid = grid_for(n, dev, kLossBlock);
  Tensor partial = raw::empty({static_cast<int64_t>(grid)}, DType::f64, pred.device());
  Tensor out = raw::empty({}, DType::f32, pred.device());
  cudaStream_t s = stream_of(dev);
  k_sq_diff_partial<<<grid, kLossBlock, 0, s>>>(static_cast<const float*>(pc.raw_data()),
                                                static_cast<const float*>(tc.raw_data()), n,
                                                static_cast<double*>(partial.raw_data()));
  DAN_CUDA_CHECK_LAUNCH();
  k_mean_of_partials<<<1, kLossBlock, 0, s>>>(static_cast<const double*>(partial.raw_data()), grid,
                                              static_cast<double>(n),
                                              static_cast<float*>(out.raw_data()));
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

namespace {

// The dispatcher does not check the upstream gradient; it is read on the device, so a host
// tensor here would be an illegal address rather than an error.
void check_loss_grad(const Tensor& grad, const Tensor& like, const char* op) {
  DAN_CHECK(grad.defined() && grad.device() == like.device() && grad.dtype() == DType::f32 &&
                grad.numel() == 1,
            "{}: grad must be a one-element f32 tensor on {}, got {}", op, like.device(),
            grad.defined() ? shape_str(grad.shape()) + " " + std::string(dtype_name(grad.dtype())) +
                                 " on " + grad.device().str()
                           : std::string("an undefined tensor"));
}

}  // namespace

Tensor mse_loss_backward(const Tensor& grad, const Tensor& pred, const Tensor& target) {
  require_f32(pred, "mse_loss_backward", "input");
  check_loss_grad(grad, pred, "mse_loss_backward");
  const int dev = pred.device().index;
  DeviceGuard guard(dev);
  Tensor out = raw::empty(pred.shape(), DType::f32, pred.device());
  const float scale = static_cast<float>(2.0 / static_cast<double>(pred.numel()));
  launch_elementwise<3>(dev, pred.shape(), {out.strides(), pred.strides(), target.strides()},
                        MseGradFn{static_cast<float*>(out.raw_data()),
                                  static_cast<const float*>(pred.raw_data()),
                                  static_cast<const float*>(target.raw_data()),
                                  static_cast<const float*>(grad.raw_data()), scale});
  return out;
}

CrossEntropyOut cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  require_f32(logits, "cross_entropy", "logits");
  const int dev = logits.device().index;
  DeviceGuard guard(dev);
  CrossEntropyOut out;
  out.log_probs = cuda::log_softmax(logits);
  out.loss = raw::empty({}, DType::f32, logits.device());
  const int64_t rows = logits.size(0), classes = logits.size(1);
  Tensor tc = contiguous(target);
  ErrorFlag flag(dev);
  DAN_DISPATCH_INDEX(target.dtype(), "cross_entropy", [&]<typename I>() {
    k_cross_entropy_loss<I><<<1, 1024, 0, stream_of(dev)>>>(
        static_cast<const float*>(out.log_probs.raw_data()), static_cast<const I*>(tc.raw_data()),
        rows, classes, ignore_index, static_cast<float*>(out.loss.raw_data()), flag.data());
    DAN_CUDA_CHECK_LAUNCH();
  });
  int64_t bad = 0;
  DAN_CHECK(!flag.raised(&bad), "cross_entropy: target {} is out of range for {} classes "
            "(logits {}, ignore_index {})", bad, classes, shape_str(logits.shape()), ignore_index);
  return out;
}

Tensor cross_entropy_backward(const Tensor& grad, const Tensor& log_probs, const Tensor& target,
                              int64_t ignore_index) {
  require_f32(log_probs, "cross_entropy_backward", "log_probs");
  check_loss_grad(grad, log_probs, "cross_entropy_backward");
  const int dev = log_probs.device().index;
  DeviceGuard guard(dev);
  DAN_CHECK(log_probs.dim() == 2 && target.defined() && target.numel() == log_probs.size(0) &&
                target.device() == log_probs.device(),
            "cross_entropy_backward: expected log_probs [N, C] and target [N] on one device, got "
            "{} and {}", shape_str(log_probs.shape()),
            target.defined() ? shape_str(target.shape()) : std::string("undefined"));
  const int64_t rows = log_probs.size(0), classes = log_probs.size(1);
  Tensor lc = contiguous(log_probs), tc = contiguous(target);
  Tensor dx = raw::empty(log_probs.shape(), DType::f32, log_probs.device());
  if (dx.numel() == 0) return dx;
  Tensor count = raw::empty({}, DType::f64, log_probs.device());
  cudaStream_t s = stream_of(dev);
  DAN_DISPATCH_INDEX(target.dtype(), "cross_entropy_backward", [&]<typename I>() {
    const I* tp = static_cast<const I*>(tc.raw_data());
    double* cp = static_cast<double*>(count.raw_data());
    k_count_targets<I><<<1, 1024, 0, s>>>(tp, rows, classes, ignore_index, cp);
    DAN_CUDA_CHECK_LAUNCH();
    k_cross_entropy_backward<I><<<grid_for(rows * classes, dev), kBlock, 0, s>>>(
        static_cast<const float*>(grad.raw_data()), static_cast<const float*>(lc.raw_data()), tp,
        cp, rows, classes, ignore_index, static_cast<float*>(dx.raw_data()));
    DAN_CUDA_CHECK_LAUNCH();
  });
  return dx;
}

}  // namespace dan::kernels::cuda
