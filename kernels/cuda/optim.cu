// CUDA fused optimizer updates (Adam/AdamW, SGD with momentum): one pass over the contiguous
// parameter, reading and writing each state tensor once. Step-dependent scalars are computed
// on the host in double.
#include "kernels/cuda/common.cuh"

#include <cmath>

namespace dan::kernels::cuda {

namespace {

struct AdamScalars {
  float lr, beta1, beta2, eps, weight_decay;
  float step_size;        // lr / (1 - beta1^step)
  float bc2_sqrt;         // sqrt(1 - beta2^step)
  bool decoupled;
};

// As torch.optim.Adam/AdamW (single-tensor path): m.lerp_(g, 1 - b1); v = b2 v + (1 - b2) g^2;
// p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).
__global__ void k_adam(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                       float* __restrict__ v, int64_t n, AdamScalars s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    float pv = p[i], gv = g[i];
    if (s.weight_decay != 0.0f) {
      if (s.decoupled) {
        pv *= 1.0f - s.lr * s.weight_decay;
      } else {
        gv += s.weight_decay * pv;
      }
    }
    const float mv = m[i] + (1.0f - s.beta1) * (gv - m[i]);
    const float vv = s.beta2 * v[i] + (1.0f - s.beta2) * gv * gv;
    m[i] = mv;
    v[i] = vv;
    p[i] = pv - s.step_size * mv / (sqrtf(vv) / s.bc2_sqrt + s.eps);
  }
}

struct SgdScalars {
  float lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};

__global__ void k_sgd(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ buf,
                      int64_t n, SgdScalars s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    float d = g[i];
    if (s.weight_decay != 0.0f) d += s.weight_decay * p[i];
    if (s.momentum != 0.0f) {
      const float b = s.first_step ? d : s.momentum * buf[i] + (1.0f - s.dampening) * d;
      buf[i] = b;
      d = s.nesterov ? d + s.momentum * b : b;
    }
    p[i] -= s.lr * d;
  }
}

float* fp(const Tensor& t) { return static_cast<float*>(t.raw_data()); }

}  // namespace

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, double lr, double beta1, double beta2, double eps,
               double weight_decay, int64_t step, bool decoupled_wd) {
  require_f32(param, "adam_step", "param");
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  const int64_t n = param.numel();
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const AdamScalars s{static_cast<float>(lr),           static_cast<float>(beta1),
                      static_cast<float>(beta2),        static_cast<float>(eps),
                      static_cast<float>(weight_decay), static_cast<float>(lr / bc1),
                      static_cast<float>(std::sqrt(bc2)), decoupled_wd};
  k_adam<<<grid_for(n, dev), kBlock, 0, stream_of(dev)>>>(fp(param), fp(grad), fp(exp_avg),
                                                          fp(exp_avg_sq), n, s);
  DAN_CUDA_CHECK_LAUNCH();
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buf, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov,
              bool first_step) {
  require_f32(param, "sgd_step", "param");
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  const int64_t n = param.numel();
  if (n == 0) return;
  const SgdScalars s{static_cast<float>(lr), static_cast<float>(momentum),
                     static_cast<float>(dampening), static_cast<float>(weight_decay), nesterov,
                     first_step};
  k_sgd<<<grid_for(n, dev), kBlock, 0, stream_of(dev)>>>(
      fp(param), fp(grad), momentum != 0.0 ? fp(momentum_buf) : nullptr, n, s);
  DAN_CUDA_CHECK_LAUNCH();
}

}  // namespace dan::kernels::cuda
