// CPU reductions: sum/mean/max/min over any set of dims, argmax, var and sum_to. Sums
// accumulate in double. Work is cut into pieces whose bounds depend only on the shape, and
// partial results are combined in a fixed order, so the bits do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>

#include "kernels/cpu/loops.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

// Elements of the reduced extent per work item: big enough to amortize the item setup,
// small enough to give many items to the threads when few outputs remain.
constexpr int64_t kReduceChunk = 16384;
// Output columns one work item of the column path accumulates at once (kept on the stack).
constexpr int64_t kColBlock = 256;

// A list of dims, outer -> inner, strides in elements.
struct Dims {
  Shape size, stride;
  int64_t nd() const { return static_cast<int64_t>(size.size()); }
};

// Drops size-1 dims and merges neighbours that are contiguous with each other.
Dims coalesce(const Dims& in) {
  Dims out;
  for (int64_t d = in.nd() - 1; d >= 0; --d) {
    if (in.size[d] == 1) continue;
    if (!out.size.empty() && in.stride[d] == out.stride.back() * out.size.back()) {
      out.size.back() *= in.size[d];
      continue;
    }
    out.size.push_back(in.size[d]);
    out.stride.push_back(in.stride[d]);
  }
  std::reverse(out.size.begin(), out.size.end());
  std::reverse(out.stride.begin(), out.stride.end());
  return out;
}

// Walks a Dims in row-major order, tracking the element offset.
struct Odometer {
  const Dims& d;
  int64_t idx_small[8];
  std::vector<int64_t> idx_large;
  int64_t* idx;
  int64_t off = 0;

  Odometer(const Dims& dims, int64_t start) : d(dims) {
    idx_large.resize(d.nd() > 8 ? d.nd() : 0);
    idx = d.nd() > 8 ? idx_large.data() : idx_small;
    for (int64_t k = d.nd() - 1; k >= 0; --k) {
      idx[k] = start % d.size[k];
      start /= d.size[k];
      off += idx[k] * d.stride[k];
    }
  }
  void next() {
    for (int64_t k = d.nd() - 1; k >= 0; --k) {
      if (++idx[k] < d.size[k]) {
        off += d.stride[k];
        return;
      }
      off -= d.stride[k] * (d.size[k] - 1);
      idx[k] = 0;
    }
  }
};

int64_t offset_of(const Dims& d, int64_t linear) {
  int64_t off = 0;
  for (int64_t k = d.nd() - 1; k >= 0; --k) {
    off += (linear % d.size[k]) * d.stride[k];
    linear /= d.size[k];
  }
  return off;
}

struct ReducePlan {
  Dims kept;  // output dims in row-major order, coalesced
  Dims red;   // reduced dims, by decreasing stride, coalesced
  int64_t M = 1, K = 1;
  Shape out_shape;
};

ReducePlan make_reduce_plan(const Tensor& x, const std::vector<bool>& reduced, bool keepdim) {
  ReducePlan p;
  Dims kept, red;
  std::vector<std::pair<int64_t, int64_t>> red_dims;  // (stride, size)
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t sz = x.shape()[d];
    if (reduced[d]) {
      p.K *= sz;
      red_dims.emplace_back(x.strides()[d], sz);
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.M *= sz;
      kept.size.push_back(sz);
      kept.stride.push_back(x.strides()[d]);
      p.out_shape.push_back(sz);
    }
  }
  // Innermost = smallest stride, so runs go along memory; broadcast (stride-0) dims go
  // outermost, where they cost nothing.
  auto key = [](int64_t st) { return st == 0 ? std::numeric_limits<int64_t>::max() : st; };
  std::stable_sort(red_dims.begin(), red_dims.end(),
                   [&](const auto& a, const auto& b) { return key(a.first) > key(b.first); });
  for (auto [st, sz] : red_dims) {
    red.size.push_back(sz);
    red.stride.push_back(st);
  }
  p.kept = coalesce(kept);
  p.red = coalesce(red);
  return p;
}

std::vector<bool> reduced_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> mask(x.dim(), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), op);
    if (w < x.dim()) mask[w] = true;  // a 0-d tensor accepts dim 0/-1 and reduces nothing
  }
  return mask;
}

enum class Kind { sum, sqdev, max, min };

template <typename T, Kind kind>
struct Reducer {
  static constexpr bool is_sum = kind == Kind::sum || kind == Kind::sqdev;
  using Acc = std::conditional_t<is_sum, double, T>;

