// Tiled f32 self-attention kernels (the FlashAttention-2 schedule) for kernels/cuda/attention.cu:
// nothing of size S x S ever reaches global memory. Included by attention.cu only.
//
// Forward: one block per (batch, head, tile of 64 queries). The block keeps its queries in
// shared memory and walks the key tiles (64 keys each), holding a running row max m and sum l
// (online softmax) and rescaling its output accumulator when the max grows; it writes the
// output and each row's (m, 1/l), the two numbers the backward needs to rebuild P exactly.
//
// Backward: D_i = dO_i . O_i first (one warp per row); then two passes that both recompute
// P = exp(s - m) / l tile by tile from Q, K and the saved stats:
//   pass 1, one block per (batch, head, tile of 64 keys): loops over the query tiles and
//     accumulates dV = (P f)^T dO and dK = dS^T Q in registers;
//   pass 2, one block per (batch, head, tile of 64 queries): loops over the key tiles and
//     accumulates dQ = dS K.
// Recomputing S and dP in pass 2 costs two more tile products than accumulating dQ in pass 1
// with atomicAdd, but every output element has a single owner that sums in a fixed order, so
// gradients are bitwise deterministic, as every other kernel of this library.
//
// Threads: 256 per block as 16 x 16. For score tiles thread (rg, cg) owns rows rg + 16 i and
// columns cg + 16 j (i, j < 4); with rows of the shared tiles padded to dh + 4 floats, the float4
// reads of K rows then hit distinct banks. Products accumulating into [64, dh] own rows
// rg + 16 i (or key rows 4 kr + i) and dh / 16 consecutive dims (float4 or float2 reads).
//
// Semantics follow the CPU kernel: keys at and after the last one whose bias is above
// lowest / 2 are skipped (all dead: none is), the dropout factor of element (bh, i, j) is word
// ((bh S + i) S + j) of the Philox stream (seed, offset) compared as dropout() compares it.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "core/philox.h"
#include "kernels/cuda/common.cuh"

namespace dan::kernels::cuda::tiled {

constexpr int kTile = 64;      // queries per tile = keys per tile
constexpr int kThreads = 256;  // 16 x 16
constexpr int kPad = 4;        // row padding of shared tiles, in floats (keeps float4 alignment)
constexpr int kLdP = kTile + kPad;  // leading dim of the [64, 64] probability tiles
constexpr int kMaxHeadDim = 64;

struct Params {
  const float* qkv;   // [B, S, 3H]
  const float* bias;  // [B, S] or null
  float* out;         // forward: [B, S, H]
  float* stats;       // [B, nh, S, 2]: row max, 1/sum (forward: may be null)
  const float* grad;  // backward: dO [B, S, H]
  const float* y;     // backward: O [B, S, H]
  float* dqkv;        // backward: [B, S, 3H]
  float* dsum;        // backward: D [B, nh, S]
  int64_t B, S, H, nh, dh;
  float scale;
  bool dropout;
  uint32_t drop_below;  // element dropped when (word >> 8) < drop_below
  float keep_scale;     // 1 / (1 - p)
  uint64_t seed, offset;
  bool vec4;  // dh % 4 == 0 and 16-byte aligned bases: tiles load as float4
};

// Shared floats of each kernel (dynamic shared memory, above the 48 KiB default: opt-in).
template <int DH>
constexpr int fwd_smem_floats() {
  return 3 * kTile * (DH + kPad) + kTile * kLdP + kTile;
}
template <int DH>
constexpr int bwd_kv_smem_floats() {
  return 4 * kTile * (DH + kPad) + 2 * kTile * kLdP + 4 * kTile;
}
template <int DH>
constexpr int bwd_q_smem_floats() {
  return 4 * kTile * (DH + kPad) + kTile * kLdP + 4 * kTile;
}

// The dropout factor of element (bh, i, j): 0 or 1/(1-p). u = (w >> 8) 2^-24 < p exactly when
// (w >> 8) < ceil(p 2^24), so the integer test drops the same elements as dropout().
__device__ __forceinline__ float drop_factor(const Params& a, int64_t bh, int64_t i, int64_t j) {
  const uint64_t idx = static_cast<uint64_t>((bh * a.S + i) * a.S + j);
  const uint32_t w = philox::u32_at(a.seed, a.offset, idx);
  return (w >> 8) < a.drop_below ? 0.0f : a.keep_scale;
}

// Number of keys of batch b to visit (the CPU kernel's live_keys): every thread returns it.
// `slot` is a shared int; the call synchronizes the block.
__device__ __forceinline__ int live_keys(const Params& a, int64_t b, int* slot) {
  if (a.bias == nullptr) return static_cast<int>(a.S);
  if (threadIdx.x == 0) *slot = 0;
  __syncthreads();
  const float dead = -FLT_MAX / 2;
  const float* kb = a.bias + b * a.S;
  int last = 0;
  for (int j = threadIdx.x; j < a.S; j += kThreads) {
    if (!(kb[j] <= dead)) last = j + 1;
  }
  if (last > 0) atomicMax(slot, last);
  __syncthreads();
  const int n = *slot;
  return n == 0 ? static_cast<int>(a.S) : n;
}

// dst [64][DH + kPad] = rows r0 .. r0 + 63 of src (row stride ld, dh columns); rows past
// `valid` and columns past dh are zero, so they add nothing to any product.
template <int DH>
__device__ __forceinline__ void load_tile(float* dst, const float* src, int64_t ld, int64_t r0,
                                          int valid, int dh, bool vec4) {
  constexpr int LD = DH + kPad;
  if (vec4) {
    constexpr int C4 = DH / 4;
    for (int e = threadIdx.x; e < kTile * C4; e += kThreads) {
      const int r = e / C4, d = (e % C4) * 4;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (r < valid && d < dh) v = *reinterpret_cast<const float4*>(src + (r0 + r) * ld + d);
      *reinterpret_cast<float4*>(dst + r * LD + d) = v;
    }
  } else {
    for (int e = threadIdx.x; e < kTile * DH; e += kThreads) {
      const int r = e / DH, d = e % DH;
      dst[r * LD + d] = (r < valid && d < dh) ? src[(r0 + r) * ld + d] : 0.0f;
    }
  }
}

template <int N>
__device__ __forceinline__ void load_vec(const float* p, float* v) {
  if constexpr (N == 4) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x;
    v[1] = x.y;
    v[2] = x.z;
    v[3] = x.w;
  } else {
    static_assert(N == 2, "dims per thread must be 2 or 4");
    const float2 x = *reinterpret_cast<const float2*>(p);
    v[0] = x.x;
    v[1] = x.y;
  }
}

