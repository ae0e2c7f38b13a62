// CUDA fused transformer kernels, f32: self-attention forward/backward, bias + GELU, residual
// add + layer norm. Self-attention has three implementations, chosen per call by the
// environment variable DAN_ATTENTION:
//   tiled (default): the FlashAttention-2 schedule of attention_tiled.cuh: tiles of 64 queries
//     and 64 keys in shared memory, online softmax, nothing of size S x S in global memory;
//     head dims up to 64 (the others fall back to naive);
//   naive: one block per query row (forward; backward: dQ) and per key row (backward: dK, dV),
//     the row's scores in shared memory (S up to about 12k); the backward writes dS and the
//     dropped probabilities to temporaries [B, heads, S, S];
//   materialized: the scores [B, heads, S, S] by cuBLAS batched GEMMs, a softmax kernel, and
//     GEMMs again (the textbook form, kept as a baseline for bench_attention_cuda);
//   auto: measured. The first forward (and the first backward) of each shape times every
//     implementation that applies (device events, one warm-up and three timed runs each) and
//     keeps the fastest for that shape from then on; the call's result is the winner's.
// All three keep the same stats (row max, 1/sum), so any backward accepts any forward's stats,
// draw the same dropout mask as the CPU kernel, and use no atomics to accumulate (results are
// deterministic).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/philox.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_tiled.cuh"
#include "kernels/cuda/common.cuh"

namespace dan::kernels::cuda {

namespace {

constexpr int kAttnThreads = 128;

struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct AddOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

struct AttnArgs {
  const float* qkv;   // [B, S, 3H]
  const float* bias;  // [B, S] or null
  float* out;         // forward: [B, S, H]
  float* stats;       // [B, nh, S, 2] (forward: written when not null)
  const float* grad;  // backward
  const float* y;
  float* dqkv;
  float* ds;  // backward scratch [B, nh, S, S]
  float* pd;  // backward scratch [B, nh, S, S]
  int64_t B, S, H, nh, dh;
  float scale;
  double p;
  uint64_t seed, offset;
};

// The dropout factor of probability element idx (0 or 1/(1-p)), as the CPU kernel and
// dropout() draw it.
__device__ __forceinline__ float drop_factor(const AttnArgs& a, uint64_t idx) {
  if (a.p <= 0) return 1.0f;
  const float u = philox::u32_to_unit_f32(philox::u32_at(a.seed, a.offset, idx));
  return static_cast<double>(u) < a.p ? 0.0f : static_cast<float>(1.0 / (1.0 - a.p));
}

// q.k for query row i and key row j of head h in batch b.
__device__ __forceinline__ float score(const AttnArgs& a, const float* q_sm, int64_t b, int64_t h,
                                       int64_t j) {
  const float* k = a.qkv + (b * a.S + j) * 3 * a.H + a.H + h * a.dh;
  float acc = 0;
  for (int64_t d = 0; d < a.dh; ++d) acc += q_sm[d] * k[d];
  const float s = acc * a.scale;
  return a.bias != nullptr ? s + a.bias[b * a.S + j] : s;
}

// Dynamic shared memory: S scores, then dh floats of q, then dh floats of dO (backward).
__global__ void k_attn_fwd(AttnArgs a) {
  extern __shared__ float sm[];
  __shared__ float red[32];
  float* sc = sm;
  float* q_sm = sm + a.S;
  const int64_t rows = a.B * a.nh * a.S;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t i = r % a.S, bh = r / a.S, b = bh / a.nh, h = bh % a.nh;
    const float* q = a.qkv + (b * a.S + i) * 3 * a.H + h * a.dh;
    for (int64_t d = threadIdx.x; d < a.dh; d += blockDim.x) q_sm[d] = q[d];
    __syncthreads();
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < a.S; j += blockDim.x) {
      const float s = score(a, q_sm, b, h, j);
      sc[j] = s;
      m = fmaxf(m, s);
    }
    m = block_reduce(m, MaxOp(), red);
    float sum = 0;
    for (int64_t j = threadIdx.x; j < a.S; j += blockDim.x) {
      const float e = expf(sc[j] - m);
      sc[j] = e;
      sum += e;
    }
    sum = block_reduce(sum, AddOp(), red);
    const float inv = 1.0f / sum;
    if (a.stats != nullptr && threadIdx.x == 0) {
      a.stats[2 * r] = m;
      a.stats[2 * r + 1] = inv;
    }
    for (int64_t j = threadIdx.x; j < a.S; j += blockDim.x) {
      sc[j] = sc[j] * inv * drop_factor(a, static_cast<uint64_t>(r * a.S + j));
    }
    __syncthreads();
    float* o = a.out + (b * a.S + i) * a.H + h * a.dh;
    for (int64_t d = threadIdx.x; d < a.dh; d += blockDim.x) {
      const float* v = a.qkv + b * a.S * 3 * a.H + 2 * a.H + h * a.dh + d;
      float acc = 0;
      for (int64_t j = 0; j < a.S; ++j) acc += sc[j] * v[j * 3 * a.H];
      o[d] = acc;
    }
    __syncthreads();
  }
}

