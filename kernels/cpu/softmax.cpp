// CPU softmax / log_softmax and their backwards over the last dim. Rows run in parallel in
// blocks; each row takes a few vectorized passes over data that stays in L1/L2.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cpu/rows.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

Tensor contig(const Tensor& t) {
  return t.is_contiguous() ? t : raw::contiguous_copy(t, Device::cpu());
}

// The row kernels below are compiled without -ftrapping-math so that the selects in exp_f32
// are if-converted and the loops vectorize; nothing here reads the FP exception flags.
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

// 8 floats as one GCC vector: AVX in the x86-64-v3 clone, two SSE halves otherwise. They are
// only passed by reference, so no vector crosses a function boundary by value.
typedef float V8f __attribute__((vector_size(32)));
typedef uint32_t V8u __attribute__((vector_size(32)));
typedef double V4d __attribute__((vector_size(32)));

// x <- expf(x) for the arguments softmax needs (x <= ~0; accurate for x <= 80), on a float or
// a V8f (F{} + c is c, broadcast for vectors): Cody-Waite reduction to r in [-ln2/2, ln2/2]
// and Cephes' degree-6 polynomial (about 1 ulp). exp(-inf) = 0, NaN stays NaN, results below
// FLT_MIN flush to 0. (__builtin_bit_cast, not std::bit_cast: the latter is defined outside
// this optimize region and stops vectorization.)
template <typename F, typename U>
[[gnu::always_inline]] inline void exp_inplace(F& x) {
  const F zero = F{};
  const F lo = zero + -87.33654f;    // log(FLT_MIN)
  const F magic = zero + 0x1.8p23f;  // adding it rounds to an integer in the low mantissa bits
  const F cap = zero + 80.0f;
  const F hi = x > cap ? cap : x;
  const F xc = hi < lo ? lo : hi;
  const F t = xc * 1.44269504088896341f + magic;
  const F n = t - magic;
  F r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F p = zero + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const F e = p * r * r + r + 1.0f;
  const U nb = __builtin_bit_cast(U, t) - __builtin_bit_cast(U, magic);
  const F scale = __builtin_bit_cast(F, (nb + 127u) << 23);
  x = x < lo ? zero : e * scale;
}

[[gnu::always_inline]] inline float exp_f32(float x) {
  exp_inplace<float, uint32_t>(x);
  return x;
}

// sum_j exp(x[j] - m) for f32, optionally storing the exps in y. Each vector lane adds at most
// 8 terms in float before the lanes go into double accumulators: relative error < 1e-6 for
// any row length, while the hot loop stays in float vectors.
template <bool kStore>
[[gnu::always_inline]] inline double exp_sum_f32(const float* x, float* y, float m, int64_t d) {
  V4d s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
  const int64_t dv = d - d % 8;
  int64_t j = 0;
  while (j < dv) {
    const int64_t end = dv - j > 64 ? j + 64 : dv;
    V8f acc = V8f{};
    for (; j < end; j += 8) {
      V8f e;
      __builtin_memcpy(&e, x + j, sizeof(e));
      e -= m;
      exp_inplace<V8f, V8u>(e);
      if constexpr (kStore) __builtin_memcpy(y + j, &e, sizeof(e));
      acc += e;
    }
    s0 += __builtin_convertvector(__builtin_shufflevector(acc, acc, 0, 1, 2, 3), V4d);
    s1 += __builtin_convertvector(__builtin_shufflevector(acc, acc, 4, 5, 6, 7), V4d);
  }
  const V4d s = s0 + s1;
  double total = (s[0] + s[1]) + (s[2] + s[3]);
  for (; j < d; ++j) {
    const float e = exp_f32(x[j] - m);
    if constexpr (kStore) y[j] = e;
    total += e;
  }
  return total;
}

template <typename T>
[[gnu::always_inline]] inline T exp_t(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return exp_f32(x);
  } else {
    return std::exp(x);
  }
}

// NaNs never win, so a row with a NaN still ends up all-NaN through x - max.
template <typename T>
[[gnu::always_inline]] inline T row_max(const T* x, int64_t d) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < d; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// sum_j exp(x[j] - m), optionally storing the exps in y.
template <typename T, bool kStore>
[[gnu::always_inline]] inline double exp_sum(const T* x, T* y, T m, int64_t d) {
  if constexpr (std::is_same_v<T, float>) {
    return exp_sum_f32<kStore>(x, y, m, d);
  } else {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) {
      const T e = std::exp(x[j] - m);
      if constexpr (kStore) y[j] = e;
      s += e;
    }
    return s;
  }
}

template <typename T>
[[gnu::always_inline]] inline void softmax_rows(const T* x, T* y, int64_t r0, int64_t r1,
                                                int64_t d) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * d;
    T* yr = y + r * d;
    const T m = row_max(xr, d);
    const T inv = static_cast<T>(1.0 / exp_sum<T, true>(xr, yr, m, d));
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] *= inv;
  }
}

template <typename T>
[[gnu::always_inline]] inline void log_softmax_rows(const T* x, T* y, int64_t r0, int64_t r1,
                                                    int64_t d) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * d;
    T* yr = y + r * d;
    const T m = row_max(xr, d);
    const T lse = static_cast<T>(std::log(exp_sum<T, false>(xr, nullptr, m, d)));
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) - lse;
  }
}

