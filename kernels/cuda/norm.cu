// CUDA layer norm (over the last dim) and batch norm (over the rows of [N, C]), forward and
// backward. Row statistics use one warp/block per row with two passes in double; column
// statistics (batch norm, layer norm's weight/bias grads) use a fixed two-level column sum,
// so every result is reproducible bit for bit (no float atomics).
#include "kernels/cuda/common.cuh"

#include <cmath>

namespace dan::kernels::cuda {

namespace {

const float* fptr(const Tensor& t) {
  return t.defined() ? static_cast<const float*>(t.raw_data()) : nullptr;
}

// The backward entry points get these unchecked from the dispatcher; the kernels index them
// by row/column, so a wrong size would read out of bounds on the device.
void check_stat(const Tensor& t, int64_t n, const Tensor& x, const char* op, const char* what) {
  DAN_CHECK(t.defined() && t.numel() == n && t.dtype() == DType::f32 && t.device() == x.device(),
            "{}: {} must be f32 with {} elements on {} (input {}), got {}", op, what, n,
            x.device(), shape_str(x.shape()),
            t.defined() ? shape_str(t.shape()) + " " + std::string(dtype_name(t.dtype())) + " on " +
                              t.device().str()
                        : std::string("an undefined tensor"));
}

template <bool kWarp>
__global__ void k_layer_norm_rows(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, float* __restrict__ y,
                                  float* __restrict__ mean_out, float* __restrict__ rstd_out,
                                  int64_t rows, int64_t cols, double eps) {
  __shared__ double smem[32];
  for (int64_t r = row_first<kWarp>(); r < rows; r += row_step<kWarp>()) {
    const float* xr = x + r * cols;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    const double mean = row_reduce<kWarp>(s, SumOp{}, smem) / static_cast<double>(cols);
    double q = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double dv = xr[j] - mean;
      q += dv * dv;
    }
    const double var = row_reduce<kWarp>(q, SumOp{}, smem) / static_cast<double>(cols);
    const double rstd = 1.0 / sqrt(var + eps);
    const float mf = static_cast<float>(mean), rf = static_cast<float>(rstd);
    float* yr = y + r * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float v = (xr[j] - mf) * rf;
      if (w != nullptr) v *= w[j];
      if (b != nullptr) v += b[j];
      yr[j] = v;
    }
    if (threadIdx.x == 0) {
      mean_out[r] = mf;
      rstd_out[r] = rf;
    }
  }
}

// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * weight.
template <bool kWarp>
__global__ void k_layer_norm_backward_rows(const float* __restrict__ g, const float* __restrict__ x,
                                           const float* __restrict__ mean,
                                           const float* __restrict__ rstd,
                                           const float* __restrict__ w, float* __restrict__ dx,
                                           int64_t rows, int64_t cols) {
  __shared__ double smem[32];
  for (int64_t r = row_first<kWarp>(); r < rows; r += row_step<kWarp>()) {
    const float* gr = g + r * cols;
    const float* xr = x + r * cols;
    const float m = mean[r], rs = rstd[r];
    double a = 0.0, bsum = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float gw = w != nullptr ? gr[j] * w[j] : gr[j];
      a += gw;
      bsum += static_cast<double>(gw) * ((xr[j] - m) * rs);
    }
    const float ma = static_cast<float>(row_reduce<kWarp>(a, SumOp{}, smem) / cols);
    const float mb = static_cast<float>(row_reduce<kWarp>(bsum, SumOp{}, smem) / cols);
    float* dr = dx + r * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float gw = w != nullptr ? gr[j] * w[j] : gr[j];
      const float xhat = (xr[j] - m) * rs;
      dr[j] = rs * (gw - ma - xhat * mb);
    }
  }
}

// ---- column sums: two double accumulators per column, f(r, c, a0, a1) adds to them ----------
template <typename F>
__global__ void k_col_sums2(int64_t rows, int64_t cols, int64_t rows_per_chunk, F f,
                            double* __restrict__ partial) {
  __shared__ double s0[8][33], s1[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t lo = blockIdx.y * rows_per_chunk, hi = min(rows, lo + rows_per_chunk);
  double a0 = 0.0, a1 = 0.0;
  if (c < cols) {
    for (int64_t r = lo + threadIdx.y; r < hi; r += blockDim.y) f(r, c, a0, a1);
  }
  s0[threadIdx.y][threadIdx.x] = a0;
  s1[threadIdx.y][threadIdx.x] = a1;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < static_cast<int>(blockDim.y); ++k) {
      a0 += s0[k][threadIdx.x];
      a1 += s1[k][threadIdx.x];
    }
    double* p = partial + (blockIdx.y * cols + c) * 2;
    p[0] = a0;
    p[1] = a1;
  }
}

