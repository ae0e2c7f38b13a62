// Tests for models/baselines on tiny hand-computed examples: popularity counts, metadata
// broadcast, WMF dot products, item-kNN similarities, neighbour lists and scores (binary and
// value-weighted), content-kNN cosines, row z-scoring and the blend, plus argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/philox.h"
#include "core/threads.h"
#include "models/baselines/baselines.h"

using namespace dan;
using namespace dan::baselines;
using dan::recsys::Csr;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected dan::Error";
  return "";
}

void expect_contains(const std::string& msg, const std::vector<std::string>& parts) {
  for (const std::string& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' in: " << msg;
}

Csr csr(int64_t cols, const std::vector<std::vector<std::pair<int32_t, float>>>& rows) {
  std::vector<int32_t> r, c;
  std::vector<float> v;
  for (size_t i = 0; i < rows.size(); ++i)
    for (const auto& [col, val] : rows[i]) {
      r.push_back(static_cast<int32_t>(i));
      c.push_back(col);
      v.push_back(val);
    }
  return Csr::from_triplets(static_cast<int64_t>(rows.size()), cols, r, c, v);
}

void expect_matrix(const Tensor& t, const std::vector<std::vector<double>>& want, double tol) {
  ASSERT_EQ(t.dim(), 2);
  ASSERT_EQ(t.size(0), static_cast<int64_t>(want.size()));
  ASSERT_EQ(t.dtype(), DType::f32);
  ASSERT_TRUE(t.device().is_cpu());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(t.size(1), static_cast<int64_t>(want[i].size()));
    for (size_t j = 0; j < want[i].size(); ++j)
      EXPECT_NEAR(t.at({static_cast<int64_t>(i), static_cast<int64_t>(j)}), want[i][j], tol)
          << "at (" << i << ", " << j << ")";
  }
}

// users x items, binary interactions:
//   u0: {0, 1}   u1: {0, 1, 2}   u2: {1, 2, 3}
// columns: item0 {u0, u1}, item1 {u0, u1, u2}, item2 {u1, u2}, item3 {u2};
// norms sqrt2, sqrt3, sqrt2, 1; dots (0,1)=2 (0,2)=1 (0,3)=0 (1,2)=2 (1,3)=1 (2,3)=1.
Csr small_train() {
  return csr(
      4, {{{0, 1.f}, {1, 1.f}}, {{0, 1.f}, {1, 1.f}, {2, 1.f}}, {{1, 1.f}, {2, 1.f}, {3, 1.f}}});
}

const double s01 = 2 / std::sqrt(6.0);  // 0.8164966 = sim(0, 1) = sim(1, 2)
const double s02 = 0.5;                 // 1 / (sqrt2 sqrt2)
const double s13 = 1 / std::sqrt(3.0);  // 0.5773503
const double s23 = 1 / std::sqrt(2.0);  // 0.7071068

