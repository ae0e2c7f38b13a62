// CPU elementwise kernels: unary ops and their backward, binary/compare ops with broadcasting,
// where/masked_fill, fill_/copy_/cast. All of them run through map_into (loops.h).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cpu/loops.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;   // 1/sqrt(2)
constexpr double k2_SqrtPi = 1.12837916709551257390;  // 2/sqrt(pi)
constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double kGeluKappa = 0.044715;

// Vectorizable f32 exp/tanh/erf. glibc's expf/tanhf/erff are scalar calls (10-40 ns per
// element); these are straight-line arithmetic that map_into's simd loops vectorize.
// Accuracy over all floats: exp < 1 ulp (Cephes polynomial, correct overflow/underflow to
// denormals/inf/NaN), tanh < 1.3 ulp, erf < 3 ulp (Cephes for |x| < 1, else the
// Abramowitz-Stegun 7.1.26 form PyTorch's vectorized erf uses). f64 keeps the libm calls.
namespace fast {

inline float pow2i(int32_t n) { return std::bit_cast<float>((n + 127) << 23); }

inline float exp(float x) {
  float xc = select(x < -104.0f, -104.0f, x);  // below: 0; above: inf; n stays in [-150, 128]
  xc = select(xc > 89.0f, 89.0f, xc);
  // n = round(x / ln2) via the 1.5 * 2^23 trick: no float -> int conversion needed.
  const float big = xc * 1.44269504088896341f + 12582912.0f;
  const int32_t ni = std::bit_cast<int32_t>(big) - 0x4B400000;
  const float n = big - 12582912.0f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;  // Cody-Waite ln2 split
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  // 2^n in two factors so that n = 128 overflows and n < -126 rounds to denormals properly.
  const int32_t n1 = ni >> 1;
  return select(x != x, x, y * pow2i(n1) * pow2i(ni - n1));
}

inline float tanh(float x) {
  const float ax = std::fabs(x), z = x * x;
  // |x| < 0.625: odd polynomial (Cephes tanhf); else 1 - 2 / (exp(2|x|) + 1) with x's sign.
  float q = -5.70498872745e-3f;
  q = q * z + 2.06390887954e-2f;
  q = q * z - 5.37397155531e-2f;
  q = q * z + 1.33314422036e-1f;
  q = q * z - 3.33332819422e-1f;
  const float small = q * z * x + x;
  const float large = std::copysign(1.0f - 2.0f / (exp(2.0f * ax) + 1.0f), x);
  return select(ax < 0.625f, small, large);
}

inline float erf(float x) {
  const float ax = std::fabs(x), z = x * x;
  // |x| < 1: x * P(x^2) (Cephes erff); else 1 - r(t) * t * exp(-x^2), t = 1 / (1 + p|x|).
  float q = 7.853861353153693e-5f;
  q = q * z - 8.010193625184903e-4f;
  q = q * z + 5.188327685732524e-3f;
  q = q * z - 2.685381193529856e-2f;
  q = q * z + 1.128358514861418e-1f;
  q = q * z - 3.761262582423300e-1f;
  q = q * z + 1.128379165726710f;
  const float small = x * q;
  const float t = 1.0f / (0.3275911f * ax + 1.0f);
  float r = 1.061405429f;
  r = r * t - 1.453152027f;
  r = r * t + 1.421413741f;
  r = r * t - 0.284496736f;
  r = r * t + 0.254829592f;
  const float large = std::copysign(1.0f - r * t * exp(-z), x);
  return select(ax < 1.0f, small, large);
}

}  // namespace fast

inline float vexp(float x) { return fast::exp(x); }
inline double vexp(double x) { return std::exp(x); }
inline float vtanh(float x) { return fast::tanh(x); }
inline double vtanh(double x) { return std::tanh(x); }
inline float verf(float x) { return fast::erf(x); }
inline double verf(double x) { return std::erf(x); }

// Bool tensors are read and written as uint8_t (0/1): the vectorizer handles bytes, not bool.
template <typename T>
using Elem = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;

// One struct per unary op: f is the forward; df(g, x, y) the backward given y = f(x). Formulas
// follow PyTorch's CPU kernels (computed in T, as PyTorch uses float opmath for float).
// uses_y tells the backward whether y must be recomputed when the caller did not pass it.
template <UnaryOp Op, typename T>
struct Unary;

