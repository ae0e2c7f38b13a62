// Training-pair samplers (recsys/sampler.h): top-N against hand-computed and brute-force
// references, the shape of a top_random epoch, the threshold property, and determinism in
// (seed, epoch) independent of the thread count and the GEMM chunking.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "autograd/ops.h"
#include "core/threads.h"
#include "recsys/sampler.h"

using namespace dan;
using recsys::Pairs;
using recsys::SamplerConfig;
using recsys::SampleStrategy;

namespace {

// Restores the thread count a test changes.
struct ThreadsRestore {
  int saved = num_threads();
  ~ThreadsRestore() { set_num_threads(saved); }
};

Tensor randn_t(int64_t r, int64_t c, uint64_t seed) {
  Generator g(seed);
  return randn({r, c}, g);
}

double dot(const Tensor& U, int64_t u, const Tensor& V, int64_t i) {
  double s = 0;
  for (int64_t k = 0; k < U.size(1); ++k) s += U.at({u, k}) * V.at({i, k});
  return s;
}

std::vector<std::tuple<int32_t, int32_t, float>> as_tuples(const Pairs& p) {
  std::vector<std::tuple<int32_t, int32_t, float>> t;
  for (int64_t i = 0; i < p.size(); ++i) t.emplace_back(p.users[i], p.items[i], p.targets[i]);
  return t;
}

void expect_same(const Pairs& a, const Pairs& b) {
  EXPECT_EQ(a.users, b.users);
  EXPECT_EQ(a.items, b.items);
  EXPECT_EQ(a.targets, b.targets);
}

}  // namespace

TEST(Sampler, TopNHandComputed) {
  // Scores U V^T: user 0 = [1, 3, -2, 3, 0.5], user 1 = [-1, 0, 2, 1, 2].
  const Tensor U = from_doubles({1, 0, 0, 1}, {2, 2});
  const Tensor V = from_doubles({1, -1, 3, 0, -2, 2, 3, 1, 0.5, 2}, {5, 2});
  const recsys::TopN t = recsys::top_n_items(U, V, 3);
  EXPECT_EQ(t.n, 3);
  // Ties (3 at items 1 and 3; 2 at items 2 and 4) go to the lower item.
  EXPECT_EQ(t.items, (std::vector<int32_t>{1, 3, 0, 2, 4, 3}));
  EXPECT_EQ(t.scores, (std::vector<float>{3, 3, 1, 2, 2, 1}));
  // n larger than the item count is capped; a user subset selects rows of U.
  const recsys::TopN all = recsys::top_n_items(U, V, 10, {1});
  EXPECT_EQ(all.n, 5);
  EXPECT_EQ(all.items, (std::vector<int32_t>{2, 4, 3, 1, 0}));
}

TEST(Sampler, TopNMatchesBruteForceAcrossChunks) {
  const Tensor U = randn_t(37, 6, 1), V = randn_t(53, 6, 2);
  const recsys::TopN a = recsys::top_n_items(U, V, 7, {}, 5);
  const recsys::TopN b = recsys::top_n_items(U, V, 7, {}, 1000);
  EXPECT_EQ(a.items, b.items);
  EXPECT_EQ(a.scores, b.scores);
  for (int64_t u = 0; u < 37; ++u) {
    std::vector<std::pair<double, int>> s;
    for (int i = 0; i < 53; ++i) s.emplace_back(-dot(U, u, V, i), i);
    std::sort(s.begin(), s.end());
    for (int64_t j = 0; j < 7; ++j) {
      EXPECT_EQ(a.items[u * 7 + j], s[j].second) << "user " << u << " rank " << j;
      EXPECT_NEAR(a.scores[u * 7 + j], -s[j].first, 1e-5);
    }
  }
}

TEST(Sampler, TopRandomEpochShape) {
  const Tensor U = randn_t(20, 4, 3), V = randn_t(30, 4, 4);
  SamplerConfig c;
  c.top_n = 5;
  c.n_random = 3;
  c.shuffle = false;
  c.seed = 9;
  c.chunk_users = 7;
  const Pairs p = recsys::sample_epoch(U, V, c, 0);
  ASSERT_EQ(p.size(), 20 * 8);
  const recsys::TopN t = recsys::top_n_items(U, V, 5);
  for (int64_t u = 0; u < 20; ++u) {
    for (int64_t j = 0; j < 8; ++j) {
      const int64_t i = u * 8 + j;
      EXPECT_EQ(p.users[i], u);
      ASSERT_GE(p.items[i], 0);
      ASSERT_LT(p.items[i], 30);
      if (j < 5) {
        EXPECT_EQ(p.items[i], t.items[u * 5 + j]);
      }
      EXPECT_NEAR(p.targets[i], dot(U, u, V, p.items[i]), 1e-5);
    }
  }
  // Shuffling permutes the same multiset of pairs.
  c.shuffle = true;
  const Pairs s = recsys::sample_epoch(U, V, c, 0);
  auto a = as_tuples(p), b = as_tuples(s);
  EXPECT_NE(a, b);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  EXPECT_EQ(s.num_batches(64), 3);
}

TEST(Sampler, RandomItemsAreRoughlyUniform) {
  const Tensor U = randn_t(200, 2, 5), V = randn_t(10, 2, 6);
  SamplerConfig c;
  c.top_n = 0;
  c.n_random = 50;
  const Pairs p = recsys::sample_epoch(U, V, c, 3);
  std::vector<int> count(10, 0);
  for (int32_t i : p.items) ++count[i];
  // 10000 draws over 10 items: each count ~ 1000 +- 30 (binomial sd); 5 sd bound.
  for (int c0 : count) EXPECT_NEAR(c0, 1000, 150);
}

