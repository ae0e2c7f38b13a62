// Shared strided iteration for the CPU kernels (map_into for elementwise ops, Plan/for_each_run
// for custom loops): broadcasting, dim coalescing, OpenMP chunking and vectorizable inner loops.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dan::kernels::cpu {

// Below this many elements a kernel stays on one thread: OpenMP fork/join costs more than the
// work. Our OpenMP regions never call BLAS (core/threads.h).
inline constexpr int64_t kParallelNumel = 32768;
// Unit of work handed to a thread; large enough to amortize the per-chunk index arithmetic.
inline constexpr int64_t kChunk = 16384;

// Strides (elements) of `t` broadcast to `shape`: t's dims align with the trailing dims of
// `shape`, and a dim that t lacks or has as size 1 gets stride 0.
inline Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  const size_t n = shape.size(), lead = n - static_cast<size_t>(t.dim());
  Shape st(n, 0);
  for (size_t i = lead; i < n; ++i) {
    const int64_t sz = t.shape()[i - lead];
    st[i] = (sz == 1 && shape[i] != 1) ? 0 : t.strides()[i - lead];
  }
  return st;
}

// An N-operand iteration space in row-major order of `shape`. Strides are in bytes so that
// operands of different dtypes share one plan. Size-1 dims are dropped and adjacent dims are
// merged wherever every operand allows it, so fully contiguous operands become one dim.
template <size_t N>
struct Plan {
  Shape shape;                   // outer -> inner; empty means a single element
  std::array<Shape, N> strides;  // bytes, per operand, per dim of `shape`
  std::array<char*, N> data{};   // element 0 of each operand
  std::array<size_t, N> elem_size{};
  int64_t numel = 0;
};

template <size_t N>
Plan<N> make_plan(const Shape& shape, const std::array<char*, N>& data,
                  const std::array<Shape, N>& elem_strides,
                  const std::array<size_t, N>& elem_size) {
  Plan<N> p;
  p.data = data;
  p.elem_size = elem_size;
  p.numel = numel_of(shape);
  if (p.numel == 0) return p;
  // Innermost first while collecting; a dim where every operand has stride 0 only repeats the
  // same element (an in-place op on an expanded view), so it is skipped as well.
  Shape sh;
  std::array<Shape, N> st;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    bool all_zero = true;
    for (size_t k = 0; k < N; ++k) all_zero = all_zero && elem_strides[k][d] == 0;
    if (all_zero) {
      p.numel /= shape[d];
      continue;
    }
    if (!sh.empty()) {
      bool merge = true;
      for (size_t k = 0; k < N; ++k) {
        merge = merge &&
                elem_strides[k][d] * static_cast<int64_t>(elem_size[k]) == st[k].back() * sh.back();
      }
      if (merge) {
        sh.back() *= shape[d];
        continue;
      }
    }
    sh.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) {
      st[k].push_back(elem_strides[k][d] * static_cast<int64_t>(elem_size[k]));
    }
  }
  p.shape.assign(sh.rbegin(), sh.rend());
  for (size_t k = 0; k < N; ++k) p.strides[k].assign(st[k].rbegin(), st[k].rend());
  return p;
}

