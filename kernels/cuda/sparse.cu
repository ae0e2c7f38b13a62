// CUDA sparse kernels: SpMM by cuSPARSE (cusparseSpMM) or by our row-split kernel, chosen per
// shape by timing both once; segment sums, SDDMM, GCN normalization and the fused GINE
// aggregation as row-split kernels. No atomics anywhere: a group of threads owns an output
// row, each thread a fixed set of features, and entries are summed in storage order, so every
// result is bitwise reproducible.
#include <cusparse.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/common.cuh"
#include "kernels/sparse.h"

namespace dan::kernels::cuda {

namespace {

int dev_of(const Tensor& t) { return t.device().index; }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// ---- launch shape of the row-split kernels ----------------------------------------------------
// G threads per row (a power of two <= 32, so a group never straddles a warp), each owning V
// consecutive features (V = 4 with float4 loads when every row start is 16-byte aligned).
struct RowSplit {
  int g = 1, v = 1;
  unsigned grid = 1;
};

RowSplit row_split_shape(int64_t rows, int64_t F, bool vec4, int dev) {
  RowSplit s;
  s.v = vec4 ? 4 : 1;
  const int64_t lanes = (F + s.v - 1) / s.v;
  while (s.g < 32 && s.g < lanes) s.g *= 2;
  const int64_t rows_per_block = kBlock / s.g;
  const int64_t want = (rows + rows_per_block - 1) / rows_per_block;
  const int64_t cap = int64_t{64} * ::dan::cuda::device_props(dev).sm_count;
  s.grid = static_cast<unsigned>(std::clamp<int64_t>(want, 1, cap));
  return s;
}

template <int V>
struct Vec;
template <>
struct Vec<1> {
  float a[1];
  __device__ __forceinline__ static Vec load(const float* p) { return {{__ldg(p)}}; }
  __device__ __forceinline__ void store(float* p) const { p[0] = a[0]; }
};
template <>
struct Vec<4> {
  float a[4];
  __device__ __forceinline__ static Vec load(const float* p) {
    const float4 q = __ldg(reinterpret_cast<const float4*>(p));
    return {{q.x, q.y, q.z, q.w}};
  }
  __device__ __forceinline__ void store(float* p) const {
    *reinterpret_cast<float4*>(p) = make_float4(a[0], a[1], a[2], a[3]);
  }
};

// Row r of a grid-stride loop over rows, for the group this thread belongs to.
__device__ __forceinline__ int64_t group_first_row(int g) {
  return static_cast<int64_t>(blockIdx.x) * (blockDim.x / g) + threadIdx.x / g;
}
__device__ __forceinline__ int64_t group_row_step(int g) {
  return static_cast<int64_t>(gridDim.x) * (blockDim.x / g);
}

// out[r, f] = Σ_{k in row r} v(k) src[j(k), f]; j(k) = index[k] or k, v(k) = values[k] or 1.
template <typename I, bool kVal, bool kIdx, int V>
__global__ void k_gather_sum(const I* __restrict__ indptr, const I* __restrict__ index,
                             const float* __restrict__ values, const float* __restrict__ src,
                             float* __restrict__ out, int64_t rows, int64_t F, int g) {
  const int lane = threadIdx.x % g;
  for (int64_t r = group_first_row(g); r < rows; r += group_row_step(g)) {
    const int64_t k0 = indptr[r], k1 = indptr[r + 1];
    for (int64_t f = static_cast<int64_t>(lane) * V; f < F; f += static_cast<int64_t>(g) * V) {
      float acc[V];
#pragma unroll
      for (int q = 0; q < V; ++q) acc[q] = 0.0f;
#pragma unroll 4
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t j = kIdx ? static_cast<int64_t>(index[k]) : k;
        const Vec<V> s = Vec<V>::load(src + j * F + f);
        const float w = kVal ? __ldg(values + k) : 1.0f;
#pragma unroll
        for (int q = 0; q < V; ++q) acc[q] = kVal ? fmaf(w, s.a[q], acc[q]) : acc[q] + s.a[q];
      }
      Vec<V> o;
#pragma unroll
      for (int q = 0; q < V; ++q) o.a[q] = acc[q];
      o.store(out + r * F + f);
    }
  }
}

// out[r, f] = Σ_{k in row r} relu(x[col(k), f] + e[k, f]).
template <typename I, int V>
__global__ void k_gine(const I* __restrict__ indptr, const I* __restrict__ index,
                       const float* __restrict__ x, const float* __restrict__ e,
                       float* __restrict__ out, int64_t rows, int64_t F, int g) {
  const int lane = threadIdx.x % g;
  for (int64_t r = group_first_row(g); r < rows; r += group_row_step(g)) {
    const int64_t k0 = indptr[r], k1 = indptr[r + 1];
    for (int64_t f = static_cast<int64_t>(lane) * V; f < F; f += static_cast<int64_t>(g) * V) {
      float acc[V];
#pragma unroll
      for (int q = 0; q < V; ++q) acc[q] = 0.0f;
#pragma unroll 4
      for (int64_t k = k0; k < k1; ++k) {
        const Vec<V> xs = Vec<V>::load(x + static_cast<int64_t>(index[k]) * F + f);
        const Vec<V> es = Vec<V>::load(e + k * F + f);
#pragma unroll
        for (int q = 0; q < V; ++q) acc[q] += fmaxf(xs.a[q] + es.a[q], 0.0f);
      }
      Vec<V> o;
#pragma unroll
      for (int q = 0; q < V; ++q) o.a[q] = acc[q];
      o.store(out + r * F + f);
    }
  }
}

// out[k, f] = x[col(k), f] + e[k, f] > 0 ? g[r, f] : 0.
template <typename I, int V>
__global__ void k_gine_backward(const I* __restrict__ indptr, const I* __restrict__ index,
                                const float* __restrict__ gr, const float* __restrict__ x,
                                const float* __restrict__ e, float* __restrict__ out, int64_t rows,
                                int64_t F, int g) {
  const int lane = threadIdx.x % g;
  for (int64_t r = group_first_row(g); r < rows; r += group_row_step(g)) {
    const int64_t k0 = indptr[r], k1 = indptr[r + 1];
    for (int64_t f = static_cast<int64_t>(lane) * V; f < F; f += static_cast<int64_t>(g) * V) {
      const Vec<V> gv = Vec<V>::load(gr + r * F + f);
      for (int64_t k = k0; k < k1; ++k) {
        const Vec<V> xs = Vec<V>::load(x + static_cast<int64_t>(index[k]) * F + f);
        const Vec<V> es = Vec<V>::load(e + k * F + f);
        Vec<V> o;
#pragma unroll
        for (int q = 0; q < V; ++q) o.a[q] = xs.a[q] + es.a[q] > 0.0f ? gv.a[q] : 0.0f;
        o.store(out + k * F + f);
      }
    }
  }
}

// out[k] = g[r] . x[col(k)]: each thread a strided part of the dot product, then a butterfly
// over the group's lanes (fixed order, so deterministic).
template <typename I>
__global__ void k_sddmm(const I* __restrict__ indptr, const I* __restrict__ index,
                        const float* __restrict__ gr, const float* __restrict__ x,
                        float* __restrict__ out, int64_t rows, int64_t F, int g) {
  const int lane = threadIdx.x % g;
  const unsigned warp_lane = threadIdx.x % 32;
  const unsigned mask = g == 32 ? kFullMask : ((1u << g) - 1u) << (warp_lane / g * g);
  for (int64_t r = group_first_row(g); r < rows; r += group_row_step(g)) {
    const int64_t k0 = indptr[r], k1 = indptr[r + 1];
    for (int64_t k = k0; k < k1; ++k) {
      const float* xr = x + static_cast<int64_t>(index[k]) * F;
      float s = 0.0f;
      for (int64_t f = lane; f < F; f += g) s = fmaf(__ldg(gr + r * F + f), __ldg(xr + f), s);
      for (int o = g / 2; o > 0; o >>= 1) s += __shfl_xor_sync(mask, s, o, g);
      if (lane == 0) out[k] = s;
    }
  }
}

// dinv[r] = (Σ_{k in row r} v[k])^-1/2, 0 where that is inf.
template <typename I>
__global__ void k_degree_rsqrt(const I* __restrict__ indptr, const float* __restrict__ v,
                               float* __restrict__ dinv, int64_t rows) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    float d = 0.0f;
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) d = __fadd_rn(d, v[k]);
    const float s = powf(d, -0.5f);
    dinv[r] = isinf(s) ? 0.0f : s;
  }
}