template <typename T>
struct Unary<UnaryOp::neg, T> {
  static constexpr bool uses_y = false;
  static T f(T x) { return -x; }
  static T df(T g, T, T) { return -g; }
};
template <typename T>
struct Unary<UnaryOp::exp, T> {
  static constexpr bool uses_y = true;
  static T f(T x) { return vexp(x); }
  static T df(T g, T, T y) { return g * y; }
};
template <typename T>
struct Unary<UnaryOp::log, T> {
  static constexpr bool uses_y = false;
  static T f(T x) { return std::log(x); }
  static T df(T g, T x, T) { return g / x; }
};
template <typename T>
struct Unary<UnaryOp::sqrt, T> {
  static constexpr bool uses_y = true;
  static T f(T x) { return std::sqrt(x); }
  static T df(T g, T, T y) { return g / (T(2) * y); }
};
template <typename T>
struct Unary<UnaryOp::rsqrt, T> {
  static constexpr bool uses_y = true;
  static T f(T x) { return T(1) / std::sqrt(x); }
  static T df(T g, T, T y) { return T(-0.5) * g * (y * y * y); }
};
template <typename T>
struct Unary<UnaryOp::abs, T> {
  static constexpr bool uses_y = false;
  static T f(T x) { return std::abs(x); }
  static T df(T g, T x, T) { return g * select(x > T(0), T(1), select(x < T(0), T(-1), T(0))); }
};
template <typename T>
struct Unary<UnaryOp::relu, T> {
  static constexpr bool uses_y = false;
  // `x < 0 ? 0 : x` keeps NaN (as torch.relu does) and vectorizes to a compare + blend.
  static T f(T x) { return x < T(0) ? T(0) : x; }
  static T df(T g, T x, T) { return x > T(0) ? g : T(0); }
};
template <typename T>
struct Unary<UnaryOp::tanh, T> {
  static constexpr bool uses_y = true;
  static T f(T x) { return vtanh(x); }
  static T df(T g, T, T y) { return g * (T(1) - y * y); }
};
template <typename T>
struct Unary<UnaryOp::sigmoid, T> {
  static constexpr bool uses_y = true;
  static T f(T x) { return T(1) / (T(1) + vexp(-x)); }
  static T df(T g, T, T y) { return g * (T(1) - y) * y; }
};
template <typename T>
struct Unary<UnaryOp::gelu_erf, T> {
  static constexpr bool uses_y = false;
  static T f(T x) { return x * T(0.5) * (T(1) + verf(x * T(kSqrt1_2))); }
  static T df(T g, T x, T) {
    const T cdf = T(0.5) * (T(1) + verf(x * T(kSqrt1_2)));
    const T pdf = T(k2_SqrtPi * kSqrt1_2 * 0.5) * vexp(x * x * T(-0.5));
    return g * (cdf + x * pdf);
  }
};
template <typename T>
struct Unary<UnaryOp::gelu_tanh, T> {
  static constexpr bool uses_y = false;
  static constexpr T kBeta = T(kSqrt2 * k2_SqrtPi * 0.5);
  static T f(T x) {
    const T inner = kBeta * (x + T(kGeluKappa) * (x * x * x));
    return T(0.5) * x * (T(1) + vtanh(inner));
  }
  static T df(T g, T x, T) {
    const T x_sq = x * x;
    const T inner = kBeta * (x + T(kGeluKappa) * (x_sq * x));
    const T t = vtanh(inner);
    const T left_derivative = T(0.5) * (T(1) + t);
    const T inner_derivative = kBeta * (T(1) + T(3 * kGeluKappa) * x_sq);
    const T right_derivative = T(0.5) * x * (T(1) - t * t) * inner_derivative;
    return g * (left_derivative + right_derivative);
  }
};
template <typename T>
struct Unary<UnaryOp::square, T> {
  static constexpr bool uses_y = false;
  static T f(T x) { return x * x; }
  static T df(T g, T x, T) { return g * T(2) * x; }
};
template <typename T>
struct Unary<UnaryOp::reciprocal, T> {
  static constexpr bool uses_y = true;
  static T f(T x) { return T(1) / x; }
  static T df(T g, T, T y) { return -g * (y * y); }
};
template <typename T>
struct Unary<UnaryOp::sin, T> {
  static constexpr bool uses_y = false;
  static T f(T x) { return std::sin(x); }
  static T df(T g, T x, T) { return g * std::cos(x); }
};
template <typename T>
struct Unary<UnaryOp::cos, T> {
  static constexpr bool uses_y = false;
  static T f(T x) { return std::cos(x); }
  static T df(T g, T x, T) { return g * -std::sin(x); }
};

