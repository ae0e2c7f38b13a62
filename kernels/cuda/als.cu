// CUDA backend of implicit ALS (WMF): the half-step solvers (conjugate gradient and Cholesky)
// and the two loss sums declared in kernels/als.h. Every row u solves
//   A_u x_u = b_u,  A_u = YtY + reg I + sum_i (c_ui - 1) y_i y_i^T,  b_u = sum_i c_ui y_i,
// with i over the stored entries of row u; rows without entries get x_u = 0.
//
// Design
// - One thread block owns one row at a time; blocks fetch rows from an atomic counter (a
//   scheduling counter only: a row's arithmetic never depends on which block runs it, so
//   results stay bitwise reproducible). No block size is tied to f: threads stride over the
//   factors, so any f works (1, 7, 100, 1024, ...). Block = f rounded up to a warp, at most 256.
// - Sparse part of A v (both CG paths): entries are taken in chunks of 64. Each warp computes
//   the dots y_i . v of its entries (lane-strided, butterfly shuffle), writes the coefficient
//   (c - 1)(y_i . v) to shared memory, then every thread j adds sum_e coef_e y_e[j] in entry
//   order. No float atomics anywhere: every sum has a fixed order.
// - CG, fused kernel (f <= 128 by default): x, r, p, Ap live in shared memory and YtY is
//   staged in shared memory once per block (f^2 * 4 <= 64 KB). The whole warm-started CG
//   (implicit's algorithm: r = b - A x, p = r, cg_steps steps, stop when r.r < 1e-20) runs in
//   one launch. Forced on for larger f, YtY p is a matvec read from L2 (f^2 floats per step
//   per row: 4 MB at f = 1024, which then dominates the sparse part 20:1).
// - CG, batched kernel (f > 128 by default): the dense product of every row of a chunk is
//   one SGEMM per CG step (AP = P YtY^T through cuBLAS), and a row kernel adds reg p and the
//   sparse part and does the CG updates; x lives in X, r, p, Ap and r.r in a workspace of
//   3 * chunk * f floats (<= 512 MB; 43k rows per chunk at f = 1024). Same algorithm, same
//   per-row arithmetic order apart from the GEMM's.
// - Cholesky: per row, the lower triangle of A_u is formed in 64 x 64 tiles (a SYRK over the
//   row's entries staged 64 at a time in shared memory, 4 x 4 outputs per thread), then
//   factored by a blocked right-looking Cholesky with 64-wide panels: unblocked factor of the
//   diagonal tile L11 in shared memory, the panel below it as L21 = A21 L11^-T (L11^-1 by 64
//   independent column substitutions, then the same tile product as everywhere else), and
//   the trailing update A22 -= L21 L21^T tile by tile. Then forward and back substitution
//   (one block reduction, resp. one axpy, per unknown).
//   Cost per row: nnz f^2 (forming) + f^3 / 3 (factor) + 2 f^2 (solves) flops; traffic on A
//   about f^3 / 128 floats (each panel step streams the trailing triangle: one panel tile
//   load and a read-modify-write per tile pair), ~35 MB per row at f = 1024, so a 100k-row
//   half-step is estimated at seconds there: correct, but CG is the solver for large f.
//   f <= 128 keeps the whole row in shared memory and is cheap.
//   A_u lives in shared memory when it fits (f <= 128: leading dimension f | 1, odd, so
//   column walks are bank-conflict free), else in a global workspace of one f x (f | 1) slot
//   per resident block (<= 512 MB, at least one slot per SM), reused row after row.
//   A non-positive pivot (reg = 0 with a rank-deficient system) raises an error.
// - Loss: observed = sum over entries of c (1 - s)^2 - s^2 with s = x_u . y_i (a warp per
//   entry), dense = sum_u x_u . (YtY x_u) with YtY X^T from SGEMM (chunked); f64 per-thread
//   accumulators, a fixed grid of at most 1024 blocks writes f64 partials, one block adds them
//   in order. The grid depends only on the problem, so the sums are the same on any GPU.
// - The CSR arrays are checked on the device before any solve (indptr starts at 0, never
//   decreases, ends at nnz; 0 <= index < cols): one small kernel and one synchronization.
// - 64-bit offsets everywhere an index can exceed 2^31 (indptr, row * f, entry positions).
#include "kernels/als.h"
#include "kernels/cuda/common.cuh"

#include <atomic>
#include <climits>
#include <cmath>