// acc[i][j] = sum_d A[rg + 16 i][d] B[cg + 16 j][d]: a score-shaped tile from two [64][DH]
// tiles (Q K^T, dO V^T).
template <int DH>
__device__ __forceinline__ void tile_nt(const float* A, const float* B, int rg, int cg,
                                        float acc[4][4]) {
  constexpr int LD = DH + kPad;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
#pragma unroll 4
  for (int d = 0; d < DH; d += 4) {
    float a[4][4], b[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) load_vec<4>(A + (rg + 16 * i) * LD + d, a[i]);
#pragma unroll
    for (int j = 0; j < 4; ++j) load_vec<4>(B + (cg + 16 * j) * LD + d, b[j]);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i][u], b[j][u], acc[i][j]);
      }
    }
  }
}

// acc[i][e] += sum_k P[rg + 16 i][k] B[k][cg DPT + e]: a probability-shaped tile ([64][kLdP])
// times a [64][DH] tile (P V, dS K).
template <int DH>
__device__ __forceinline__ void tile_nn(const float* P, const float* B, int rg, int cg,
                                        float acc[4][DH / 16]) {
  constexpr int LD = DH + kPad, DPT = DH / 16;
#pragma unroll 2
  for (int k = 0; k < kTile; k += 4) {
    float a[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) load_vec<4>(P + (rg + 16 * i) * kLdP + k, a[i]);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      float b[DPT];
      load_vec<DPT>(B + (k + u) * LD + cg * DPT, b);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int e = 0; e < DPT; ++e) acc[i][e] = fmaf(a[i][u], b[e], acc[i][e]);
      }
    }
  }
}

// acc[i][e] += sum_r P[r][4 kr + i] B[r][dc DPT + e]: a probability-shaped tile, transposed,
// times a [64][DH] tile ((P f)^T dO, dS^T Q).
template <int DH>
__device__ __forceinline__ void tile_tn(const float* P, const float* B, int kr, int dc,
                                        float acc[4][DH / 16]) {
  constexpr int LD = DH + kPad, DPT = DH / 16;
#pragma unroll 4
  for (int r = 0; r < kTile; ++r) {
    float a[4], b[DPT];
    load_vec<4>(P + r * kLdP + 4 * kr, a);
    load_vec<DPT>(B + r * LD + dc * DPT, b);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int e = 0; e < DPT; ++e) acc[i][e] = fmaf(a[i], b[e], acc[i][e]);
    }
  }
}