// Per query row: P again from the stats, dS = P (dPd f - D) scale and Pd = P f into the
// scratch rows, and dQ_i = dS_i K.
__global__ void k_attn_bwd_rows(AttnArgs a) {
  extern __shared__ float sm[];
  __shared__ float red[32];
  float* sc = sm;
  float* q_sm = sm + a.S;
  float* g_sm = q_sm + a.dh;
  const int64_t rows = a.B * a.nh * a.S;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t i = r % a.S, bh = r / a.S, b = bh / a.nh, h = bh % a.nh;
    const float* q = a.qkv + (b * a.S + i) * 3 * a.H + h * a.dh;
    const float* g = a.grad + (b * a.S + i) * a.H + h * a.dh;
    const float* y = a.y + (b * a.S + i) * a.H + h * a.dh;
    float dsum = 0;
    for (int64_t d = threadIdx.x; d < a.dh; d += blockDim.x) {
      q_sm[d] = q[d];
      g_sm[d] = g[d];
      dsum += g[d] * y[d];
    }
    const float D = block_reduce(dsum, AddOp(), red);  // syncs, so q_sm/g_sm are visible
    const float m = a.stats[2 * r], inv = a.stats[2 * r + 1];
    for (int64_t j = threadIdx.x; j < a.S; j += blockDim.x) {
      const float p = expf(score(a, q_sm, b, h, j) - m) * inv;
      const float f = drop_factor(a, static_cast<uint64_t>(r * a.S + j));
      const float* v = a.qkv + (b * a.S + j) * 3 * a.H + 2 * a.H + h * a.dh;
      float dpd = 0;
      for (int64_t d = 0; d < a.dh; ++d) dpd += g_sm[d] * v[d];
      const float ds = p * (dpd * f - D) * a.scale;
      sc[j] = ds;
      a.ds[r * a.S + j] = ds;
      a.pd[r * a.S + j] = p * f;
    }
    __syncthreads();
    float* dq = a.dqkv + (b * a.S + i) * 3 * a.H + h * a.dh;
    for (int64_t d = threadIdx.x; d < a.dh; d += blockDim.x) {
      const float* k = a.qkv + b * a.S * 3 * a.H + a.H + h * a.dh + d;
      float acc = 0;
      for (int64_t j = 0; j < a.S; ++j) acc += sc[j] * k[j * 3 * a.H];
      dq[d] = acc;
    }
    __syncthreads();
  }
}

// Per key row j: dK_j = sum_i dS_ij Q_i, dV_j = sum_i Pd_ij dO_i.
__global__ void k_attn_bwd_keys(AttnArgs a) {
  const int64_t rows = a.B * a.nh * a.S;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t j = r % a.S, bh = r / a.S, b = bh / a.nh, h = bh % a.nh;
    const float* ds = a.ds + bh * a.S * a.S + j;
    const float* pd = a.pd + bh * a.S * a.S + j;
    float* dk = a.dqkv + (b * a.S + j) * 3 * a.H + a.H + h * a.dh;
    float* dv = dk + a.H;
    for (int64_t d = threadIdx.x; d < a.dh; d += blockDim.x) {
      const float* q = a.qkv + b * a.S * 3 * a.H + h * a.dh + d;
      const float* g = a.grad + b * a.S * a.H + h * a.dh + d;
      float ak = 0, av = 0;
      for (int64_t i = 0; i < a.S; ++i) {
        ak += ds[i * a.S] * q[i * 3 * a.H];
        av += pd[i * a.S] * g[i * a.H];
      }
      dk[d] = ak;
      dv[d] = av;
    }
  }
}