namespace dan::kernels::cuda {

// Test and benchmark hook, not part of kernels/als.h: which CG implementation runs.
// 0 = automatic (fused kernel when YtY fits in shared memory, else batched), 1 = always the
// fused kernel, 2 = always the batched (SGEMM) kernel.
void set_als_cg_path(int path);

namespace {

constexpr int kChunk = 64;             // CSR entries staged per round in the sparse part
constexpr int kMaxThreads = 256;       // CG / loss block size cap
constexpr float kCgTol = 1e-20f;       // implicit's early stop on r.r
constexpr int64_t kMaxFactors = 8192;  // CG vectors (4 f floats) must fit in shared memory
constexpr size_t kStageBytes = 64 * 1024;             // YtY staged in shared memory up to this
constexpr size_t kWorkspaceBytes = size_t{512} << 20;  // per-call workspace budget
constexpr int64_t kLossBlocks = 1024;  // fixed grid of the loss reduction (determinism)

constexpr int kT = 64;             // Cholesky tile size
constexpr int kTP = kT + 1;        // tile pitch in shared memory
constexpr int kCholThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each per tile
constexpr int kCholSmemMaxF = 128;  // A_u in shared memory up to this f

std::atomic<int> g_cg_path{0};

int cg_block(int64_t f) {
  const int64_t b = (f + 31) / 32 * 32;
  return static_cast<int>(std::clamp<int64_t>(b, 32, kMaxThreads));
}

// ---- device helpers ------------------------------------------------------------------------

// Next row for this block from the launch's counter; block-uniform. The first barrier keeps
// thread 0 from overwriting *slot while others may still read the previous value.
__device__ __forceinline__ int64_t next_row(unsigned long long* counter, long long* slot) {
  __syncthreads();
  if (threadIdx.x == 0) *slot = static_cast<long long>(atomicAdd(counter, 1ull));
  __syncthreads();
  return *slot;
}

// out[j] += sum_e coef_e y_{i_e}[j] over the entries [start, end) of one CSR row, with
//   kResidual = false: coef_e = (c_e - 1) (y_e . v)      (the sparse part of A v)
//   kResidual = true:  coef_e = c_e - (c_e - 1) (y_e . v)  (b minus the sparse part of A v).
// v must be complete (a barrier after its last write); out[j] is touched only by thread
// j mod blockDim.x. Ends with a barrier (coef_s/idx_s are reused by the next chunk).
template <bool kResidual>
__device__ void add_sparse(const float* v, float* out, int64_t start, int64_t end,
                           const int32_t* __restrict__ indices, const float* __restrict__ values,
                           const float* __restrict__ Y, int f, float* coef_s, int32_t* idx_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t base = start; base < end; base += kChunk) {
    const int n = end - base < kChunk ? static_cast<int>(end - base) : kChunk;
    for (int e = warp; e < n; e += nwarps) {
      const int32_t col = indices[base + e];
      const float* y = Y + static_cast<int64_t>(col) * f;
      float d = 0.f;
      for (int j = lane; j < f; j += 32) d += y[j] * v[j];
      d = warp_reduce(d, SumOp{});
      if (lane == 0) {
        const float c = values[base + e];
        coef_s[e] = kResidual ? c - (c - 1.f) * d : (c - 1.f) * d;
        idx_s[e] = col;
      }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < f; j += blockDim.x) {
      float acc = out[j];
      for (int e = 0; e < n; ++e) acc += coef_s[e] * Y[static_cast<int64_t>(idx_s[e]) * f + j];
      out[j] = acc;
    }
    __syncthreads();
  }
}

// out[j] = sign * (sum_k G[k][j] v[k] + reg v[j]) with G = YtY^T (row-major), i.e. out =
// sign * (YtY + reg I) v; thread j reads column j of G, so a warp reads consecutive floats.
__device__ __forceinline__ void dense_apply(const float* G, const float* v, float* out, int f,
                                            float reg, float sign) {
  for (int j = threadIdx.x; j < f; j += blockDim.x) {
    float s = 0.f;
#pragma unroll 8
    for (int k = 0; k < f; ++k) s += G[static_cast<int64_t>(k) * f + j] * v[k];
    out[j] = sign * (s + reg * v[j]);
  }
}

// ---- CSR validation ------------------------------------------------------------------------

__global__ void k_check_csr(const int64_t* __restrict__ indptr, int64_t rows,
                            const int32_t* __restrict__ indices, int64_t nnz, int64_t cols,
                            long long* bad_ptr, long long* bad_idx) {
  const int64_t n = rows + 1 > nnz ? rows + 1 : nnz;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    if (i <= rows) {
      const int64_t v = indptr[i];
      bool ok = i == 0 ? v == 0 : v >= indptr[i - 1];
      if (i == rows) ok = ok && v == nnz;
      if (!ok) raise_flag(bad_ptr, i);
    }
    if (i < nnz) {
      const int32_t c = indices[i];
      if (c < 0 || c >= cols) raise_flag(bad_idx, i);
    }
  }
}

// ---- CG: fused kernel ----------------------------------------------------------------------

// Whole CG per row in one launch. Dynamic shared memory: [G f*f if kStage] x r p Ap (f each),
// coef (kChunk floats), idx (kChunk ints). Gt = YtY^T, row-major (global).
template <bool kStage>
__global__ void k_cg_fused(float* X, const float* __restrict__ Gt,
                           const int64_t* __restrict__ indptr, const int32_t* __restrict__ indices,
                           const float* __restrict__ values, const float* __restrict__ Y,
                           int64_t rows, int f, float reg, int steps,
                           unsigned long long* counter) {
  extern __shared__ float dyn[];
  __shared__ float red[32];
  __shared__ long long slot;
  const int64_t ff = static_cast<int64_t>(f) * f;
  float* xs = dyn + (kStage ? ff : 0);
  float* rs = xs + f;
  float* ps = rs + f;
  float* aps = ps + f;
  float* coef = aps + f;
  int32_t* idx = reinterpret_cast<int32_t*>(coef + kChunk);
  const float* G = Gt;
  if constexpr (kStage) {
    for (int64_t t = threadIdx.x; t < ff; t += blockDim.x) dyn[t] = Gt[t];
    G = dyn;  // complete after the barrier in next_row()
  }
  const int tid = threadIdx.x, nt = blockDim.x;
  for (int64_t row = next_row(counter, &slot); row < rows; row = next_row(counter, &slot)) {
    const int64_t start = indptr[row], end = indptr[row + 1];
    float* x = X + row * f;
    if (start == end) {
      for (int j = tid; j < f; j += nt) x[j] = 0.f;
      continue;
    }
    for (int j = tid; j < f; j += nt) xs[j] = x[j];
    __syncthreads();
    // r = b - A x
    dense_apply(G, xs, rs, f, reg, -1.f);
    add_sparse<true>(xs, rs, start, end, indices, values, Y, f, coef, idx);
    float part = 0.f;
    for (int j = tid; j < f; j += nt) {
      part += rs[j] * rs[j];
      ps[j] = rs[j];
    }
    float rsold = block_reduce(part, SumOp{}, red);
    if (rsold < kCgTol) continue;  // x is already the solution
    for (int it = 0; it < steps; ++it) {
      __syncthreads();  // every p[j] written before A p reads all of p
      dense_apply(G, ps, aps, f, reg, 1.f);
      add_sparse<false>(ps, aps, start, end, indices, values, Y, f, coef, idx);
      part = 0.f;
      for (int j = tid; j < f; j += nt) part += ps[j] * aps[j];
      const float alpha = rsold / block_reduce(part, SumOp{}, red);
      part = 0.f;
      for (int j = tid; j < f; j += nt) {
        xs[j] += alpha * ps[j];
        rs[j] -= alpha * aps[j];
        part += rs[j] * rs[j];
      }
      const float rsnew = block_reduce(part, SumOp{}, red);
      if (rsnew < kCgTol) break;
      const float beta = rsnew / rsold;
      for (int j = tid; j < f; j += nt) ps[j] = rs[j] + beta * ps[j];
      rsold = rsnew;
    }
    for (int j = tid; j < f; j += nt) x[j] = xs[j];
  }
}