TEST(Sampler, DeterministicInSeedAndEpochOnly) {
  ThreadsRestore restore;
  // Big enough that chunks of 128 users run in parallel (and chunks of 7 do not).
  const Tensor U = randn_t(400, 9, 7), V = randn_t(300, 9, 8);
  for (const SampleStrategy st : {SampleStrategy::top_random, SampleStrategy::threshold}) {
    SamplerConfig c;
    c.strategy = st;
    c.top_n = 6;
    c.n_random = 6;
    c.lo = -1;
    c.hi = 1;
    c.pairs_per_epoch = 500;
    c.seed = 11;
    set_num_threads(1);
    c.chunk_users = 128;
    const Pairs a = recsys::sample_epoch(U, V, c, 4);
    set_num_threads(2);
    const Pairs b = recsys::sample_epoch(U, V, c, 4);
    expect_same(a, b);
    c.chunk_users = 7;
    expect_same(a, recsys::sample_epoch(U, V, c, 4));
    const Pairs other_epoch = recsys::sample_epoch(U, V, c, 5);
    EXPECT_NE(a.items, other_epoch.items);
    c.seed = 12;
    const Pairs other_seed = recsys::sample_epoch(U, V, c, 4);
    EXPECT_NE(a.items, other_seed.items);
  }
}

TEST(Sampler, ThresholdKeepsOnlyConfidentPairs) {
  const Tensor U = randn_t(40, 5, 9), V = randn_t(70, 5, 10);
  SamplerConfig c;
  c.strategy = SampleStrategy::threshold;
  c.lo = -1.5;
  c.hi = 2.0;
  c.shuffle = false;
  // pairs_per_epoch = 0: exactly the pairs outside [lo, hi], user-major, items ascending.
  const Pairs all = recsys::sample_epoch(U, V, c, 0);
  std::vector<std::pair<int32_t, int32_t>> want;
  for (int32_t u = 0; u < 40; ++u) {
    for (int32_t i = 0; i < 70; ++i) {
      const double s = dot(U, u, V, i);
      if (std::abs(s + 1.5) < 1e-4 || std::abs(s - 2.0) < 1e-4) continue;  // f32 vs f64 edge
      if (s < -1.5 || s > 2.0) want.emplace_back(u, i);
    }
  }
  std::vector<std::pair<int32_t, int32_t>> got;
  for (int64_t k = 0; k < all.size(); ++k) {
    EXPECT_TRUE(all.targets[k] < -1.5f || all.targets[k] > 2.0f) << all.targets[k];
    EXPECT_NEAR(all.targets[k], dot(U, all.users[k], V, all.items[k]), 1e-5);
    const double s = dot(U, all.users[k], V, all.items[k]);
    if (std::abs(s + 1.5) < 1e-4 || std::abs(s - 2.0) < 1e-4) continue;
    got.emplace_back(all.users[k], all.items[k]);
  }
  EXPECT_EQ(got, want);
  ASSERT_GT(all.size(), 300);

  // A sample of 300 of them: distinct pairs, all from the kept set.
  c.pairs_per_epoch = 300;
  c.shuffle = true;
  const Pairs s = recsys::sample_epoch(U, V, c, 2);
  ASSERT_EQ(s.size(), 300);
  std::set<std::pair<int32_t, int32_t>> kept, seen;
  for (int64_t k = 0; k < all.size(); ++k) kept.emplace(all.users[k], all.items[k]);
  for (int64_t k = 0; k < s.size(); ++k) {
    EXPECT_TRUE(kept.count({s.users[k], s.items[k]})) << s.users[k] << "," << s.items[k];
    EXPECT_TRUE(seen.emplace(s.users[k], s.items[k]).second) << "duplicate pair";
    EXPECT_TRUE(s.targets[k] < -1.5f || s.targets[k] > 2.0f);
  }
  // More pairs asked than kept: all of them.
  c.pairs_per_epoch = all.size() + 1000;
  EXPECT_EQ(recsys::sample_epoch(U, V, c, 2).size(), all.size());
}

TEST(Sampler, UserSubsetAndErrors) {
  const Tensor U = randn_t(10, 3, 1), V = randn_t(12, 3, 2);
  SamplerConfig c;
  c.top_n = 2;
  c.n_random = 1;
  c.shuffle = false;
  const Pairs p = recsys::sample_epoch(U, V, c, 0, {7, 2});
  ASSERT_EQ(p.size(), 6);
  EXPECT_EQ(p.users, (std::vector<int32_t>{7, 7, 7, 2, 2, 2}));
  EXPECT_THROW(recsys::sample_epoch(U, V, c, 0, {10}), Error);
  EXPECT_THROW(recsys::sample_epoch(U, randn_t(12, 4, 2), c, 0), Error);
  c.strategy = SampleStrategy::threshold;
  c.lo = 1;
  c.hi = 0;
  EXPECT_THROW(recsys::sample_epoch(U, V, c, 0), Error);
  EXPECT_EQ(recsys::parse_sample_strategy("threshold"), SampleStrategy::threshold);
  EXPECT_THROW(recsys::parse_sample_strategy("topn"), Error);
}