AttnArgs make_args(const Tensor& qkv, const Tensor& kb, int64_t heads, double scale, double p,
                   uint64_t seed, uint64_t offset) {
  AttnArgs a{};
  a.qkv = static_cast<const float*>(qkv.raw_data());
  a.bias = kb.defined() ? static_cast<const float*>(kb.raw_data()) : nullptr;
  a.B = qkv.size(0);
  a.S = qkv.size(1);
  a.H = qkv.size(2) / 3;
  a.nh = heads;
  a.dh = a.H / heads;
  a.scale = static_cast<float>(scale);
  a.p = p;
  a.seed = seed;
  a.offset = offset;
  return a;
}

size_t attn_smem(const AttnArgs& a, const char* op) {
  const size_t bytes = static_cast<size_t>(a.S + 2 * a.dh) * sizeof(float);
  DAN_CHECK(bytes <= 48 * 1024,
            "{}: sequence length {} needs {} bytes of shared memory per row, "
            "more than the 48 KiB this kernel uses",
            op, a.S, bytes);
  return bytes;
}

// ---- choice of implementation -----------------------------------------------------------------

enum class AttnAlgo { tiled, naive, materialized, automatic };

AttnAlgo attn_algo() {
  const char* e = std::getenv("DAN_ATTENTION");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "tiled") == 0) return AttnAlgo::tiled;
  if (std::strcmp(e, "naive") == 0) return AttnAlgo::naive;
  if (std::strcmp(e, "materialized") == 0) return AttnAlgo::materialized;
  if (std::strcmp(e, "auto") == 0) return AttnAlgo::automatic;
  fail("DAN_ATTENTION: unknown value '{}' (expected tiled, naive, materialized or auto)", e);
}

const char* algo_name(AttnAlgo algo) {
  switch (algo) {
    case AttnAlgo::tiled:
      return "tiled";
    case AttnAlgo::naive:
      return "naive";
    case AttnAlgo::materialized:
      return "materialized";
    case AttnAlgo::automatic:
      return "auto";
  }
  return "?";
}

int smem_optin(int dev) {
  static int cached[64] = {};
  int& v = cached[dev & 63];
  if (v == 0)
    DAN_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return v;
}

// The head-dim template (32 or 64) of the tiled kernels for dh, or 0 when they do not apply
// (dh > 64, or the device lacks the shared memory of the larger backward kernel).
int tiled_dim(const AttnArgs& a, int dev) {
  if (a.dh > tiled::kMaxHeadDim) return 0;
  const int dim = a.dh <= 32 ? 32 : 64;
  const int floats = dim == 32 ? tiled::bwd_kv_smem_floats<32>() : tiled::bwd_kv_smem_floats<64>();
  return smem_optin(dev) >= floats * static_cast<int>(sizeof(float)) ? dim : 0;
}

tiled::Params tiled_params(const AttnArgs& a) {
  tiled::Params t{};
  t.qkv = a.qkv;
  t.bias = a.bias;
  t.out = a.out;
  t.stats = a.stats;
  t.grad = a.grad;
  t.y = a.y;
  t.dqkv = a.dqkv;
  t.B = a.B;
  t.S = a.S;
  t.H = a.H;
  t.nh = a.nh;
  t.dh = a.dh;
  t.scale = a.scale;
  t.dropout = a.p > 0;
  // ceil(p 2^24) is exact in double; see tiled::drop_factor.
  t.drop_below = a.p > 0 ? static_cast<uint32_t>(std::ceil(a.p * 16777216.0)) : 0u;
  t.keep_scale = a.p > 0 ? static_cast<float>(1.0 / (1.0 - a.p)) : 1.0f;
  t.seed = a.seed;
  t.offset = a.offset;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  t.vec4 = a.dh % 4 == 0 && aligned(a.qkv) && (a.grad == nullptr || aligned(a.grad));
  return t;
}