// ---- CG: batched kernels (dense product by SGEMM) ------------------------------------------

// One block per row of the chunk [r0, r0 + gridDim.x). AP holds YtY x (from the GEMM).
// Dynamic shared memory: xs, rs (f each), coef, idx (kChunk each).
__global__ void k_cg_init(float* X, float* R, float* P, const float* AP, float* rsold,
                          int* active, int64_t r0, const int64_t* __restrict__ indptr,
                          const int32_t* __restrict__ indices, const float* __restrict__ values,
                          const float* __restrict__ Y, int f, float reg) {
  extern __shared__ float dyn[];
  __shared__ float red[32];
  float* xs = dyn;
  float* rs = xs + f;
  float* coef = rs + f;
  int32_t* idx = reinterpret_cast<int32_t*>(coef + kChunk);
  const int64_t u = blockIdx.x;
  const int64_t start = indptr[r0 + u], end = indptr[r0 + u + 1];
  const int tid = threadIdx.x, nt = blockDim.x;
  float* x = X + u * f;
  float* r = R + u * f;
  float* p = P + u * f;
  const float* ap = AP + u * f;
  if (start == end) {
    for (int j = tid; j < f; j += nt) {
      x[j] = 0.f;
      p[j] = 0.f;
    }
    if (tid == 0) active[u] = 0;
    return;
  }
  for (int j = tid; j < f; j += nt) {
    xs[j] = x[j];
    rs[j] = -(ap[j] + reg * x[j]);
  }
  __syncthreads();
  add_sparse<true>(xs, rs, start, end, indices, values, Y, f, coef, idx);
  float part = 0.f;
  for (int j = tid; j < f; j += nt) part += rs[j] * rs[j];
  const float rr = block_reduce(part, SumOp{}, red);
  const bool go = rr >= kCgTol;
  for (int j = tid; j < f; j += nt) {
    r[j] = rs[j];
    p[j] = go ? rs[j] : 0.f;
  }
  if (tid == 0) {
    rsold[u] = rr;
    active[u] = go ? 1 : 0;
  }
}

// One CG step for every active row of the chunk; AP holds YtY p (from the GEMM).
// Dynamic shared memory: ps, aps (f each), coef, idx (kChunk each).
__global__ void k_cg_step(float* X, float* R, float* P, const float* AP, float* rsold,
                          int* active, int64_t r0, const int64_t* __restrict__ indptr,
                          const int32_t* __restrict__ indices, const float* __restrict__ values,
                          const float* __restrict__ Y, int f, float reg) {
  extern __shared__ float dyn[];
  __shared__ float red[32];
  const int64_t u = blockIdx.x;
  if (active[u] == 0) return;  // block-uniform
  float* ps = dyn;
  float* aps = ps + f;
  float* coef = aps + f;
  int32_t* idx = reinterpret_cast<int32_t*>(coef + kChunk);
  const int64_t start = indptr[r0 + u], end = indptr[r0 + u + 1];
  const int tid = threadIdx.x, nt = blockDim.x;
  const float rs_old = rsold[u];
  float* x = X + u * f;
  float* r = R + u * f;
  float* p = P + u * f;
  const float* ap = AP + u * f;
  for (int j = tid; j < f; j += nt) {
    ps[j] = p[j];
    aps[j] = ap[j] + reg * p[j];
  }
  __syncthreads();
  add_sparse<false>(ps, aps, start, end, indices, values, Y, f, coef, idx);
  float part = 0.f;
  for (int j = tid; j < f; j += nt) part += ps[j] * aps[j];
  const float alpha = rs_old / block_reduce(part, SumOp{}, red);
  part = 0.f;
  for (int j = tid; j < f; j += nt) {
    x[j] += alpha * ps[j];
    const float rj = r[j] - alpha * aps[j];
    r[j] = rj;
    part += rj * rj;
  }
  const float rs_new = block_reduce(part, SumOp{}, red);
  if (rs_new < kCgTol) {
    if (tid == 0) active[u] = 0;
    return;
  }
  const float beta = rs_new / rs_old;
  for (int j = tid; j < f; j += nt) p[j] = r[j] + beta * ps[j];
  if (tid == 0) rsold[u] = rs_new;
}

// ---- Cholesky --------------------------------------------------------------------------------

// acc[a][b] += sum_{k < K} Sa[k][ty + 16a] * Sb[k][tx + 16b] (tiles stored k-major, pitch kTP).
__device__ __forceinline__ void tile_fma(float (&acc)[4][4], const float* Sa, const float* Sb,
                                         int K) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  for (int k = 0; k < K; ++k) {
    float a[4], b[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      a[i] = Sa[k * kTP + ty + 16 * i];
      b[i] = Sb[k * kTP + tx + 16 * i];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int l = 0; l < 4; ++l) acc[i][l] += a[i] * b[l];
    }
  }
}