template <typename I>
__global__ void k_gcn_scale(const I* __restrict__ indptr, const I* __restrict__ index,
                            const float* __restrict__ v, const float* __restrict__ dinv,
                            float* __restrict__ out, int64_t rows) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      out[k] = __fmul_rn(__fmul_rn(dinv[index[k]], v[k]), dinv[r]);
    }
  }
}

// Launches a row-split kernel with V = 4 when F % 4 == 0 and the row-major operands are
// 16-byte aligned, else V = 1.
template <typename Launch>
void launch_row_split(int64_t rows, int64_t F, bool vec4_ok, int dev, const Launch& launch) {
  const bool vec4 = vec4_ok && F % 4 == 0;
  const RowSplit s = row_split_shape(rows, F, vec4, dev);
  if (vec4) {
    launch(std::integral_constant<int, 4>{}, s);
  } else {
    launch(std::integral_constant<int, 1>{}, s);
  }
  DAN_CUDA_CHECK_LAUNCH();
}

Tensor row_split_spmm(const Tensor& indptr, const Tensor& index, const Tensor& values,
                      const Tensor& src, const Tensor& out) {
  const int dev = dev_of(src);
  const int64_t rows = indptr.numel() - 1, F = src.size(1);
  const bool ok4 = aligned16(src.raw_data()) && aligned16(out.raw_data());
  const float* s = static_cast<const float*>(src.raw_data());
  const float* v = values.defined() ? static_cast<const float*>(values.raw_data()) : nullptr;
  float* o = static_cast<float*>(out.raw_data());
  DAN_DISPATCH_INDEX(indptr.dtype(), "spmm", [&]<typename I>() {
    const I* ip = static_cast<const I*>(indptr.raw_data());
    const I* ix = index.defined() ? static_cast<const I*>(index.raw_data()) : nullptr;
    launch_row_split(rows, F, ok4, dev, [&](auto vtag, const RowSplit& sh) {
      constexpr int V = decltype(vtag)::value;
      cudaStream_t st = stream_of(dev);
      if (v != nullptr && ix != nullptr) {
        k_gather_sum<I, true, true, V><<<sh.grid, kBlock, 0, st>>>(ip, ix, v, s, o, rows, F, sh.g);
      } else if (v != nullptr) {
        k_gather_sum<I, true, false, V><<<sh.grid, kBlock, 0, st>>>(ip, ix, v, s, o, rows, F, sh.g);
      } else if (ix != nullptr) {
        k_gather_sum<I, false, true, V><<<sh.grid, kBlock, 0, st>>>(ip, ix, v, s, o, rows, F, sh.g);
      } else {
        k_gather_sum<I, false, false, V>
            <<<sh.grid, kBlock, 0, st>>>(ip, ix, v, s, o, rows, F, sh.g);
      }
    });
  });
  return out;
}