  static Acc identity() {
    if constexpr (is_sum) return 0.0;
    if constexpr (kind == Kind::max) return -std::numeric_limits<T>::infinity();
    if constexpr (kind == Kind::min) return std::numeric_limits<T>::infinity();
  }
  // Folds value v into a; for max/min a NaN wins and then sticks (as torch.max/min).
  static Acc step(Acc a, T v, double mu) {
    if constexpr (kind == Kind::sum) return a + static_cast<double>(v);
    if constexpr (kind == Kind::sqdev) {
      const double dv = static_cast<double>(v) - mu;
      return a + dv * dv;
    }
    if constexpr (kind == Kind::max) return select(v > a || v != v, v, a);
    if constexpr (kind == Kind::min) return select(v < a || v != v, v, a);
  }
  static Acc combine(Acc a, Acc b) {
    if constexpr (is_sum) {
      return a + b;
    } else {
      return step(a, b, 0.0);
    }
  }

  // Reduces n elements at stride s (elements). Not inlined: inlined into the OpenMP-outlined
  // callers GCC stopped vectorizing it (3x slower).
  __attribute__((noinline)) static Acc run(const T* p, int64_t s, int64_t n, double mu) {
    if (s != 1) {
      Acc a = identity();
      for (int64_t i = 0; i < n; ++i) a = step(a, p[i * s], mu);
      return a;
    }
    if constexpr (is_sum) {
      double a = 0.0;
#pragma omp simd reduction(+ : a)
      for (int64_t i = 0; i < n; ++i) a = step(a, p[i], mu);
      return a;
    } else {
      // Max/min lanes ignore NaN (the simd max/min reduction); a NaN flag restores it.
      T a = identity();
      int nan = 0;
      if constexpr (kind == Kind::max) {
#pragma omp simd reduction(max : a) reduction(| : nan)
        for (int64_t i = 0; i < n; ++i) {
          const T v = p[i];
          a = v > a ? v : a;
          nan |= v != v;
        }
      } else {
#pragma omp simd reduction(min : a) reduction(| : nan)
        for (int64_t i = 0; i < n; ++i) {
          const T v = p[i];
          a = v < a ? v : a;
          nan |= v != v;
        }
      }
      if (nan) a = std::numeric_limits<T>::quiet_NaN();
      return a;
    }
  }
};

// ---- f32 column sums: the bias gradient of a Linear (sum over rows of [N, C]) ----------------

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DAN_CPU_CLONES
#endif

// acc[c] += sum over r < rows of p[r * ld + c], c < w, rows added in order (so the bits are those
// of the plain loop). Columns go in register blocks of kSub doubles, each block walking all the
// rows: baseline SSE2 and AVX2 both keep the block in registers instead of reloading acc per
// row, which made the plain loop (acc on the stack) 3x slower than memory.
DAN_CPU_CLONES void column_block_sum_f32(const float* p, int64_t ld, int64_t rows, int64_t w,
                                         double* acc) {
  constexpr int64_t kSub = 16;
  int64_t c0 = 0;
  for (; c0 + kSub <= w; c0 += kSub) {
    double a[kSub];
    for (int64_t c = 0; c < kSub; ++c) a[c] = acc[c0 + c];
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = p + r * ld + c0;
#pragma omp simd
      for (int64_t c = 0; c < kSub; ++c) a[c] += static_cast<double>(row[c]);
    }
    for (int64_t c = 0; c < kSub; ++c) acc[c0 + c] = a[c];
  }
  for (int64_t c = c0; c < w; ++c) {
    double a = acc[c];
    for (int64_t r = 0; r < rows; ++r) a += static_cast<double>(p[r * ld + c]);
    acc[c] = a;
  }
}