// S[k][r] = A[row0 + r][col0 + k] for r < nrows, k < w; zero elsewhere (64 x 64, pitch kTP).
__device__ __forceinline__ void load_panel_t(float* S, const float* A, int64_t lda, int row0,
                                             int nrows, int col0, int w) {
  for (int t = threadIdx.x; t < kT * kT; t += blockDim.x) {
    const int r = t / kT, k = t % kT;
    S[k * kTP + r] = (r < nrows && k < w) ? A[static_cast<int64_t>(row0 + r) * lda + col0 + k]
                                          : 0.f;
  }
}

// Per row: form A_u (lower triangle, row-major, leading dimension lda) and b_u, factor
// A_u = L L^T in place, solve. kSmem: A_u and b_u in dynamic shared memory; else in the
// block's slot of the global workspace ws (lda * f + f floats per slot).
template <bool kSmem>
__global__ void __launch_bounds__(kCholThreads)
    k_cholesky(float* X, const float* __restrict__ Y, const float* __restrict__ YtY,
               const int64_t* __restrict__ indptr, const int32_t* __restrict__ indices,
               const float* __restrict__ values, int64_t rows, int f, int64_t lda, float reg,
               float* ws, unsigned long long* counter, long long* flag) {
  extern __shared__ float dyn[];
  __shared__ float Sa[kT * kTP];
  __shared__ float Sb[kT * kTP];
  __shared__ float wv[kT];
  __shared__ int32_t iv[kT];
  __shared__ float red[32];
  __shared__ long long slot;
  const int64_t per_slot = lda * f + f;
  float* A = kSmem ? dyn : ws + static_cast<int64_t>(blockIdx.x) * per_slot;
  float* vec = A + lda * f;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int tx = tid & 15, ty = tid >> 4;
  const int ntiles = (f + kT - 1) / kT;

  for (int64_t row = next_row(counter, &slot); row < rows; row = next_row(counter, &slot)) {
    const int64_t start = indptr[row], end = indptr[row + 1];
    float* x = X + row * f;
    if (start == end) {
      for (int j = tid; j < f; j += nt) x[j] = 0.f;
      continue;
    }
    // b = sum_e c_e y_e, entry order fixed per j.
    for (int j = tid; j < f; j += nt) {
      float s = 0.f;
      for (int64_t e = start; e < end; ++e) {
        s += values[e] * Y[static_cast<int64_t>(indices[e]) * f + j];
      }
      vec[j] = s;
    }
    // A = YtY + reg I + sum_e (c_e - 1) y_e y_e^T, lower triangle, tile by tile.
    for (int tj = 0; tj < ntiles; ++tj) {
      for (int tl = 0; tl <= tj; ++tl) {
        float acc[4][4] = {};
        for (int64_t base = start; base < end; base += kT) {
          const int n = end - base < kT ? static_cast<int>(end - base) : kT;
          __syncthreads();  // previous readers of iv, wv, Sa, Sb are done
          if (tid < n) {
            iv[tid] = indices[base + tid];
            wv[tid] = values[base + tid] - 1.f;
          }
          __syncthreads();
          for (int t = tid; t < kT * kT; t += nt) {
            const int e = t / kT, c = t % kT;
            const int ja = tj * kT + c, jb = tl * kT + c;
            float ya = 0.f, yb = 0.f;
            if (e < n) {
              const float* y = Y + static_cast<int64_t>(iv[e]) * f;
              if (ja < f) ya = wv[e] * y[ja];
              if (jb < f) yb = y[jb];
            }
            Sa[e * kTP + c] = ya;
            Sb[e * kTP + c] = yb;
          }
          __syncthreads();
          tile_fma(acc, Sa, Sb, n);
        }
#pragma unroll
        for (int a = 0; a < 4; ++a) {
#pragma unroll
          for (int b = 0; b < 4; ++b) {
            const int j = tj * kT + ty + 16 * a, l = tl * kT + tx + 16 * b;
            if (j < f && l <= j) {
              A[j * lda + l] = YtY[static_cast<int64_t>(j) * f + l] + (j == l ? reg : 0.f) +
                               acc[a][b];
            }
          }
        }
      }
    }
    __syncthreads();

    // Blocked right-looking factorization, panels of kT columns.
    for (int kb = 0; kb < f; kb += kT) {
      const int w = f - kb < kT ? f - kb : kT;
      // Diagonal tile into Sa (row-major, pitch kTP), lower part only.
      for (int t = tid; t < kT * kT; t += nt) {
        const int r = t / kT, c = t % kT;
        Sa[r * kTP + c] = (r < w && c <= r) ? A[(kb + r) * lda + kb + c] : 0.f;
      }
      __syncthreads();
      for (int k = 0; k < w; ++k) {
        if (tid == 0) {
          float d = Sa[k * kTP + k];
          if (!(d > 0.f)) {
            raise_flag(flag, row);
            d = 1.f;  // keep going; the host throws after the launch
          }
          Sa[k * kTP + k] = sqrtf(d);
        }
        __syncthreads();
        const float piv = Sa[k * kTP + k];
        for (int j = k + 1 + tid; j < w; j += nt) Sa[j * kTP + k] /= piv;
        __syncthreads();
        const int m = w - k - 1;
        for (int t = tid; t < m * m; t += nt) {
          const int jj = k + 1 + t / m, ll = k + 1 + t % m;
          if (ll <= jj) Sa[jj * kTP + ll] -= Sa[jj * kTP + k] * Sa[ll * kTP + k];
        }
        __syncthreads();
      }
      // Write the factored tile back. If panel rows lie below, L21 = A21 L11^-T: thread c
      // (< w) computes column c of L11^-1 by forward substitution into Sb, stored so that
      // Sb[k][c'] = L11^-1[c'][k]; then each 64-row tile of A21 times that is a tile product.
      for (int t = tid; t < kT * kT; t += nt) {
        const int r = t / kT, c = t % kT;
        if (r < w && c <= r) A[(kb + r) * lda + kb + c] = Sa[r * kTP + c];
      }
      const int r0 = kb + w;
      const int ntr = (f - r0 + kT - 1) / kT;  // row tiles below the panel
      if (ntr > 0) {
        if (tid < kT) {
          const int c = tid;
          for (int i = 0; i < kT; ++i) {
            float v = 0.f;
            if (c < w && i >= c && i < w) {
              float s = i == c ? 1.f : 0.f;
              for (int l = c; l < i; ++l) s -= Sa[i * kTP + l] * Sb[c * kTP + l];
              v = s / Sa[i * kTP + i];
            }
            Sb[c * kTP + i] = v;
          }
        }
        __syncthreads();
        for (int rt = 0; rt < ntr; ++rt) {
          const int ra = r0 + rt * kT;
          load_panel_t(Sa, A, lda, ra, f - ra < kT ? f - ra : kT, kb, w);
          __syncthreads();
          float acc[4][4] = {};
          tile_fma(acc, Sa, Sb, w);
          __syncthreads();  // Sa is reloaded next round
#pragma unroll
          for (int a = 0; a < 4; ++a) {
#pragma unroll
            for (int b = 0; b < 4; ++b) {
              const int j = ra + ty + 16 * a, l = tx + 16 * b;
              if (j < f && l < w) A[j * lda + kb + l] = acc[a][b];
            }
          }
        }
      }
      __syncthreads();  // L21 complete before the trailing update reads it
      // Trailing update A22 -= L21 L21^T, lower tiles only.
      for (int tj = 0; tj < ntr; ++tj) {
        const int ra = r0 + tj * kT;
        // Sa (rows of tile tj) is loaded once per tile row: the barrier after the previous
        // tile_fma already ordered its last readers before this store.
        load_panel_t(Sa, A, lda, ra, f - ra < kT ? f - ra : kT, kb, w);
        for (int tl = 0; tl <= tj; ++tl) {
          const int rb = r0 + tl * kT;
          load_panel_t(Sb, A, lda, rb, f - rb < kT ? f - rb : kT, kb, w);
          __syncthreads();
          float acc[4][4] = {};
          tile_fma(acc, Sa, Sb, w);
          __syncthreads();
#pragma unroll
          for (int a = 0; a < 4; ++a) {
#pragma unroll
            for (int b = 0; b < 4; ++b) {
              const int j = ra + ty + 16 * a, l = rb + tx + 16 * b;
              if (j < f && l <= j) A[j * lda + l] -= acc[a][b];
            }
          }
        }
      }
      __syncthreads();
    }

    // L z = b (row-oriented: row k of L is contiguous), then L^T x = z (column-oriented:
    // column k of L^T is row k of L).
    for (int k = 0; k < f; ++k) {
      const float* Lk = A + k * lda;
      float part = 0.f;
      for (int l = tid; l < k; l += nt) part += Lk[l] * vec[l];
      const float s = block_reduce(part, SumOp{}, red);
      if (tid == 0) vec[k] = (vec[k] - s) / Lk[k];
      __syncthreads();
    }
    for (int k = f - 1; k >= 0; --k) {
      const float* Lk = A + k * lda;
      if (tid == 0) vec[k] /= Lk[k];
      __syncthreads();
      const float xk = vec[k];
      for (int j = tid; j < k; j += nt) vec[j] -= Lk[j] * xk;
      __syncthreads();
    }
    for (int j = tid; j < f; j += nt) x[j] = vec[j];
  }
}

