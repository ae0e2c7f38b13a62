// Philox4x32-10 (Salmon et al., SC'11): a counter-based generator that is a pure function of
// (key, counter), so the CPU and CUDA kernels below produce the same bits for the same
// (seed, offset). Every random op derives its numbers from these functions only. The integer
// and uniform draws are bit-identical across devices; normals pass through log/sin/cos and may
// differ in the last bits between glibc and CUDA's math library.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DAN_HD __host__ __device__ __forceinline__
#else
#define DAN_HD inline
#endif

namespace dan::philox {

struct U32x4 {
  uint32_t v[4];
};

DAN_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// One Philox4x32 block with 10 rounds.
DAN_HD U32x4 philox4x32_10(U32x4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo(kM0, ctr.v[0], &hi0);
    const uint32_t lo1 = mulhilo(kM1, ctr.v[2], &hi1);
    ctr = U32x4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// The block for 64-bit counter index `c` of a stream keyed by `seed`.
DAN_HD U32x4 block(uint64_t seed, uint64_t c) {
  return philox4x32_10(U32x4{{static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0u, 0u}},
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Element i of a draw that starts at counter `offset`:
//  - 32-bit draws (u32, f32 uniform, bernoulli) use word i%4 of block offset + i/4;
//  - f64 uniform uses words 2(i%2), 2(i%2)+1 of block offset + i/2;
//  - normals are Box-Muller pairs from one block (f32: 4 per block; f64: 2 per block).
DAN_HD uint32_t u32_at(uint64_t seed, uint64_t offset, uint64_t i) {
  return block(seed, offset + i / 4).v[i % 4];
}

// Uniform in [0, 1) with 24 (f32) or 53 (f64) random bits.
DAN_HD float u32_to_unit_f32(uint32_t x) { return static_cast<float>(x >> 8) * 0x1p-24f; }
DAN_HD double u64_to_unit_f64(uint32_t lo, uint32_t hi) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>(x >> 11) * 0x1p-53;
}

DAN_HD float uniform_f32(uint64_t seed, uint64_t offset, uint64_t i) {
  return u32_to_unit_f32(u32_at(seed, offset, i));
}

DAN_HD double uniform_f64(uint64_t seed, uint64_t offset, uint64_t i) {
  const U32x4 b = block(seed, offset + i / 2);
  const unsigned w = 2 * static_cast<unsigned>(i % 2);
  return u64_to_unit_f64(b.v[w], b.v[w + 1]);
}

DAN_HD float normal_f32(uint64_t seed, uint64_t offset, uint64_t i) {
  const U32x4 b = block(seed, offset + i / 4);
  const unsigned pair = static_cast<unsigned>(i % 4) & ~1u;
  // u1 in (0, 1] so log() is finite.
  const float u1 = 1.0f - u32_to_unit_f32(b.v[pair]);
  const float u2 = u32_to_unit_f32(b.v[pair + 1]);
  const float r = ::sqrtf(-2.0f * ::logf(u1));
  const float th = 6.2831853071795864769f * u2;
  return (i % 2 == 0) ? r * ::cosf(th) : r * ::sinf(th);
}

DAN_HD double normal_f64(uint64_t seed, uint64_t offset, uint64_t i) {
  const U32x4 b = block(seed, offset + i / 2);
  const double u1 = 1.0 - u64_to_unit_f64(b.v[0], b.v[1]);
  const double u2 = u64_to_unit_f64(b.v[2], b.v[3]);
  const double r = ::sqrt(-2.0 * ::log(u1));
  const double th = 6.283185307179586476925 * u2;
  return (i % 2 == 0) ? r * ::cos(th) : r * ::sin(th);
}

// Number of counter values a draw of n elements consumes (advance of the generator offset).
DAN_HD uint64_t blocks_for(uint64_t n, bool wide) { return wide ? (n + 1) / 2 : (n + 3) / 4; }

}  // namespace dan::philox