// Launches kernel<<<blocks, kThreads, floats * 4>>> after raising its shared-memory limit.
template <typename Kernel>
void launch_tiled(Kernel kernel, int64_t blocks, int floats, int dev, const tiled::Params& t) {
  const int bytes = floats * static_cast<int>(sizeof(float));
  DAN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  DAN_CHECK(blocks <= 0x7fffffff, "attention: {} blocks exceed the grid limit", blocks);
  kernel<<<static_cast<unsigned>(blocks), tiled::kThreads, bytes, stream_of(dev)>>>(t);
  DAN_CUDA_CHECK_LAUNCH();
}

template <int DH>
void tiled_forward(const AttnArgs& a, int dev) {
  const int64_t tiles = (a.S + tiled::kTile - 1) / tiled::kTile;
  launch_tiled(tiled::k_fwd<DH>, a.B * a.nh * tiles, tiled::fwd_smem_floats<DH>(), dev,
               tiled_params(a));
}

// D = rowsum(dO o O) into dsum [B * nh * S].
void row_dot(const AttnArgs& a, float* dsum, int dev) {
  tiled::Params t = tiled_params(a);
  t.dsum = dsum;
  const int64_t rows = a.B * a.nh * a.S;
  tiled::k_row_dot<<<grid_for(rows * 32, dev, kBlock), kBlock, 0, stream_of(dev)>>>(t);
  DAN_CUDA_CHECK_LAUNCH();
}

template <int DH>
void tiled_backward(const AttnArgs& a, float* dsum, int dev) {
  row_dot(a, dsum, dev);
  tiled::Params t = tiled_params(a);
  t.dsum = dsum;
  const int64_t tiles = (a.S + tiled::kTile - 1) / tiled::kTile;
  launch_tiled(tiled::k_bwd_kv<DH>, a.B * a.nh * tiles, tiled::bwd_kv_smem_floats<DH>(), dev, t);
  launch_tiled(tiled::k_bwd_q<DH>, a.B * a.nh * tiles, tiled::bwd_q_smem_floats<DH>(), dev, t);
}

// ---- materialized (cuBLAS) baseline -----------------------------------------------------------
// Row-major [r, c] with leading dim ld is column-major [c, r]: every product below is written
// as its column-major transpose. One strided-batched call per batch element covers its heads
// (head h starts h * dh columns further).

// C_b = alpha op(A_b) op(B_b) for each head of batch element b, column-major.
void gemm_heads(int dev, const AttnArgs& a, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                int64_t n, int64_t k, float alpha, const float* A, int64_t lda, int64_t sa,
                const float* B, int64_t ldb, int64_t sb, float* C, int64_t ldc, int64_t sc) {
  const float beta = 0.0f;
  DAN_CUBLAS_CHECK(cublasSgemmStridedBatched(
      ::dan::cuda::cublas_handle(dev), ta, tb, static_cast<int>(m), static_cast<int>(n),
      static_cast<int>(k), &alpha, A, static_cast<int>(lda), sa, B, static_cast<int>(ldb), sb,
      &beta, C, static_cast<int>(ldc), sc, static_cast<int>(a.nh)));
}

// sc [B, nh, S, S] = scale Q K^T per head.
void mat_scores(const AttnArgs& a, float* sc, int dev) {
  const int64_t S = a.S, ld = 3 * a.H;
  for (int64_t b = 0; b < a.B; ++b) {
    const float* q = a.qkv + b * S * ld;
    // column-major [S_k, S_q] = K^T(as [dh, S_k])^T x Q^T(as [dh, S_q])
    gemm_heads(dev, a, CUBLAS_OP_T, CUBLAS_OP_N, S, S, a.dh, a.scale, q + a.H, ld, a.dh, q, ld,
               a.dh, sc + b * a.nh * S * S, S, S * S);
  }
}

// Rows of sc: s + bias -> dropped probabilities in place, and the stats.
__global__ void k_mat_softmax(AttnArgs a, float* sc) {
  __shared__ float red[32];
  const int64_t rows = a.B * a.nh * a.S;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t b = r / (a.nh * a.S);
    float* row = sc + r * a.S;
    const float* kb = a.bias != nullptr ? a.bias + b * a.S : nullptr;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < a.S; j += blockDim.x) {
      const float s = kb != nullptr ? row[j] + kb[j] : row[j];
      row[j] = s;
      m = fmaxf(m, s);
    }
    m = block_reduce(m, MaxOp(), red);
    float sum = 0;
    for (int64_t j = threadIdx.x; j < a.S; j += blockDim.x) {
      const float e = expf(row[j] - m);
      row[j] = e;
      sum += e;
    }
    sum = block_reduce(sum, AddOp(), red);
    const float inv = 1.0f / sum;
    if (a.stats != nullptr && threadIdx.x == 0) {
      a.stats[2 * r] = m;
      a.stats[2 * r + 1] = inv;
    }
    for (int64_t j = threadIdx.x; j < a.S; j += blockDim.x) {
      row[j] = row[j] * inv * drop_factor(a, static_cast<uint64_t>(r * a.S + j));
    }
  }
}