// ---- loss ------------------------------------------------------------------------------------

// Rows [0, n) of a chunk starting at global row r0; T = X YtY^T for the chunk. Block b takes
// rows b, b + gridDim.x, ...; writes (observed, dense) partials[b].
__global__ void k_loss_parts(const float* __restrict__ X, const float* __restrict__ T, int64_t n,
                             int64_t r0, const int64_t* __restrict__ indptr,
                             const int32_t* __restrict__ indices,
                             const float* __restrict__ values, const float* __restrict__ Y, int f,
                             double* __restrict__ partials) {
  __shared__ double red[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  double obs = 0.0, dense = 0.0;
  for (int64_t u = blockIdx.x; u < n; u += gridDim.x) {
    const float* x = X + u * f;
    const float* t = T + u * f;
    for (int j = threadIdx.x; j < f; j += blockDim.x) {
      dense += static_cast<double>(x[j]) * static_cast<double>(t[j]);
    }
    const int64_t start = indptr[r0 + u], end = indptr[r0 + u + 1];
    for (int64_t e = start + warp; e < end; e += nwarps) {
      const float* y = Y + static_cast<int64_t>(indices[e]) * f;
      float s = 0.f;
      for (int j = lane; j < f; j += 32) s += x[j] * y[j];
      s = warp_reduce(s, SumOp{});
      if (lane == 0) {
        const double c = values[e], sd = s;
        obs += c * (1.0 - sd) * (1.0 - sd) - sd * sd;
      }
    }
  }
  obs = block_reduce(obs, SumOp{}, red);
  dense = block_reduce(dense, SumOp{}, red);
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = obs;
    partials[2 * blockIdx.x + 1] = dense;
  }
}

__global__ void k_loss_final(const double* __restrict__ partials, int64_t nparts,
                             double* __restrict__ out) {
  __shared__ double red[32];
  double a = 0.0, b = 0.0;
  for (int64_t i = threadIdx.x; i < nparts; i += blockDim.x) {
    a += partials[2 * i];
    b += partials[2 * i + 1];
  }
  a = block_reduce(a, SumOp{}, red);
  b = block_reduce(b, SumOp{}, red);
  if (threadIdx.x == 0) {
    out[0] = a;
    out[1] = b;
  }
}