// Calls f(ptrs, inner_strides, n) for each run along the innermost dim that covers the
// row-major elements [begin, end) of the plan, with the operands based at `data` (p.data by
// default; reductions reuse one plan at many base pointers).
template <size_t N, typename F>
void for_each_run(const Plan<N>& p, const std::array<char*, N>& data, int64_t begin, int64_t end,
                  F&& f) {
  if (begin >= end) return;
  const int64_t nd = static_cast<int64_t>(p.shape.size());
  std::array<char*, N> ptr = data;
  std::array<int64_t, N> inner{};
  if (nd == 0) {
    f(ptr, inner, int64_t{1});
    return;
  }
  for (size_t k = 0; k < N; ++k) inner[k] = p.strides[k][nd - 1];
  // Runs can be short (reductions over a few elements): avoid a heap index for common ranks.
  int64_t idx_small[8];
  std::vector<int64_t> idx_large(nd > 8 ? nd : 0);
  int64_t* idx = nd > 8 ? idx_large.data() : idx_small;
  int64_t rem = begin;
  for (int64_t d = nd - 1; d >= 0; --d) {
    idx[d] = rem % p.shape[d];
    rem /= p.shape[d];
    for (size_t k = 0; k < N; ++k) ptr[k] += idx[d] * p.strides[k][d];
  }
  const int64_t len = p.shape[nd - 1];
  for (int64_t pos = begin; pos < end;) {
    const int64_t n = std::min(len - idx[nd - 1], end - pos);
    f(ptr, inner, n);
    pos += n;
    idx[nd - 1] += n;
    for (size_t k = 0; k < N; ++k) ptr[k] += n * inner[k];
    for (int64_t d = nd - 1; d > 0 && idx[d] == p.shape[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
      for (size_t k = 0; k < N; ++k) ptr[k] += p.strides[k][d - 1] - p.shape[d] * p.strides[k][d];
    }
  }
}

template <size_t N, typename F>
void for_each_run(const Plan<N>& p, int64_t begin, int64_t end, F&& f) {
  for_each_run(p, p.data, begin, end, std::forward<F>(f));
}

// Edge of the square tiles used when operands disagree on which of the two innermost dims is
// contiguous (a transpose): 32 x 32 elements keeps every fetched cache line in use.
inline constexpr int64_t kTile = 32;

// True when some operand is contiguous along the second-innermost dim but not the innermost,
// and both dims are long enough for tiling to pay.
template <size_t N>
bool wants_tiles(const Plan<N>& p) {
  const size_t nd = p.shape.size();
  if (nd < 2 || p.shape[nd - 1] < kTile || p.shape[nd - 2] < kTile) return false;
  for (size_t k = 0; k < N; ++k) {
    const auto unit = static_cast<int64_t>(p.elem_size[k]);
    if (p.strides[k][nd - 2] == unit && p.strides[k][nd - 1] != unit) return true;
  }
  return false;
}

// Runs f over the whole plan. Normally the output is split into kChunk-element chunks in
// row-major order; for transposes, into kTile x kTile tiles of the two innermost dims, each
// walked as short runs. OpenMP spreads the pieces once the plan is large enough.
template <size_t N, typename F>
void parallel_runs(const Plan<N>& p, const F& f) {
  const int64_t n = p.numel;
  if (!wants_tiles(p)) {
    const int64_t nchunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelNumel)
    for (int64_t c = 0; c < nchunks; ++c) {
      for_each_run(p, c * kChunk, std::min(n, (c + 1) * kChunk), f);
    }
    return;
  }
  const size_t nd = p.shape.size();
  const int64_t A = p.shape[nd - 2], B = p.shape[nd - 1];
  const int64_t ta = (A + kTile - 1) / kTile, tb = (B + kTile - 1) / kTile;
  const int64_t ntiles = n / (A * B) * ta * tb;
  std::array<int64_t, N> sa{}, sb{};
  for (size_t k = 0; k < N; ++k) {
    sa[k] = p.strides[k][nd - 2];
    sb[k] = p.strides[k][nd - 1];
  }
#pragma omp parallel for schedule(static) if (n >= kParallelNumel)
  for (int64_t t = 0; t < ntiles; ++t) {
    const int64_t i = (t / tb) % ta, j = t % tb;
    std::array<char*, N> ptr = p.data;
    int64_t rem = t / (ta * tb);
    for (int64_t d = static_cast<int64_t>(nd) - 3; d >= 0; --d) {
      const int64_t id = rem % p.shape[d];
      rem /= p.shape[d];
      for (size_t k = 0; k < N; ++k) ptr[k] += id * p.strides[k][d];
    }
    for (size_t k = 0; k < N; ++k) ptr[k] += i * kTile * sa[k] + j * kTile * sb[k];
    const int64_t rows = std::min(kTile, A - i * kTile), cols = std::min(kTile, B - j * kTile);
    for (int64_t a = 0; a < rows; ++a) {
      f(ptr, sb, cols);
      for (size_t k = 0; k < N; ++k) ptr[k] += sa[k];
    }
  }
}

// c ? a : b computed on the bits, for use inside map_into ops. A plain ?: whose operands
// involve FP arithmetic or loads may be compiled to a branch that GCC cannot if-convert
// (with the default -ftrapping-math those ops "may trap"), which stops vectorization; the
// library is built with -fno-trapping-math, but this header must not depend on it.
template <typename T>
inline T select(bool c, T a, T b) {
  using U = std::conditional_t<
      sizeof(T) == 1, uint8_t,
      std::conditional_t<sizeof(T) == 2, uint16_t,
                         std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
  const U m = static_cast<U>(U{0} - static_cast<U>(c));
  return std::bit_cast<T>(
      static_cast<U>((std::bit_cast<U>(a) & m) | (std::bit_cast<U>(b) & static_cast<U>(~m))));
}