// Elementwise over [B, nh, S, S]: sc holds scale q.k, dp holds dO v; writes pd = P f into sc
// and dS = P (dp f - D) scale into dp.
__global__ void k_mat_grad(AttnArgs a, float* sc, float* dp, const float* dsum) {
  const int64_t n = a.B * a.nh * a.S * a.S;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / a.S, j = e % a.S, b = r / (a.nh * a.S);
    const float s = a.bias != nullptr ? sc[e] + a.bias[b * a.S + j] : sc[e];
    const float p = expf(s - a.stats[2 * r]) * a.stats[2 * r + 1];
    const float f = drop_factor(a, static_cast<uint64_t>(e));
    sc[e] = p * f;
    dp[e] = p * (dp[e] * f - dsum[r]) * a.scale;
  }
}

void mat_forward(const AttnArgs& a, int dev) {
  const int64_t S = a.S, ld = 3 * a.H;
  Tensor sc_t = raw::empty({a.B, a.nh, S, S}, DType::f32, Device::cuda(dev));
  float* sc = static_cast<float*>(sc_t.raw_data());
  mat_scores(a, sc, dev);
  k_mat_softmax<<<grid_for(a.B * a.nh * S * kAttnThreads, dev, kAttnThreads), kAttnThreads, 0,
                  stream_of(dev)>>>(a, sc);
  DAN_CUDA_CHECK_LAUNCH();
  for (int64_t b = 0; b < a.B; ++b) {
    // O^T [dh, S_q] = V^T [dh, S_k] x Pd^T [S_k, S_q]
    gemm_heads(dev, a, CUBLAS_OP_N, CUBLAS_OP_N, a.dh, S, S, 1.0f, a.qkv + b * S * ld + 2 * a.H, ld,
               a.dh, sc + b * a.nh * S * S, S, S * S, a.out + b * S * a.H, a.H, a.dh);
  }
}

void mat_backward(const AttnArgs& a, float* dsum, int dev) {
  const int64_t S = a.S, ld = 3 * a.H, H = a.H;
  row_dot(a, dsum, dev);
  Tensor sc_t = raw::empty({a.B, a.nh, S, S}, DType::f32, Device::cuda(dev));
  Tensor dp_t = raw::empty({a.B, a.nh, S, S}, DType::f32, Device::cuda(dev));
  float* sc = static_cast<float*>(sc_t.raw_data());
  float* dp = static_cast<float*>(dp_t.raw_data());
  mat_scores(a, sc, dev);
  for (int64_t b = 0; b < a.B; ++b) {
    // dPd = dO V^T: column-major [S_k, S_q] = V^T(as [dh, S_k])^T x dO^T [dh, S_q]
    gemm_heads(dev, a, CUBLAS_OP_T, CUBLAS_OP_N, S, S, a.dh, 1.0f, a.qkv + b * S * ld + 2 * H, ld,
               a.dh, a.grad + b * S * H, H, a.dh, dp + b * a.nh * S * S, S, S * S);
  }
  const int64_t n = a.B * a.nh * S * S;
  k_mat_grad<<<grid_for(n, dev), kBlock, 0, stream_of(dev)>>>(a, sc, dp, dsum);
  DAN_CUDA_CHECK_LAUNCH();
  for (int64_t b = 0; b < a.B; ++b) {
    const float* q = a.qkv + b * S * ld;
    float* dq = a.dqkv + b * S * ld;
    const float* pd = sc + b * a.nh * S * S;
    const float* ds = dp + b * a.nh * S * S;
    // dV^T [dh, S_k] = dO^T [dh, S_q] x Pd [S_q, S_k] (Pd row-major = column-major Pd^T: op T)
    gemm_heads(dev, a, CUBLAS_OP_N, CUBLAS_OP_T, a.dh, S, S, 1.0f, a.grad + b * S * H, H, a.dh, pd,
               S, S * S, dq + 2 * H, ld, a.dh);
    // dK^T [dh, S_k] = Q^T [dh, S_q] x dS [S_q, S_k]
    gemm_heads(dev, a, CUBLAS_OP_N, CUBLAS_OP_T, a.dh, S, S, 1.0f, q, ld, a.dh, ds, S, S * S,
               dq + H, ld, a.dh);
    // dQ^T [dh, S_q] = K^T [dh, S_k] x dS^T [S_k, S_q]
    gemm_heads(dev, a, CUBLAS_OP_N, CUBLAS_OP_N, a.dh, S, S, 1.0f, q + H, ld, a.dh, ds, S, S * S,
               dq, ld, a.dh);
  }
}

