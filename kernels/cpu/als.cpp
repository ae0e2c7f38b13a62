// CPU implicit-ALS kernels (kernels/als.h): per-row conjugate gradient and Cholesky solves of
//   (YtY + reg I + Y^T (C_u - I) Y) x_u = Y^T C_u p_u
// and the two sums of the loss. Rows are independent: OpenMP hands out groups of rows, and
// every row's arithmetic is fixed by the code alone (no reduction across threads, no
// dependence on the group a row lands in), so results are identical for any thread count.
//
// Two implementations of each kernel: an AVX2+FMA one (x86-64, chosen at run time) and a
// portable one (plain loops). The AVX2 one solves the CG systems of up to kGroup rows in
// lockstep so that one pass over YtY serves several rows (YtY·p is a small GEMM, not a
// matrix-vector product: at 256 factors YtY no longer fits L1), keeps the per-row sparse sums
// in registers for f <= 64 (above, it takes the gathered items in pairs), and prefetches the
// rows of Y it is about to gather. The Gram matrix Y^T Y has its own kernel (als_gram.cpp).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/als.h"
#include "kernels/cpu/als_simd.h"


namespace dan::kernels::cpu {

namespace {

using als_detail::kParallelWork;
using als_detail::round_up;
using als_detail::use_avx2;

constexpr int kGroup = 4;                 // rows solved in lockstep by the AVX2 CG
constexpr float kCgTol = 1e-20f;          // |r|^2 below which CG stops (implicit's threshold)

std::atomic<bool> g_force_portable{false};

// The CSR arrays every kernel reads (host pointers, validated by the dispatcher).
struct Rows {
  const int64_t* indptr;
  const int32_t* indices;
  const float* values;
  int64_t rows;
};

Rows rows_of(const CsrTensors& C) {
  return Rows{C.indptr.data<int64_t>(), C.indices.data<int32_t>(), C.values.data<float>(), C.rows};
}

// A row-major [n x f] matrix with leading dim ld: the tensor's own memory when ld == f, else a
// zero-padded copy (the AVX2 path works on whole 8-float vectors).
struct Padded {
  float* p = nullptr;
  int64_t ld = 0;
  std::vector<float> copy;
};

Padded pad_rows(const Tensor& t, int64_t ld) {
  Padded m;
  const int64_t n = t.size(0), f = t.size(1);
  float* src = t.data<float>();
  m.ld = ld;
  if (ld == f) {
    m.p = src;
    return m;
  }
  m.copy.assign(static_cast<size_t>(n * ld), 0.0f);
#pragma omp parallel for schedule(static) if (n * f >= kParallelWork)
  for (int64_t r = 0; r < n; ++r) std::memcpy(&m.copy[r * ld], src + r * f, f * sizeof(float));
  m.p = m.copy.data();
  return m;
}

void unpad_rows(const Padded& m, const Tensor& t) {
  if (m.copy.empty()) return;
  const int64_t n = t.size(0), f = t.size(1);
  float* dst = t.data<float>();
#pragma omp parallel for schedule(static) if (n * f >= kParallelWork)
  for (int64_t r = 0; r < n; ++r) std::memcpy(dst + r * f, &m.copy[r * m.ld], f * sizeof(float));
}

// The AVX2 CG's work units: up to kGroup non-empty rows (consecutive among the non-empty
// ones) solved in lockstep. Groups are listed heaviest first (work = gathered items + the dense
// part), so that dynamic scheduling does not end on one thread with a heavy group. Which group
// a row lands in never changes its result (see the tile kernel), only the speed.
struct Groups {
  std::vector<int64_t> rows;   // non-empty rows, group by group
  std::vector<int64_t> start;  // group g is rows[start[g] .. start[g + 1])
  std::vector<int64_t> order;  // groups, heaviest first
  std::vector<int64_t> empty;  // rows without entries (their solution is 0)
};

Groups make_groups(const Rows& R, int64_t f) {
  Groups G;
  std::vector<int64_t> cost;
  int64_t work = 0;
  for (int64_t u = 0; u < R.rows; ++u) {
    const int64_t n = R.indptr[u + 1] - R.indptr[u];
    if (n == 0) {
      G.empty.push_back(u);
      continue;
    }
    const int64_t in_group =
        static_cast<int64_t>(G.rows.size()) - (G.start.empty() ? 0 : G.start.back());
    if (G.start.empty() || in_group == kGroup) {
      if (!G.start.empty()) cost.push_back(work);
      G.start.push_back(static_cast<int64_t>(G.rows.size()));
      work = 0;
    }
    G.rows.push_back(u);
    work += 2 * n + f;  // sparse passes ~ 8 n f, dense ~ 4 f^2 per row
  }
  if (!G.start.empty()) cost.push_back(work);
  G.start.push_back(static_cast<int64_t>(G.rows.size()));
  G.order.resize(cost.size());
  std::iota(G.order.begin(), G.order.end(), 0);
  std::stable_sort(G.order.begin(), G.order.end(),
                   [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  return G;
}

// ------------------------------------------------------------------------------------------
// Cholesky of an f x f SPD matrix in f64 (lower triangle of row-major A, leading dim lda),
// then the solve for one right-hand side. Plain loops, shared by both paths (inlined into the
// AVX2 functions, where they vectorize with AVX2). Returns false if A is not positive definite.
[[gnu::always_inline]] inline double dot_f64(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < n; ++k) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

[[gnu::always_inline]] inline bool cholesky_solve(double* A, int64_t lda, double* b, int64_t f) {
  for (int64_t j = 0; j < f; ++j) {
    double* Aj = A + j * lda;
    const double d = Aj[j] - dot_f64(Aj, Aj, j);
    if (!(d > 0)) return false;
    const double ljj = std::sqrt(d), inv = 1.0 / ljj;
    Aj[j] = ljj;
    for (int64_t i = j + 1; i < f; ++i) {
      double* Ai = A + i * lda;
      Ai[j] = (Ai[j] - dot_f64(Ai, Aj, j)) * inv;
    }
  }
  // L z = b, then L^T x = z (column sweep: x_i is final once the rows below are done).
  for (int64_t i = 0; i < f; ++i) b[i] = (b[i] - dot_f64(A + i * lda, b, i)) / A[i * lda + i];
  for (int64_t i = f - 1; i >= 0; --i) {
    const double xi = b[i] / A[i * lda + i];
    b[i] = xi;
    const double* Ai = A + i * lda;
    for (int64_t k = 0; k < i; ++k) b[k] -= xi * Ai[k];
  }
  return true;
}

// ------------------------------------------------------------------------------------------
// Portable path: one row at a time, plain loops, f32 like the AVX2 path.
namespace portable {

float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

// out = G v for a dense f x f G.
void matvec(const float* G, const float* v, float* out, int64_t f) {
  for (int64_t j = 0; j < f; ++j) out[j] = dot(G + j * f, v, f);
}

void cg_row(float* x, const float* Y, const float* G, const Rows& R, int64_t u, int64_t f,
            int steps, float* r, float* p, float* ap) {
  const int64_t b = R.indptr[u], e = R.indptr[u + 1];
  if (b == e) {
    std::fill_n(x, f, 0.0f);
    return;
  }
  matvec(G, x, ap, f);
  for (int64_t j = 0; j < f; ++j) r[j] = 0;
  for (int64_t k = b; k < e; ++k) {
    const float* y = Y + R.indices[k] * f;
    const float c = R.values[k];
    const float coef = c - (c - 1.0f) * dot(y, x, f);
    for (int64_t j = 0; j < f; ++j) r[j] += coef * y[j];
  }
  for (int64_t j = 0; j < f; ++j) {
    r[j] -= ap[j];
    p[j] = r[j];
  }
  float rsold = dot(r, r, f);
  if (rsold < kCgTol) return;
  for (int it = 0; it < steps; ++it) {
    matvec(G, p, ap, f);
    for (int64_t k = b; k < e; ++k) {
      const float* y = Y + R.indices[k] * f;
      const float coef = (R.values[k] - 1.0f) * dot(y, p, f);
      for (int64_t j = 0; j < f; ++j) ap[j] += coef * y[j];
    }
    const float alpha = rsold / dot(p, ap, f);
    for (int64_t j = 0; j < f; ++j) {
      x[j] += alpha * p[j];
      r[j] -= alpha * ap[j];
    }
    const float rsnew = dot(r, r, f);
    if (rsnew < kCgTol) break;
    const float beta = rsnew / rsold;
    for (int64_t j = 0; j < f; ++j) p[j] = r[j] + beta * p[j];
    rsold = rsnew;
  }
}

bool chol_row(float* x, const float* Y, const double* Gd, const Rows& R, int64_t u, int64_t f,
              double* A, double* rhs) {
  const int64_t b = R.indptr[u], e = R.indptr[u + 1];
  if (b == e) {
    std::fill_n(x, f, 0.0f);
    return true;
  }
  std::memcpy(A, Gd, static_cast<size_t>(f * f) * sizeof(double));
  std::fill_n(rhs, f, 0.0);
  for (int64_t k = b; k < e; ++k) {
    const float* y = Y + R.indices[k] * f;
    const double c = R.values[k], w = c - 1.0;
    for (int64_t j = 0; j < f; ++j) {
      const double wy = w * y[j];
      double* Aj = A + j * f;
      for (int64_t i = 0; i <= j; ++i) Aj[i] += wy * y[i];
      rhs[j] += c * y[j];
    }
  }
  if (!cholesky_solve(A, f, rhs, f)) return false;
  for (int64_t j = 0; j < f; ++j) x[j] = static_cast<float>(rhs[j]);
  return true;
}

void loss_row(const float* x, const float* Y, const float* YtY, const Rows& R, int64_t u,
              int64_t f, float* t, double* observed, double* dense) {
  matvec(YtY, x, t, f);
  double d = 0;
  for (int64_t j = 0; j < f; ++j) d += static_cast<double>(x[j]) * t[j];
  double o = 0;
  for (int64_t k = R.indptr[u]; k < R.indptr[u + 1]; ++k) {
    const double s = dot(Y + R.indices[k] * f, x, f), c = R.values[k];
    o += c * (1 - s) * (1 - s) - s * s;
  }
  *observed = o;
  *dense = d;
}

}  // namespace portable

#ifdef DAN_ALS_X86
// ------------------------------------------------------------------------------------------
// AVX2 path. Vectors have ld = fp = f rounded up to 8, zero-padded: padded lanes stay exactly
// zero through CG (zero rows/columns of G, zero lanes of Y), so they never change a result.
namespace avx2 {

DAN_AVX2_INLINE float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

DAN_AVX2_INLINE float dot(const float* a, const float* b, int64_t fp) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= fp; k += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
  }
  if (k < fp) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
  return hsum(_mm256_add_ps(s0, s1));
}

// G (f x f, plus reg on the diagonal) in panels of 8 columns: panel q holds G[k][8q .. 8q+8)
// for k = 0..f-1 contiguously, so the tile kernel streams each panel once per k sweep.
std::vector<float> pack_panels(const float* G, int64_t f, int64_t fp, float reg) {
  std::vector<float> P(static_cast<size_t>(fp * f), 0.0f);
  for (int64_t q = 0; q < fp / 8; ++q) {
    for (int64_t k = 0; k < f; ++k) {
      for (int64_t l = 0; l < 8; ++l) {
        const int64_t j = 8 * q + l;
        if (j < f) P[(q * f + k) * 8 + l] = G[k * f + j] + (k == j ? reg : 0.0f);
      }
    }
  }
  return P;
}

// out[b][8q0 .. 8(q0+NQ)) = sum_k G[k][.] v[b][k] for NB rows: NB x NQ accumulators in
// registers, one broadcast of v[b][k] per row and k. Each output element is one fma chain
// over k = 0..f-1, whatever NB and NQ are, so a row's result never depends on its group.
template <int NB, int NQ>
DAN_AVX2_INLINE void tile(const float* P, int64_t f, const float* const* v, float* const* out,
                          int64_t q0) {
  __m256 acc[NB][NQ];
  for (int b = 0; b < NB; ++b)
    for (int q = 0; q < NQ; ++q) acc[b][q] = _mm256_setzero_ps();
  const float* p0 = P + q0 * f * 8;
  for (int64_t k = 0; k < f; ++k) {
    __m256 g[NQ];
    for (int q = 0; q < NQ; ++q) g[q] = _mm256_loadu_ps(p0 + (q * f + k) * 8);
    for (int b = 0; b < NB; ++b) {
      const __m256 vb = _mm256_broadcast_ss(v[b] + k);
      for (int q = 0; q < NQ; ++q) acc[b][q] = _mm256_fmadd_ps(g[q], vb, acc[b][q]);
    }
  }
  for (int b = 0; b < NB; ++b)
    for (int q = 0; q < NQ; ++q) _mm256_storeu_ps(out[b] + (q0 + q) * 8, acc[b][q]);
}

template <int NB>
DAN_AVX2_INLINE void dense_nb(const float* P, int64_t f, int64_t fp, const float* const* v,
                              float* const* out) {
  const int64_t nq = fp / 8;
  int64_t q = 0;
  for (; q + 2 <= nq; q += 2) tile<NB, 2>(P, f, v, out, q);
  if (q < nq) tile<NB, 1>(P, f, v, out, q);
}

// out[b] = G v[b] for nb <= kGroup rows.
DAN_AVX2_INLINE void dense(const float* P, int64_t f, int64_t fp, const float* const* v,
                           float* const* out, int nb) {
  switch (nb) {
    case 4: dense_nb<4>(P, f, fp, v, out); break;
    case 3: dense_nb<3>(P, f, fp, v, out); break;
    case 2: dense_nb<2>(P, f, fp, v, out); break;
    case 1: dense_nb<1>(P, f, fp, v, out); break;
    default: break;
  }
}

DAN_AVX2_INLINE void prefetch_row(const float* y, int64_t fp) {
  for (int64_t k = 0; k < fp; k += 16) _mm_prefetch(reinterpret_cast<const char*>(y + k), _MM_HINT_T0);
}

constexpr int kAhead = 4;  // items of a row prefetched ahead of the one being processed

// out = sum over the row's items of coef_i y_i, coef_i = c - (c - 1)(y_i.v) (Init: the
// right-hand side minus the sparse part of A v) or (c - 1)(y_i.v) (the sparse part of A v).
// NC = fp / 8 chunks known at compile time: the sums stay in registers.
template <int NC, bool Init>
DAN_AVX2_INLINE void sparse_fixed(const float* Y, int64_t fp, const int32_t* idx, const float* val,
                                  int64_t n, const float* v, float* out) {
  __m256 acc[NC];
  for (int q = 0; q < NC; ++q) acc[q] = _mm256_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    if (t + kAhead < n) prefetch_row(Y + static_cast<int64_t>(idx[t + kAhead]) * fp, fp);
    const float* y = Y + static_cast<int64_t>(idx[t]) * fp;
    __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
    for (int q = 0; q + 1 < NC; q += 2) {
      d0 = _mm256_fmadd_ps(_mm256_loadu_ps(y + 8 * q), _mm256_loadu_ps(v + 8 * q), d0);
      d1 = _mm256_fmadd_ps(_mm256_loadu_ps(y + 8 * q + 8), _mm256_loadu_ps(v + 8 * q + 8), d1);
    }
    if (NC % 2) {
      d0 = _mm256_fmadd_ps(_mm256_loadu_ps(y + 8 * (NC - 1)), _mm256_loadu_ps(v + 8 * (NC - 1)), d0);
    }
    const float s = hsum(_mm256_add_ps(d0, d1));
    const float c = val[t];
    const float coef = Init ? c - (c - 1.0f) * s : (c - 1.0f) * s;
    const __m256 cb = _mm256_set1_ps(coef);
    for (int q = 0; q < NC; ++q) acc[q] = _mm256_fmadd_ps(cb, _mm256_loadu_ps(y + 8 * q), acc[q]);
  }
  for (int q = 0; q < NC; ++q) _mm256_storeu_ps(out + 8 * q, acc[q]);
}

// Same for any fp (multiple of 8): the sums live in `out` (L1), so items go in pairs: both
// dot products share the loads of v, and one load/store of `out` serves both updates
// (out = fma(c1, y1, fma(c0, y0, out)): the same roundings as one item after the other).
DAN_AVX2_INLINE float dot4(const float* y, const float* v, int64_t fp) {
  __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps(), d2 = _mm256_setzero_ps(),
         d3 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= fp; k += 32) {
    d0 = _mm256_fmadd_ps(_mm256_loadu_ps(y + k), _mm256_loadu_ps(v + k), d0);
    d1 = _mm256_fmadd_ps(_mm256_loadu_ps(y + k + 8), _mm256_loadu_ps(v + k + 8), d1);
    d2 = _mm256_fmadd_ps(_mm256_loadu_ps(y + k + 16), _mm256_loadu_ps(v + k + 16), d2);
    d3 = _mm256_fmadd_ps(_mm256_loadu_ps(y + k + 24), _mm256_loadu_ps(v + k + 24), d3);
  }
  for (; k < fp; k += 8) d0 = _mm256_fmadd_ps(_mm256_loadu_ps(y + k), _mm256_loadu_ps(v + k), d0);
  return hsum(_mm256_add_ps(_mm256_add_ps(d0, d1), _mm256_add_ps(d2, d3)));
}

template <bool Init>
DAN_AVX2_INLINE float coef_of(float c, float s) {
  return Init ? c - (c - 1.0f) * s : (c - 1.0f) * s;
}

template <bool Init>
DAN_AVX2_INLINE void sparse_any(const float* Y, int64_t fp, const int32_t* idx, const float* val,
                                int64_t n, const float* v, float* out) {
  std::fill_n(out, fp, 0.0f);
  int64_t t = 0;
  for (; t + 2 <= n; t += 2) {
    if (t + kAhead + 1 < n) {
      prefetch_row(Y + static_cast<int64_t>(idx[t + kAhead]) * fp, fp);
      prefetch_row(Y + static_cast<int64_t>(idx[t + kAhead + 1]) * fp, fp);
    }
    const float* y0 = Y + static_cast<int64_t>(idx[t]) * fp;
    const float* y1 = Y + static_cast<int64_t>(idx[t + 1]) * fp;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(),
           b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= fp; k += 32) {
      const __m256 v0 = _mm256_loadu_ps(v + k), v1 = _mm256_loadu_ps(v + k + 8),
                   v2 = _mm256_loadu_ps(v + k + 16), v3 = _mm256_loadu_ps(v + k + 24);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(y0 + k), v0, a0);
      b0 = _mm256_fmadd_ps(_mm256_loadu_ps(y1 + k), v0, b0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(y0 + k + 8), v1, a1);
      b1 = _mm256_fmadd_ps(_mm256_loadu_ps(y1 + k + 8), v1, b1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(y0 + k + 16), v2, a2);
      b2 = _mm256_fmadd_ps(_mm256_loadu_ps(y1 + k + 16), v2, b2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(y0 + k + 24), v3, a3);
      b3 = _mm256_fmadd_ps(_mm256_loadu_ps(y1 + k + 24), v3, b3);
    }
    for (; k < fp; k += 8) {
      const __m256 v0 = _mm256_loadu_ps(v + k);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(y0 + k), v0, a0);
      b0 = _mm256_fmadd_ps(_mm256_loadu_ps(y1 + k), v0, b0);
    }
    const __m256 c0 = _mm256_set1_ps(coef_of<Init>(
        val[t], hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)))));
    const __m256 c1 = _mm256_set1_ps(coef_of<Init>(
        val[t + 1], hsum(_mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3)))));
    for (k = 0; k < fp; k += 8) {
      const __m256 o = _mm256_fmadd_ps(c0, _mm256_loadu_ps(y0 + k), _mm256_loadu_ps(out + k));
      _mm256_storeu_ps(out + k, _mm256_fmadd_ps(c1, _mm256_loadu_ps(y1 + k), o));
    }
  }
  if (t < n) {  // the odd item out
    const float* y = Y + static_cast<int64_t>(idx[t]) * fp;
    const __m256 c = _mm256_set1_ps(coef_of<Init>(val[t], dot4(y, v, fp)));
    for (int64_t k = 0; k < fp; k += 8) {
      _mm256_storeu_ps(out + k, _mm256_fmadd_ps(c, _mm256_loadu_ps(y + k), _mm256_loadu_ps(out + k)));
    }
  }
}

