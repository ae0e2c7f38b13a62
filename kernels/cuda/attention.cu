// CUDA fused transformer kernels, f32: self-attention forward/backward, bias + GELU, residual
// add + layer norm. The attention kernels are the straightforward form, one block per query
// row (forward; backward: dQ) and per key row (backward: dK, dV), scores of a row in shared
// memory, no atomics, so results are deterministic. They are correct first and simple: a
// tiled online-softmax version (flash-attention style) is the next step once timed on a GPU.
// The backward writes dS and the dropped probabilities to a temporary [B, heads, S, S].
#include <cmath>

#include "core/philox.h"
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
  const size_t smem = attn_smem(a, "attention_forward");
  k_attn_fwd<<<grid_for(a.B * a.nh * a.S * kAttnThreads, dev, kAttnThreads), kAttnThreads, smem,
               stream_of(dev)>>>(a);
  DAN_CUDA_CHECK_LAUNCH();
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
  Tensor ds = raw::empty({a.B, a.nh, a.S, a.S}, DType::f32, qkv.device());
  Tensor pd = raw::empty({a.B, a.nh, a.S, a.S}, DType::f32, qkv.device());
  a.stats = static_cast<float*>(st.raw_data());
  a.grad = static_cast<const float*>(g.raw_data());
  a.y = static_cast<const float*>(y.raw_data());
  a.dqkv = static_cast<float*>(dqkv.raw_data());
  a.ds = static_cast<float*>(ds.raw_data());
  a.pd = static_cast<float*>(pd.raw_data());
  const size_t smem = attn_smem(a, "attention_backward");
  const unsigned grid = grid_for(a.B * a.nh * a.S * kAttnThreads, dev, kAttnThreads);
  k_attn_bwd_rows<<<grid, kAttnThreads, smem, stream_of(dev)>>>(a);
  DAN_CUDA_CHECK_LAUNCH();
  k_attn_bwd_keys<<<grid, kAttnThreads, 0, stream_of(dev)>>>(a);
  DAN_CUDA_CHECK_LAUNCH();
  return dqkv;
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
