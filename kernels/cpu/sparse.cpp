// CPU sparse kernels: SpMM / segment sums (one row-gather-sum kernel), SDDMM, GCN
// normalization and the fused GINE aggregation. Rows are split into blocks of balanced work
// (entries + rows) that OpenMP threads take dynamically; each output row is computed by one
// thread, entries in storage order, features in register tiles, so the bits never depend on
// the thread count. f32 kernels are compiled for AVX2+FMA and a baseline (target_clones).
#include "kernels/sparse.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/loops.h"

namespace dan::kernels::cpu {

namespace {

// Row blocks [b[i], b[i + 1]) of about equal (entries + rows) x features. A single block when
// the work is small or there is one thread; otherwise several per thread so that dynamic
// scheduling absorbs the skew of power-law degrees.
template <typename I>
std::vector<int64_t> row_blocks(const I* indptr, int64_t rows, int64_t features) {
  const int64_t nnz = static_cast<int64_t>(indptr[rows]);
  const int64_t threads = omp_get_max_threads();
  const int64_t work = (nnz + rows) * std::max<int64_t>(features, 1);
  if (rows == 0) return {0, 0};
  if (threads == 1 || work < kParallelNumel) return {0, rows};
  const int64_t nb = std::min<int64_t>(rows, threads * 16);
  std::vector<int64_t> b = {0};
  for (int64_t i = 1; i < nb; ++i) {
    // Smallest r with indptr[r] + r >= target: the cost of rows [0, r) reaches i/nb of all.
    const int64_t target = (nnz + rows) * i / nb;
    int64_t lo = b.back(), hi = rows;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (static_cast<int64_t>(indptr[mid]) + mid < target) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo > b.back() && lo < rows) b.push_back(lo);
  }
  b.push_back(rows);
  return b;
}

// Runs f(r0, r1) over the blocks, in parallel when there are several.
template <typename I, typename F>
void for_blocks(const I* indptr, int64_t rows, int64_t features, const F& f) {
  const std::vector<int64_t> b = row_blocks(indptr, rows, features);
  const int64_t nb = static_cast<int64_t>(b.size()) - 1;
#pragma omp parallel for schedule(dynamic, 1) if (nb > 1)
  for (int64_t i = 0; i < nb; ++i) f(b[i], b[i + 1]);
}

// Feature tile kept in registers: 8 AVX vectors of f32 or f64. The row functions below are
// always inlined so that the target_clones wrappers at the end compile them for AVX2.
template <typename T>
constexpr int kTileW = 256 / static_cast<int>(sizeof(T));

// Source rows are prefetched this many entries ahead: the gathers are random accesses into a
// table much larger than the caches, so their latency is what a row waits on. The look-ahead
// covers about kLinesInFlight cache lines and runs across row boundaries (up to the end of the
// thread's block): rows are short in typical graphs, and a row-local look-ahead would leave
// the first entries of every row unprefetched.
constexpr int64_t kLinesInFlight = 32;
template <typename T>
[[gnu::always_inline]] inline int64_t prefetch_distance(int64_t w) {
  const int64_t lines = (w * static_cast<int64_t>(sizeof(T)) + 63) / 64;
  return std::clamp<int64_t>(kLinesInFlight / std::max<int64_t>(lines, 1), 4, 32);
}

template <typename T>
[[gnu::always_inline]] inline void prefetch_row(const T* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < n * static_cast<int64_t>(sizeof(T)); b += 64) __builtin_prefetch(c + b);
}

// ---- row gather-sum: out[r] = Σ_k v(k) src[j(k)] -------------------------------------------

// One tile [f0, f0 + w) of one output row. kW > 0: a compile-time width (w == kW), whose
// accumulators stay in registers; kW == 0: a runtime width w < kTileW<T> / 4 (the remainder).
template <typename T, typename I, bool kVal, bool kIdx, int kW>
[[gnu::always_inline]] inline void gather_sum_tile(const I* __restrict idx, const T* __restrict val,
                                                   const T* __restrict src, int64_t F, int64_t k0,
                                                   int64_t k1, int64_t k_end, int64_t f0,
                                                   int64_t w_dyn, T* __restrict dst) {
  constexpr int W = kW > 0 ? kW : kTileW<T>;
  const int64_t w = kW > 0 ? kW : w_dyn;
  T acc[W];
#pragma omp simd
  for (int f = 0; f < W; ++f) acc[f] = T(0);
  const int64_t pd = prefetch_distance<T>(w);
  for (int64_t k = k0; k < k1; ++k) {
    if (k + pd < k_end) {
      const int64_t jn = kIdx ? static_cast<int64_t>(idx[k + pd]) : k + pd;
      prefetch_row(src + jn * F + f0, w);
    }
    const int64_t j = kIdx ? static_cast<int64_t>(idx[k]) : k;
    const T* __restrict s = src + j * F + f0;
    const T v = kVal ? val[k] : T(1);
    if constexpr (kW > 0) {
#pragma omp simd
      for (int f = 0; f < kW; ++f) acc[f] += kVal ? v * s[f] : s[f];
    } else {
      for (int64_t f = 0; f < w; ++f) acc[f] += kVal ? v * s[f] : s[f];
    }
  }
  for (int64_t f = 0; f < w; ++f) dst[f] = acc[f];
}

