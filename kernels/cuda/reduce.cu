// CUDA reductions: sum/mean/max/min, argmax, var, sum_to. Every reduction is brought to rows
// [outer, inner] of a contiguous tensor (permute the reduced dims last, copy if needed) and
// reduced per row; a leading-dims reduction of a contiguous tensor is done in place by columns
// instead. Sums accumulate in double, like the CPU backend. No atomics: fixed reduction trees,
// so results are bitwise reproducible run to run.
#include "kernels/cuda/common.cuh"

#include <cmath>

namespace dan::kernels::cuda {

namespace {

enum class Kind : int { sum, max, min };

struct Combine {
  Kind kind;
  __device__ __forceinline__ double operator()(double a, double b) const {
    switch (kind) {
      case Kind::sum: return a + b;
      case Kind::max: return (a != a || a > b) ? a : b;  // NaN wins, as in PyTorch
      case Kind::min: return (a != a || a < b) ? a : b;
    }
    return a;
  }
  __device__ __forceinline__ double identity() const {
    return kind == Kind::sum ? 0.0 : (kind == Kind::max ? -INFINITY : INFINITY);
  }
};

// Reduces each of `rows` rows; with nchunks > 1 a row is split into nchunks pieces of `chunk`
// elements ("virtual rows") and the output holds one partial per piece. out = acc / divisor.
template <bool kWarp, typename Tin, typename Tout>
__global__ void k_reduce_rows(const Tin* __restrict__ x, int64_t rows, int64_t cols,
                              int64_t nchunks, int64_t chunk, Combine op, double divisor,
                              Tout* __restrict__ out) {
  __shared__ double smem[32];
  const int64_t vrows = rows * nchunks;
  for (int64_t vr = row_first<kWarp>(); vr < vrows; vr += row_step<kWarp>()) {
    const int64_t r = vr / nchunks, c = vr % nchunks;
    const int64_t lo = c * chunk, hi = min(cols, lo + chunk);
    const Tin* row = x + r * cols;
    double acc = op.identity();
    for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) {
      acc = op(acc, static_cast<double>(row[j]));
    }
    acc = row_reduce<kWarp>(acc, op, smem);
    if (threadIdx.x == 0) out[vr] = static_cast<Tout>(acc / divisor);
  }
}

// x viewed as [rows, cols] (contiguous), reduced over rows: threadIdx.x walks columns
// (coalesced), threadIdx.y and blockIdx.y split the rows. Writes partial[blockIdx.y][col].
template <typename Tin, typename Tout>
__global__ void k_reduce_cols(const Tin* __restrict__ x, int64_t rows, int64_t cols,
                              int64_t rows_per_chunk, Combine op, double divisor,
                              Tout* __restrict__ out) {
  __shared__ double smem[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t lo = blockIdx.y * rows_per_chunk, hi = min(rows, lo + rows_per_chunk);
  double acc = op.identity();
  if (c < cols) {
    for (int64_t r = lo + threadIdx.y; r < hi; r += blockDim.y) {
      acc = op(acc, static_cast<double>(x[r * cols + c]));
    }
  }
  smem[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < static_cast<int>(blockDim.y); ++k) acc = op(acc, smem[k][threadIdx.x]);
    out[blockIdx.y * cols + c] = static_cast<Tout>(acc / divisor);
  }
}

struct ArgBest {
  float v;
  int64_t i;
};
// Does (v1, i1) beat (v2, i2)? Larger wins, NaN beats numbers, the first index wins ties.
__device__ __forceinline__ bool beats(float v1, int64_t i1, float v2, int64_t i2) {
  const bool n1 = v1 != v1, n2 = v2 != v2;
  if (n1 || n2) return n1 && (!n2 || i1 < i2);
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

template <bool kWarp>
__global__ void k_argmax_rows(const float* __restrict__ x, int64_t rows, int64_t cols,
                              int64_t* __restrict__ out) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  for (int64_t r = row_first<kWarp>(); r < rows; r += row_step<kWarp>()) {
    const float* row = x + r * cols;
    float bv = -INFINITY;
    int64_t bi = INT64_MAX;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      if (beats(row[j], j, bv, bi)) {
        bv = row[j];
        bi = j;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFullMask, bv, o);
      const int64_t oi = __shfl_xor_sync(kFullMask, bi, o);
      if (beats(ov, oi, bv, bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if constexpr (!kWarp) {
      const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
      if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) {
          if (beats(sv[w], si[w], bv, bi)) {
            bv = sv[w];
            bi = si[w];
          }
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) out[r] = bi;
  }
}

// Two passes over each row (mean, then squared deviations), both in double.
template <bool kWarp>
__global__ void k_var_rows(const float* __restrict__ x, int64_t rows, int64_t cols,
                           double denom, float* __restrict__ out) {
  __shared__ double smem[32];
  for (int64_t r = row_first<kWarp>(); r < rows; r += row_step<kWarp>()) {
    const float* row = x + r * cols;
    double s = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += row[j];
    const double mean = row_reduce<kWarp>(s, SumOp{}, smem) / static_cast<double>(cols);
    double q = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double d = row[j] - mean;
      q += d * d;
    }
    q = row_reduce<kWarp>(q, SumOp{}, smem);
    if (threadIdx.x == 0) out[r] = static_cast<float>(q / denom);
  }
}

struct Plan {
  Shape out_shape;       // with keepdim applied
  Tensor rows;           // contiguous [outer, inner] data (row layout) ...
  bool by_columns = false;  // ... or contiguous [inner, outer] (column layout)
  int64_t outer = 1, inner = 1;
};

// Brings x to a layout where the reduced elements of each output are one row (or column).
Plan plan_reduction(const Tensor& x, std::vector<int64_t> dims, bool keepdim, const char* op) {
  const int64_t nd = x.dim();
  if (dims.empty()) {
    for (int64_t d = 0; d < nd; ++d) dims.push_back(d);
  }
  std::vector<bool> red(static_cast<size_t>(std::max<int64_t>(nd, 1)), false);
  for (int64_t d : dims) red[static_cast<size_t>(wrap_dim(d, nd, op))] = true;
  Plan p;
  Shape perm;
  for (int64_t d = 0; d < nd; ++d) {
    if (!red[d]) {
      perm.push_back(d);
      p.outer *= x.size(d);
    }
    if (!red[d] || keepdim) p.out_shape.push_back(red[d] ? 1 : x.size(d));
  }
  for (int64_t d = 0; d < nd; ++d) {
    if (red[d]) {
      perm.push_back(d);
      p.inner *= x.size(d);
    }
  }
  // Reduced dims all in front of the kept ones in a contiguous tensor: reduce columns in place.
  bool leading = true;
  for (int64_t d = 0; d + 1 < nd; ++d) leading = leading && (red[d] || !red[d + 1]);
  if (leading && x.is_contiguous() && p.outer >= 32 && p.inner > 1) {
    p.rows = x;
    p.by_columns = true;
    return p;
  }
  p.rows = contiguous(nd == 0 ? x : raw::permute(x, perm));
  return p;
}

// Reduces the plan to a fresh f32 tensor of plan.out_shape (acc / divisor).
Tensor run_reduction(const Plan& p, Kind kind, double divisor, Device dev) {
  Tensor out = raw::empty(p.out_shape, DType::f32, dev);
  if (p.outer == 0) return out;
  const int d = dev.index;
  cudaStream_t s = stream_of(d);
  const Combine op{kind};
  const float* x = static_cast<const float*>(p.rows.raw_data());
  float* o = static_cast<float*>(out.raw_data());
  const int64_t sms = ::dan::cuda::device_props(d).sm_count;
  if (p.by_columns) {
    const int64_t rows = p.inner, cols = p.outer;
    const int64_t col_blocks = (cols + 31) / 32;
    // Split rows across blockIdx.y when the columns alone would not fill the device.
    const int64_t want = std::clamp<int64_t>((4 * sms + col_blocks - 1) / col_blocks, 1,
                                             std::min<int64_t>((rows + 255) / 256, 1024));
    const int64_t per = (rows + want - 1) / want;
    const int64_t nchunks = (rows + per - 1) / per;
    const dim3 block(32, 8);
    if (nchunks == 1) {
      k_reduce_cols<float, float><<<dim3(col_blocks, 1), block, 0, s>>>(x, rows, cols, per, op,
                                                                         divisor, o);
      DAN_CUDA_CHECK_LAUNCH();
      return out;
    }
    Tensor part = raw::empty({nchunks, cols}, DType::f64, dev);
    double* pp = static_cast<double*>(part.raw_data());
    k_reduce_cols<float, double><<<dim3(col_blocks, nchunks), block, 0, s>>>(x, rows, cols, per,
                                                                              op, 1.0, pp);
    DAN_CUDA_CHECK_LAUNCH();
    k_reduce_cols<double, float><<<dim3(col_blocks, 1), block, 0, s>>>(pp, nchunks, cols, nchunks,
                                                                        op, divisor, o);
    DAN_CUDA_CHECK_LAUNCH();
    return out;
  }
  const int64_t rows = p.outer, cols = p.inner;
  if (cols <= kWarpRowLimit) {
    const RowLaunch L = row_launch(rows, cols, d);
    k_reduce_rows<true, float, float><<<L.grid, L.block, 0, s>>>(x, rows, cols, 1, cols, op,
                                                                 divisor, o);
    DAN_CUDA_CHECK_LAUNCH();
    return out;
  }
  // Long rows: blocks over row pieces into double partials, then one warp per row sums them.
  const int64_t nchunks = std::clamp<int64_t>((4 * sms + rows - 1) / rows, 1,
                                              std::min<int64_t>((cols + 4095) / 4096, 1024));
  const int64_t chunk = (cols + nchunks - 1) / nchunks;
  Tensor part = raw::empty({rows, nchunks}, DType::f64, dev);
  double* pp = static_cast<double*>(part.raw_data());
  const int64_t vrows = rows * nchunks;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(vrows, 32 * sms));
  k_reduce_rows<false, float, double><<<grid, kRowBlock, 0, s>>>(x, rows, cols, nchunks, chunk,
                                                                 op, 1.0, pp);
  DAN_CUDA_CHECK_LAUNCH();
  const RowLaunch L = row_launch(rows, nchunks, d);
  k_reduce_rows<true, double, float><<<L.grid, L.block, 0, s>>>(pp, rows, nchunks, 1, nchunks, op,
                                                                divisor, o);
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

Kind kind_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::max: return Kind::max;
    case ReduceOp::min: return Kind::min;
    default: return Kind::sum;
  }
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  require_f32(x, name(op), "input");
  DeviceGuard guard(x.device().index);
  const Plan p = plan_reduction(x, dims, keepdim, name(op));
  // mean divides by the reduced count (0 -> NaN, as in PyTorch).
  const double divisor = op == ReduceOp::mean ? static_cast<double>(p.inner) : 1.0;
  return run_reduction(p, kind_of(op), divisor, x.device());
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  require_f32(x, "argmax", "input");
  const int d = x.device().index;
  DeviceGuard guard(d);
  const int64_t nd = x.dim();
  dim = wrap_dim(dim, nd, "argmax");
  Shape out_shape;
  Shape perm;
  for (int64_t k = 0; k < nd; ++k) {
    if (k != dim) {
      perm.push_back(k);
      out_shape.push_back(x.size(k));
    } else if (keepdim) {
      out_shape.push_back(1);
    }
  }
  const int64_t cols = nd == 0 ? 1 : x.size(dim);
  if (nd > 0) perm.push_back(dim);
  Tensor rows = contiguous(nd == 0 ? x : raw::permute(x, perm));
  Tensor out = raw::empty(out_shape, DType::i64, x.device());
  const int64_t nrows = out.numel();
  if (nrows == 0) return out;
  const RowLaunch L = row_launch(nrows, cols, d);
  const float* xp = static_cast<const float*>(rows.raw_data());
  int64_t* o = static_cast<int64_t*>(out.raw_data());
  if (L.warp) {
    k_argmax_rows<true><<<L.grid, L.block, 0, stream_of(d)>>>(xp, nrows, cols, o);
  } else {
    k_argmax_rows<false><<<L.grid, L.block, 0, stream_of(d)>>>(xp, nrows, cols, o);
  }
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  require_f32(x, "var", "input");
  const int d = x.device().index;
  DeviceGuard guard(d);
  Plan p = plan_reduction(x, dims, keepdim, "var");
  if (p.by_columns) {
    // var's kernel is row-only; put the reduced dims last.
    p.by_columns = false;
    Tensor t = raw::view(p.rows, {p.inner, p.outer});
    p.rows = contiguous(raw::transpose(t, 0, 1));
  }
  Tensor out = raw::empty(p.out_shape, DType::f32, x.device());
  if (p.outer == 0) return out;
  // n - correction <= 0 divides by zero (inf or NaN), as in PyTorch.
  const double denom = std::max<double>(static_cast<double>(p.inner - correction), 0.0);
  const RowLaunch L = row_launch(p.outer, p.inner, d);
  const float* xp = static_cast<const float*>(p.rows.raw_data());
  float* o = static_cast<float*>(out.raw_data());
  if (L.warp) {
    k_var_rows<true><<<L.grid, L.block, 0, stream_of(d)>>>(xp, p.outer, p.inner, denom, o);
  } else {
    k_var_rows<false><<<L.grid, L.block, 0, stream_of(d)>>>(xp, p.outer, p.inner, denom, o);
  }
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  require_f32(g, "sum_to", "grad");
  DeviceGuard guard(g.device().index);
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < g.dim(); ++d) {
    if (d < lead || (shape[static_cast<size_t>(d - lead)] == 1 && g.size(d) != 1)) {
      dims.push_back(d);
    }
  }
  if (dims.empty()) {
    // Only size-1 dims differ: same elements, new shape.
    Tensor c = raw::empty(g.shape(), DType::f32, g.device());
    copy_into(c, g);
    return raw::view(c, shape);
  }
  Tensor r = cuda::reduce(ReduceOp::sum, g, dims, /*keepdim=*/true);
  return raw::view(r, shape);
}

}  // namespace dan::kernels::cuda