// Reductions over the 16 threads of a row group (16 consecutive lanes of one warp).
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Key bias of the tile's keys into kb_s; keys past the `valid` live ones get -inf.
__device__ __forceinline__ void load_key_bias(const Params& a, int64_t b, int64_t k0, int valid,
                                              float* kb_s) {
  const int t = threadIdx.x;
  if (t < kTile) {
    kb_s[t] = t < valid ? (a.bias != nullptr ? a.bias[b * a.S + k0 + t] : 0.0f) : -INFINITY;
  }
}

template <int DH>
__global__ void __launch_bounds__(kThreads) k_fwd(Params a) {
  constexpr int LD = DH + kPad, DPT = DH / 16;
  extern __shared__ float4 smem4[];
  float* q_s = reinterpret_cast<float*>(smem4);
  float* k_s = q_s + kTile * LD;
  float* v_s = k_s + kTile * LD;
  float* p_s = v_s + kTile * LD;
  float* kb_s = p_s + kTile * kLdP;
  __shared__ int live_slot;

  const int64_t tiles = (a.S + kTile - 1) / kTile;
  const int64_t bh = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * kTile;
  const int64_t b = bh / a.nh, h = bh % a.nh, ld = 3 * a.H;
  const int t = threadIdx.x, rg = t >> 4, cg = t & 15;
  const int dh = static_cast<int>(a.dh);
  const float* base = a.qkv + b * a.S * ld + h * a.dh;
  const int n = live_keys(a, b, &live_slot);

  load_tile<DH>(q_s, base, ld, q0, static_cast<int>(std::min<int64_t>(kTile, a.S - q0)), dh,
                a.vec4);
  float m[4], l[4], o[4][DPT];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int e = 0; e < DPT; ++e) o[i][e] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < n; k0 += kTile) {
    const int kv = static_cast<int>(std::min<int64_t>(kTile, n - k0));
    load_tile<DH>(k_s, base + a.H, ld, k0, kv, dh, a.vec4);
    load_tile<DH>(v_s, base + 2 * a.H, ld, k0, kv, dh, a.vec4);
    load_key_bias(a, b, k0, kv, kb_s);
    __syncthreads();
    float s[4][4];
    tile_nt<DH>(q_s, k_s, rg, cg, s);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = s[i][j] * a.scale + kb_s[cg + 16 * j];
        mx = fmaxf(mx, s[i][j]);
      }
      const float mn = fmaxf(m[i], group_max(mx));
      // A row whose keys so far are all -inf keeps 0 as its reference (no inf - inf).
      const float ref = mn == -INFINITY ? 0.0f : mn;
      const float alpha = expf(m[i] - ref);
      m[i] = mn;
      float rs = 0.0f;
      const int r = rg + 16 * i;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = cg + 16 * j;
        const float e = expf(s[i][j] - ref);
        rs += e;
        p_s[r * kLdP + c] = a.dropout ? e * drop_factor(a, bh, q0 + r, k0 + c) : e;
      }
      // l stays a per-thread partial sum (the 16 partials share alpha): reduced once at the end.
      l[i] = l[i] * alpha + rs;
#pragma unroll
      for (int e = 0; e < DPT; ++e) o[i][e] *= alpha;
    }
    __syncthreads();
    tile_nn<DH>(p_s, v_s, rg, cg, o);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float inv = 1.0f / group_sum(l[i]);
    const int64_t r = q0 + rg + 16 * i;
    if (r >= a.S) continue;
    float* out = a.out + (b * a.S + r) * a.H + h * a.dh;
#pragma unroll
    for (int e = 0; e < DPT; ++e) {
      const int d = cg * DPT + e;
      if (d < dh) out[d] = o[i][e] * inv;
    }
    if (a.stats != nullptr && cg == 0) {
      a.stats[(bh * a.S + r) * 2] = m[i];
      a.stats[(bh * a.S + r) * 2 + 1] = inv;
    }
  }
}