template <bool Init>
DAN_AVX2_INLINE void sparse(const float* Y, int64_t fp, const int32_t* idx, const float* val,
                            int64_t n, const float* v, float* out) {
  switch (fp / 8) {
    case 1: sparse_fixed<1, Init>(Y, fp, idx, val, n, v, out); break;
    case 2: sparse_fixed<2, Init>(Y, fp, idx, val, n, v, out); break;
    case 3: sparse_fixed<3, Init>(Y, fp, idx, val, n, v, out); break;
    case 4: sparse_fixed<4, Init>(Y, fp, idx, val, n, v, out); break;
    case 5: sparse_fixed<5, Init>(Y, fp, idx, val, n, v, out); break;
    case 6: sparse_fixed<6, Init>(Y, fp, idx, val, n, v, out); break;
    case 7: sparse_fixed<7, Init>(Y, fp, idx, val, n, v, out); break;
    case 8: sparse_fixed<8, Init>(Y, fp, idx, val, n, v, out); break;
    default: sparse_any<Init>(Y, fp, idx, val, n, v, out); break;
  }
}

// Per-thread scratch of the CG: r, p, Ap, t for kGroup rows (vectors of fp floats).
class CgScratch {
 public:
  explicit CgScratch(int64_t fp) : fp_(fp), buf_(static_cast<size_t>(4 * kGroup * fp)) {}
  float* r(int b) { return &buf_[(0 * kGroup + b) * fp_]; }
  float* p(int b) { return &buf_[(1 * kGroup + b) * fp_]; }
  float* ap(int b) { return &buf_[(2 * kGroup + b) * fp_]; }
  float* t(int b) { return &buf_[(3 * kGroup + b) * fp_]; }