// ---- cuSPARSE -------------------------------------------------------------------------------
// Descriptors and the work buffer of one SpMM shape. Pointers are rebound on every call
// (cusparseCsrSetPointers / cusparseDnMatSetValues), so one plan serves every matrix and
// operand of that shape. Plans live for the process (never destroyed: their destructors
// would run after the CUDA context is gone at exit).
struct PlanKey {
  int dev;
  int64_t rows, cols, nnz, F;
  DType idx;
  bool operator<(const PlanKey& o) const {
    return std::tie(dev, rows, cols, nnz, F, idx) <
           std::tie(o.dev, o.rows, o.cols, o.nnz, o.F, o.idx);
  }
};

struct Plan {
  cusparseSpMatDescr_t a = nullptr;
  cusparseDnMatDescr_t b = nullptr, c = nullptr;
  cusparseSpMMAlg_t alg = CUSPARSE_SPMM_ALG_DEFAULT;
  Tensor buffer;  // external work buffer (caching allocator memory)
};

struct Decision {
  SpmmAlgo algo;
  double ms_cusparse, ms_row_split;
};

std::mutex& plans_mutex() {
  static std::mutex m;
  return m;
}
std::map<PlanKey, Plan>& plans() {
  static auto* p = new std::map<PlanKey, Plan>();
  return *p;
}
std::map<PlanKey, Decision>& decisions() {
  static auto* d = new std::map<PlanKey, Decision>();
  return *d;
}