template <typename T, typename I, bool kVal, bool kIdx>
[[gnu::always_inline]] inline void gather_sum_rows(const void* indptr_, const void* idx_,
                                                   const void* val_, const void* src_, void* out_,
                                                   int64_t r0, int64_t r1, int64_t F) {
  const I* indptr = static_cast<const I*>(indptr_);
  const I* idx = static_cast<const I*>(idx_);
  const T* val = static_cast<const T*>(val_);
  const T* src = static_cast<const T*>(src_);
  T* out = static_cast<T*>(out_);
  // Tiles of W, W/2 and W/4 features with register accumulators, then a runtime remainder;
  // every feature's sum runs over the entries in the same order whatever the tiling.
  constexpr int W = kTileW<T>;
  const int64_t k_end = indptr[r1];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t k0 = indptr[r], k1 = indptr[r + 1];
    T* o = out + r * F;
    int64_t f0 = 0;
    for (; f0 + W <= F; f0 += W) {
      gather_sum_tile<T, I, kVal, kIdx, W>(idx, val, src, F, k0, k1, k_end, f0, W, o + f0);
    }
    if (f0 + W / 2 <= F) {
      gather_sum_tile<T, I, kVal, kIdx, W / 2>(idx, val, src, F, k0, k1, k_end, f0, 0, o + f0);
      f0 += W / 2;
    }
    if (f0 + W / 4 <= F) {
      gather_sum_tile<T, I, kVal, kIdx, W / 4>(idx, val, src, F, k0, k1, k_end, f0, 0, o + f0);
      f0 += W / 4;
    }
    if (f0 < F) {
      gather_sum_tile<T, I, kVal, kIdx, 0>(idx, val, src, F, k0, k1, k_end, f0, F - f0, o + f0);
    }
  }
}

// ---- SDDMM: out[k] = g[row] . x[col] --------------------------------------------------------

template <typename T, typename I>
[[gnu::always_inline]] inline void sddmm_rows(const void* indptr_, const void* idx_, const void* g_,
                                              const void* x_, void* out_, int64_t r0, int64_t r1,
                                              int64_t F) {
  const I* indptr = static_cast<const I*>(indptr_);
  const I* idx = static_cast<const I*>(idx_);
  const T* g = static_cast<const T*>(g_);
  const T* x = static_cast<const T*>(x_);
  T* out = static_cast<T*>(out_);
  const int64_t k_end = indptr[r1], pd = prefetch_distance<T>(F);
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict gr = g + r * F;
    const int64_t k1 = indptr[r + 1];
    for (int64_t k = indptr[r]; k < k1; ++k) {
      if (k + pd < k_end) prefetch_row(x + static_cast<int64_t>(idx[k + pd]) * F, F);
      const T* __restrict xr = x + static_cast<int64_t>(idx[k]) * F;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t f = 0; f < F; ++f) s += gr[f] * xr[f];
      out[k] = s;
    }
  }
}

// ---- GINE: out[r] = Σ relu(x[col] + e[k]); backward mask ------------------------------------

// As gather_sum_tile: kW > 0 a compile-time width, 0 the runtime remainder.
template <typename T, typename I, int kW>
[[gnu::always_inline]] inline void gine_tile(const I* __restrict idx, const T* __restrict x,
                                             const T* __restrict e, int64_t F, int64_t k0,
                                             int64_t k1, int64_t k_end, int64_t f0, int64_t w_dyn,
                                             T* __restrict dst) {
  constexpr int W = kW > 0 ? kW : kTileW<T>;
  const int64_t w = kW > 0 ? kW : w_dyn;
  T acc[W];
#pragma omp simd
  for (int f = 0; f < W; ++f) acc[f] = T(0);
  const int64_t pd = prefetch_distance<T>(w);
  for (int64_t k = k0; k < k1; ++k) {
    if (k + pd < k_end) prefetch_row(x + static_cast<int64_t>(idx[k + pd]) * F + f0, w);
    const T* __restrict xs = x + static_cast<int64_t>(idx[k]) * F + f0;
    const T* __restrict es = e + k * F + f0;
    if constexpr (kW > 0) {
#pragma omp simd
      for (int f = 0; f < kW; ++f) acc[f] += std::max(xs[f] + es[f], T(0));
    } else {
      for (int64_t f = 0; f < w; ++f) acc[f] += std::max(xs[f] + es[f], T(0));
    }
  }
  for (int64_t f = 0; f < w; ++f) dst[f] = acc[f];
}