// ---- bias + GELU ----------------------------------------------------------------------------

constexpr float kSqrt1_2 = 0.70710678118654752440f;
constexpr float kBeta = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kKappa = 0.044715f;

__global__ void k_bias_gelu(const float* x, const float* b, float* y, int64_t n, int64_t d,
                            bool approx) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float z = x[e] + b[e % d];
    y[e] = approx ? 0.5f * z * (1.0f + tanhf(kBeta * (z + kKappa * z * z * z)))
                  : z * 0.5f * (1.0f + erff(z * kSqrt1_2));
  }
}

__global__ void k_bias_gelu_bwd(const float* g, const float* x, const float* b, float* dx,
                                int64_t n, int64_t d, bool approx) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float z = x[e] + b[e % d];
    float dz;
    if (approx) {
      const float t = tanhf(kBeta * (z + kKappa * z * z * z));
      dz = 0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * kBeta * (1.0f + 3.0f * kKappa * z * z);
    } else {
      dz = 0.5f * (1.0f + erff(z * kSqrt1_2)) + z * 0.3989422804014327f * expf(-0.5f * z * z);
    }
    dx[e] = g[e] * dz;
  }
}

}  // namespace

namespace {

// One implementation's forward: out (and stats when asked) from a.
void forward_with(AttnAlgo algo, const AttnArgs& a, int dev) {
  if (algo == AttnAlgo::materialized) {
    mat_forward(a, dev);
    return;
  }
  const int dim = algo == AttnAlgo::tiled ? tiled_dim(a, dev) : 0;
  if (dim == 32) {
    tiled_forward<32>(a, dev);
  } else if (dim == 64) {
    tiled_forward<64>(a, dev);
  } else {
    const size_t smem = attn_smem(a, "attention_forward");
    k_attn_fwd<<<grid_for(a.B * a.nh * a.S * kAttnThreads, dev, kAttnThreads), kAttnThreads, smem,
                 stream_of(dev)>>>(a);
    DAN_CUDA_CHECK_LAUNCH();
  }
}

// One implementation's backward: a.dqkv from a.grad, a.y and a.stats.
void backward_with(AttnAlgo algo, AttnArgs a, int dev) {
  const int dim = algo == AttnAlgo::tiled ? tiled_dim(a, dev) : 0;
  const Device d = Device::cuda(dev);
  if (algo == AttnAlgo::materialized || dim != 0) {
    Tensor dsum = raw::empty({a.B, a.nh, a.S}, DType::f32, d);
    float* ds = static_cast<float*>(dsum.raw_data());
    if (algo == AttnAlgo::materialized) {
      mat_backward(a, ds, dev);
    } else if (dim == 32) {
      tiled_backward<32>(a, ds, dev);
    } else {
      tiled_backward<64>(a, ds, dev);
    }
    return;
  }
  Tensor ds = raw::empty({a.B, a.nh, a.S, a.S}, DType::f32, d);
  Tensor pd = raw::empty({a.B, a.nh, a.S, a.S}, DType::f32, d);
  a.ds = static_cast<float*>(ds.raw_data());
  a.pd = static_cast<float*>(pd.raw_data());
  const size_t smem = attn_smem(a, "attention_backward");
  const unsigned grid = grid_for(a.B * a.nh * a.S * kAttnThreads, dev, kAttnThreads);
  k_attn_bwd_rows<<<grid, kAttnThreads, smem, stream_of(dev)>>>(a);
  DAN_CUDA_CHECK_LAUNCH();
  k_attn_bwd_keys<<<grid, kAttnThreads, 0, stream_of(dev)>>>(a);
  DAN_CUDA_CHECK_LAUNCH();
}

// The implementations that are distinct for this shape: tiled only where its kernels apply
// (otherwise it runs the naive ones), naive only where a row's scores fit its shared memory.
std::vector<AttnAlgo> candidates(const AttnArgs& a, int dev) {
  std::vector<AttnAlgo> c;
  if (tiled_dim(a, dev) != 0) c.push_back(AttnAlgo::tiled);
  if (static_cast<size_t>(a.S + 2 * a.dh) * sizeof(float) <= 48 * 1024)
    c.push_back(AttnAlgo::naive);
  c.push_back(AttnAlgo::materialized);
  return c;
}

// What a measured decision depends on: device, direction, shape, mask and dropout.
using DecisionKey = std::tuple<int, bool, int64_t, int64_t, int64_t, int64_t, bool, bool>;

struct Decision {
  AttnAlgo algo;
  std::vector<std::pair<AttnAlgo, double>> ms;  // every candidate's time
};

std::mutex& decisions_mutex() {
  static std::mutex m;
  return m;
}

std::map<DecisionKey, Decision>& decisions() {
  static std::map<DecisionKey, Decision> m;
  return m;
}

// The implementation to run: the environment's, or for auto the cached or newly measured
// fastest. Measuring runs every candidate on the call's own buffers (each overwrites the
// outputs completely); the caller then runs the winner, so the result is always the winner's.
// Materialized is always a candidate; if even it fails, the error surfaces from the caller's run.
template <typename Run>
AttnAlgo choose(const AttnArgs& a, int dev, bool backward, const Run& run) {
  const AttnAlgo env = attn_algo();
  if (env != AttnAlgo::automatic) return env;
  const DecisionKey key{dev, backward, a.B, a.S, a.nh, a.dh, a.bias != nullptr, a.p > 0};
  {
    std::lock_guard<std::mutex> lock(decisions_mutex());
    const auto it = decisions().find(key);
    if (it != decisions().end()) return it->second.algo;
  }
  Decision d{AttnAlgo::materialized, {}};
  double best = 0;
  for (const AttnAlgo algo : candidates(a, dev)) {
    double ms = 0;
    try {  // a candidate whose temporaries do not fit in memory drops out
      ms = best_of_three_ms(dev, [&] { run(algo); });
    } catch (const Error&) {
      continue;
    }
    d.ms.emplace_back(algo, ms);
    if (d.ms.size() == 1 || ms < best) {
      d.algo = algo;
      best = ms;
    }
  }
  std::lock_guard<std::mutex> lock(decisions_mutex());
  return decisions().emplace(key, std::move(d)).first->second.algo;
}

}  // namespace