TEST(Baselines, RandomIsPhiloxUniform) {
  const Tensor a = random_scores(3, 5, 11);
  ASSERT_EQ(a.shape(), (Shape{3, 5}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      const double x = a.at({i, j});
      EXPECT_EQ(x,
                static_cast<double>(philox::uniform_f32(11, 0, static_cast<uint64_t>(i * 5 + j))));
      EXPECT_GE(x, 0.0);
      EXPECT_LT(x, 1.0);
    }
  EXPECT_EQ(random_scores(3, 5, 11).to_vector(), a.to_vector());
  EXPECT_NE(random_scores(3, 5, 12).to_vector(), a.to_vector());
}

TEST(Baselines, PopularityAndMetadata) {
  // Train counts per item: [2, 3, 2, 1]; candidates (3, 1, 0) -> [1, 3, 2] in every row.
  const Tensor p = popularity_scores(small_train(), 2, {3, 1, 0});
  expect_matrix(p, {{1, 3, 2}, {1, 3, 2}}, 0);
  // An item nobody rated in train (column 4 of a wider matrix) scores 0: cold items tie.
  const Csr wide = csr(6, {{{0, 1.f}}, {{0, 1.f}}});
  expect_matrix(popularity_scores(wide, 1, {4, 5, 0}), {{0, 0, 2}}, 0);
  expect_contains(error_of([] { popularity_scores(small_train(), 1, {4}); }),
                  {"popularity_scores", "cands[0] = 4", "[0, 4)"});

  const std::vector<float> meta = {std::log1p(10.f), std::log1p(1000.f), std::log1p(0.f)};
  expect_matrix(metadata_scores(meta, 2, {1, 2}),
                {{std::log1p(1000.0), 0}, {std::log1p(1000.0), 0}}, 1e-6);
  expect_contains(error_of([&] {
                    metadata_scores({1.f, std::nanf("")}, 1, {0, 1});
                  }),
                  {"item 1", "NaN"});
  expect_contains(error_of([&] { metadata_scores(meta, 1, {3}); }), {"cands[0] = 3"});
}

TEST(Baselines, WmfDotProducts) {
  // U = [[1, 2], [3, 4]], V = [[1, 0], [0, 1], [1, 1]].
  const Tensor U = from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  const Tensor V = from_vector(std::vector<float>{1, 0, 0, 1, 1, 1}, {3, 2});
  // rows (1, 0), cands (2, 0): user 1: [3 + 4, 3] = [7, 3]; user 0: [1 + 2, 1] = [3, 1].
  expect_matrix(wmf_scores(U, V, {1, 0}, {2, 0}), {{7, 3}, {3, 1}}, 0);
  expect_contains(error_of([&] { wmf_scores(U, V, {0}, {3}); }),
                  {"wmf_scores", "cands[0] = 3", "warm items only"});
  expect_contains(error_of([&] { wmf_scores(U, V, {2}, {0}); }), {"rows[0] = 2"});
  const Tensor V3 = from_vector(std::vector<float>{1, 0, 0, 1, 1, 1}, {2, 3});
  expect_contains(error_of([&] { wmf_scores(U, V3, {0}, {0}); }), {"U [users, r]", "[2, 3]"});
}

TEST(Baselines, ItemKnnNeighboursAndScoresByHand) {
  ItemKnnConfig cfg;
  cfg.neighbours = 2;
  const std::vector<Neighbours> nb = item_neighbours(small_train(), {0, 1, 2, 3}, cfg);
  // item 0: 1 (0.8165), 2 (0.5); item 3 has sim 0 and is no neighbour.
  EXPECT_EQ(nb[0].items, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(nb[0].sims[0], s01, 1e-6);
  EXPECT_NEAR(nb[0].sims[1], s02, 1e-6);
  // item 1: items 0 and 2 tie at 0.8165 -> index order; item 3 (0.577) is cut by K = 2.
  EXPECT_EQ(nb[1].items, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(nb[2].items, (std::vector<int32_t>{1, 3}));  // 0.8165, 0.7071 (item 0: 0.5)
  EXPECT_NEAR(nb[2].sims[1], s23, 1e-6);
  EXPECT_EQ(nb[3].items, (std::vector<int32_t>{2, 1}));  // 0.7071, 0.5774
  EXPECT_NEAR(nb[3].sims[1], s13, 1e-6);

  // score(u, j) = sum of sim(i, j) over u's items i among j's neighbours:
  // u0 {0, 1}: j0 {1,2}: s01; j1 {0,2}: s01; j2 {1,3}: s01; j3 {2,1}: s13.
  // u2 {1, 2, 3}: j0: s01 + s02; j1 {0,2}: s01; j2: s01 + s23; j3: s23 + s13.
  const Tensor s = item_knn_scores(small_train(), {0, 2, 0}, {0, 1, 2, 3}, cfg);
  expect_matrix(
      s, {{s01, s01, s01, s13}, {s01 + s02, s01, s01 + s23, s23 + s13}, {s01, s01, s01, s13}},
      1e-6);

  // K = 1 keeps only the best neighbour: u2 at j3: item 2 only -> s23.
  cfg.neighbours = 1;
  EXPECT_NEAR(item_knn_scores(small_train(), {2}, {3}, cfg).item(), s23, 1e-6);
}

TEST(Baselines, ItemKnnValueWeighted) {
  // Values: u0 {0: 2, 1: 1}, u1 {0: 1, 1: 1, 2: 1}, u2 {1: 1, 2: 1, 3: 1}.
  // Columns: x0 = (2, 1, 0), x1 = (1, 1, 1), x2 = (0, 1, 1), x3 = (0, 0, 1).
  // sim(0,1) = 3 / (sqrt5 sqrt3) = 0.7745967, sim(0,2) = 1 / (sqrt5 sqrt2) = 0.3162278,
  // sim(1,2) = 2 / sqrt6 = 0.8164966, sim(1,3) = 1 / sqrt3, sim(2,3) = 1 / sqrt2.
  const Csr train = csr(
      4, {{{0, 2.f}, {1, 1.f}}, {{0, 1.f}, {1, 1.f}, {2, 1.f}}, {{1, 1.f}, {2, 1.f}, {3, 1.f}}});
  ItemKnnConfig cfg;
  cfg.neighbours = 2;
  cfg.binary = false;
  const std::vector<Neighbours> nb = item_neighbours(train, {0, 1}, cfg);
  EXPECT_EQ(nb[0].items, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(nb[0].sims[0], 3 / std::sqrt(15.0), 1e-6);
  EXPECT_NEAR(nb[0].sims[1], 1 / std::sqrt(10.0), 1e-6);
  EXPECT_EQ(nb[1].items, (std::vector<int32_t>{2, 0}));  // 0.8165 > 0.7746 > 0.5774
  // u0 at j1: neighbours {2, 0}; u0 has item 0 with value 2 -> 2 * 0.7745967.
  // u0 at j0: neighbours {1, 2}; u0 has item 1 with value 1 -> 0.7745967.
  expect_matrix(item_knn_scores(train, {0}, {1, 0}, cfg),
                {{2 * 3 / std::sqrt(15.0), 3 / std::sqrt(15.0)}}, 1e-6);
}

TEST(Baselines, ItemKnnColdItemsAndErrors) {
  // Item 4 has no train interaction: no neighbours, score 0 for everyone.
  const Csr train = csr(5, {{{0, 1.f}, {1, 1.f}}, {{1, 1.f}}});
  expect_matrix(item_knn_scores(train, {0, 1}, {4}), {{0}, {0}}, 0);
  EXPECT_TRUE(item_neighbours(train, {4})[0].items.empty());
  ItemKnnConfig bad;
  bad.neighbours = 0;
  expect_contains(error_of([&] { item_neighbours(train, {0}, bad); }), {"neighbours = 0"});
  expect_contains(error_of([&] { item_knn_scores(train, {2}, {0}); }), {"rows[0] = 2"});
  expect_contains(error_of([&] { item_knn_scores(train, {0}, {5}); }), {"items[0] = 5"});
}

TEST(Baselines, ItemKnnSameWithOneAndTwoThreads) {
  std::mt19937 rng(5);
  std::vector<std::vector<std::pair<int32_t, float>>> rows(200);
  for (auto& r : rows)
    for (int32_t c = 0; c < 300; ++c)
      if (rng() % 12 == 0) r.emplace_back(c, static_cast<float>(rng() % 10 + 1));
  const Csr train = csr(300, rows);
  std::vector<int32_t> users(200), items(300);
  for (int32_t i = 0; i < 200; ++i) users[i] = i;
  for (int32_t i = 0; i < 300; ++i) items[i] = i;
  ItemKnnConfig cfg;
  cfg.binary = false;
  const int before = num_threads();
  set_num_threads(1);
  const std::vector<double> a = item_knn_scores(train, users, items, cfg).to_vector();
  set_num_threads(2);
  const std::vector<double> b = item_knn_scores(train, users, items, cfg).to_vector();
  set_num_threads(before);
  EXPECT_EQ(a, b);
}

TEST(Baselines, ContentKnnByHand) {
  // F: item0 = [1, 0], item1 = [0, 2], item2 = [3, 4]; u0 rated item0 (value 1) and item1
  // (value 3); u1 rated nothing.
  const Tensor F = from_vector(std::vector<float>{1, 0, 0, 2, 3, 4}, {3, 2});
  const Csr train = csr(3, {{{0, 1.f}, {1, 3.f}}, {}});
  // Unweighted profile: mean = [0.5, 1] -> unit [0.4472136, 0.8944272]; cosines with
  // [1, 0], [0, 1], [0.6, 0.8]: 0.4472136, 0.8944272, 0.2683282 + 0.7155418 = 0.9838699.
  expect_matrix(content_knn_scores(F, train, {0, 1}, {0, 1, 2}),
                {{0.4472136, 0.8944272, 0.9838699}, {0, 0, 0}}, 1e-6);
  // Weighted: (1 [1, 0] + 3 [0, 2]) / 4 = [0.25, 1.5] -> unit [0.1643990, 0.9863939];
  // cosine with [0.6, 0.8]: 0.0986394 + 0.7891151 = 0.8877545.
  expect_matrix(content_knn_scores(F, train, {0}, {0, 2}, true), {{0.1643990, 0.8877545}}, 1e-6);
  expect_contains(error_of([&] { content_knn_scores(F, csr(4, {{}}), {0}, {0}); }),
                  {"features must be [items, d]", "(4)", "[3, 2]"});
  expect_contains(error_of([&] { content_knn_scores(F, train, {0}, {3}); }), {"cands[0] = 3"});
  const Tensor Fnan = from_vector(std::vector<float>{1, 0, 0, std::nanf(""), 3, 4}, {3, 2});
  expect_contains(error_of([&] { content_knn_scores(Fnan, train, {0}, {0}); }), {"features[1, 1]"});
}

TEST(Baselines, ZscoreAndBlendByHand) {
  // a row 0 [1, 2, 3]: mean 2, population std sqrt(2/3) -> [-1.2247449, 0, 1.2247449];
  // a row 1 [5, 5, 5]: std 0 -> zeros.
  // b row 0 [3, 0, 0]: mean 1, std sqrt2 -> [1.4142136, -0.7071068, -0.7071068];
  // b row 1 [1, 2, 3] -> [-1.2247449, 0, 1.2247449].
  const Tensor a = from_vector(std::vector<float>{1, 2, 3, 5, 5, 5}, {2, 3});
  const Tensor b = from_vector(std::vector<float>{3, 0, 0, 1, 2, 3}, {2, 3});
  expect_matrix(zscore_rows(a), {{-1.2247449, 0, 1.2247449}, {0, 0, 0}}, 1e-6);
  // 0.25 za + 0.75 zb: row 0: [-0.3061862 + 1.0606602, -0.5303301, 0.3061862 - 0.5303301];
  // row 1: [-0.9185587, 0, 0.9185587].
  expect_matrix(blend(a, b, 0.25),
                {{0.7544740, -0.5303301, -0.2241439}, {-0.9185587, 0, 0.9185587}}, 1e-6);
  expect_matrix(blend(a, b, 1.0), {{-1.2247449, 0, 1.2247449}, {0, 0, 0}}, 1e-6);
  expect_contains(error_of([&] {
                    blend(a, zeros({3, 2}), 0.5);
                  }),
                  {"same shape", "[2, 3]", "[3, 2]"});
  expect_contains(error_of([&] { blend(a, b, 1.5); }), {"w = 1.5"});
  const Tensor n = from_vector(std::vector<float>{1, 2, 3, 5, std::nanf(""), 5}, {2, 3});
  expect_contains(error_of([&] { blend(n, b, 0.5); }), {"row 1, column 1"});
}

}  // namespace