// ---- host helpers --------------------------------------------------------------------------

int device_of(const char* op, const Tensor& X) {
  DAN_CHECK(X.defined() && X.device().is_cuda(), "{} (cuda): X must be a CUDA tensor", op);
  return X.device().index;
}

struct Problem {
  int dev = 0;
  int64_t rows = 0, cols = 0, f = 0, nnz = 0;
  const int64_t* indptr = nullptr;
  const int32_t* indices = nullptr;
  const float* values = nullptr;
  const float* Y = nullptr;
  const float* YtY = nullptr;
};

void check_tensor(const char* op, const char* what, const Tensor& t, DType dt, int64_t dim,
                  int dev) {
  DAN_CHECK(t.defined(), "{} (cuda): {} is undefined", op, what);
  DAN_CHECK(t.device() == Device::cuda(dev), "{} (cuda): {} is on {}, expected cuda:{}", op,
            what, t.device().str(), dev);
  DAN_CHECK(t.dtype() == dt, "{} (cuda): {} must be {}, got {}", op, what, dt, t.dtype());
  DAN_CHECK(t.dim() == dim, "{} (cuda): {} must have {} dims, got {}", op, what, dim,
            shape_str(t.shape()));
  DAN_CHECK(t.is_contiguous(), "{} (cuda): {} must be contiguous", op, what);
}

// Host-side shape checks plus the device-side CSR check (one synchronization).
// The caller holds a DeviceGuard for X's device (see device_of).
Problem prepare(const char* op, const Tensor& X, const Tensor& Y, const Tensor& YtY,
                const CsrTensors& C) {
  Problem p;
  p.dev = X.device().index;
  check_tensor(op, "X", X, DType::f32, 2, p.dev);
  check_tensor(op, "Y", Y, DType::f32, 2, p.dev);
  check_tensor(op, "YtY", YtY, DType::f32, 2, p.dev);
  check_tensor(op, "C.indptr", C.indptr, DType::i64, 1, p.dev);
  check_tensor(op, "C.indices", C.indices, DType::i32, 1, p.dev);
  check_tensor(op, "C.values", C.values, DType::f32, 1, p.dev);
  p.rows = X.size(0);
  p.f = X.size(1);
  p.cols = Y.size(0);
  p.nnz = C.indices.numel();
  DAN_CHECK(C.rows == p.rows && C.cols == p.cols,
            "{} (cuda): C is {} x {}, expected {} x {} (rows of X x rows of Y)", op, C.rows,
            C.cols, p.rows, p.cols);
  DAN_CHECK(Y.size(1) == p.f, "{} (cuda): Y is {}, expected {} factors like X {}", op,
            shape_str(Y.shape()), p.f, shape_str(X.shape()));
  DAN_CHECK(YtY.size(0) == p.f && YtY.size(1) == p.f, "{} (cuda): YtY is {}, expected [{}, {}]",
            op, shape_str(YtY.shape()), p.f, p.f);
  DAN_CHECK(C.indptr.numel() == p.rows + 1, "{} (cuda): C.indptr has {} entries, expected {}",
            op, C.indptr.numel(), p.rows + 1);
  DAN_CHECK(C.values.numel() == p.nnz, "{} (cuda): C.values has {} entries, C.indices {}", op,
            C.values.numel(), p.nnz);
  DAN_CHECK(p.cols <= INT32_MAX, "{} (cuda): {} columns exceed the i32 indices", op, p.cols);
  p.indptr = static_cast<const int64_t*>(C.indptr.raw_data());
  p.indices = static_cast<const int32_t*>(C.indices.raw_data());
  p.values = static_cast<const float*>(C.values.raw_data());
  p.Y = static_cast<const float*>(Y.raw_data());
  p.YtY = static_cast<const float*>(YtY.raw_data());

  ErrorFlag bad_ptr(p.dev), bad_idx(p.dev);
  const int64_t n = std::max(p.rows + 1, p.nnz);
  k_check_csr<<<grid_for(n, p.dev), kBlock, 0, stream_of(p.dev)>>>(
      p.indptr, p.rows, p.indices, p.nnz, p.cols, bad_ptr.data(), bad_idx.data());
  DAN_CUDA_CHECK_LAUNCH();
  int64_t at = 0;
  DAN_CHECK(!bad_ptr.raised(&at),
            "{} (cuda): C.indptr[{}] breaks the CSR layout (indptr must start at 0, never "
            "decrease, and end at nnz = {})", op, at, p.nnz);
  if (bad_idx.raised(&at)) {
    int32_t v = 0;
    ::dan::cuda::memcpy(&v, Device::cpu(), p.indices + at, Device::cuda(p.dev), sizeof(v));
    fail("{} (cuda): C.indices[{}] = {} is outside [0, {}) (the rows of Y)", op, at, v, p.cols);
  }
  return p;
}

size_t smem_optin(int dev) {
  int v = 0;
  DAN_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return static_cast<size_t>(v);
}

// Allows `dyn` bytes of dynamic shared memory for `kernel`; returns resident blocks per SM.
template <typename Kernel>
int prepare_kernel(Kernel kernel, int block, size_t dyn, int dev, const char* op) {
  cudaFuncAttributes attr{};
  DAN_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  const size_t optin = smem_optin(dev);
  DAN_CHECK(attr.sharedSizeBytes + dyn <= optin,
            "{} (cuda): needs {} bytes of shared memory per block, the device allows {}", op,
            attr.sharedSizeBytes + dyn, optin);
  DAN_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dyn)));
  int per_sm = 0;
  DAN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block, dyn));
  DAN_CHECK(per_sm > 0, "{} (cuda): a block of {} threads with {} bytes of shared memory does not "
            "fit on an SM", op, block, attr.sharedSizeBytes + dyn);
  return per_sm;
}

