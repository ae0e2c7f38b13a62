// CPU fused multi-head self-attention, forward and backward in one pass per (batch, head) with
// nothing of size heads x T x T kept between them (the backward recomputes the probabilities
// from the saved row max and 1/sum). Each (batch, head) works on tiles that stay in L1/L2: the
// small products use a register-blocked kernel of our own, because BLAS must not be called from
// inside our OpenMP regions (core/threads.h) and these matrices (T x head_dim) are too small for
// it to pay anyway. Bias + GELU and residual add + layer norm are in transformer_fused.cpp.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/philox_blocks.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

Tensor contig(const Tensor& t) {
  return t.is_contiguous() ? t : raw::contiguous_copy(t, Device::cpu());
}

// The hot loops below are compiled without -ftrapping-math (so selects vectorize) and with FP
// contraction (so the tile kernel's a * b + c become FMAs in the AVX2 clone); nothing here
// reads FP flags or promises bit-equality with another backend.
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")

template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(32)));
  static constexpr int64_t L = 8;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(32)));
  static constexpr int64_t L = 4;
};

using detail::exp_t;

// ---- small matrix product ------------------------------------------------------------------
// C[m, n] = sum_k A(m, k) B[k, n] for m < M, n < N, k < K, where A(m, k) = a[m sam + k sak]
// (any strides: A's elements are broadcast one at a time, so a transposed A costs nothing),
// B is row-major with leading dim ldb and C with ldc. Tiles of 6 rows x 2 vectors keep 12
// accumulators in registers: enough independent FMAs to cover their latency.
template <typename T>
[[gnu::always_inline]] inline void gemm_small(int64_t M, int64_t N, int64_t K, const T* a,
                                              int64_t sam, int64_t sak, const T* b, int64_t ldb,
                                              T* c, int64_t ldc) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  // Vectors move through memcpy and references only: never by value across a call (that
  // changes the ABI between the AVX2 clone and the baseline one).
  auto load = [](V& v, const T* p) { std::memcpy(&v, p, sizeof(V)); };
  auto store = [](T* p, const V& v) { std::memcpy(p, &v, sizeof(V)); };
  int64_t n0 = 0;
  for (; n0 + 2 * L <= N; n0 += 2 * L) {
    int64_t m0 = 0;
    for (; m0 + 6 <= M; m0 += 6) {
      V acc[6][2] = {};
      const T* bp = b + n0;
      for (int64_t k = 0; k < K; ++k, bp += ldb) {
        V b0, b1;
        load(b0, bp);
        load(b1, bp + L);
        const T* ak = a + m0 * sam + k * sak;
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
          const T x = ak[r * sam];
          acc[r][0] += x * b0;
          acc[r][1] += x * b1;
        }
      }
#pragma GCC unroll 6
      for (int r = 0; r < 6; ++r) {
        store(c + (m0 + r) * ldc + n0, acc[r][0]);
        store(c + (m0 + r) * ldc + n0 + L, acc[r][1]);
      }
    }
    for (; m0 < M; ++m0) {
      V c0 = {}, c1 = {};
      const T* a0 = a + m0 * sam;
      const T* bp = b + n0;
      for (int64_t k = 0; k < K; ++k, bp += ldb) {
        const T x0 = a0[k * sak];
        V b0, b1;
        load(b0, bp);
        load(b1, bp + L);
        c0 += x0 * b0;
        c1 += x0 * b1;
      }
      store(c + m0 * ldc + n0, c0);
      store(c + m0 * ldc + n0 + L, c1);
    }
  }
  for (; n0 + L <= N; n0 += L) {
    for (int64_t m = 0; m < M; ++m) {
      V c0 = {};
      const T* am = a + m * sam;
      const T* bp = b + n0;
      for (int64_t k = 0; k < K; ++k, bp += ldb) {
        V b0;
        load(b0, bp);
        c0 += am[k * sak] * b0;
      }
      store(c + m * ldc + n0, c0);
    }
  }
  if (n0 < N) {
    for (int64_t m = 0; m < M; ++m) {
      const T* am = a + m * sam;
      T* cm = c + m * ldc;
      for (int64_t n = n0; n < N; ++n) cm[n] = 0;
      for (int64_t k = 0; k < K; ++k) {
        const T x = am[k * sak];
        const T* bk = b + k * ldb;
        for (int64_t n = n0; n < N; ++n) cm[n] += x * bk[n];
      }
    }
  }
}