template <typename T, typename I>
[[gnu::always_inline]] inline void gine_rows(const void* indptr_, const void* idx_, const void* x_,
                                             const void* e_, void* out_, int64_t r0, int64_t r1,
                                             int64_t F) {
  const I* indptr = static_cast<const I*>(indptr_);
  const I* idx = static_cast<const I*>(idx_);
  const T* x = static_cast<const T*>(x_);
  const T* e = static_cast<const T*>(e_);
  T* out = static_cast<T*>(out_);
  constexpr int W = kTileW<T>;
  const int64_t k_end = indptr[r1];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t k0 = indptr[r], k1 = indptr[r + 1];
    T* o = out + r * F;
    int64_t f0 = 0;
    for (; f0 + W <= F; f0 += W) gine_tile<T, I, W>(idx, x, e, F, k0, k1, k_end, f0, 0, o + f0);
    if (f0 + W / 2 <= F) {
      gine_tile<T, I, W / 2>(idx, x, e, F, k0, k1, k_end, f0, 0, o + f0);
      f0 += W / 2;
    }
    if (f0 + W / 4 <= F) {
      gine_tile<T, I, W / 4>(idx, x, e, F, k0, k1, k_end, f0, 0, o + f0);
      f0 += W / 4;
    }
    if (f0 < F) gine_tile<T, I, 0>(idx, x, e, F, k0, k1, k_end, f0, F - f0, o + f0);
  }
}

template <typename T, typename I>
[[gnu::always_inline]] inline void gine_bwd_rows(const void* indptr_, const void* idx_,
                                                 const void* g_, const void* x_, const void* e_,
                                                 void* out_, int64_t r0, int64_t r1, int64_t F) {
  const I* indptr = static_cast<const I*>(indptr_);
  const I* idx = static_cast<const I*>(idx_);
  const T* g = static_cast<const T*>(g_);
  const T* x = static_cast<const T*>(x_);
  const T* e = static_cast<const T*>(e_);
  T* out = static_cast<T*>(out_);
  const int64_t k_end = indptr[r1], pd = prefetch_distance<T>(F);
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict gr = g + r * F;
    const int64_t k1 = indptr[r + 1];
    for (int64_t k = indptr[r]; k < k1; ++k) {
      if (k + pd < k_end) prefetch_row(x + static_cast<int64_t>(idx[k + pd]) * F, F);
      const T* __restrict xs = x + static_cast<int64_t>(idx[k]) * F;
      const T* __restrict es = e + k * F;
      T* __restrict os = out + k * F;
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) os[f] = select(xs[f] + es[f] > T(0), gr[f], T(0));
    }
  }
}

// ---- AVX2 + FMA clones of the f32 kernels
// ---------------------------------------------------------

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DAN_CPU_CLONES
#endif

using GatherSumFn = void (*)(const void*, const void*, const void*, const void*, void*, int64_t,
                             int64_t, int64_t);
using GineBwdFn = void (*)(const void*, const void*, const void*, const void*, const void*, void*,
                           int64_t, int64_t, int64_t);

#define DAN_GATHER_SUM_CLONE(NAME, I, VAL, IDX)                                                 \
  DAN_CPU_CLONES void NAME(const void* a, const void* b, const void* c, const void* d, void* o, \
                           int64_t r0, int64_t r1, int64_t F) {                                 \
    gather_sum_rows<float, I, VAL, IDX>(a, b, c, d, o, r0, r1, F);                              \
  }
DAN_GATHER_SUM_CLONE(spmm_f32_i32, int32_t, true, true)
DAN_GATHER_SUM_CLONE(spmm_f32_i64, int64_t, true, true)
DAN_GATHER_SUM_CLONE(segsum_f32_i32, int32_t, false, false)
DAN_GATHER_SUM_CLONE(segsum_f32_i64, int64_t, false, false)
DAN_GATHER_SUM_CLONE(permsum_f32_i32, int32_t, false, true)
DAN_GATHER_SUM_CLONE(permsum_f32_i64, int64_t, false, true)
DAN_GATHER_SUM_CLONE(valsum_f32_i32, int32_t, true, false)
DAN_GATHER_SUM_CLONE(valsum_f32_i64, int64_t, true, false)
#undef DAN_GATHER_SUM_CLONE