Tensor zero_counter(int dev) {
  Tensor c = raw::empty({1}, DType::i64, Device::cuda(dev));
  DAN_CUDA_CHECK(cudaMemsetAsync(c.raw_data(), 0, sizeof(int64_t), stream_of(dev)));
  return c;
}

unsigned long long* counter_ptr(const Tensor& c) {
  return static_cast<unsigned long long*>(c.raw_data());
}

// out[n x f] = in[n x f] YtY^T (row-major), i.e. out_u = YtY in_u, by one SGEMM.
void gemm_rows(int dev, const float* yty, const float* in, float* out, int64_t n, int64_t f) {
  if (n == 0 || f == 0) return;
  DAN_CHECK(n <= INT_MAX && f <= INT_MAX, "als (cuda): GEMM of {} x {} exceeds cuBLAS's 32-bit "
            "sizes", n, f);
  const float one = 1.f, zero = 0.f;
  const int fi = static_cast<int>(f);
  DAN_CUBLAS_CHECK(cublasSgemm(::dan::cuda::cublas_handle(dev), CUBLAS_OP_T, CUBLAS_OP_N, fi,
                               static_cast<int>(n), fi, &one, yty, fi, in, fi, &zero, out, fi));
}

void cg_fused(const Problem& p, float* X, const Tensor& YtY, float reg, int steps) {
  const int dev = p.dev;
  const int block = cg_block(p.f);
  const bool stage = static_cast<size_t>(p.f * p.f) * sizeof(float) <= kStageBytes;
  const size_t dyn = static_cast<size_t>((stage ? p.f * p.f : 0) + 4 * p.f + kChunk) *
                         sizeof(float) + kChunk * sizeof(int32_t);
  // Thread j reads column j of YtY^T, i.e. row j of YtY: the same products as a row-wise matvec.
  Tensor Gt = raw::empty({p.f, p.f}, DType::f32, Device::cuda(dev));
  copy_into(Gt, raw::transpose(YtY, 0, 1));
  auto kernel = stage ? &k_cg_fused<true> : &k_cg_fused<false>;
  const int per_sm = prepare_kernel(kernel, block, dyn, dev, "als_update_cg");
  const int64_t cap = int64_t{per_sm} * ::dan::cuda::device_props(dev).sm_count;
  const unsigned grid = static_cast<unsigned>(std::min(p.rows, cap));
  Tensor counter = zero_counter(dev);
  kernel<<<grid, block, dyn, stream_of(dev)>>>(
      X, static_cast<const float*>(Gt.raw_data()), p.indptr, p.indices, p.values, p.Y, p.rows,
      static_cast<int>(p.f), reg, steps, counter_ptr(counter));
  DAN_CUDA_CHECK_LAUNCH();
}

void cg_batched(const Problem& p, float* X, float reg, int steps) {
  const int dev = p.dev;
  const int block = cg_block(p.f);
  const size_t dyn = static_cast<size_t>(2 * p.f + kChunk) * sizeof(float) +
                     kChunk * sizeof(int32_t);
  prepare_kernel(&k_cg_init, block, dyn, dev, "als_update_cg");
  prepare_kernel(&k_cg_step, block, dyn, dev, "als_update_cg");
  const int64_t per_row = 3 * p.f * static_cast<int64_t>(sizeof(float));
  const int64_t chunk =
      std::clamp<int64_t>(static_cast<int64_t>(kWorkspaceBytes) / per_row, 1, p.rows);
  const Device d = Device::cuda(dev);
  Tensor ws = raw::empty({3 * chunk * p.f}, DType::f32, d);
  Tensor rsold = raw::empty({chunk}, DType::f32, d);
  Tensor active = raw::empty({chunk}, DType::i32, d);
  float* R = static_cast<float*>(ws.raw_data());
  float* P = R + chunk * p.f;
  float* AP = P + chunk * p.f;
  float* rs = static_cast<float*>(rsold.raw_data());
  int* act = static_cast<int*>(active.raw_data());
  const int f = static_cast<int>(p.f);
  cudaStream_t s = stream_of(dev);
  for (int64_t r0 = 0; r0 < p.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, p.rows - r0);
    float* Xc = X + r0 * p.f;
    gemm_rows(dev, p.YtY, Xc, AP, n, p.f);
    k_cg_init<<<static_cast<unsigned>(n), block, dyn, s>>>(Xc, R, P, AP, rs, act, r0, p.indptr,
                                                           p.indices, p.values, p.Y, f, reg);
    DAN_CUDA_CHECK_LAUNCH();
    for (int it = 0; it < steps; ++it) {
      gemm_rows(dev, p.YtY, P, AP, n, p.f);
      k_cg_step<<<static_cast<unsigned>(n), block, dyn, s>>>(Xc, R, P, AP, rs, act, r0, p.indptr,
                                                             p.indices, p.values, p.Y, f, reg);
      DAN_CUDA_CHECK_LAUNCH();
    }
  }
}

}  // namespace

void set_als_cg_path(int path) {
  DAN_CHECK(path >= 0 && path <= 2, "set_als_cg_path: {} is not 0 (auto), 1 (fused) or 2 "
            "(batched)", path);
  g_cg_path.store(path);
}