// CSR_ALG2 is cuSPARSE's CSR algorithm for row-major dense operands (deterministic for a
// non-transposed A); should a library version refuse it for a shape, the default algorithm
// is used instead.
constexpr cusparseSpMMAlg_t kCusparseAlgs[] = {CUSPARSE_SPMM_CSR_ALG2, CUSPARSE_SPMM_ALG_DEFAULT};

void cusparse_spmm(const PlanKey& key, const Tensor& indptr, const Tensor& indices,
                   const Tensor& values, const Tensor& src, const Tensor& out) {
  const int dev = key.dev;
  cusparseHandle_t h = ::dan::cuda::cusparse_handle(dev);
  const cusparseIndexType_t it = key.idx == DType::i32 ? CUSPARSE_INDEX_32I : CUSPARSE_INDEX_64I;
  const float alpha = 1.0f, beta = 0.0f;
  std::lock_guard<std::mutex> lock(plans_mutex());
  auto [pos, fresh] = plans().try_emplace(key);
  Plan& p = pos->second;
  if (fresh) {
    DAN_CUSPARSE_CHECK(cusparseCreateCsr(&p.a, key.rows, key.cols, key.nnz, indptr.raw_data(),
                                         indices.raw_data(), values.raw_data(), it, it,
                                         CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F));
    DAN_CUSPARSE_CHECK(cusparseCreateDnMat(&p.b, key.cols, key.F, key.F, src.raw_data(), CUDA_R_32F,
                                           CUSPARSE_ORDER_ROW));
    DAN_CUSPARSE_CHECK(cusparseCreateDnMat(&p.c, key.rows, key.F, key.F, out.raw_data(), CUDA_R_32F,
                                           CUSPARSE_ORDER_ROW));
    size_t bytes = 0;
    cusparseStatus_t st = CUSPARSE_STATUS_NOT_SUPPORTED;
    for (cusparseSpMMAlg_t alg : kCusparseAlgs) {
      st = cusparseSpMM_bufferSize(h, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                   CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, p.a, p.b, &beta, p.c,
                                   CUDA_R_32F, alg, &bytes);
      p.alg = alg;
      if (st != CUSPARSE_STATUS_NOT_SUPPORTED) break;
    }
    DAN_CUSPARSE_CHECK(st);
    p.buffer =
        raw::empty({static_cast<int64_t>((bytes + 7) / 8) + 1}, DType::i64, Device::cuda(dev));
  } else {
    DAN_CUSPARSE_CHECK(
        cusparseCsrSetPointers(p.a, indptr.raw_data(), indices.raw_data(), values.raw_data()));
    DAN_CUSPARSE_CHECK(cusparseDnMatSetValues(p.b, src.raw_data()));
    DAN_CUSPARSE_CHECK(cusparseDnMatSetValues(p.c, out.raw_data()));
  }
  DAN_CUSPARSE_CHECK(cusparseSpMM(h, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                  CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, p.a, p.b, &beta, p.c,
                                  CUDA_R_32F, p.alg, p.buffer.raw_data()));
}