// Turns the runtime op into a template argument: fn.template operator()<Op>().
template <typename F>
void with_unary(UnaryOp op, const F& fn) {
  switch (op) {
    case UnaryOp::neg:
      return fn.template operator()<UnaryOp::neg>();
    case UnaryOp::exp:
      return fn.template operator()<UnaryOp::exp>();
    case UnaryOp::log:
      return fn.template operator()<UnaryOp::log>();
    case UnaryOp::sqrt:
      return fn.template operator()<UnaryOp::sqrt>();
    case UnaryOp::rsqrt:
      return fn.template operator()<UnaryOp::rsqrt>();
    case UnaryOp::abs:
      return fn.template operator()<UnaryOp::abs>();
    case UnaryOp::relu:
      return fn.template operator()<UnaryOp::relu>();
    case UnaryOp::tanh:
      return fn.template operator()<UnaryOp::tanh>();
    case UnaryOp::sigmoid:
      return fn.template operator()<UnaryOp::sigmoid>();
    case UnaryOp::gelu_erf:
      return fn.template operator()<UnaryOp::gelu_erf>();
    case UnaryOp::gelu_tanh:
      return fn.template operator()<UnaryOp::gelu_tanh>();
    case UnaryOp::square:
      return fn.template operator()<UnaryOp::square>();
    case UnaryOp::reciprocal:
      return fn.template operator()<UnaryOp::reciprocal>();
    case UnaryOp::sin:
      return fn.template operator()<UnaryOp::sin>();
    case UnaryOp::cos:
      return fn.template operator()<UnaryOp::cos>();
  }
  fail("unary: unknown op {}", static_cast<int>(op));
}

// NaN-propagating max/min, as torch.maximum/minimum: pure selects between the inputs, so the
// loop vectorizes (no arithmetic on the NaN path).
template <typename T>
T max_nan(T a, T b) {
  return select(a > b || a != a, a, b);
}
template <typename T>
T min_nan(T a, T b) {
  return select(a < b || a != a, a, b);
}

template <BinaryOp Op, typename T>
T apply_binary(T a, T b) {
  if constexpr (Op == BinaryOp::add) return a + b;
  if constexpr (Op == BinaryOp::sub) return a - b;
  if constexpr (Op == BinaryOp::mul) return a * b;
  if constexpr (Op == BinaryOp::div) return a / b;
  if constexpr (Op == BinaryOp::pow) return std::pow(a, b);
  if constexpr (Op == BinaryOp::maximum) return max_nan(a, b);
  if constexpr (Op == BinaryOp::minimum) return min_nan(a, b);
}

template <typename F>
void with_binary(BinaryOp op, const F& fn) {
  switch (op) {
    case BinaryOp::add:
      return fn.template operator()<BinaryOp::add>();
    case BinaryOp::sub:
      return fn.template operator()<BinaryOp::sub>();
    case BinaryOp::mul:
      return fn.template operator()<BinaryOp::mul>();
    case BinaryOp::div:
      return fn.template operator()<BinaryOp::div>();
    case BinaryOp::pow:
      return fn.template operator()<BinaryOp::pow>();
    case BinaryOp::maximum:
      return fn.template operator()<BinaryOp::maximum>();
    case BinaryOp::minimum:
      return fn.template operator()<BinaryOp::minimum>();
  }
  fail("binary: unknown op {}", static_cast<int>(op));
}

template <CompareOp Op, typename A, typename B>
bool apply_compare(A a, B b) {
  if constexpr (Op == CompareOp::eq) return a == b;
  if constexpr (Op == CompareOp::ne) return a != b;
  if constexpr (Op == CompareOp::lt) return a < b;
  if constexpr (Op == CompareOp::le) return a <= b;
  if constexpr (Op == CompareOp::gt) return a > b;
  if constexpr (Op == CompareOp::ge) return a >= b;
}