void als_update_cg(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C, float reg,
                   int cg_steps) {
  DAN_CHECK(cg_steps >= 0, "als_update_cg (cuda): cg_steps = {} must be >= 0", cg_steps);
  DeviceGuard guard(device_of("als_update_cg", X));
  const Problem p = prepare("als_update_cg", X, Y, YtY, C);
  if (p.rows == 0 || p.f == 0) return;
  DAN_CHECK(p.f <= kMaxFactors, "als_update_cg (cuda): {} factors, at most {} are supported",
            p.f, kMaxFactors);
  float* x = static_cast<float*>(X.raw_data());
  int path = g_cg_path.load();
  if (path == 0) {
    path = static_cast<size_t>(p.f * p.f) * sizeof(float) <= kStageBytes ? 1 : 2;
  }
  if (path == 1) {
    cg_fused(p, x, YtY, reg, cg_steps);
  } else {
    cg_batched(p, x, reg, cg_steps);
  }
}

void als_update_cholesky(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C,
                         float reg) {
  DeviceGuard guard(device_of("als_update_cholesky", X));
  const Problem p = prepare("als_update_cholesky", X, Y, YtY, C);
  if (p.rows == 0 || p.f == 0) return;
  DAN_CHECK(p.f <= kMaxFactors, "als_update_cholesky (cuda): {} factors, at most {} are "
            "supported", p.f, kMaxFactors);
  const int dev = p.dev;
  const int64_t lda = p.f | 1;  // odd: column walks hit 32 different banks
  const int64_t per_row = lda * p.f + p.f;  // floats: A_u and b_u
  const size_t smem_bytes = static_cast<size_t>(per_row) * sizeof(float);
  bool in_smem = p.f <= kCholSmemMaxF;
  if (in_smem) {
    cudaFuncAttributes attr{};
    DAN_CUDA_CHECK(cudaFuncGetAttributes(&attr, &k_cholesky<true>));
    in_smem = attr.sharedSizeBytes + smem_bytes <= smem_optin(dev);
  }
  auto kernel = in_smem ? &k_cholesky<true> : &k_cholesky<false>;
  const size_t dyn = in_smem ? smem_bytes : 0;
  const int per_sm = prepare_kernel(kernel, kCholThreads, dyn, dev, "als_update_cholesky");
  const int sms = ::dan::cuda::device_props(dev).sm_count;
  int64_t grid = std::min<int64_t>(p.rows, int64_t{per_sm} * sms);
  Tensor ws;
  float* wsp = nullptr;
  if (!in_smem) {
    // One workspace slot per block: the budget, but at least one per SM while that stays
    // under four times the budget.
    const int64_t slot_bytes = per_row * static_cast<int64_t>(sizeof(float));
    const int64_t budget = static_cast<int64_t>(kWorkspaceBytes);
    const int64_t slots = std::max<int64_t>(
        {int64_t{1}, budget / slot_bytes, std::min<int64_t>(sms, 4 * budget / slot_bytes)});
    grid = std::min(grid, slots);
    ws = raw::empty({grid * per_row}, DType::f32, Device::cuda(dev));
    wsp = static_cast<float*>(ws.raw_data());
  }
  Tensor counter = zero_counter(dev);
  ErrorFlag not_pd(dev);
  kernel<<<static_cast<unsigned>(grid), kCholThreads, dyn, stream_of(dev)>>>(
      static_cast<float*>(X.raw_data()), p.Y, p.YtY, p.indptr, p.indices, p.values, p.rows,
      static_cast<int>(p.f), lda, reg, wsp, counter_ptr(counter), not_pd.data());
  DAN_CUDA_CHECK_LAUNCH();
  int64_t row = 0;
  DAN_CHECK(!not_pd.raised(&row),
            "als_update_cholesky (cuda): the system of row {} is not positive definite "
            "(reg = {}); use reg > 0", row, reg);
}

AlsLossParts als_loss_parts(const Tensor& X, const Tensor& Y, const Tensor& YtY,
                            const CsrTensors& C) {
  DeviceGuard guard(device_of("als_loss_parts", X));
  const Problem p = prepare("als_loss_parts", X, Y, YtY, C);
  AlsLossParts out;
  if (p.rows == 0) return out;
  const int dev = p.dev;
  const Device d = Device::cuda(dev);
  const int64_t per_row = std::max<int64_t>(p.f, 1) * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::clamp<int64_t>(static_cast<int64_t>(kWorkspaceBytes / 2) / per_row,
                                            1, p.rows);
  const int64_t nchunks = (p.rows + chunk - 1) / chunk;
  Tensor T = raw::empty({chunk * p.f}, DType::f32, d);
  Tensor partials = raw::empty({nchunks * kLossBlocks * 2}, DType::f64, d);
  Tensor result = raw::empty({2}, DType::f64, d);
  cudaStream_t s = stream_of(dev);
  double* parts = static_cast<double*>(partials.raw_data());
  DAN_CUDA_CHECK(cudaMemsetAsync(parts, 0, partials.nbytes(), s));
  const float* xp = static_cast<const float*>(X.raw_data());
  float* tp = static_cast<float*>(T.raw_data());
  const int block = cg_block(p.f);
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t r0 = c * chunk, n = std::min(chunk, p.rows - r0);
    gemm_rows(dev, p.YtY, xp + r0 * p.f, tp, n, p.f);
    const unsigned grid = static_cast<unsigned>(std::min(n, kLossBlocks));
    k_loss_parts<<<grid, block, 0, s>>>(xp + r0 * p.f, tp, n, r0, p.indptr, p.indices, p.values,
                                        p.Y, static_cast<int>(p.f), parts + c * kLossBlocks * 2);
    DAN_CUDA_CHECK_LAUNCH();
  }
  k_loss_final<<<1, kMaxThreads, 0, s>>>(parts, nchunks * kLossBlocks,
                                          static_cast<double*>(result.raw_data()));
  DAN_CUDA_CHECK_LAUNCH();
  double host[2] = {0.0, 0.0};
  ::dan::cuda::memcpy(host, Device::cpu(), result.raw_data(), d, sizeof(host));
  out.observed = host[0];
  out.dense = host[1];
  return out;
}

}  // namespace dan::kernels::cuda