// ---- Philox words for the dropout of the probabilities --------------------------------------
// words[w] = 32-bit word `first + w` of the stream (seed, offset) for w < n, exactly
// philox::u32_at(seed, offset, first + w); `blocks` has room for n / 4 + 2 blocks. The loop
// over blocks vectorizes (32 x 32 -> 64-bit multiplies).
[[gnu::always_inline]] inline void philox_words(uint64_t seed, uint64_t offset, uint64_t first,
                                                int64_t n, uint32_t* words, uint32_t* blocks) {
  const uint64_t b0 = first / 4, nb = (first + static_cast<uint64_t>(n) + 3) / 4 - b0;
  philox_blocks(seed, offset + b0, static_cast<int64_t>(nb), blocks);
  std::memcpy(words, blocks + (first % 4), static_cast<size_t>(n) * sizeof(uint32_t));
}

// ---- attention -----------------------------------------------------------------------------

template <typename T>
struct Attn {
  const T* qkv;   // [B, S, 3H]: q | k | v, head h in columns h*dh .. (h+1)*dh of each
  const T* bias;  // [B, S] additive key bias, or null
  T* out;         // [B, S, H]
  T* stats;       // [B, nh, S, 2]: row max and 1/sum of exp (null: not kept)
  const T* grad;  // backward: dL/dout [B, S, H]
  const T* y;     // backward: out of the forward
  T* dqkv;        // backward: [B, S, 3H]
  int64_t B, S, H, nh, dh;
  T scale;
  double p;  // dropout probability of the probabilities (0: none)
  uint64_t seed, offset;
};

// Per-thread scratch, sized for one (batch, head).
template <typename T>
struct Scratch {
  std::vector<T> kt, s, dp, pd, f, d;
  std::vector<uint32_t> words, blocks;
  explicit Scratch(int64_t S, int64_t dh, bool backward, bool dropout)
      : kt(static_cast<size_t>(dh * S)),
        s(static_cast<size_t>(S * S)),
        dp(backward ? static_cast<size_t>(S * S) : 0),
        pd(backward && dropout ? static_cast<size_t>(S * S) : 0),
        f(backward && dropout ? static_cast<size_t>(S * S) : 0),
        d(static_cast<size_t>(S)),
        words(dropout ? static_cast<size_t>(S) : 0),
        blocks(dropout ? static_cast<size_t>(S + 8) : 0) {}
};

// Keys at and after the returned index have a bias that underflows every probability to
// exactly 0 (HF's padding value, the dtype's lowest): they are skipped. All keys masked
// gives S (then the row is uniform, as in the reference).
template <typename T>
int64_t live_keys(const T* bias, int64_t S) {
  if (bias == nullptr) return S;
  const T dead = std::numeric_limits<T>::lowest() / 2;
  int64_t n = S;
  while (n > 0 && bias[n - 1] <= dead) --n;
  return n == 0 ? S : n;
}

// Row i of the scores (n live keys, raw q.k in `s`) -> probabilities in place, using (and,
// when `fresh`, computing) the row max m and inv = 1/sum exp(s - m). The forward and the
// backward both come through here, so the recomputed probabilities are the same bits.
template <typename T>
[[gnu::always_inline]] inline void row_probs(T* s, const T* bias, int64_t n, T scale, T* m_io,
                                             T* inv_io, bool fresh) {
  if (bias != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) s[j] = s[j] * scale + bias[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) s[j] = s[j] * scale;
  }
  T m = *m_io;
  if (fresh) {
    m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; ++j) m = s[j] > m ? s[j] : m;
  }
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    const T e = exp_t<T>(s[j] - m);
    s[j] = e;
    sum += e;
  }
  const T inv = fresh ? T(1) / sum : *inv_io;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
  *m_io = m;
  *inv_io = inv;
}