template <typename T>
[[gnu::always_inline]] inline void softmax_bwd_rows(const T* g, const T* y, T* dx, int64_t r0,
                                                    int64_t r1, int64_t d) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* gr = g + r * d;
    const T* yr = y + r * d;
    T* dr = dx + r * d;
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(gr[j]) * yr[j];
    const T dt = static_cast<T>(dot);
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) dr[j] = yr[j] * (gr[j] - dt);
  }
}

template <typename T>
[[gnu::always_inline]] inline void log_softmax_bwd_rows(const T* g, const T* y, T* dx, int64_t r0,
                                                        int64_t r1, int64_t d) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* gr = g + r * d;
    const T* yr = y + r * d;
    T* dr = dx + r * d;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += gr[j];
    const T st = static_cast<T>(s);
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) dr[j] = gr[j] - exp_t<T>(yr[j]) * st;
  }
}

// AVX2+FMA and baseline versions of each row kernel, picked once at load time; the OpenMP
// region stays outside so that every thread calls the selected clone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DAN_CPU_CLONES
#endif

#define DAN_ROW_KERNEL_1(NAME, IMPL, T)                                           \
  DAN_CPU_CLONES void NAME(const T* x, T* y, int64_t r0, int64_t r1, int64_t d) { \
    IMPL<T>(x, y, r0, r1, d);                                                     \
  }
#define DAN_ROW_KERNEL_2(NAME, IMPL, T)                                                        \
  DAN_CPU_CLONES void NAME(const T* g, const T* y, T* dx, int64_t r0, int64_t r1, int64_t d) { \
    IMPL<T>(g, y, dx, r0, r1, d);                                                              \
  }

DAN_ROW_KERNEL_1(softmax_f32, softmax_rows, float)
DAN_ROW_KERNEL_1(softmax_f64, softmax_rows, double)
DAN_ROW_KERNEL_1(log_softmax_f32, log_softmax_rows, float)
DAN_ROW_KERNEL_1(log_softmax_f64, log_softmax_rows, double)
DAN_ROW_KERNEL_2(softmax_bwd_f32, softmax_bwd_rows, float)
DAN_ROW_KERNEL_2(softmax_bwd_f64, softmax_bwd_rows, double)
DAN_ROW_KERNEL_2(log_softmax_bwd_f32, log_softmax_bwd_rows, float)
DAN_ROW_KERNEL_2(log_softmax_bwd_f64, log_softmax_bwd_rows, double)

#pragma GCC pop_options

enum class Kind : uint8_t { softmax, log_softmax };

template <typename T>
void forward_rows(Kind k, const T* x, T* y, int64_t r0, int64_t r1, int64_t d) {
  if constexpr (std::is_same_v<T, float>) {
    (k == Kind::softmax ? softmax_f32 : log_softmax_f32)(x, y, r0, r1, d);
  } else {
    (k == Kind::softmax ? softmax_f64 : log_softmax_f64)(x, y, r0, r1, d);
  }
}

template <typename T>
void backward_rows(Kind k, const T* g, const T* y, T* dx, int64_t r0, int64_t r1, int64_t d) {
  if constexpr (std::is_same_v<T, float>) {
    (k == Kind::softmax ? softmax_bwd_f32 : log_softmax_bwd_f32)(g, y, dx, r0, r1, d);
  } else {
    (k == Kind::softmax ? softmax_bwd_f64 : log_softmax_bwd_f64)(g, y, dx, r0, r1, d);
  }
}

Tensor forward(Kind k, const Tensor& x_in, const char* op) {
  const Tensor x = contig(x_in);
  Tensor y = raw::empty(x.shape(), x.dtype());
  const int64_t d = x.dim() == 0 ? 1 : x.size(-1);
  if (x.numel() == 0) return y;
  const int64_t rows = x.numel() / d;
  DAN_DISPATCH_FLOAT(x.dtype(), op, [&]<typename T>() {
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(y.raw_data());
    for_row_blocks(rows, d, [&](int64_t r0, int64_t r1) { forward_rows<T>(k, xp, yp, r0, r1, d); });
  });
  return y;
}

Tensor backward(Kind k, const Tensor& g_in, const Tensor& y_in, const char* op) {
  const Tensor g = contig(g_in), y = contig(y_in);
  Tensor dx = raw::empty(y.shape(), y.dtype());
  const int64_t d = y.dim() == 0 ? 1 : y.size(-1);
  if (y.numel() == 0) return dx;
  const int64_t rows = y.numel() / d;
  DAN_DISPATCH_FLOAT(y.dtype(), op, [&]<typename T>() {
    const T* gp = static_cast<const T*>(g.raw_data());
    const T* yp = static_cast<const T*>(y.raw_data());
    T* dp = static_cast<T*>(dx.raw_data());
    for_row_blocks(rows, d,
                   [&](int64_t r0, int64_t r1) { backward_rows<T>(k, gp, yp, dp, r0, r1, d); });
  });
  return dx;
}

}  // namespace

Tensor softmax(const Tensor& x) { return forward(Kind::softmax, x, "softmax"); }
Tensor log_softmax(const Tensor& x) { return forward(Kind::log_softmax, x, "log_softmax"); }

// dx = y * (g - sum(g * y))
Tensor softmax_backward(const Tensor& grad, const Tensor& y) {
  return backward(Kind::softmax, grad, y, "softmax_backward");
}

// dx = g - exp(y) * sum(g)
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y) {
  return backward(Kind::log_softmax, grad, y, "log_softmax_backward");
}

}  // namespace dan::kernels::cpu
