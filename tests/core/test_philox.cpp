// Philox4x32-10 known-answer vectors (Random123's kat_vectors) and the generator contract.
#include <gtest/gtest.h>

#include <set>

#include "core/generator.h"
#include "core/philox.h"

namespace dan {
namespace {

philox::U32x4 run(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  return philox::philox4x32_10(philox::U32x4{{c0, c1, c2, c3}}, k0, k1);
}

void expect_words(const philox::U32x4& got, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  EXPECT_EQ(got.v[0], a);
  EXPECT_EQ(got.v[1], b);
  EXPECT_EQ(got.v[2], c);
  EXPECT_EQ(got.v[3], d);
}

TEST(Philox, KnownAnswerZero) {
  expect_words(run(0, 0, 0, 0, 0, 0), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
}

TEST(Philox, KnownAnswerOnes) {
  const uint32_t f = 0xffffffffu;
  expect_words(run(f, f, f, f, f, f), 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
}

TEST(Philox, KnownAnswerPi) {
  expect_words(run(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u),
               0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST(Philox, StreamLayoutAndRanges) {
  // Element i of a 32-bit draw is word i%4 of block offset + i/4.
  const philox::U32x4 b = philox::block(42, 10);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(philox::u32_at(42, 10, i), b.v[i]);
  EXPECT_EQ(philox::u32_at(42, 9, 4), b.v[0]);
  for (uint64_t i = 0; i < 1000; ++i) {
    const float u = philox::uniform_f32(7, 0, i);
    const double d = philox::uniform_f64(7, 0, i);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
    ASSERT_TRUE(std::isfinite(philox::normal_f32(7, 0, i)));
  }
  EXPECT_NE(philox::u32_at(1, 0, 0), philox::u32_at(2, 0, 0)) << "seed must change the stream";
  EXPECT_EQ(philox::blocks_for(5, false), 2u);
  EXPECT_EQ(philox::blocks_for(5, true), 3u);
}

TEST(Generator, ReserveAdvancesAndStateRoundTrips) {
  Generator g(5);
  EXPECT_EQ(g.reserve(3), 0u);
  EXPECT_EQ(g.reserve(2), 3u);
  const GeneratorState s = g.state();
  EXPECT_EQ(s.seed, 5u);
  EXPECT_EQ(s.offset, 5u);
  Generator h;
  h.set_state(s);
  EXPECT_EQ(h.reserve(1), 5u);
  h.manual_seed(9);
  EXPECT_EQ(h.offset(), 0u);
}

}  // namespace
}  // namespace dan