namespace detail {

// Contiguous output, each input contiguous (bit clear in Mask) or a repeated scalar (bit set).
// The mask is a template parameter so the index expression folds to `i` or `0` and the loop
// vectorizes.
template <unsigned Mask, typename Out, typename... In, typename Op, size_t... I>
inline void contiguous_run(char* out, const std::array<char*, sizeof...(In) + 1>& ptr, int64_t n,
                           const Op& op, std::index_sequence<I...>) {
  Out* __restrict o = reinterpret_cast<Out*>(out);
  [[maybe_unused]] const std::tuple<const In*...> in{reinterpret_cast<const In*>(ptr[I + 1])...};
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    o[i] = op(std::get<I>(in)[((Mask >> I) & 1u) ? 0 : i]...);
  }
}

template <typename Out, typename... In, typename Op, size_t... I>
inline void strided_run(const std::array<char*, sizeof...(In) + 1>& ptr,
                        const std::array<int64_t, sizeof...(In) + 1>& st, int64_t n, const Op& op,
                        std::index_sequence<I...>) {
  char* o = ptr[0];
  [[maybe_unused]] std::array<const char*, sizeof...(In)> in{ptr[I + 1]...};
  for (int64_t i = 0; i < n; ++i) {
    *reinterpret_cast<Out*>(o) = op(*reinterpret_cast<const In*>(in[I])...);
    o += st[0];
    ((in[I] += st[I + 1]), ...);
  }
}

template <typename Out, typename... In, typename Op, size_t... I, unsigned... M>
inline void dispatch_mask(unsigned mask, const std::array<char*, sizeof...(In) + 1>& ptr, int64_t n,
                          const Op& op, std::index_sequence<I...> is,
                          std::integer_sequence<unsigned, M...>) {
  (void)((mask == M ? (contiguous_run<M, Out, In...>(ptr[0], ptr, n, op, is), true) : false) ||
         ...);
}

}  // namespace detail

// out[i] = op(ins[0][i], ins[1][i], ...) over out's shape, inputs broadcast to it. `out` may be
// any strided view (in-place fill/copy); inputs may be any strided or expanded views. Out/In
// are the C++ element types of the tensors (use uint8_t for bool tensors: the vectorizer
// handles bytes, not bool); op must not throw. Contiguous or broadcast-scalar operands get a
// `#pragma omp simd` loop; transposed operands are walked in tiles.
template <typename Out, typename... In, typename Op>
void map_into(const Tensor& out, const std::array<Tensor, sizeof...(In)>& ins, const Op& op) {
  constexpr size_t NI = sizeof...(In);
  constexpr size_t N = NI + 1;
  std::array<char*, N> data{};
  std::array<Shape, N> strides;
  const std::array<size_t, N> sizes{sizeof(Out), sizeof(In)...};
  data[0] = static_cast<char*>(out.raw_data());
  strides[0] = out.strides();
  for (size_t k = 0; k < NI; ++k) {
    data[k + 1] = static_cast<char*>(ins[k].raw_data());
    strides[k + 1] = broadcast_strides(ins[k], out.shape());
  }
  const Plan<N> plan = make_plan<N>(out.shape(), data, strides, sizes);
  parallel_runs(
      plan, [&](const std::array<char*, N>& ptr, const std::array<int64_t, N>& st, int64_t n) {
        bool contiguous = st[0] == static_cast<int64_t>(sizeof(Out)) || n == 1;
        unsigned mask = 0;
        for (size_t k = 1; k < N; ++k) {
          if (st[k] == 0 || n == 1) {
            mask |= 1u << (k - 1);
          } else if (st[k] != static_cast<int64_t>(sizes[k])) {
            contiguous = false;
          }
        }
        if (contiguous) {
          detail::dispatch_mask<Out, In...>(mask, ptr, n, op, std::make_index_sequence<NI>{},
                                            std::make_integer_sequence<unsigned, (1u << NI)>{});
        } else {
          detail::strided_run<Out, In...>(ptr, st, n, op, std::make_index_sequence<NI>{});
        }
      });
}

}  // namespace dan::kernels::cpu
