// CPU optimizer updates (Adam/AdamW, SGD with momentum): one fused, vectorized pass over the
// parameter and its state, with the arithmetic of torch.optim's single-tensor code paths.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = int64_t{1} << 15;  // elements before OpenMP pays off
constexpr int64_t kChunk = int64_t{1} << 14;        // elements per OpenMP work item

// Calls f(i0, i1) over [0, n) in chunks, in parallel for large n.
template <typename F>
void for_chunks(int64_t n, const F& f) {
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < nchunks; ++c) f(c * kChunk, std::min(n, (c + 1) * kChunk));
}

// The weight-decay variant is a template argument so that each inner loop is branch-free
// (and a zero decay is skipped, not multiplied in: 0 * inf would turn a parameter NaN).
enum class Wd : uint8_t { none, l2, decoupled };

template <typename T>
struct AdamK {
  T wd, decay_mul, b1, one_m_b1, b2, one_m_b2, bc2_sqrt, eps, neg_step;
};

[[gnu::always_inline]] inline float sqrt_v(float x) { return std::sqrt(x); }
[[gnu::always_inline]] inline double sqrt_v(double x) { return std::sqrt(x); }

// GCC does not vectorize a loop calling sqrt while -fmath-errno is on (the default), so the
// x86 path spells the vectors out; sqrtps/sqrtpd round like sqrtf/sqrt, so the bits match
// the scalar tail.
#if defined(__SSE2__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_ADAM_SSE 1
typedef float V4f __attribute__((vector_size(16)));
typedef double V2d __attribute__((vector_size(16)));
[[gnu::always_inline]] inline V4f sqrt_v(V4f x) { return __builtin_ia32_sqrtps(x); }
[[gnu::always_inline]] inline V2d sqrt_v(V2d x) { return __builtin_ia32_sqrtpd(x); }
template <typename T>
using Vec16 = std::conditional_t<std::is_same_v<T, float>, V4f, V2d>;
template <typename V, typename T>
[[gnu::always_inline]] inline V load_v(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V, typename T>
[[gnu::always_inline]] inline void store_v(T* p, const V& v) {
  __builtin_memcpy(p, &v, sizeof(V));
}
#endif

// One Adam update on a scalar or a vector of lanes (same arithmetic either way).
template <Wd kWd, typename V, typename T>
[[gnu::always_inline]] inline void adam_update(V& p, V& m, V& v, V g, const AdamK<T>& k) {
  if constexpr (kWd == Wd::l2) g = g + k.wd * p;
  if constexpr (kWd == Wd::decoupled) p = p * k.decay_mul;
  m = k.b1 * m + k.one_m_b1 * g;
  v = k.b2 * v + k.one_m_b2 * (g * g);
  const V denom = sqrt_v(v) / k.bc2_sqrt + k.eps;
  p = p + k.neg_step * (m / denom);
}

template <typename T, Wd kWd>
void adam_loop(T* p, const T* g, T* m, T* v, int64_t i0, int64_t i1, const AdamK<T>& k) {
  int64_t i = i0;
#ifdef DAN_ADAM_SSE
  using V = Vec16<T>;
  constexpr int64_t kW = sizeof(V) / sizeof(T);
  for (; i + kW <= i1; i += kW) {
    V pv = load_v<V>(p + i), mv = load_v<V>(m + i), vv = load_v<V>(v + i);
    adam_update<kWd>(pv, mv, vv, load_v<V>(g + i), k);
    store_v(p + i, pv);
    store_v(m + i, mv);
    store_v(v + i, vv);
  }
#endif
  for (; i < i1; ++i) adam_update<kWd>(p[i], m[i], v[i], g[i], k);
}

template <typename T, bool kWd, bool kMomentum, bool kNesterov>
void sgd_loop(T* p, const T* g, T* buf, int64_t i0, int64_t i1, T wd, T mu, T one_m_damp, T neg_lr,
              bool first) {
#pragma omp simd
  for (int64_t i = i0; i < i1; ++i) {
    T d = g[i];
    if constexpr (kWd) d = d + wd * p[i];
    if constexpr (kMomentum) {
      const T b = first ? d : mu * buf[i] + one_m_damp * d;
      buf[i] = b;
      d = kNesterov ? d + mu * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}

template <typename T>
void adam_impl(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, double lr, double beta1, double beta2, double eps,
               double weight_decay, int64_t step, bool decoupled_wd) {
  T* p = static_cast<T*>(param.raw_data());
  const T* g = static_cast<const T*>(grad.raw_data());
  T* m = static_cast<T*>(exp_avg.raw_data());
  T* v = static_cast<T*>(exp_avg_sq.raw_data());
  const int64_t n = param.numel();
  const double s = static_cast<double>(step);
  const double bc1 = 1.0 - std::pow(beta1, s);
  const double bc2 = 1.0 - std::pow(beta2, s);
  const AdamK<T> k{static_cast<T>(weight_decay),   static_cast<T>(1.0 - lr * weight_decay),
                   static_cast<T>(beta1),          static_cast<T>(1.0 - beta1),
                   static_cast<T>(beta2),          static_cast<T>(1.0 - beta2),
                   static_cast<T>(std::sqrt(bc2)), static_cast<T>(eps),
                   static_cast<T>(-(lr / bc1))};
  auto loop = weight_decay == 0 ? adam_loop<T, Wd::none>
              : decoupled_wd    ? adam_loop<T, Wd::decoupled>
                                : adam_loop<T, Wd::l2>;
  for_chunks(n, [&](int64_t i0, int64_t i1) { loop(p, g, m, v, i0, i1, k); });
}

template <typename T>
void sgd_impl(const Tensor& param, const Tensor& grad, const Tensor& momentum_buf, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov,
              bool first_step) {
  T* p = static_cast<T*>(param.raw_data());
  const T* g = static_cast<const T*>(grad.raw_data());
  T* buf = momentum == 0 ? nullptr : static_cast<T*>(momentum_buf.raw_data());
  const int64_t n = param.numel();
  const T wd = static_cast<T>(weight_decay), mu = static_cast<T>(momentum);
  const T one_m_damp = static_cast<T>(1.0 - dampening), neg_lr = static_cast<T>(-lr);
  const bool has_wd = weight_decay != 0;
  // [weight decay][momentum][nesterov]
  using Loop = void (*)(T*, const T*, T*, int64_t, int64_t, T, T, T, T, bool);
  const Loop loops[2][2][2] = {
      {{sgd_loop<T, false, false, false>, sgd_loop<T, false, false, false>},
       {sgd_loop<T, false, true, false>, sgd_loop<T, false, true, true>}},
      {{sgd_loop<T, true, false, false>, sgd_loop<T, true, false, false>},
       {sgd_loop<T, true, true, false>, sgd_loop<T, true, true, true>}}};
  const Loop loop = loops[has_wd][momentum != 0][nesterov];
  for_chunks(n, [&](int64_t i0, int64_t i1) {
    loop(p, g, buf, i0, i1, wd, mu, one_m_damp, neg_lr, first_step);
  });
}

}  // namespace

// p' = p(1 - lr*wd) [AdamW] ; g' = g + wd*p [Adam]; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
// p' -= lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps).
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, double lr, double beta1, double beta2, double eps,
               double weight_decay, int64_t step, bool decoupled_wd) {
  DAN_DISPATCH_FLOAT(param.dtype(), "adam_step", [&]<typename T>() {
    adam_impl<T>(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step,
                 decoupled_wd);
  });
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buf, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov,
              bool first_step) {
  DAN_DISPATCH_FLOAT(param.dtype(), "sgd_step", [&]<typename T>() {
    sgd_impl<T>(param, grad, momentum_buf, lr, momentum, dampening, weight_decay, nesterov,
                first_step);
  });
}

}  // namespace dan::kernels::cpu