// Reduces x according to the plan and calls sink(m, acc) once per output m (from several
// threads; each m once). mu (sqdev only) holds the mean of every output.
template <typename T, Kind kind, typename Sink>
void reduce_engine(const ReducePlan& p, const T* x, const double* mu, const Sink& sink) {
  using R = Reducer<T, kind>;
  using Acc = typename R::Acc;
  const int64_t M = p.M, K = p.K;
  if (M == 0) return;
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) sink(m, R::identity());
    return;
  }
  const bool parallel = M * K >= kParallelNumel;
  const Dims& kept = p.kept;
  const Dims& red = p.red;
  const bool red_inner_unit = red.nd() > 0 && red.stride.back() == 1;
  const bool column = kept.nd() > 0 && kept.stride.back() == 1 && !red_inner_unit;

  if (column) {
    // Output columns are contiguous in x: accumulate a block of columns per reduced index,
    // the inner loop running along memory.
    const int64_t C = kept.size.back(), Mo = M / C;
    const Dims outer{Shape(kept.size.begin(), kept.size.end() - 1),
                     Shape(kept.stride.begin(), kept.stride.end() - 1)};
    const int64_t ncb = (C + kColBlock - 1) / kColBlock;
    const int64_t rows = std::max<int64_t>(1, kReduceChunk / std::min(C, kColBlock));
    const int64_t nk = (K + rows - 1) / rows;
    std::vector<Acc> partial(nk > 1 ? M * nk : 0);
    const int64_t items = Mo * ncb * nk;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t kc = it % nk, cb = (it / nk) % ncb, mo = it / (nk * ncb);
      const int64_t c0 = cb * kColBlock, w = std::min(kColBlock, C - c0);
      const T* base = x + offset_of(outer, mo) + c0;
      const double* mu_b = kind == Kind::sqdev ? mu + mo * C + c0 : nullptr;
      Acc acc[kColBlock];
      for (int64_t c = 0; c < w; ++c) acc[c] = R::identity();
      const int64_t r0 = kc * rows, r1 = std::min(K, r0 + rows);
      if constexpr (kind == Kind::sum && std::is_same_v<T, float>) {
        if (red.nd() == 1) {
          column_block_sum_f32(base + r0 * red.stride[0], red.stride[0], r1 - r0, w, acc);
          for (int64_t c = 0; c < w; ++c) {
            const int64_t m = mo * C + c0 + c;
            if (nk == 1) {
              sink(m, acc[c]);
            } else {
              partial[m * nk + kc] = acc[c];
            }
          }
          continue;
        }
      }
      Odometer od(red, r0);
      for (int64_t r = r0; r < r1; ++r, od.next()) {
        const T* row = base + od.off;
        if constexpr (kind == Kind::sqdev) {
#pragma omp simd
          for (int64_t c = 0; c < w; ++c) acc[c] = R::step(acc[c], row[c], mu_b[c]);
        } else {
#pragma omp simd
          for (int64_t c = 0; c < w; ++c) acc[c] = R::step(acc[c], row[c], 0.0);
        }
      }
      for (int64_t c = 0; c < w; ++c) {
        const int64_t m = mo * C + c0 + c;
        if (nk == 1) {
          sink(m, acc[c]);
        } else {
          partial[m * nk + kc] = acc[c];
        }
      }
    }
    if (nk > 1) {
#pragma omp parallel for schedule(static) if (M * nk >= kParallelNumel)
      for (int64_t m = 0; m < M; ++m) {
        Acc a = partial[m * nk];
        for (int64_t k = 1; k < nk; ++k) a = R::combine(a, partial[m * nk + k]);
        sink(m, a);
      }
    }
    return;
  }

  // Row/general path: one output at a time, walking the reduced dims with the innermost one
  // as a (usually contiguous) run.
  Plan<1> rplan;
  rplan.elem_size = {sizeof(T)};
  rplan.shape = red.size;
  rplan.strides[0] = red.stride;
  for (auto& s : rplan.strides[0]) s *= static_cast<int64_t>(sizeof(T));
  rplan.numel = K;
  auto reduce_range = [&](const T* base, int64_t r0, int64_t r1, double m_mu) {
    if (red.nd() == 1) return R::run(base + r0 * red.stride[0], red.stride[0], r1 - r0, m_mu);
    Acc a = R::identity();
    std::array<char*, 1> data{const_cast<char*>(reinterpret_cast<const char*>(base))};
    for_each_run(rplan, data, r0, r1,
                 [&](const std::array<char*, 1>& ptr, const std::array<int64_t, 1>& st, int64_t n) {
                   a = R::combine(a, R::run(reinterpret_cast<const T*>(ptr[0]),
                                            st[0] / static_cast<int64_t>(sizeof(T)), n, m_mu));
                 });
    return a;
  };
  const int64_t nk = (K + kReduceChunk - 1) / kReduceChunk;
  if (nk == 1) {
    const int64_t per = std::max<int64_t>(1, kReduceChunk / K);
    const int64_t nblocks = (M + per - 1) / per;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t m0 = b * per, m1 = std::min(M, m0 + per);
      Odometer od(kept, m0);
      for (int64_t m = m0; m < m1; ++m, od.next()) {
        sink(m, reduce_range(x + od.off, 0, K, kind == Kind::sqdev ? mu[m] : 0.0));
      }
    }
    return;
  }
  std::vector<Acc> partial(M * nk);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t it = 0; it < M * nk; ++it) {
    const int64_t m = it / nk, kc = it % nk;
    const int64_t r0 = kc * kReduceChunk, r1 = std::min(K, r0 + kReduceChunk);
    partial[it] = reduce_range(x + offset_of(kept, m), r0, r1, kind == Kind::sqdev ? mu[m] : 0.0);
  }
  for (int64_t m = 0; m < M; ++m) {
    Acc a = partial[m * nk];
    for (int64_t k = 1; k < nk; ++k) a = R::combine(a, partial[m * nk + k]);
    sink(m, a);
  }
}