 private:
  int64_t fp_;
  std::vector<float> buf_;
};

// CG for the rows `rows[0 .. nrows)` (at most kGroup, none empty) in lockstep; a row leaves
// the group when its residual vanishes (where implicit stops that row too).
DAN_AVX2 void cg_group(float* X, const float* Y, const float* P, const Rows& R, int64_t f,
                       int64_t fp, int steps, const int64_t* rows, int nrows, CgScratch& s) {
  int act[kGroup];
  int na = nrows;
  float rsold[kGroup];
  for (int b = 0; b < nrows; ++b) act[b] = b;
  const float* v[kGroup];
  float* out[kGroup];
  // r = b - A x = (sparse part) - G x; p = r.
  for (int a = 0; a < na; ++a) {
    v[a] = X + rows[act[a]] * fp;
    out[a] = s.t(act[a]);
  }
  dense(P, f, fp, v, out, na);
  int keep = 0;
  for (int a = 0; a < na; ++a) {
    const int b = act[a];
    const int64_t u = rows[b];
    const int64_t beg = R.indptr[u], n = R.indptr[u + 1] - beg;
    float* r = s.r(b);
    sparse<true>(Y, fp, R.indices + beg, R.values + beg, n, X + u * fp, r);
    const float* t = s.t(b);
    float* p = s.p(b);
    for (int64_t k = 0; k < fp; k += 8) {
      const __m256 rv = _mm256_sub_ps(_mm256_loadu_ps(r + k), _mm256_loadu_ps(t + k));
      _mm256_storeu_ps(r + k, rv);
      _mm256_storeu_ps(p + k, rv);
    }
    rsold[b] = dot(r, r, fp);
    if (!(rsold[b] < kCgTol)) act[keep++] = b;
  }
  na = keep;
  for (int it = 0; it < steps && na > 0; ++it) {
    for (int a = 0; a < na; ++a) {
      v[a] = s.p(act[a]);
      out[a] = s.ap(act[a]);
    }
    dense(P, f, fp, v, out, na);
    keep = 0;
    for (int a = 0; a < na; ++a) {
      const int b = act[a];
      const int64_t u = rows[b];
      const int64_t beg = R.indptr[u], n = R.indptr[u + 1] - beg;
      float* p = s.p(b);
      float* ap = s.ap(b);
      float* r = s.r(b);
      float* t = s.t(b);
      float* x = X + u * fp;
      sparse<false>(Y, fp, R.indices + beg, R.values + beg, n, p, t);
      for (int64_t k = 0; k < fp; k += 8) {
        _mm256_storeu_ps(ap + k, _mm256_add_ps(_mm256_loadu_ps(ap + k), _mm256_loadu_ps(t + k)));
      }
      const float alpha = rsold[b] / dot(p, ap, fp);
      const __m256 va = _mm256_set1_ps(alpha), vna = _mm256_set1_ps(-alpha);
      for (int64_t k = 0; k < fp; k += 8) {
        _mm256_storeu_ps(x + k, _mm256_fmadd_ps(va, _mm256_loadu_ps(p + k), _mm256_loadu_ps(x + k)));
        _mm256_storeu_ps(r + k, _mm256_fmadd_ps(vna, _mm256_loadu_ps(ap + k), _mm256_loadu_ps(r + k)));
      }
      const float rsnew = dot(r, r, fp);
      if (rsnew < kCgTol) continue;
      const __m256 vb = _mm256_set1_ps(rsnew / rsold[b]);
      for (int64_t k = 0; k < fp; k += 8) {
        _mm256_storeu_ps(p + k, _mm256_fmadd_ps(vb, _mm256_loadu_ps(p + k), _mm256_loadu_ps(r + k)));
      }
      rsold[b] = rsnew;
      act[keep++] = b;
    }
    na = keep;
  }
}