DAN_CPU_CLONES void sddmm_f32_i32(const void* a, const void* b, const void* c, const void* d,
                                  void* o, int64_t r0, int64_t r1, int64_t F) {
  sddmm_rows<float, int32_t>(a, b, c, d, o, r0, r1, F);
}
DAN_CPU_CLONES void sddmm_f32_i64(const void* a, const void* b, const void* c, const void* d,
                                  void* o, int64_t r0, int64_t r1, int64_t F) {
  sddmm_rows<float, int64_t>(a, b, c, d, o, r0, r1, F);
}
DAN_CPU_CLONES void gine_f32_i32(const void* a, const void* b, const void* c, const void* d,
                                 void* o, int64_t r0, int64_t r1, int64_t F) {
  gine_rows<float, int32_t>(a, b, c, d, o, r0, r1, F);
}
DAN_CPU_CLONES void gine_f32_i64(const void* a, const void* b, const void* c, const void* d,
                                 void* o, int64_t r0, int64_t r1, int64_t F) {
  gine_rows<float, int64_t>(a, b, c, d, o, r0, r1, F);
}
DAN_CPU_CLONES void gine_bwd_f32_i32(const void* a, const void* b, const void* c, const void* d,
                                     const void* e, void* o, int64_t r0, int64_t r1, int64_t F) {
  gine_bwd_rows<float, int32_t>(a, b, c, d, e, o, r0, r1, F);
}
DAN_CPU_CLONES void gine_bwd_f32_i64(const void* a, const void* b, const void* c, const void* d,
                                     const void* e, void* o, int64_t r0, int64_t r1, int64_t F) {
  gine_bwd_rows<float, int64_t>(a, b, c, d, e, o, r0, r1, F);
}

template <typename T, typename I>
GatherSumFn gather_sum_fn(bool val, bool idx) {
  if constexpr (std::is_same_v<T, float>) {
    constexpr bool i32 = std::is_same_v<I, int32_t>;
    if (val && idx) return i32 ? spmm_f32_i32 : spmm_f32_i64;
    if (val) return i32 ? valsum_f32_i32 : valsum_f32_i64;
    if (idx) return i32 ? permsum_f32_i32 : permsum_f32_i64;
    return i32 ? segsum_f32_i32 : segsum_f32_i64;
  } else {
    if (val && idx) return gather_sum_rows<T, I, true, true>;
    if (val) return gather_sum_rows<T, I, true, false>;
    if (idx) return gather_sum_rows<T, I, false, true>;
    return gather_sum_rows<T, I, false, false>;
  }
}

template <typename T, typename I>
GatherSumFn sddmm_fn() {
  if constexpr (std::is_same_v<T, float>) {
    return std::is_same_v<I, int32_t> ? sddmm_f32_i32 : sddmm_f32_i64;
  } else {
    return sddmm_rows<T, I>;
  }
}

template <typename T, typename I>
GatherSumFn gine_fn() {
  if constexpr (std::is_same_v<T, float>) {
    return std::is_same_v<I, int32_t> ? gine_f32_i32 : gine_f32_i64;
  } else {
    return gine_rows<T, I>;
  }
}

template <typename T, typename I>
GineBwdFn gine_bwd_fn() {
  if constexpr (std::is_same_v<T, float>) {
    return std::is_same_v<I, int32_t> ? gine_bwd_f32_i32 : gine_bwd_f32_i64;
  } else {
    return gine_bwd_rows<T, I>;
  }
}

const void* ptr_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

}  // namespace

Tensor csr_spmm(const Tensor& indptr, const Tensor& index, const Tensor& values,
                const Tensor& src) {
  const int64_t rows = indptr.numel() - 1, F = src.size(1);
  Tensor out = raw::empty({rows, F}, src.dtype());
  if (rows == 0 || F == 0) return out;
  DAN_DISPATCH_FLOAT(src.dtype(), "spmm", [&]<typename T>() {
    DAN_DISPATCH_INDEX(indptr.dtype(), "spmm", [&]<typename I>() {
      const I* ip = static_cast<const I*>(indptr.raw_data());
      const GatherSumFn fn = gather_sum_fn<T, I>(values.defined(), index.defined());
      const void *ix = ptr_or_null(index), *v = ptr_or_null(values), *s = src.raw_data();
      void* o = out.raw_data();
      for_blocks(ip, rows, F, [&](int64_t r0, int64_t r1) { fn(ip, ix, v, s, o, r0, r1, F); });
    });
  });
  return out;
}