SpmmAlgo decide(const PlanKey& key, const Tensor& indptr, const Tensor& indices,
                const Tensor& values, const Tensor& src, const Tensor& out) {
  {
    std::lock_guard<std::mutex> lock(plans_mutex());
    const auto it = decisions().find(key);
    if (it != decisions().end()) return it->second.algo;
  }
  // A shape cuSPARSE refuses (an error from the library) is decided for the row-split kernel.
  double tc = -1;
  try {
    tc = best_of_three_ms(key.dev, [&] { cusparse_spmm(key, indptr, indices, values, src, out); });
  } catch (const Error&) {
    tc = -1;
  }
  const double tr =
      best_of_three_ms(key.dev, [&] { row_split_spmm(indptr, indices, values, src, out); });
  const SpmmAlgo a = tc >= 0 && tc < tr ? SpmmAlgo::cusparse : SpmmAlgo::row_split;
  std::lock_guard<std::mutex> lock(plans_mutex());
  decisions().emplace(key, Decision{a, tc, tr});
  return a;
}

}  // namespace

Tensor csr_spmm(const Tensor& indptr, const Tensor& index, const Tensor& values, const Tensor& src,
                SpmmAlgo algo) {
  require_f32(src, "spmm", "dense operand");
  const int dev = dev_of(src);
  DeviceGuard guard(dev);
  const int64_t rows = indptr.numel() - 1, F = src.size(1);
  Tensor out = raw::empty({rows, F}, DType::f32, src.device());
  if (rows == 0 || F == 0) return out;
  const int64_t nnz = index.defined() ? index.numel() : src.size(0);
  if (nnz == 0) {
    DAN_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), stream_of(dev)));
    return out;
  }
  const bool real_spmm = index.defined() && values.defined();
  if (!real_spmm || algo == SpmmAlgo::row_split)
    return row_split_spmm(indptr, index, values, src, out);
  const PlanKey key{dev, rows, src.size(0), nnz, F, indptr.dtype()};
  if (algo == SpmmAlgo::automatic) algo = decide(key, indptr, index, values, src, out);
  if (algo == SpmmAlgo::cusparse) {
    cusparse_spmm(key, indptr, index, values, src, out);
    return out;
  }
  return row_split_spmm(indptr, index, values, src, out);
}

std::vector<std::string> spmm_decisions() {
  std::lock_guard<std::mutex> lock(plans_mutex());
  std::vector<std::string> out;
  for (const auto& [k, d] : decisions()) {
    const std::string tc =
        d.ms_cusparse < 0 ? std::string("refused") : fmt::format("{:.3f} ms", d.ms_cusparse);
    out.push_back(
        fmt::format("cuda:{} {} x {} nnz {} F {} {}: {} (cusparse {}, rowsplit {:.3f} "
                    "ms)",
                    k.dev, k.rows, k.cols, k.nnz, k.F, k.idx, name(d.algo), tc, d.ms_row_split));
  }
  return out;
}