__global__ void k_col_sums2_finalize(const double* __restrict__ partial, int64_t nchunks,
                                     int64_t cols, double* __restrict__ out) {
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    double a0 = 0.0, a1 = 0.0;
    for (int64_t k = 0; k < nchunks; ++k) {
      a0 += partial[(k * cols + c) * 2];
      a1 += partial[(k * cols + c) * 2 + 1];
    }
    out[2 * c] = a0;
    out[2 * c + 1] = a1;
  }
}

// Returns an f64 tensor [cols, 2] of the column sums.
template <typename F>
Tensor col_sums2(int dev, int64_t rows, int64_t cols, const F& f) {
  Tensor out = raw::empty({cols, 2}, DType::f64, Device::cuda(dev));
  if (cols == 0) return out;
  cudaStream_t s = stream_of(dev);
  const int64_t sms = ::dan::cuda::device_props(dev).sm_count;
  const int64_t col_blocks = (cols + 31) / 32;
  const int64_t want = std::clamp<int64_t>((4 * sms + col_blocks - 1) / col_blocks, 1,
                                           std::max<int64_t>(1, std::min<int64_t>((rows + 255) / 256, 1024)));
  const int64_t per = std::max<int64_t>(1, (rows + want - 1) / want);
  const int64_t nchunks = std::max<int64_t>(1, (rows + per - 1) / per);
  Tensor part = raw::empty({nchunks, cols, 2}, DType::f64, Device::cuda(dev));
  k_col_sums2<F><<<dim3(col_blocks, nchunks), dim3(32, 8), 0, s>>>(
      rows, cols, per, f, static_cast<double*>(part.raw_data()));
  DAN_CUDA_CHECK_LAUNCH();
  k_col_sums2_finalize<<<grid_for(cols, dev), kBlock, 0, s>>>(
      static_cast<const double*>(part.raw_data()), nchunks, cols,
      static_cast<double*>(out.raw_data()));
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

struct LnAffineF {  // (sum g * xhat, sum g)
  const float* g;
  const float* x;
  const float* mean;
  const float* rstd;
  int64_t cols;
  __device__ void operator()(int64_t r, int64_t c, double& a0, double& a1) const {
    const float gv = g[r * cols + c];
    a0 += static_cast<double>(gv) * ((x[r * cols + c] - mean[r]) * rstd[r]);
    a1 += gv;
  }
};

struct BnSumF {  // (sum x, -)
  const float* x;
  int64_t cols;
  __device__ void operator()(int64_t r, int64_t c, double& a0, double&) const {
    a0 += x[r * cols + c];
  }
};

struct BnSqDevF {  // (sum (x - mean)^2, -); mean is the f64 [C, 2] sums / n
  const float* x;
  const double* sums;
  double n;
  int64_t cols;
  __device__ void operator()(int64_t r, int64_t c, double& a0, double&) const {
    const double d = x[r * cols + c] - sums[2 * c] / n;
    a0 += d * d;
  }
};

struct BnGradF {  // (sum g, sum g * xhat)
  const float* g;
  const float* x;
  const float* mean;
  const float* invstd;
  int64_t cols;
  __device__ void operator()(int64_t r, int64_t c, double& a0, double& a1) const {
    const float gv = g[r * cols + c];
    a0 += gv;
    a1 += static_cast<double>(gv) * ((x[r * cols + c] - mean[c]) * invstd[c]);
  }
};

// Column c of the pair tensor -> out0[c], out1[c] (either may be null).
__global__ void k_pairs_to_f32(const double* __restrict__ pairs, int64_t cols, int which0,
                               float* __restrict__ out0, float* __restrict__ out1) {
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    if (out0 != nullptr) out0[c] = static_cast<float>(pairs[2 * c + which0]);
    if (out1 != nullptr) out1[c] = static_cast<float>(pairs[2 * c + 1 - which0]);
  }
}

// Training: statistics from the batch sums; running stats (strided, may be null) updated with
// the unbiased variance. Eval: statistics from the running stats.
__global__ void k_bn_stats(const double* __restrict__ sums, const double* __restrict__ sqdev,
                           int64_t n, int64_t cols, bool training, double momentum, double eps,
                           float* running_mean, int64_t rm_stride, float* running_var,
                           int64_t rv_stride, float* __restrict__ save_mean,
                           float* __restrict__ save_invstd) {
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    if (training) {
      const double mean = sums[2 * c] / static_cast<double>(n);
      const double var = sqdev[2 * c] / static_cast<double>(n);
      save_mean[c] = static_cast<float>(mean);
      save_invstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
      if (running_mean != nullptr) {
        float& rm = running_mean[c * rm_stride];
        rm = static_cast<float>((1.0 - momentum) * rm + momentum * mean);
      }
      if (running_var != nullptr) {
        float& rv = running_var[c * rv_stride];
        const double unbiased = var * static_cast<double>(n) / static_cast<double>(n - 1);
        rv = static_cast<float>((1.0 - momentum) * rv + momentum * unbiased);
      }
    } else {
      save_mean[c] = running_mean[c * rm_stride];
      save_invstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c * rv_stride]) + eps));
    }
  }
}