// Cholesky of one row: A = G (f64, reg included) + sum_i (c_i - 1) y_i y_i^T built four items
// at a time (one load/store of A per four rank-1 updates), b = sum_i c_i y_i, all in f64.
struct CholScratch {
  std::vector<double> A, rhs, yd;
  CholScratch(int64_t f, int64_t fa)
      : A(static_cast<size_t>(f * fa)), rhs(static_cast<size_t>(fa)), yd(static_cast<size_t>(8 * fa)) {}
};

DAN_AVX2 bool chol_row(float* x, const float* Y, int64_t fp, const double* Gd, const Rows& R,
                       int64_t u, int64_t f, int64_t fa, CholScratch& s) {
  const int64_t beg = R.indptr[u], end = R.indptr[u + 1];
  if (beg == end) {
    std::fill_n(x, fp, 0.0f);
    return true;
  }
  double* A = s.A.data();
  double* rhs = s.rhs.data();
  std::memcpy(A, Gd, static_cast<size_t>(f * fa) * sizeof(double));
  std::fill_n(rhs, fa, 0.0);
  double* yd[4];
  double* wy[4];
  for (int t = 0; t < 4; ++t) {
    yd[t] = &s.yd[t * fa];
    wy[t] = &s.yd[(4 + t) * fa];
  }
  for (int64_t k0 = beg; k0 < end; k0 += 4) {
    const int nt = static_cast<int>(std::min<int64_t>(4, end - k0));
    for (int t = 0; t < 4; ++t) {
      if (t < nt) {
        const float* y = Y + static_cast<int64_t>(R.indices[k0 + t]) * fp;
        const double c = R.values[k0 + t], w = c - 1.0;
        for (int64_t j = 0; j < f; ++j) {
          yd[t][j] = y[j];
          wy[t][j] = w * yd[t][j];
          rhs[j] += c * yd[t][j];
        }
      } else {
        std::fill_n(wy[t], f, 0.0);  // a zero update leaves A unchanged: fma(0, y, a) == a
        std::fill_n(yd[t], f, 0.0);
      }
      std::fill(yd[t] + f, yd[t] + fa, 0.0);
    }
    for (int64_t j = 0; j < f; ++j) {
      double* Aj = A + j * fa;
      const __m256d w0 = _mm256_set1_pd(wy[0][j]), w1 = _mm256_set1_pd(wy[1][j]),
                    w2 = _mm256_set1_pd(wy[2][j]), w3 = _mm256_set1_pd(wy[3][j]);
      for (int64_t k = 0; k <= j; k += 4) {
        __m256d a = _mm256_loadu_pd(Aj + k);
        a = _mm256_fmadd_pd(_mm256_loadu_pd(yd[0] + k), w0, a);
        if (nt > 1) a = _mm256_fmadd_pd(_mm256_loadu_pd(yd[1] + k), w1, a);
        if (nt > 2) a = _mm256_fmadd_pd(_mm256_loadu_pd(yd[2] + k), w2, a);
        if (nt > 3) a = _mm256_fmadd_pd(_mm256_loadu_pd(yd[3] + k), w3, a);
        _mm256_storeu_pd(Aj + k, a);
      }
    }
  }
  if (!cholesky_solve(A, fa, rhs, f)) return false;
  for (int64_t j = 0; j < f; ++j) x[j] = static_cast<float>(rhs[j]);
  return true;
}