// Per-output sums of x over the plan's reduced dims, in double.
template <typename T>
std::vector<double> sums(const ReducePlan& p, const T* x) {
  std::vector<double> s(p.M);
  reduce_engine<T, Kind::sum>(p, x, nullptr, [&](int64_t m, double a) { s[m] = a; });
  return s;
}

template <typename T>
void reduce_into(ReduceOp op, const ReducePlan& p, const T* x, T* out) {
  switch (op) {
    case ReduceOp::sum:
      reduce_engine<T, Kind::sum>(p, x, nullptr,
                                  [&](int64_t m, double a) { out[m] = static_cast<T>(a); });
      return;
    case ReduceOp::mean: {
      // K == 0 gives 0/0 = NaN, as torch.mean of an empty reduction.
      const double k = static_cast<double>(p.K);
      reduce_engine<T, Kind::sum>(p, x, nullptr,
                                  [&](int64_t m, double a) { out[m] = static_cast<T>(a / k); });
      return;
    }
    case ReduceOp::max:
      reduce_engine<T, Kind::max>(p, x, nullptr, [&](int64_t m, T a) { out[m] = a; });
      return;
    case ReduceOp::min:
      reduce_engine<T, Kind::min>(p, x, nullptr, [&](int64_t m, T a) { out[m] = a; });
      return;
  }
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const ReducePlan p = make_reduce_plan(x, reduced_mask(x, dims, name(op)), keepdim);
  Tensor out = raw::empty(p.out_shape, x.dtype());
  DAN_DISPATCH_FLOAT(x.dtype(), name(op), [&]<typename T>() {
    reduce_into<T>(op, p, static_cast<const T*>(x.raw_data()), static_cast<T*>(out.raw_data()));
  });
  return out;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  const ReducePlan p = make_reduce_plan(x, reduced_mask(x, dims, "var"), keepdim);
  Tensor out = raw::empty(p.out_shape, x.dtype());
  DAN_DISPATCH_FLOAT(x.dtype(), "var", [&]<typename T>() {
    // Two passes (mean, then squared deviations) in double: no cancellation for large means.
    const T* px = static_cast<const T*>(x.raw_data());
    std::vector<double> mu = sums<T>(p, px);
    for (double& v : mu) v /= static_cast<double>(p.K);
    const double div = static_cast<double>(std::max<int64_t>(0, p.K - correction));
    T* o = static_cast<T*>(out.raw_data());
    reduce_engine<T, Kind::sqdev>(p, px, mu.data(),
                                  [&](int64_t m, double a) { o[m] = static_cast<T>(a / div); });
  });
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  // Reduce the leading dims g has in excess and the dims `shape` holds as 1.
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  std::vector<bool> mask(g.dim(), false);
  for (int64_t d = 0; d < g.dim(); ++d) {
    mask[d] = d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1);
  }
  const ReducePlan p = make_reduce_plan(g, mask, false);
  Tensor out = raw::empty(shape, g.dtype());
  DAN_DISPATCH_FLOAT(g.dtype(), "sum_to", [&]<typename T>() {
    reduce_into<T>(ReduceOp::sum, p, static_cast<const T*>(g.raw_data()),
                   static_cast<T*>(out.raw_data()));
  });
  return out;
}