__global__ void k_bn_apply(const float* __restrict__ x, const float* __restrict__ mean,
                           const float* __restrict__ invstd, const float* __restrict__ w,
                           const float* __restrict__ b, float* __restrict__ y, int64_t total,
                           int64_t cols) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = i % cols;
    float v = (x[i] - mean[c]) * invstd[c];
    if (w != nullptr) v *= w[c];
    if (b != nullptr) v += b[c];
    y[i] = v;
  }
}

// Training: dx = w * invstd / N * (N * g - sum_g - xhat * sum_gxhat); eval: dx = g * w * invstd.
__global__ void k_bn_backward(const float* __restrict__ g, const float* __restrict__ x,
                              const float* __restrict__ mean, const float* __restrict__ invstd,
                              const float* __restrict__ w, const double* __restrict__ sums,
                              float* __restrict__ dx, int64_t total, int64_t n, int64_t cols,
                              bool training) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = i % cols;
    const float scale = (w != nullptr ? w[c] : 1.0f) * invstd[c];
    if (training) {
      const float nf = static_cast<float>(n);
      const float xhat = (x[i] - mean[c]) * invstd[c];
      const float sg = static_cast<float>(sums[2 * c]);
      const float sgx = static_cast<float>(sums[2 * c + 1]);
      dx[i] = scale / nf * (nf * g[i] - sg - xhat * sgx);
    } else {
      dx[i] = g[i] * scale;
    }
  }
}

template <typename K, typename... Args>
void launch_rows(K* warp_kernel, K* block_kernel, int64_t rows, int64_t cols, int dev,
                 Args... args) {
  const RowLaunch L = row_launch(rows, cols, dev);
  (L.warp ? warp_kernel : block_kernel)<<<L.grid, L.block, 0, stream_of(dev)>>>(args...);
  DAN_CUDA_CHECK_LAUNCH();
}

}  // namespace

LayerNormOut layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  require_f32(x, "layer_norm", "input");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  Tensor xc = contiguous(x);
  Tensor w = weight.defined() ? contiguous(weight) : Tensor();
  Tensor b = bias.defined() ? contiguous(bias) : Tensor();
  LayerNormOut out{raw::empty(x.shape(), DType::f32, x.device()),
                   raw::empty({rows}, DType::f32, x.device()),
                   raw::empty({rows}, DType::f32, x.device())};
  if (rows == 0) return out;
  launch_rows(k_layer_norm_rows<true>, k_layer_norm_rows<false>, rows, cols, dev, fptr(xc), fptr(w),
              fptr(b), static_cast<float*>(out.y.raw_data()),
              static_cast<float*>(out.mean.raw_data()), static_cast<float*>(out.rstd.raw_data()),
              rows, cols, eps);
  return out;
}

LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, bool need_affine) {
  require_f32(x, "layer_norm_backward", "input");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  check_stat(mean, rows, x, "layer_norm_backward", "mean");
  check_stat(rstd, rows, x, "layer_norm_backward", "rstd");
  if (weight.defined()) check_stat(weight, cols, x, "layer_norm_backward", "weight");
  Tensor gc = contiguous(grad), xc = contiguous(x), mc = contiguous(mean), rc = contiguous(rstd);
  Tensor w = weight.defined() ? contiguous(weight) : Tensor();
  LayerNormGrads out;
  out.dx = raw::empty(x.shape(), DType::f32, x.device());
  if (rows > 0) {
    launch_rows(k_layer_norm_backward_rows<true>, k_layer_norm_backward_rows<false>, rows, cols,
                dev, fptr(gc), fptr(xc), fptr(mc), fptr(rc), fptr(w),
                static_cast<float*>(out.dx.raw_data()), rows, cols);
  }
  if (need_affine) {
    out.dweight = raw::empty({cols}, DType::f32, x.device());
    out.dbias = raw::empty({cols}, DType::f32, x.device());
    Tensor sums = col_sums2(dev, rows, cols, LnAffineF{fptr(gc), fptr(xc), fptr(mc), fptr(rc), cols});
    if (cols > 0) {
      k_pairs_to_f32<<<grid_for(cols, dev), kBlock, 0, stream_of(dev)>>>(
          static_cast<const double*>(sums.raw_data()), cols, 0,
          static_cast<float*>(out.dweight.raw_data()), static_cast<float*>(out.dbias.raw_data()));
      DAN_CUDA_CHECK_LAUNCH();
    }
  }
  return out;
}