// Loss sums of a group of rows: dense = x^T YtY x (YtY x by the tile kernel), observed over
// the row's items. Per row in f64 from f32 dot products.
DAN_AVX2 void loss_group(const float* X, const float* Y, const float* P, const Rows& R, int64_t f,
                         int64_t fp, int64_t u0, int64_t u1, CgScratch& s, double* observed,
                         double* dense_sum) {
  const int nb = static_cast<int>(u1 - u0);
  const float* v[kGroup];
  float* out[kGroup];
  for (int b = 0; b < nb; ++b) {
    v[b] = X + (u0 + b) * fp;
    out[b] = s.t(b);
  }
  dense(P, f, fp, v, out, nb);
  for (int b = 0; b < nb; ++b) {
    const float* x = v[b];
    double d = 0;
    for (int64_t j = 0; j < f; ++j) d += static_cast<double>(x[j]) * s.t(b)[j];
    double o = 0;
    const int64_t u = u0 + b;
    for (int64_t k = R.indptr[u]; k < R.indptr[u + 1]; ++k) {
      const double sc = dot(Y + static_cast<int64_t>(R.indices[k]) * fp, x, fp), c = R.values[k];
      o += c * (1 - sc) * (1 - sc) - sc * sc;
    }
    observed[b] = o;
    dense_sum[b] = d;
  }
}

}  // namespace avx2
#endif  // DAN_ALS_X86