namespace {

template <typename T, typename Better>
int64_t argmax_strided(const T* row, int64_t s, int64_t K, const Better& better) {
  T best = row[0];
  int64_t bi = 0;
  for (int64_t k = 1; k < K; ++k) {
    if (better(row[k * s], best)) {
      best = row[k * s];
      bi = k;
    }
  }
  return bi;
}

// Two passes: a vectorized max (with a NaN flag), then the first position holding it. Same
// answer as the sequential scan, several times faster.
template <typename T>
__attribute__((noinline)) int64_t argmax_contiguous(const T* row, int64_t K) {
  T best = -std::numeric_limits<T>::infinity();
  int nan = 0;
#pragma omp simd reduction(max : best) reduction(| : nan)
  for (int64_t k = 0; k < K; ++k) {
    const T v = row[k];
    best = v > best ? v : best;
    nan |= v != v;
  }
  int64_t k = 0;
  if (nan) {
    while (row[k] == row[k]) ++k;
  } else {
    while (row[k] != best) ++k;
  }
  return k;
}

// argmax over the single reduced dim of the plan (stride s in x); writes M indices.
template <typename T>
void argmax_into(const ReducePlan& p, const T* px, int64_t s, int64_t* o) {
  const int64_t M = p.M, K = p.K;
  const Dims& kept = p.kept;
  // The first maximum wins; a NaN counts as the maximum (first NaN wins), as torch.argmax.
  auto better = [](T v, T best) { return v > best || (v != v && best == best); };
  if (kept.nd() > 0 && kept.stride.back() == 1 && s != 1 && K > 1) {
    // Columns contiguous: scan a block of them per step along the dim.
    const int64_t C = kept.size.back(), Mo = M / C, ncb = (C + kColBlock - 1) / kColBlock;
    const Dims outer{Shape(kept.size.begin(), kept.size.end() - 1),
                     Shape(kept.stride.begin(), kept.stride.end() - 1)};
#pragma omp parallel for schedule(static) if (M * K >= kParallelNumel)
    for (int64_t it = 0; it < Mo * ncb; ++it) {
      const int64_t mo = it / ncb, c0 = (it % ncb) * kColBlock, w = std::min(kColBlock, C - c0);
      const T* base = px + offset_of(outer, mo) + c0;
      T best[kColBlock];
      int64_t idx[kColBlock];
      for (int64_t c = 0; c < w; ++c) {
        best[c] = base[c];
        idx[c] = 0;
      }
      for (int64_t k = 1; k < K; ++k) {
        const T* row = base + k * s;
        for (int64_t c = 0; c < w; ++c) {
          const bool b = better(row[c], best[c]);
          best[c] = b ? row[c] : best[c];
          idx[c] = b ? k : idx[c];
        }
      }
      for (int64_t c = 0; c < w; ++c) o[mo * C + c0 + c] = idx[c];
    }
    return;
  }
  const int64_t per = std::max<int64_t>(1, kReduceChunk / std::max<int64_t>(K, 1));
  const int64_t nblocks = (M + per - 1) / per;
#pragma omp parallel for schedule(static) if (M * K >= kParallelNumel)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t m0 = b * per, m1 = std::min(M, m0 + per);
    Odometer od(kept, m0);
    for (int64_t m = m0; m < m1; ++m, od.next()) {
      const T* row = px + od.off;
      o[m] = s == 1 ? argmax_contiguous(row, K) : argmax_strided(row, s, K, better);
    }
  }
}

}  // namespace

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  const int64_t d = x.dim() == 0 ? -1 : wrap_dim(dim, x.dim(), "argmax");
  std::vector<bool> mask(x.dim(), false);
  if (d >= 0) mask[d] = true;
  const ReducePlan p = make_reduce_plan(x, mask, keepdim);
  DAN_CHECK(p.M == 0 || p.K > 0, "argmax: cannot reduce an empty dim of {}", shape_str(x.shape()));
  Tensor out = raw::empty(p.out_shape, DType::i64);
  const int64_t s = d >= 0 ? x.strides()[d] : 0;
  DAN_DISPATCH_FLOAT(x.dtype(), "argmax", [&]<typename T>() {
    argmax_into<T>(p, static_cast<const T*>(x.raw_data()), s,
                   static_cast<int64_t*>(out.raw_data()));
  });
  return out;
}

}  // namespace dan::kernels::cpu