// The dropout factor of row i's keys j < n: 0 where dropped, 1/(1-p) where kept; element
// index ((b nh + h) S + i) S + j of the [B, nh, S, S] probabilities, as dropout() draws it.
template <typename T>
[[gnu::always_inline]] inline void dropout_row(const Attn<T>& a, int64_t bh, int64_t i, int64_t n,
                                               Scratch<T>& w, T* keep) {
  const uint64_t first = static_cast<uint64_t>((bh * a.S + i) * a.S);
  philox_words(a.seed, a.offset, first, n, w.words.data(), w.blocks.data());
  const T kept = static_cast<T>(1.0 / (1.0 - a.p));
  const uint32_t* wd = w.words.data();
  const double p = a.p;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    keep[j] = static_cast<double>(philox::u32_to_unit_f32(wd[j])) < p ? T(0) : kept;
  }
}

// dst[c * rows + r] = src[r * ld + c] for r < rows, c < cols: K (or V) of one head as
// [head_dim, keys], so the score product reads it with vector loads. f32 moves 8 x 8 blocks
// through registers (vector loads of 8 rows, an in-register transpose, 8 vector stores).
template <typename T>
[[gnu::always_inline]] inline void pack_transposed(const T* src, int64_t rows, int64_t ld,
                                                   int64_t cols, T* dst) {
  int64_t r0 = 0;
  if constexpr (std::is_same_v<T, float>) {
    using V = Simd<float>::V;
    if (cols % 8 == 0) {
      for (; r0 + 8 <= rows; r0 += 8) {
        for (int64_t c0 = 0; c0 < cols; c0 += 8) {
          V r[8];
          for (int i = 0; i < 8; ++i) std::memcpy(&r[i], src + (r0 + i) * ld + c0, sizeof(V));
          V t[8], u[8];
          for (int i = 0; i < 8; i += 2) {
            t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
            t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
          }
          for (int i = 0; i < 8; i += 4) {
            u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
            u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
          }
          for (int i = 0; i < 4; ++i) {
            const V lo = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
            const V hi = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
            std::memcpy(dst + (c0 + i) * rows + r0, &lo, sizeof(V));
            std::memcpy(dst + (c0 + i + 4) * rows + r0, &hi, sizeof(V));
          }
        }
      }
    }
  }
  for (int64_t r = r0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
  }
}

// Starts loading `rows` rows of `bytes` bytes each (leading dim ld elements) into the cache.
// The heads of q, k and v are short column blocks of long rows, so every row is a separate
// cache miss (and page); touching them all up front lets the misses overlap instead of
// stalling the packing loops one row at a time.
template <typename T>
[[gnu::always_inline]] inline void prefetch_rows(const T* p, int64_t rows, int64_t ld,
                                                 int64_t elems) {
  const int64_t bytes = elems * static_cast<int64_t>(sizeof(T));
  for (int64_t r = 0; r < rows; ++r) {
    const char* c = reinterpret_cast<const char*>(p + r * ld);
    for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
    __builtin_prefetch(c + bytes - 1);
  }
}

template <typename T>
[[gnu::always_inline]] inline void attn_fwd_one(const Attn<T>& a, int64_t bh, Scratch<T>& w) {
  const int64_t b = bh / a.nh, h = bh % a.nh, S = a.S, dh = a.dh, ld = 3 * a.H;
  const T* q = a.qkv + b * S * ld + h * dh;
  const T* k = q + a.H;
  const T* v = q + 2 * a.H;
  const T* bias = a.bias != nullptr ? a.bias + b * S : nullptr;
  const int64_t n = live_keys(bias, S);
  prefetch_rows(k, n, ld, dh);
  prefetch_rows(q, S, ld, dh);
  prefetch_rows(v, n, ld, dh);
  T* kt = w.kt.data();
  pack_transposed(k, n, ld, dh, kt);
  T* s = w.s.data();
  gemm_small<T>(S, n, dh, q, ld, 1, kt, n, s, n);
  for (int64_t i = 0; i < S; ++i) {
    T m = 0, inv = 0;
    T* si = s + i * n;
    row_probs<T>(si, bias, n, a.scale, &m, &inv, true);
    if (a.stats != nullptr) {
      a.stats[(bh * S + i) * 2] = m;
      a.stats[(bh * S + i) * 2 + 1] = inv;
    }
    if (a.p > 0) {
      T* keep = w.d.data();  // reused as the row's dropout factors
      dropout_row(a, bh, i, n, w, keep);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) si[j] *= keep[j];
    }
  }
  gemm_small<T>(S, dh, n, s, n, 1, v, ld, a.out + b * S * a.H + h * dh, a.H);
}