// D[bh S + i] = dO_i . O_i for head h: one warp per row.
__global__ void k_row_dot(Params a) {
  const int64_t rows = a.B * a.nh * a.S;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
       r < rows; r += warps) {
    const int64_t i = r % a.S, bh = r / a.S, b = bh / a.nh, h = bh % a.nh;
    const int64_t off = (b * a.S + i) * a.H + h * a.dh;
    float acc = 0.0f;
    for (int64_t d = lane; d < a.dh; d += 32) acc += a.grad[off + d] * a.y[off + d];
    acc = warp_reduce(acc, SumOp());
    if (lane == 0) a.dsum[r] = acc;
  }
}

// P and dS of one (query tile, key tile) pair in the score layout, from the score and dP tiles.
// Rows past `qv` queries and columns past `kv` keys are 0.
__device__ __forceinline__ void probs_and_ds(const Params& a, int64_t bh, int64_t q0, int64_t k0,
                                             int qv, int kv, int rg, int cg, const float* kb_s,
                                             const float* m_s, const float* inv_s, const float* d_s,
                                             float s[4][4], float dp[4][4], float* pd_s,
                                             float* ds_s) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = rg + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = cg + 16 * j;
      float p = 0.0f, f = 1.0f;
      if (r < qv && c < kv) {
        p = expf(s[i][j] * a.scale + kb_s[c] - m_s[r]) * inv_s[r];
        if (a.dropout) f = drop_factor(a, bh, q0 + r, k0 + c);
      }
      if (pd_s != nullptr) pd_s[r * kLdP + c] = p * f;
      ds_s[r * kLdP + c] = p * (dp[i][j] * f - d_s[r]) * a.scale;
    }
  }
}

// Stats and D of the query rows q0 .. q0 + 63 into shared memory (0 past the last row).
__device__ __forceinline__ void load_row_stats(const Params& a, int64_t bh, int64_t q0, int qv,
                                               float* m_s, float* inv_s, float* d_s) {
  const int t = threadIdx.x;
  if (t < kTile) {
    const bool ok = t < qv;
    const int64_t r = bh * a.S + q0 + t;
    m_s[t] = ok ? a.stats[2 * r] : 0.0f;
    inv_s[t] = ok ? a.stats[2 * r + 1] : 0.0f;
    d_s[t] = ok ? a.dsum[r] : 0.0f;
  }
}

// Pass 1: dK and dV of one tile of keys.
template <int DH>
__global__ void __launch_bounds__(kThreads) k_bwd_kv(Params a) {
  constexpr int LD = DH + kPad, DPT = DH / 16;
  extern __shared__ float4 smem4[];
  float* k_s = reinterpret_cast<float*>(smem4);
  float* v_s = k_s + kTile * LD;
  float* q_s = v_s + kTile * LD;
  float* g_s = q_s + kTile * LD;
  float* pd_s = g_s + kTile * LD;
  float* ds_s = pd_s + kTile * kLdP;
  float* kb_s = ds_s + kTile * kLdP;
  float* m_s = kb_s + kTile;
  float* inv_s = m_s + kTile;
  float* d_s = inv_s + kTile;
  __shared__ int live_slot;

  const int64_t tiles = (a.S + kTile - 1) / kTile;
  const int64_t bh = blockIdx.x / tiles, k0 = (blockIdx.x % tiles) * kTile;
  const int64_t b = bh / a.nh, h = bh % a.nh, ld = 3 * a.H;
  const int t = threadIdx.x, rg = t >> 4, cg = t & 15;
  const int kr = t >> 4, dc = t & 15;
  const int dh = static_cast<int>(a.dh);
  const float* base = a.qkv + b * a.S * ld + h * a.dh;
  const float* gbase = a.grad + b * a.S * a.H + h * a.dh;
  const int n = live_keys(a, b, &live_slot);

  float dk[4][DPT], dv[4][DPT];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int e = 0; e < DPT; ++e) dk[i][e] = dv[i][e] = 0.0f;
  }
  if (k0 < n) {  // a tile past the live keys has dK = dV = 0
    const int kv = static_cast<int>(std::min<int64_t>(kTile, n - k0));
    load_tile<DH>(k_s, base + a.H, ld, k0, kv, dh, a.vec4);
    load_tile<DH>(v_s, base + 2 * a.H, ld, k0, kv, dh, a.vec4);
    load_key_bias(a, b, k0, kv, kb_s);
    for (int64_t q0 = 0; q0 < a.S; q0 += kTile) {
      const int qv = static_cast<int>(std::min<int64_t>(kTile, a.S - q0));
      load_tile<DH>(q_s, base, ld, q0, qv, dh, a.vec4);
      load_tile<DH>(g_s, gbase, a.H, q0, qv, dh, a.vec4);
      load_row_stats(a, bh, q0, qv, m_s, inv_s, d_s);
      __syncthreads();
      float s[4][4], dp[4][4];
      tile_nt<DH>(q_s, k_s, rg, cg, s);
      tile_nt<DH>(g_s, v_s, rg, cg, dp);
      probs_and_ds(a, bh, q0, k0, qv, kv, rg, cg, kb_s, m_s, inv_s, d_s, s, dp, pd_s, ds_s);
      __syncthreads();
      tile_tn<DH>(pd_s, g_s, kr, dc, dv);
      tile_tn<DH>(ds_s, q_s, kr, dc, dk);
      __syncthreads();
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t j = k0 + 4 * kr + i;
    if (j >= a.S) continue;
    float* dkr = a.dqkv + (b * a.S + j) * ld + a.H + h * a.dh;
    float* dvr = dkr + a.H;
#pragma unroll
    for (int e = 0; e < DPT; ++e) {
      const int d = dc * DPT + e;
      if (d < dh) {
        dkr[d] = dk[i][e];
        dvr[d] = dv[i][e];
      }
    }
  }
}

