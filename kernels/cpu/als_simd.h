// Internal to the CPU implicit-ALS kernels (als.cpp, als_gram.cpp): the run-time choice
// between the AVX2+FMA code and the portable loops, and the helpers both files use.
#pragma once

#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DAN_ALS_X86 1
#define DAN_AVX2 __attribute__((target("avx2,fma")))
#define DAN_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#endif

namespace dan::kernels::cpu::als_detail {

constexpr int64_t kParallelWork = 1 << 15;  // rows * f below which one thread does it all

// True when the CPU has AVX2 and FMA and als_force_portable(true) is not in effect (als.cpp).
bool use_avx2();

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

}  // namespace dan::kernels::cpu::als_detail