Tensor csr_sddmm(const Tensor& indptr, const Tensor& indices, const Tensor& g, const Tensor& x) {
  const int64_t rows = indptr.numel() - 1, F = g.size(1);
  Tensor out = raw::empty({indices.numel()}, g.dtype());
  if (indices.numel() == 0) return out;
  DAN_DISPATCH_FLOAT(g.dtype(), "sddmm", [&]<typename T>() {
    DAN_DISPATCH_INDEX(indptr.dtype(), "sddmm", [&]<typename I>() {
      const I* ip = static_cast<const I*>(indptr.raw_data());
      const GatherSumFn fn = sddmm_fn<T, I>();
      for_blocks(ip, rows, F, [&](int64_t r0, int64_t r1) {
        fn(ip, indices.raw_data(), g.raw_data(), x.raw_data(), out.raw_data(), r0, r1, F);
      });
    });
  });
  return out;
}

Tensor csr_gcn_norm(const Tensor& indptr, const Tensor& indices, const Tensor& values) {
  const int64_t rows = indptr.numel() - 1;
  Tensor out = raw::empty({values.numel()}, values.dtype());
  DAN_DISPATCH_FLOAT(values.dtype(), "gcn_norm", [&]<typename T>() {
    DAN_DISPATCH_INDEX(indptr.dtype(), "gcn_norm", [&]<typename I>() {
      const I* ip = static_cast<const I*>(indptr.raw_data());
      const I* ix = static_cast<const I*>(indices.raw_data());
      const T* v = static_cast<const T*>(values.raw_data());
      T* o = static_cast<T*>(out.raw_data());
      // d^-1/2 per row (in-degree = row sum, in storage order), inf -> 0 as PyG.
      std::vector<T> dinv(static_cast<size_t>(rows));
      for_blocks(ip, rows, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          T d = 0;
          for (int64_t k = ip[r]; k < ip[r + 1]; ++k) d += v[k];
          const T s = std::pow(d, T(-0.5));
          dinv[r] = std::isinf(s) ? T(0) : s;
        }
      });
      // PyG's order: dinv[source] * w * dinv[target] (source = column, target = row).
      for_blocks(ip, rows, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t k = ip[r]; k < ip[r + 1]; ++k) o[k] = dinv[ix[k]] * v[k] * dinv[r];
        }
      });
    });
  });
  return out;
}

Tensor csr_gine_aggregate(const Tensor& indptr, const Tensor& indices, const Tensor& x,
                          const Tensor& edge) {
  const int64_t rows = indptr.numel() - 1, F = x.size(1);
  Tensor out = raw::empty({rows, F}, x.dtype());
  if (rows == 0 || F == 0) return out;
  DAN_DISPATCH_FLOAT(x.dtype(), "gine_aggregate", [&]<typename T>() {
    DAN_DISPATCH_INDEX(indptr.dtype(), "gine_aggregate", [&]<typename I>() {
      const I* ip = static_cast<const I*>(indptr.raw_data());
      const GatherSumFn fn = gine_fn<T, I>();
      for_blocks(ip, rows, F, [&](int64_t r0, int64_t r1) {
        fn(ip, indices.raw_data(), x.raw_data(), edge.raw_data(), out.raw_data(), r0, r1, F);
      });
    });
  });
  return out;
}

Tensor csr_gine_aggregate_backward(const Tensor& indptr, const Tensor& indices, const Tensor& g,
                                   const Tensor& x, const Tensor& edge) {
  const int64_t rows = indptr.numel() - 1, F = x.size(1);
  Tensor out = raw::empty({indices.numel(), F}, x.dtype());
  if (indices.numel() == 0 || F == 0) return out;
  DAN_DISPATCH_FLOAT(x.dtype(), "gine_aggregate_backward", [&]<typename T>() {
    DAN_DISPATCH_INDEX(indptr.dtype(), "gine_aggregate_backward", [&]<typename I>() {
      const I* ip = static_cast<const I*>(indptr.raw_data());
      const GineBwdFn fn = gine_bwd_fn<T, I>();
      for_blocks(ip, rows, F, [&](int64_t r0, int64_t r1) {
        fn(ip, indices.raw_data(), g.raw_data(), x.raw_data(), edge.raw_data(), out.raw_data(), r0,
           r1, F);
      });
    });
  });
  return out;
}

}  // namespace dan::kernels::cpu