Tensor attention_forward(const Tensor& qkv_in, const Tensor& key_bias, int64_t heads, double scale,
                         double dropout_p, uint64_t seed, uint64_t offset, const Tensor& stats) {
  require_f32(qkv_in, "attention_forward", "qkv");
  const int dev = qkv_in.device().index;
  DeviceGuard guard(dev);
  const Tensor qkv = contiguous(qkv_in);
  const Tensor kb = key_bias.defined() ? contiguous(key_bias) : Tensor();
  AttnArgs a = make_args(qkv, kb, heads, scale, dropout_p, seed, offset);
  Tensor out = raw::empty({a.B, a.S, a.H}, DType::f32, qkv.device());
  if (out.numel() == 0) return out;
  a.out = static_cast<float*>(out.raw_data());
  a.stats = stats.defined() ? static_cast<float*>(stats.raw_data()) : nullptr;
  const AttnAlgo algo = choose(a, dev, false, [&](AttnAlgo c) { forward_with(c, a, dev); });
  forward_with(algo, a, dev);
  return out;
}

Tensor attention_backward(const Tensor& grad, const Tensor& qkv_in, const Tensor& out,
                          const Tensor& key_bias, const Tensor& stats, int64_t heads, double scale,
                          double dropout_p, uint64_t seed, uint64_t offset) {
  require_f32(qkv_in, "attention_backward", "qkv");
  const int dev = qkv_in.device().index;
  DeviceGuard guard(dev);
  const Tensor qkv = contiguous(qkv_in), g = contiguous(grad), y = contiguous(out);
  const Tensor st = contiguous(stats);
  const Tensor kb = key_bias.defined() ? contiguous(key_bias) : Tensor();
  AttnArgs a = make_args(qkv, kb, heads, scale, dropout_p, seed, offset);
  Tensor dqkv = raw::empty(qkv.shape(), DType::f32, qkv.device());
  if (dqkv.numel() == 0) return dqkv;
  a.stats = static_cast<float*>(st.raw_data());
  a.grad = static_cast<const float*>(g.raw_data());
  a.y = static_cast<const float*>(y.raw_data());
  a.dqkv = static_cast<float*>(dqkv.raw_data());
  const AttnAlgo algo = choose(a, dev, true, [&](AttnAlgo c) { backward_with(c, a, dev); });
  backward_with(algo, a, dev);
  return dqkv;
}