BatchNormOut batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Tensor& running_mean, const Tensor& running_var, bool training,
                        double momentum, double eps) {
  require_f32(x, "batch_norm", "input");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const int64_t n = x.size(0), cols = x.size(1);
  Tensor xc = contiguous(x);
  Tensor w = weight.defined() ? contiguous(weight) : Tensor();
  Tensor b = bias.defined() ? contiguous(bias) : Tensor();
  BatchNormOut out{raw::empty(x.shape(), DType::f32, x.device()),
                   raw::empty({cols}, DType::f32, x.device()),
                   raw::empty({cols}, DType::f32, x.device())};
  if (cols == 0) return out;
  cudaStream_t s = stream_of(dev);
  float* rm = running_mean.defined() ? static_cast<float*>(running_mean.raw_data()) : nullptr;
  float* rv = running_var.defined() ? static_cast<float*>(running_var.raw_data()) : nullptr;
  const int64_t rms = running_mean.defined() ? running_mean.stride(0) : 0;
  const int64_t rvs = running_var.defined() ? running_var.stride(0) : 0;
  Tensor sums, sqdev;
  if (training) {
    sums = col_sums2(dev, n, cols, BnSumF{fptr(xc), cols});
    sqdev = col_sums2(dev, n, cols,
                      BnSqDevF{fptr(xc), static_cast<const double*>(sums.raw_data()),
                               static_cast<double>(n), cols});
  }
  k_bn_stats<<<grid_for(cols, dev), kBlock, 0, s>>>(
      training ? static_cast<const double*>(sums.raw_data()) : nullptr,
      training ? static_cast<const double*>(sqdev.raw_data()) : nullptr, n, cols, training,
      momentum, eps, rm, rms, rv, rvs, static_cast<float*>(out.save_mean.raw_data()),
      static_cast<float*>(out.save_invstd.raw_data()));
  DAN_CUDA_CHECK_LAUNCH();
  if (n > 0) {
    k_bn_apply<<<grid_for(n * cols, dev), kBlock, 0, s>>>(
        fptr(xc), fptr(out.save_mean), fptr(out.save_invstd), fptr(w), fptr(b),
        static_cast<float*>(out.y.raw_data()), n * cols, cols);
    DAN_CUDA_CHECK_LAUNCH();
  }
  return out;
}

BatchNormGrads batch_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   bool training, bool need_affine) {
  require_f32(x, "batch_norm_backward", "input");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const int64_t n = x.size(0), cols = x.size(1);
  check_stat(save_mean, cols, x, "batch_norm_backward", "save_mean");
  check_stat(save_invstd, cols, x, "batch_norm_backward", "save_invstd");
  if (weight.defined()) check_stat(weight, cols, x, "batch_norm_backward", "weight");
  Tensor gc = contiguous(grad), xc = contiguous(x);
  Tensor mc = contiguous(save_mean), ic = contiguous(save_invstd);
  Tensor w = weight.defined() ? contiguous(weight) : Tensor();
  BatchNormGrads out;
  out.dx = raw::empty(x.shape(), DType::f32, x.device());
  Tensor sums;
  if (training || need_affine) {
    sums = col_sums2(dev, n, cols, BnGradF{fptr(gc), fptr(xc), fptr(mc), fptr(ic), cols});
  }
  cudaStream_t s = stream_of(dev);
  if (n * cols > 0) {
    k_bn_backward<<<grid_for(n * cols, dev), kBlock, 0, s>>>(
        fptr(gc), fptr(xc), fptr(mc), fptr(ic), fptr(w),
        sums.defined() ? static_cast<const double*>(sums.raw_data()) : nullptr,
        static_cast<float*>(out.dx.raw_data()), n * cols, n, cols, training);
    DAN_CUDA_CHECK_LAUNCH();
  }
  if (need_affine) {
    out.dweight = raw::empty({cols}, DType::f32, x.device());
    out.dbias = raw::empty({cols}, DType::f32, x.device());
    if (cols > 0) {
      k_pairs_to_f32<<<grid_for(cols, dev), kBlock, 0, s>>>(
          static_cast<const double*>(sums.raw_data()), cols, 1,
          static_cast<float*>(out.dweight.raw_data()), static_cast<float*>(out.dbias.raw_data()));
      DAN_CUDA_CHECK_LAUNCH();
    }
  }
  return out;
}

}  // namespace dan::kernels::cuda