template <typename F>
void with_compare(CompareOp op, const F& fn) {
  switch (op) {
    case CompareOp::eq:
      return fn.template operator()<CompareOp::eq>();
    case CompareOp::ne:
      return fn.template operator()<CompareOp::ne>();
    case CompareOp::lt:
      return fn.template operator()<CompareOp::lt>();
    case CompareOp::le:
      return fn.template operator()<CompareOp::le>();
    case CompareOp::gt:
      return fn.template operator()<CompareOp::gt>();
    case CompareOp::ge:
      return fn.template operator()<CompareOp::ge>();
  }
  fail("compare: unknown op {}", static_cast<int>(op));
}

// pow with a scalar exponent: the special cases PyTorch's pow_tensor_scalar takes, so results
// match it bit for bit where it avoids std::pow.
template <typename T>
void pow_scalar_exponent(const Tensor& out, const Tensor& a, T e) {
  auto run = [&](auto f) { map_into<T, T>(out, {a}, f); };
  if (e == T(2)) return run([](T x) { return x * x; });
  if (e == T(3)) return run([](T x) { return x * x * x; });
  if (e == T(0.5)) return run([](T x) { return std::sqrt(x); });
  if (e == T(-0.5)) return run([](T x) { return T(1) / std::sqrt(x); });
  if (e == T(-1)) return run([](T x) { return T(1) / x; });
  if (e == T(-2)) return run([](T x) { return T(1) / (x * x); });
  run([e](T x) { return std::pow(x, e); });
}

// ---- AVX2 clones of the f32 transcendental ops -------------------------------------------------
// exp/tanh/sigmoid/gelu are compute-bound: baseline x86-64 gives 4-wide SSE with a divps chain,
// AVX2 8-wide (2.5x faster tanh on [1024, 800]). The library is built with -ffp-contract=off,
// so the clones do the same operations in the same order and return the same bits.

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DAN_CPU_CLONES
#endif

template <UnaryOp Op>
[[gnu::always_inline]] inline void unary_f32_run(const float* __restrict x, float* __restrict y,
                                                 int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = Unary<Op, float>::f(x[i]);
}

// v is y when the op's backward uses y, else x.
template <UnaryOp Op>
[[gnu::always_inline]] inline void unary_backward_f32_run(const float* __restrict g,
                                                          const float* __restrict v,
                                                          float* __restrict o, int64_t n) {
  using U = Unary<Op, float>;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (U::uses_y) {
      o[i] = U::df(g[i], 0.0f, v[i]);
    } else {
      o[i] = U::df(g[i], v[i], 0.0f);
    }
  }
}

using UnaryF32Fn = void (*)(const float*, float*, int64_t);
using UnaryBackwardF32Fn = void (*)(const float*, const float*, float*, int64_t);

#define DAN_UNARY_CLONE(OP)                                                                    \
  DAN_CPU_CLONES void unary_f32_##OP(const float* x, float* y, int64_t n) {                   \
    unary_f32_run<UnaryOp::OP>(x, y, n);                                                       \
  }                                                                                            \
  DAN_CPU_CLONES void unary_backward_f32_##OP(const float* g, const float* v, float* o,        \
                                              int64_t n) {                                     \
    unary_backward_f32_run<UnaryOp::OP>(g, v, o, n);                                           \
  }
DAN_UNARY_CLONE(exp)
DAN_UNARY_CLONE(tanh)
DAN_UNARY_CLONE(sigmoid)
DAN_UNARY_CLONE(gelu_erf)
DAN_UNARY_CLONE(gelu_tanh)
#undef DAN_UNARY_CLONE

struct UnaryF32Clones {
  UnaryF32Fn fwd = nullptr;
  UnaryBackwardF32Fn bwd = nullptr;
};

UnaryF32Clones unary_f32_clones(UnaryOp op) {
  switch (op) {
    case UnaryOp::exp:
      return {unary_f32_exp, unary_backward_f32_exp};
    case UnaryOp::tanh:
      return {unary_f32_tanh, unary_backward_f32_tanh};
    case UnaryOp::sigmoid:
      return {unary_f32_sigmoid, unary_backward_f32_sigmoid};
    case UnaryOp::gelu_erf:
      return {unary_f32_gelu_erf, unary_backward_f32_gelu_erf};
    case UnaryOp::gelu_tanh:
      return {unary_f32_gelu_tanh, unary_backward_f32_gelu_tanh};
    default:
      return {};
  }
}