// Pass 2: dQ of one tile of queries.
template <int DH>
__global__ void __launch_bounds__(kThreads) k_bwd_q(Params a) {
  constexpr int LD = DH + kPad, DPT = DH / 16;
  extern __shared__ float4 smem4[];
  float* q_s = reinterpret_cast<float*>(smem4);
  float* g_s = q_s + kTile * LD;
  float* k_s = g_s + kTile * LD;
  float* v_s = k_s + kTile * LD;
  float* ds_s = v_s + kTile * LD;
  float* kb_s = ds_s + kTile * kLdP;
  float* m_s = kb_s + kTile;
  float* inv_s = m_s + kTile;
  float* d_s = inv_s + kTile;
  __shared__ int live_slot;

  const int64_t tiles = (a.S + kTile - 1) / kTile;
  const int64_t bh = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * kTile;
  const int64_t b = bh / a.nh, h = bh % a.nh, ld = 3 * a.H;
  const int t = threadIdx.x, rg = t >> 4, cg = t & 15;
  const int dh = static_cast<int>(a.dh);
  const float* base = a.qkv + b * a.S * ld + h * a.dh;
  const int n = live_keys(a, b, &live_slot);
  const int qv = static_cast<int>(std::min<int64_t>(kTile, a.S - q0));

  load_tile<DH>(q_s, base, ld, q0, qv, dh, a.vec4);
  load_tile<DH>(g_s, a.grad + b * a.S * a.H + h * a.dh, a.H, q0, qv, dh, a.vec4);
  load_row_stats(a, bh, q0, qv, m_s, inv_s, d_s);
  float dq[4][DPT];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int e = 0; e < DPT; ++e) dq[i][e] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < n; k0 += kTile) {
    const int kv = static_cast<int>(std::min<int64_t>(kTile, n - k0));
    load_tile<DH>(k_s, base + a.H, ld, k0, kv, dh, a.vec4);
    load_tile<DH>(v_s, base + 2 * a.H, ld, k0, kv, dh, a.vec4);
    load_key_bias(a, b, k0, kv, kb_s);
    __syncthreads();
    float s[4][4], dp[4][4];
    tile_nt<DH>(q_s, k_s, rg, cg, s);
    tile_nt<DH>(g_s, v_s, rg, cg, dp);
    probs_and_ds(a, bh, q0, k0, qv, kv, rg, cg, kb_s, m_s, inv_s, d_s, s, dp, nullptr, ds_s);
    __syncthreads();
    tile_nn<DH>(ds_s, k_s, rg, cg, dq);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = q0 + rg + 16 * i;
    if (r >= a.S) continue;
    float* dqr = a.dqkv + (b * a.S + r) * ld + h * a.dh;
#pragma unroll
    for (int e = 0; e < DPT; ++e) {
      const int d = cg * DPT + e;
      if (d < dh) dqr[d] = dq[i][e];
    }
  }
}

}  // namespace dan::kernels::cuda::tiled