// The f64 copy of G = YtY + reg I that every Cholesky row starts from (leading dim lda).
std::vector<double> gram_f64(const float* G, int64_t f, int64_t lda, float reg) {
  std::vector<double> Gd(static_cast<size_t>(f * lda), 0.0);
  for (int64_t j = 0; j < f; ++j) {
    for (int64_t k = 0; k < f; ++k) Gd[j * lda + k] = G[j * f + k];
    Gd[j * lda + j] += static_cast<double>(reg);
  }
  return Gd;
}

// YtY + reg I as a dense f32 f x f matrix (what implicit's CG multiplies by).
std::vector<float> gram_f32(const float* G, int64_t f, float reg) {
  std::vector<float> out(G, G + f * f);
  for (int64_t j = 0; j < f; ++j) out[j * f + j] += reg;
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------------------
void als_update_cg(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C, float reg,
                   int cg_steps) {
  const int64_t f = X.size(1);
  const Rows R = rows_of(C);
  const bool par = R.rows * f >= kParallelWork;
  const int nthreads = par ? omp_get_max_threads() : 1;
#ifdef DAN_ALS_X86
  if (use_avx2()) {
    const int64_t fp = round_up(f, 8);
    Padded Xp = pad_rows(X, fp);
    const Padded Yp = pad_rows(Y, fp);
    const std::vector<float> P = avx2::pack_panels(YtY.data<float>(), f, fp, reg);
    const Groups groups = make_groups(R, f);
    for (const int64_t u : groups.empty) std::fill_n(Xp.p + u * fp, fp, 0.0f);
    const int64_t ngroups = static_cast<int64_t>(groups.order.size());
    std::vector<avx2::CgScratch> scratch(nthreads, avx2::CgScratch(fp));
#pragma omp parallel num_threads(nthreads) if (par)
    {
      avx2::CgScratch& s = scratch[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < ngroups; ++i) {
        const int64_t g = groups.order[i];
        const int64_t b = groups.start[g];
        avx2::cg_group(Xp.p, Yp.p, P.data(), R, f, fp, cg_steps, &groups.rows[b],
                       static_cast<int>(groups.start[g + 1] - b), s);
      }
    }
    unpad_rows(Xp, X);
    return;
  }
#endif
  float* x = X.data<float>();
  const float* y = Y.data<float>();
  const std::vector<float> G = gram_f32(YtY.data<float>(), f, reg);
  std::vector<float> scratch(static_cast<size_t>(nthreads * 3 * f));
#pragma omp parallel num_threads(nthreads) if (par)
  {
    float* s = &scratch[omp_get_thread_num() * 3 * f];
#pragma omp for schedule(dynamic, 16)
    for (int64_t u = 0; u < R.rows; ++u) {
      portable::cg_row(x + u * f, y, G.data(), R, u, f, cg_steps, s, s + f, s + 2 * f);
    }
  }
}

void als_update_cholesky(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C,
                         float reg) {
  const int64_t f = X.size(1);
  const Rows R = rows_of(C);
  const bool par = R.rows * f >= kParallelWork / 8;
  const int nthreads = par ? omp_get_max_threads() : 1;
  std::atomic<int64_t> bad{-1};
  auto note_bad = [&](int64_t u) {
    int64_t expected = -1;
    bad.compare_exchange_strong(expected, u);
  };
#ifdef DAN_ALS_X86
  if (use_avx2()) {
    const int64_t fp = round_up(f, 8), fa = round_up(f, 4);
    Padded Xp = pad_rows(X, fp);
    const Padded Yp = pad_rows(Y, fp);
    const std::vector<double> Gd = gram_f64(YtY.data<float>(), f, fa, reg);
    std::vector<avx2::CholScratch> scratch(nthreads, avx2::CholScratch(f, fa));
#pragma omp parallel num_threads(nthreads) if (par)
    {
      avx2::CholScratch& s = scratch[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 8)
      for (int64_t u = 0; u < R.rows; ++u) {
        if (!avx2::chol_row(Xp.p + u * fp, Yp.p, fp, Gd.data(), R, u, f, fa, s)) note_bad(u);
      }
    }
    unpad_rows(Xp, X);
  } else
#endif
  {
    float* x = X.data<float>();
    const float* y = Y.data<float>();
    const std::vector<double> Gd = gram_f64(YtY.data<float>(), f, f, reg);
    std::vector<double> scratch(static_cast<size_t>(nthreads * (f * f + f)));
#pragma omp parallel num_threads(nthreads) if (par)
    {
      double* s = &scratch[omp_get_thread_num() * (f * f + f)];
#pragma omp for schedule(dynamic, 8)
      for (int64_t u = 0; u < R.rows; ++u) {
        if (!portable::chol_row(x + u * f, y, Gd.data(), R, u, f, s, s + f * f)) note_bad(u);
      }
    }
  }
  DAN_CHECK(bad.load() < 0,
            "als_update_cholesky: the system of row {} is not positive definite (reg = {}); "
            "use reg > 0",
            bad.load(), reg);
}

AlsLossParts als_loss_parts(const Tensor& X, const Tensor& Y, const Tensor& YtY,
                            const CsrTensors& C) {
  const int64_t f = X.size(1);
  const Rows R = rows_of(C);
  const bool par = R.rows * f >= kParallelWork;
  const int nthreads = par ? omp_get_max_threads() : 1;
  // Per-row sums, added in row order afterwards: the total does not depend on the threads.
  std::vector<double> obs(static_cast<size_t>(R.rows)), dense(static_cast<size_t>(R.rows));
#ifdef DAN_ALS_X86
  if (use_avx2()) {
    const int64_t fp = round_up(f, 8);
    const Padded Xp = pad_rows(X, fp);
    const Padded Yp = pad_rows(Y, fp);
    const std::vector<float> P = avx2::pack_panels(YtY.data<float>(), f, fp, 0.0f);
    const int64_t ngroups = (R.rows + kGroup - 1) / kGroup;
    std::vector<avx2::CgScratch> scratch(nthreads, avx2::CgScratch(fp));
#pragma omp parallel num_threads(nthreads) if (par)
    {
      avx2::CgScratch& s = scratch[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 16)
      for (int64_t g = 0; g < ngroups; ++g) {
        const int64_t u0 = g * kGroup;
        avx2::loss_group(Xp.p, Yp.p, P.data(), R, f, fp, u0, std::min(R.rows, u0 + kGroup), s,
                         &obs[u0], &dense[u0]);
      }
    }
  } else
#endif
  {
    const float* x = X.data<float>();
    const float* y = Y.data<float>();
    const float* G = YtY.data<float>();
    std::vector<float> scratch(static_cast<size_t>(nthreads * f));
#pragma omp parallel num_threads(nthreads) if (par)
    {
      float* t = &scratch[omp_get_thread_num() * f];
#pragma omp for schedule(dynamic, 64)
      for (int64_t u = 0; u < R.rows; ++u) {
        portable::loss_row(x + u * f, y, G, R, u, f, t, &obs[u], &dense[u]);
      }
    }
  }
  AlsLossParts parts;
  for (int64_t u = 0; u < R.rows; ++u) {
    parts.observed += obs[u];
    parts.dense += dense[u];
  }
  return parts;
}

void als_force_portable(bool on) { g_force_portable.store(on, std::memory_order_relaxed); }

bool als_uses_simd() { return use_avx2(); }

namespace als_detail {

bool use_avx2() {
#ifdef DAN_ALS_X86
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has && !g_force_portable.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

}  // namespace als_detail

}  // namespace dan::kernels::cpu