Tensor csr_sddmm(const Tensor& indptr, const Tensor& indices, const Tensor& g, const Tensor& x) {
  require_f32(g, "sddmm", "g");
  const int dev = dev_of(g);
  DeviceGuard guard(dev);
  const int64_t rows = indptr.numel() - 1, F = g.size(1);
  Tensor out = raw::empty({indices.numel()}, DType::f32, g.device());
  if (indices.numel() == 0) return out;
  const RowSplit s = row_split_shape(rows, F, false, dev);
  DAN_DISPATCH_INDEX(indptr.dtype(), "sddmm", [&]<typename I>() {
    k_sddmm<I><<<s.grid, kBlock, 0, stream_of(dev)>>>(
        static_cast<const I*>(indptr.raw_data()), static_cast<const I*>(indices.raw_data()),
        static_cast<const float*>(g.raw_data()), static_cast<const float*>(x.raw_data()),
        static_cast<float*>(out.raw_data()), rows, F, s.g);
  });
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor csr_gcn_norm(const Tensor& indptr, const Tensor& indices, const Tensor& values) {
  require_f32(values, "gcn_norm", "values");
  const int dev = dev_of(values);
  DeviceGuard guard(dev);
  const int64_t rows = indptr.numel() - 1;
  Tensor out = raw::empty({values.numel()}, DType::f32, values.device());
  if (rows == 0) return out;
  Tensor dinv = raw::empty({rows}, DType::f32, values.device());
  DAN_DISPATCH_INDEX(indptr.dtype(), "gcn_norm", [&]<typename I>() {
    const I* ip = static_cast<const I*>(indptr.raw_data());
    const float* v = static_cast<const float*>(values.raw_data());
    float* d = static_cast<float*>(dinv.raw_data());
    k_degree_rsqrt<I><<<grid_for(rows, dev), kBlock, 0, stream_of(dev)>>>(ip, v, d, rows);
    DAN_CUDA_CHECK_LAUNCH();
    k_gcn_scale<I><<<grid_for(rows, dev), kBlock, 0, stream_of(dev)>>>(
        ip, static_cast<const I*>(indices.raw_data()), v, d, static_cast<float*>(out.raw_data()),
        rows);
    DAN_CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor csr_gine_aggregate(const Tensor& indptr, const Tensor& indices, const Tensor& x,
                          const Tensor& edge) {
  require_f32(x, "gine_aggregate", "x");
  const int dev = dev_of(x);
  DeviceGuard guard(dev);
  const int64_t rows = indptr.numel() - 1, F = x.size(1);
  Tensor out = raw::empty({rows, F}, DType::f32, x.device());
  if (rows == 0 || F == 0) return out;
  const bool ok4 =
      aligned16(x.raw_data()) && aligned16(edge.raw_data()) && aligned16(out.raw_data());
  DAN_DISPATCH_INDEX(indptr.dtype(), "gine_aggregate", [&]<typename I>() {
    launch_row_split(rows, F, ok4, dev, [&](auto vtag, const RowSplit& s) {
      constexpr int V = decltype(vtag)::value;
      k_gine<I, V><<<s.grid, kBlock, 0, stream_of(dev)>>>(
          static_cast<const I*>(indptr.raw_data()), static_cast<const I*>(indices.raw_data()),
          static_cast<const float*>(x.raw_data()), static_cast<const float*>(edge.raw_data()),
          static_cast<float*>(out.raw_data()), rows, F, s.g);
    });
  });
  return out;
}

Tensor csr_gine_aggregate_backward(const Tensor& indptr, const Tensor& indices, const Tensor& g,
                                   const Tensor& x, const Tensor& edge) {
  require_f32(x, "gine_aggregate_backward", "x");
  const int dev = dev_of(x);
  DeviceGuard guard(dev);
  const int64_t rows = indptr.numel() - 1, F = x.size(1);
  Tensor out = raw::empty({indices.numel(), F}, DType::f32, x.device());
  if (indices.numel() == 0 || F == 0) return out;
  const bool ok4 = aligned16(g.raw_data()) && aligned16(x.raw_data()) &&
                   aligned16(edge.raw_data()) && aligned16(out.raw_data());
  DAN_DISPATCH_INDEX(indptr.dtype(), "gine_aggregate_backward", [&]<typename I>() {
    launch_row_split(rows, F, ok4, dev, [&](auto vtag, const RowSplit& s) {
      constexpr int V = decltype(vtag)::value;
      k_gine_backward<I, V><<<s.grid, kBlock, 0, stream_of(dev)>>>(
          static_cast<const I*>(indptr.raw_data()), static_cast<const I*>(indices.raw_data()),
          static_cast<const float*>(g.raw_data()), static_cast<const float*>(x.raw_data()),
          static_cast<const float*>(edge.raw_data()), static_cast<float*>(out.raw_data()), rows, F,
          s.g);
    });
  });
  return out;
}

}  // namespace dan::kernels::cuda