// f(ptr_offset, n) over [0, n) in kChunk pieces, threaded as map_into would thread it.
template <typename F>
void contiguous_chunks(int64_t n, const F& f) {
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelNumel)
  for (int64_t c = 0; c < nchunks; ++c) f(c * kChunk, std::min(n, (c + 1) * kChunk) - c * kChunk);
}

}  // namespace

Tensor unary(UnaryOp op, const Tensor& x) {
  Tensor out = raw::empty(x.shape(), x.dtype());
  if (x.dtype() == DType::f32 && x.is_contiguous()) {
    if (const UnaryF32Fn fn = unary_f32_clones(op).fwd) {
      const float* px = static_cast<const float*>(x.raw_data());
      float* py = static_cast<float*>(out.raw_data());
      contiguous_chunks(x.numel(), [&](int64_t i, int64_t n) { fn(px + i, py + i, n); });
      return out;
    }
  }
  DAN_DISPATCH_FLOAT(x.dtype(), name(op), [&]<typename T>() {
    with_unary(op, [&]<UnaryOp Op>() {
      map_into<T, T>(out, {x}, [](T v) { return Unary<Op, T>::f(v); });
    });
  });
  return out;
}

Tensor unary_backward(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y) {
  Tensor out = raw::empty(x.shape(), x.dtype());
  if (const UnaryBackwardF32Fn fn = unary_f32_clones(op).bwd;
      fn != nullptr && x.dtype() == DType::f32 && grad.dtype() == DType::f32 &&
      grad.shape() == x.shape() && grad.is_contiguous()) {
    bool uses_y = false;
    with_unary(op, [&]<UnaryOp Op>() { uses_y = Unary<Op, float>::uses_y; });
    const Tensor& v = uses_y ? y : x;
    if (v.defined() && v.dtype() == DType::f32 && v.shape() == x.shape() && v.is_contiguous()) {
      const float* pg = static_cast<const float*>(grad.raw_data());
      const float* pv = static_cast<const float*>(v.raw_data());
      float* po = static_cast<float*>(out.raw_data());
      contiguous_chunks(x.numel(), [&](int64_t i, int64_t n) { fn(pg + i, pv + i, po + i, n); });
      return out;
    }
  }
  DAN_DISPATCH_FLOAT(x.dtype(), name(op), [&]<typename T>() {
    with_unary(op, [&]<UnaryOp Op>() {
      using U = Unary<Op, T>;
      if constexpr (!U::uses_y) {
        map_into<T, T, T>(out, {grad, x}, [](T g, T v) { return U::df(g, v, T(0)); });
      } else if (y.defined()) {
        DAN_CHECK(y.dtype() == x.dtype(), "{}: output is {}, input is {}", name(op), y.dtype(),
                  x.dtype());
        map_into<T, T, T>(out, {grad, y}, [](T g, T r) { return U::df(g, T(0), r); });
      } else {
        map_into<T, T, T>(out, {grad, x}, [](T g, T v) { return U::df(g, v, U::f(v)); });
      }
    });
  });
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = raw::empty(broadcast_shapes(a.shape(), b.shape(), name(op)), a.dtype());
  DAN_DISPATCH_FLOAT(a.dtype(), name(op), [&]<typename T>() {
    with_binary(op, [&]<BinaryOp Op>() {
      map_into<T, T, T>(out, {a, b}, [](T u, T v) { return apply_binary<Op>(u, v); });
    });
  });
  return out;
}

