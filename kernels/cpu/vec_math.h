// Vectorizable f32 exp, tanh and erf shared by the fused transformer kernels (attention.cpp,
// transformer_fused.cpp), and exp_t / tanh_t / erf_t choosing them for f32 and libm for f64.
// Internal to kernels/cpu.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

// The kernels using these are built twice, for x86-64-v3 (AVX2 + FMA) and the baseline, and
// picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DAN_CPU_CLONES
#endif

// The same options as the kernels that inline these (see attention.cpp), so the inlined code
// is the same wherever it lands.
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")

namespace dan::kernels::cpu::detail {
// Internal linkage, as when these lived in attention.cpp: each kernel file gets its own copy, and
// GCC then generates the same code for the kernels that inline them as it did before.
namespace {

// ---- vectorizable math (f32; f64 uses libm) ----------------------------------------------------
// Straight-line forms that `omp simd` loops vectorize: exp (Cephes, < 1 ulp for the range used
// here, 0 below -87.3), tanh and erf (< 3 ulp: Cephes polynomials for small |x|, else exp-based).

[[gnu::always_inline]] inline float exp_f32(float x) {
  const float lo = -87.33654f;  // log(FLT_MIN): below it the result flushes to 0
  const float xc = x < lo ? lo : (x > 88.0f ? 88.0f : x);
  const float magic = 0x1.8p23f;
  const float t = xc * 1.44269504088896341f + magic;
  const float n = t - magic;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const uint32_t nb = __builtin_bit_cast(uint32_t, t) - __builtin_bit_cast(uint32_t, magic);
  const float scale = __builtin_bit_cast(float, (nb + 127u) << 23);
  return x < lo ? 0.0f : e * scale;
}

[[gnu::always_inline]] inline float tanh_f32(float x) {
  const float ax = x < 0 ? -x : x, z = x * x;
  float q = -5.70498872745e-3f;
  q = q * z + 2.06390887954e-2f;
  q = q * z - 5.37397155531e-2f;
  q = q * z + 1.33314422036e-1f;
  q = q * z - 3.33332819422e-1f;
  const float small = q * z * x + x;
  const float big = 1.0f - 2.0f / (exp_f32(2.0f * (ax > 44.0f ? 44.0f : ax)) + 1.0f);
  return ax < 0.625f ? small : (x < 0 ? -big : big);
}

[[gnu::always_inline]] inline float erf_f32(float x) {
  const float ax = x < 0 ? -x : x, z = x * x;
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
  const float big = 1.0f - r * t * exp_f32(-z);
  return ax < 1.0f ? small : (x < 0 ? -big : big);
}

template <typename T>
[[gnu::always_inline]] inline T exp_t(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_f32(x);
  else
    return std::exp(x);
}
template <typename T>
[[gnu::always_inline]] inline T tanh_t(T x) {
  if constexpr (std::is_same_v<T, float>)
    return tanh_f32(x);
  else
    return std::tanh(x);
}
template <typename T>
[[gnu::always_inline]] inline T erf_t(T x) {
  if constexpr (std::is_same_v<T, float>)
    return erf_f32(x);
  else
    return std::erf(x);
}

}  // namespace
}  // namespace dan::kernels::cpu::detail

#pragma GCC pop_options
