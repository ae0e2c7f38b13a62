// Philox-4x32-10 blocks in a loop that vectorizes: the rounds of philox::philox4x32_10
// (core/philox.h) written over many counters at once (32 x 32 -> 64-bit multiplies), same
// arithmetic, same bits. Shared by the random fills / dropout and the fused attention's dropout.
#pragma once

#include <cstdint>

namespace dan::kernels::cpu {

// words[4 l + k] = philox::block(seed, c0 + l).v[k] for l < nblocks. Always inlined so the
// loop is vectorized for the caller's target (its target_clones variant).
[[gnu::always_inline]] inline void philox_blocks(uint64_t seed, uint64_t c0, int64_t nblocks,
                                                 uint32_t* words) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  const uint32_t s0 = static_cast<uint32_t>(seed), s1 = static_cast<uint32_t>(seed >> 32);
#pragma omp simd
  for (int64_t l = 0; l < nblocks; ++l) {
    const uint64_t c = c0 + static_cast<uint64_t>(l);
    uint32_t x0 = static_cast<uint32_t>(c), x1 = static_cast<uint32_t>(c >> 32), x2 = 0, x3 = 0;
    uint32_t k0 = s0, k1 = s1;
#pragma GCC unroll 10
    for (int r = 0; r < 10; ++r) {
      const uint64_t p0 = static_cast<uint64_t>(kM0) * x0;
      const uint64_t p1 = static_cast<uint64_t>(kM1) * x2;
      const uint32_t y0 = static_cast<uint32_t>(p1 >> 32) ^ x1 ^ k0;
      const uint32_t y2 = static_cast<uint32_t>(p0 >> 32) ^ x3 ^ k1;
      x1 = static_cast<uint32_t>(p1);
      x3 = static_cast<uint32_t>(p0);
      x0 = y0;
      x2 = y2;
      k0 += kW0;
      k1 += kW1;
    }
    words[4 * l] = x0;
    words[4 * l + 1] = x1;
    words[4 * l + 2] = x2;
    words[4 * l + 3] = x3;
  }
}

}  // namespace dan::kernels::cpu