template <typename T>
[[gnu::always_inline]] inline void attn_bwd_one(const Attn<T>& a, int64_t bh, Scratch<T>& w) {
  const int64_t b = bh / a.nh, h = bh % a.nh, S = a.S, dh = a.dh, H = a.H, ld = 3 * H;
  const T* q = a.qkv + b * S * ld + h * dh;
  const T* k = q + H;
  const T* v = q + 2 * H;
  const T* g = a.grad + b * S * H + h * dh;
  const T* y = a.y + b * S * H + h * dh;
  T* dq = a.dqkv + b * S * ld + h * dh;
  T* dk = dq + H;
  T* dv = dq + 2 * H;
  const T* bias = a.bias != nullptr ? a.bias + b * S : nullptr;
  const int64_t n = live_keys(bias, S);
  prefetch_rows(g, S, H, dh);
  prefetch_rows(y, S, H, dh);
  prefetch_rows(k, n, ld, dh);
  prefetch_rows(q, S, ld, dh);
  prefetch_rows(v, n, ld, dh);
  // D_i = sum_j dP_ij P_ij = dO_i . O_i (dropout included: both sides carry the mask).
  T* D = w.d.data();
  for (int64_t i = 0; i < S; ++i) {
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t d = 0; d < dh; ++d) acc += g[i * H + d] * y[i * H + d];
    D[i] = acc;
  }
  // P again, from the saved row statistics.
  T* kt = w.kt.data();
  pack_transposed(k, n, ld, dh, kt);
  T* P = w.s.data();
  gemm_small<T>(S, n, dh, q, ld, 1, kt, n, P, n);
  for (int64_t i = 0; i < S; ++i) {
    T m = a.stats[(bh * S + i) * 2], inv = a.stats[(bh * S + i) * 2 + 1];
    row_probs<T>(P + i * n, bias, n, a.scale, &m, &inv, false);
  }
  // Pd = P * f, f the dropout factors: the matrix that multiplied V.
  const T* Pd = P;
  T* f = w.f.data();
  if (a.p > 0) {
    T* pd = w.pd.data();
    for (int64_t i = 0; i < S; ++i) {
      dropout_row(a, bh, i, n, w, f + i * n);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) pd[i * n + j] = P[i * n + j] * f[i * n + j];
    }
    Pd = pd;
  }
  // dV = Pd^T dO (keys past n got probability 0: their dV is 0).
  gemm_small<T>(n, dh, S, Pd, 1, n, g, H, dv, ld);
  for (int64_t j = n; j < S; ++j) std::fill_n(dv + j * ld, dh, T(0));
  // dPd = dO V^T; dS = P (dPd f - D) scale, in place.
  T* vt = w.kt.data();
  pack_transposed(v, n, ld, dh, vt);
  T* dP = w.dp.data();
  gemm_small<T>(S, n, dh, g, H, 1, vt, n, dP, n);
  const T sc = a.scale;
  for (int64_t i = 0; i < S; ++i) {
    T* r = dP + i * n;
    const T* p = P + i * n;
    const T Di = D[i];
    if (a.p > 0) {
      const T* fi = f + i * n;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) r[j] = p[j] * (r[j] * fi[j] - Di) * sc;
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) r[j] = p[j] * (r[j] - Di) * sc;
    }
  }
  // dQ = dS K, dK = dS^T Q.
  gemm_small<T>(S, dh, n, dP, n, 1, k, ld, dq, ld);
  gemm_small<T>(n, dh, S, dP, 1, n, q, ld, dk, ld);
  for (int64_t j = n; j < S; ++j) std::fill_n(dk + j * ld, dh, T(0));
}

