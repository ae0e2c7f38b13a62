// CUDA softmax / log_softmax over the last dim and their backwards. Rows of up to 1024
// elements get one warp each, longer rows one block each; both use the online (max, sum)
// recurrence, so the input is read once for the statistics and once for the output.
#include "kernels/cuda/common.cuh"

#include <cmath>

namespace dan::kernels::cuda {

namespace {

// Folds (m2, s2) into (m, s), where s is a sum of exp(x - m). Empty partials (s == 0) add
// nothing, which also keeps an all -inf partial from producing exp(-inf - -inf) = NaN.
__device__ __forceinline__ void merge_stats(float& m, double& s, float m2, double s2) {
  const float mm = fmaxf(m, m2);
  const double a = s == 0.0 ? 0.0 : s * static_cast<double>(expf(m - mm));
  const double b = s2 == 0.0 ? 0.0 : s2 * static_cast<double>(expf(m2 - mm));
  m = mm;
  s = a + b;
}

template <bool kWarp>
__global__ void k_softmax_rows(const float* __restrict__ x, float* __restrict__ y, int64_t rows,
                               int64_t cols, bool log) {
  __shared__ float sm[32];
  __shared__ double ss[32];
  for (int64_t r = row_first<kWarp>(); r < rows; r += row_step<kWarp>()) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = -INFINITY;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float v = xr[j];
      if (v > m) {
        s = s * static_cast<double>(expf(m - v)) + 1.0;
        m = v;
      } else if (v != -INFINITY) {  // NaN falls through here and poisons s, as it should
        s += static_cast<double>(expf(v - m));
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(kFullMask, m, o);
      const double s2 = __shfl_xor_sync(kFullMask, s, o);
      merge_stats(m, s, m2, s2);
    }
    if constexpr (!kWarp) {
      const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
      if (lane == 0) {
        sm[warp] = m;
        ss[warp] = s;
      }
      __syncthreads();
      m = sm[0];
      s = ss[0];
      for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) merge_stats(m, s, sm[w], ss[w]);
      __syncthreads();
    }
    if (log) {
      const float lse = static_cast<float>(std::log(s));
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - m - lse;
    } else {
      const float sf = static_cast<float>(s);
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) / sf;
    }
  }
}

// softmax:     dx = y * (g - sum(g * y))
// log_softmax: dx = g - exp(y) * sum(g)
template <bool kWarp>
__global__ void k_softmax_backward_rows(const float* __restrict__ g, const float* __restrict__ y,
                                        float* __restrict__ dx, int64_t rows, int64_t cols,
                                        bool log) {
  __shared__ double smem[32];
  for (int64_t r = row_first<kWarp>(); r < rows; r += row_step<kWarp>()) {
    const float* gr = g + r * cols;
    const float* yr = y + r * cols;
    float* dr = dx + r * cols;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      acc += log ? static_cast<double>(gr[j]) : static_cast<double>(gr[j]) * yr[j];
    }
    const float dot = static_cast<float>(row_reduce<kWarp>(acc, SumOp{}, smem));
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      dr[j] = log ? gr[j] - expf(yr[j]) * dot : yr[j] * (gr[j] - dot);
    }
  }
}

Tensor softmax_forward(const Tensor& x, bool log) {
  require_f32(x, log ? "log_softmax" : "softmax", "input");
  const int d = x.device().index;
  DeviceGuard guard(d);
  Tensor xc = contiguous(x);
  Tensor out = raw::empty(x.shape(), DType::f32, x.device());
  const int64_t cols = x.size(-1);
  if (x.numel() == 0) return out;
  const int64_t rows = x.numel() / cols;
  const RowLaunch L = row_launch(rows, cols, d);
  const float* xp = static_cast<const float*>(xc.raw_data());
  float* o = static_cast<float*>(out.raw_data());
  if (L.warp) {
    k_softmax_rows<true><<<L.grid, L.block, 0, stream_of(d)>>>(xp, o, rows, cols, log);
  } else {
    k_softmax_rows<false><<<L.grid, L.block, 0, stream_of(d)>>>(xp, o, rows, cols, log);
  }
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor softmax_backward_impl(const Tensor& grad, const Tensor& y, bool log) {
  require_f32(y, log ? "log_softmax_backward" : "softmax_backward", "output");
  const int d = y.device().index;
  DeviceGuard guard(d);
  Tensor gc = contiguous(grad), yc = contiguous(y);
  Tensor out = raw::empty(y.shape(), DType::f32, y.device());
  if (y.numel() == 0) return out;
  const int64_t cols = y.size(-1);
  const int64_t rows = y.numel() / cols;
  const RowLaunch L = row_launch(rows, cols, d);
  const float* gp = static_cast<const float*>(gc.raw_data());
  const float* yp = static_cast<const float*>(yc.raw_data());
  float* o = static_cast<float*>(out.raw_data());
  if (L.warp) {
    k_softmax_backward_rows<true><<<L.grid, L.block, 0, stream_of(d)>>>(gp, yp, o, rows, cols, log);
  } else {
    k_softmax_backward_rows<false><<<L.grid, L.block, 0, stream_of(d)>>>(gp, yp, o, rows, cols, log);
  }
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x) { return softmax_forward(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_forward(x, true); }
Tensor softmax_backward(const Tensor& grad, const Tensor& y) {
  return softmax_backward_impl(grad, y, false);
}
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y) {
  return softmax_backward_impl(grad, y, true);
}

}  // namespace dan::kernels::cuda