std::vector<std::string> attention_decisions() {
  std::lock_guard<std::mutex> lock(decisions_mutex());
  std::vector<std::string> out;
  for (const auto& [k, d] : decisions()) {
    const auto& [dev, bwd, B, S, nh, dh, bias, drop] = k;
    std::string times;
    for (const auto& [algo, ms] : d.ms)
      times += fmt::format("{}{} {:.3f} ms", times.empty() ? "" : ", ", algo_name(algo), ms);
    out.push_back(fmt::format("cuda:{} {} B={} S={} heads={} dh={}{}{}: {} ({})", dev,
                              bwd ? "backward" : "forward", B, S, nh, dh, bias ? " mask" : "",
                              drop ? " dropout" : "", algo_name(d.algo), times));
  }
  return out;
}

Tensor bias_gelu(const Tensor& x_in, const Tensor& bias, bool approximate) {
  require_f32(x_in, "bias_gelu", "x");
  const int dev = x_in.device().index;
  DeviceGuard guard(dev);
  const Tensor x = contiguous(x_in), b = contiguous(bias);
  Tensor y = raw::empty(x.shape(), DType::f32, x.device());
  const int64_t n = x.numel(), d = x.size(-1);
  if (n == 0) return y;
  k_bias_gelu<<<grid_for(n, dev), kBlock, 0, stream_of(dev)>>>(
      static_cast<const float*>(x.raw_data()), static_cast<const float*>(b.raw_data()),
      static_cast<float*>(y.raw_data()), n, d, approximate);
  DAN_CUDA_CHECK_LAUNCH();
  return y;
}

std::vector<Tensor> bias_gelu_backward(const Tensor& grad, const Tensor& x_in, const Tensor& bias,
                                       bool approximate) {
  require_f32(x_in, "bias_gelu_backward", "x");
  const int dev = x_in.device().index;
  DeviceGuard guard(dev);
  const Tensor x = contiguous(x_in), b = contiguous(bias), g = contiguous(grad);
  Tensor dx = raw::empty(x.shape(), DType::f32, x.device());
  const int64_t n = x.numel(), d = x.size(-1);
  if (n == 0) return {dx, zeros({d}, DType::f32, x.device())};
  k_bias_gelu_bwd<<<grid_for(n, dev), kBlock, 0, stream_of(dev)>>>(
      static_cast<const float*>(g.raw_data()), static_cast<const float*>(x.raw_data()),
      static_cast<const float*>(b.raw_data()), static_cast<float*>(dx.raw_data()), n, d,
      approximate);
  DAN_CUDA_CHECK_LAUNCH();
  // The bias gradient: the column sums of dx, by the (deterministic) reduction kernel.
  const Tensor db = kernels::cuda::reduce(ReduceOp::sum, raw::view(dx, {n / d, d}), {0}, false);
  return {dx, db};
}

LayerNormOut add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                            const Tensor& bias, double eps, const Tensor& sum_out) {
  require_f32(x, "add_layer_norm", "x");
  DeviceGuard guard(x.device().index);
  // The sum, then the layer norm kernel: two passes where the CPU takes one, but exactly the
  // conventions layer_norm_backward expects.
  const Tensor s = kernels::cuda::binary(BinaryOp::add, x, residual);
  if (sum_out.defined()) kernels::cuda::copy_(sum_out, s);
  return kernels::cuda::layer_norm(s, weight, bias, eps);
}

}  // namespace dan::kernels::cuda