DAN_CPU_CLONES void attn_fwd_f32(const Attn<float>& a, int64_t bh, Scratch<float>& w) {
  attn_fwd_one(a, bh, w);
}
DAN_CPU_CLONES void attn_fwd_f64(const Attn<double>& a, int64_t bh, Scratch<double>& w) {
  attn_fwd_one(a, bh, w);
}
DAN_CPU_CLONES void attn_bwd_f32(const Attn<float>& a, int64_t bh, Scratch<float>& w) {
  attn_bwd_one(a, bh, w);
}
DAN_CPU_CLONES void attn_bwd_f64(const Attn<double>& a, int64_t bh, Scratch<double>& w) {
  attn_bwd_one(a, bh, w);
}
void attn_fwd(const Attn<float>& a, int64_t bh, Scratch<float>& w) { attn_fwd_f32(a, bh, w); }
void attn_fwd(const Attn<double>& a, int64_t bh, Scratch<double>& w) { attn_fwd_f64(a, bh, w); }
void attn_bwd(const Attn<float>& a, int64_t bh, Scratch<float>& w) { attn_bwd_f32(a, bh, w); }
void attn_bwd(const Attn<double>& a, int64_t bh, Scratch<double>& w) { attn_bwd_f64(a, bh, w); }

#pragma GCC pop_options

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}

template <typename T>
Attn<T> make_attn(const Tensor& qkv, const Tensor& kb, int64_t heads, double scale, double p,
                  uint64_t seed, uint64_t offset) {
  Attn<T> a{};
  a.qkv = static_cast<const T*>(qkv.raw_data());
  a.bias = ptr_or_null<T>(kb);
  a.B = qkv.size(0);
  a.S = qkv.size(1);
  a.H = qkv.size(2) / 3;
  a.nh = heads;
  a.dh = a.H / heads;
  a.scale = static_cast<T>(scale);
  a.p = p;
  a.seed = seed;
  a.offset = offset;
  return a;
}

// One (batch, head) per task, scheduled dynamically (padded batches differ in work); each
// task writes its own columns, so the result does not depend on the schedule.
template <typename T>
void run_attention(const Attn<T>& a, bool backward) {
  const int64_t tasks = a.B * a.nh;
  const bool par = tasks > 1 && a.S * a.S * a.dh * tasks >= (int64_t{1} << 16);
#pragma omp parallel if (par)
  {
    Scratch<T> w(a.S, a.dh, backward, a.p > 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < tasks; ++bh) {
      if (backward) {
        attn_bwd(a, bh, w);
      } else {
        attn_fwd(a, bh, w);
      }
    }
  }
}

}  // namespace

Tensor attention_forward(const Tensor& qkv_in, const Tensor& key_bias_in, int64_t heads,
                         double scale, double dropout_p, uint64_t seed, uint64_t offset,
                         const Tensor& stats) {
  const Tensor qkv = contig(qkv_in);
  const Tensor kb = key_bias_in.defined() ? contig(key_bias_in) : Tensor();
  const int64_t B = qkv.size(0), S = qkv.size(1), H = qkv.size(2) / 3;
  Tensor out = raw::empty({B, S, H}, qkv.dtype());
  if (out.numel() == 0) return out;
  DAN_DISPATCH_FLOAT(qkv.dtype(), "attention_forward", [&]<typename T>() {
    Attn<T> a = make_attn<T>(qkv, kb, heads, scale, dropout_p, seed, offset);
    a.out = static_cast<T*>(out.raw_data());
    a.stats = stats.defined() ? static_cast<T*>(stats.raw_data()) : nullptr;
    run_attention(a, false);
  });
  return out;
}

Tensor attention_backward(const Tensor& grad_in, const Tensor& qkv_in, const Tensor& out_in,
                          const Tensor& key_bias_in, const Tensor& stats_in, int64_t heads,
                          double scale, double dropout_p, uint64_t seed, uint64_t offset) {
  const Tensor g = contig(grad_in), qkv = contig(qkv_in), y = contig(out_in);
  const Tensor stats = contig(stats_in);
  const Tensor kb = key_bias_in.defined() ? contig(key_bias_in) : Tensor();
  Tensor dqkv = raw::empty(qkv.shape(), qkv.dtype());
  if (dqkv.numel() == 0) return dqkv;
  DAN_DISPATCH_FLOAT(qkv.dtype(), "attention_backward", [&]<typename T>() {
    Attn<T> a = make_attn<T>(qkv, kb, heads, scale, dropout_p, seed, offset);
    a.stats = static_cast<T*>(stats.raw_data());
    a.grad = static_cast<const T*>(g.raw_data());
    a.y = static_cast<const T*>(y.raw_data());
    a.dqkv = static_cast<T*>(dqkv.raw_data());
    run_attention(a, true);
  });
  return dqkv;
}

}  // namespace dan::kernels::cpu