Tensor binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first) {
  Tensor out = raw::empty(a.shape(), a.dtype());
  DAN_DISPATCH_FLOAT(a.dtype(), name(op), [&]<typename T>() {
    const T c = static_cast<T>(s);
    if (op == BinaryOp::pow && !scalar_first) return pow_scalar_exponent<T>(out, a, c);
    with_binary(op, [&]<BinaryOp Op>() {
      if (scalar_first) {
        map_into<T, T>(out, {a}, [c](T v) { return apply_binary<Op>(c, v); });
      } else {
        map_into<T, T>(out, {a}, [c](T v) { return apply_binary<Op>(v, c); });
      }
    });
  });
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  Tensor out = raw::empty(broadcast_shapes(a.shape(), b.shape(), name(op)), DType::b8);
  DAN_DISPATCH_ALL(a.dtype(), name(op), [&]<typename T>() {
    using E = Elem<T>;
    with_compare(op, [&]<CompareOp Op>() {
      map_into<uint8_t, E, E>(out, {a, b},
                              [](E u, E v) -> uint8_t { return apply_compare<Op>(u, v); });
    });
  });
  return out;
}

Tensor compare_scalar(CompareOp op, const Tensor& a, double s) {
  Tensor out = raw::empty(a.shape(), DType::b8);
  DAN_DISPATCH_ALL(a.dtype(), name(op), [&]<typename T>() {
    using E = Elem<T>;
    with_compare(op, [&]<CompareOp Op>() {
      if constexpr (std::is_floating_point_v<T>) {
        // The scalar takes the tensor's dtype, as in PyTorch (x_f32 == 0.1 compares with 0.1f).
        const T c = static_cast<T>(s);
        map_into<uint8_t, E>(out, {a}, [c](E v) -> uint8_t { return apply_compare<Op>(v, c); });
      } else if (std::is_same_v<T, int64_t> && s == std::trunc(s) && s >= -0x1p63 && s < 0x1p63) {
        // i64 against an integral scalar: compare exactly in 64-bit integers (a double would
        // round large values). Narrower types are exact in double, below.
        const int64_t c = static_cast<int64_t>(s);
        map_into<uint8_t, E>(out, {a}, [c](E v) -> uint8_t {
          return apply_compare<Op>(static_cast<int64_t>(v), c);
        });
      } else {
        map_into<uint8_t, E>(
            out, {a}, [s](E v) -> uint8_t { return apply_compare<Op>(static_cast<double>(v), s); });
      }
    });
  });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = raw::empty(shape, a.dtype());
  DAN_DISPATCH_ALL(a.dtype(), "where", [&]<typename T>() {
    using E = Elem<T>;
    map_into<E, uint8_t, E, E>(out, {cond, a, b},
                               [](uint8_t c, E u, E v) { return select(c != 0, u, v); });
  });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  Tensor out = raw::empty(x.shape(), x.dtype());
  DAN_DISPATCH_ALL(x.dtype(), "masked_fill", [&]<typename T>() {
    using E = Elem<T>;
    const E v = static_cast<E>(static_cast<T>(value));
    map_into<E, E, uint8_t>(out, {x, mask}, [v](E u, uint8_t m) { return select(m != 0, v, u); });
  });
  return out;
}

void fill_(const Tensor& t, double value) {
  DAN_DISPATCH_ALL(t.dtype(), "fill_", [&]<typename T>() {
    using E = Elem<T>;
    const E v = static_cast<E>(static_cast<T>(value));
    map_into<E>(t, {}, [v]() { return v; });
  });
}

void copy_(const Tensor& dst, const Tensor& src) {
  // Dispatch on the element size only: a copy moves bits, whatever the dtype.
  switch (dtype_size(dst.dtype())) {
    case 1:
      return map_into<uint8_t, uint8_t>(dst, {src}, [](uint8_t v) { return v; });
    case 4:
      return map_into<uint32_t, uint32_t>(dst, {src}, [](uint32_t v) { return v; });
    case 8:
      return map_into<uint64_t, uint64_t>(dst, {src}, [](uint64_t v) { return v; });
    default:
      fail("copy_: unsupported dtype {}", dst.dtype());
  }
}

Tensor cast(const Tensor& x, DType to) {
  Tensor out = raw::empty(x.shape(), to);
  DAN_DISPATCH_ALL(x.dtype(), "cast", [&]<typename S>() {
    DAN_DISPATCH_ALL(to, "cast", [&]<typename D>() {
      map_into<Elem<D>, Elem<S>>(out, {x},
                                 [](Elem<S> v) { return static_cast<Elem<D>>(static_cast<D>(v)); });
    });
  });
  return out;
}

}  // namespace dan::kernels::cpu
