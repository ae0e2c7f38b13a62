// Tests for recsys/split: the Philox stream and shuffle against known answers, the item split
// (determinism, fractions, disjointness, the warm hold-out), the split file (round trip and
// mismatch errors), confidence functions, and build_interactions on a hand-built dataset with
// hand-computed matrices.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <numeric>
#include <set>

#include "core/safetensors.h"
#include "recsys/split.h"
#include "recsys/synthetic.h"

namespace dan::recsys {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / fmt::format("dan_split_{}_{}", ::getpid(), name)).string();
}

// Six anime (ids 10..15), four users (ids 100..103), eleven ratings sorted by (user, item).
Dataset tiny_dataset() {
  Dataset ds;
  for (int i = 0; i < 6; ++i) {
    Anime a;
    a.id = 10 + i;
    ds.anime.push_back(a);
    ds.item_of_id[a.id] = i;
  }
  ds.user_ids = {100, 101, 102, 103};
  ds.ratings = {{0, 0, 8}, {0, 1, 3}, {0, 2, 9},  {0, 3, 2},  // entries 0-3
                {1, 0, 5}, {1, 3, 7}, {1, 4, 10},             // 4-6
                {2, 1, 9}, {2, 2, 6},                         // 7-8
                {3, 2, 4}, {3, 4, 2}};                        // 9-10
  return ds;
}

// Parts by hand: items 0, 1, 4 train, 2 val, 3 test, 5 unrated; entries 4 and 7 held out.
Split tiny_split() {
  Split s;
  s.item_part = {Part::train, Part::train, Part::val, Part::test, Part::train, Part::none};
  s.train_items = {0, 1, 4};
  s.val_items = {2};
  s.test_items = {3};
  s.rating_holdout = {0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0};
  return s;
}

void expect_csr(const Csr& m, int64_t rows, int64_t cols, const std::vector<int64_t>& indptr,
                const std::vector<int32_t>& indices, const std::vector<float>& values,
                const char* what) {
  SCOPED_TRACE(what);
  m.validate(what);
  EXPECT_EQ(m.rows, rows);
  EXPECT_EQ(m.cols, cols);
  EXPECT_EQ(m.indptr, indptr);
  EXPECT_EQ(m.indices, indices);
  ASSERT_EQ(m.values.size(), values.size());
  for (size_t k = 0; k < values.size(); ++k) EXPECT_FLOAT_EQ(m.values[k], values[k]) << k;
}

Dataset small_world(uint64_t seed = 3) {
  SyntheticConfig c;
  c.seed = seed;
  c.items = 400;
  c.users = 300;
  c.reviews = 0;
  c.rec_texts = 0;
  return make_synthetic(c);
}

// Known answers from an independent Python transcription of Philox4x32-10 (itself checked
// against Random123's vectors), Lemire's bounded draw and the Fisher-Yates loop of split.h.
TEST(RecsysSplit, PhiloxStreamAndShuffleKnownAnswers) {
  PhiloxStream s(3, 5);
  const std::vector<uint32_t> words = {2329659899u, 723453337u,  3569908640u,
                                       2212838424u, 3646345838u, 1626222681u};
  for (const uint32_t w : words) EXPECT_EQ(s.u32(), w);
  PhiloxStream b(3, 5);
  for (const uint32_t want : {542u, 168u, 831u, 515u, 848u, 378u}) EXPECT_EQ(b.below(1000), want);

  std::vector<int> v(10);
  std::iota(v.begin(), v.end(), 0);
  PhiloxStream s42(42, 0);
  philox_shuffle(v, s42);
  EXPECT_EQ(v, (std::vector<int>{7, 3, 8, 9, 1, 5, 2, 0, 4, 6}));
  std::iota(v.begin(), v.end(), 0);
  PhiloxStream s7(7, uint64_t{1} << 62);
  philox_shuffle(v, s7);
  EXPECT_EQ(v, (std::vector<int>{9, 8, 7, 0, 3, 6, 5, 4, 2, 1}));
}

TEST(RecsysSplit, TinySplitKnownAnswer) {
  // Rated items 0..4 shuffled by PhiloxStream(5, 0): [4, 1, 2, 0, 3] (Python reference);
  // round(0.6 * 5) = 3 train, round(0.2 * 5) = 1 val, 1 test.
  SplitConfig c;
  c.seed = 5;
  c.train = 0.6;
  c.val = 0.2;
  c.warm_holdout = 0;
  const Split s = make_split(tiny_dataset(), c);
  EXPECT_EQ(s.train_items, (std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(s.val_items, (std::vector<int32_t>{0}));
  EXPECT_EQ(s.test_items, (std::vector<int32_t>{3}));
  EXPECT_EQ(s.item_part[5], Part::none);
  EXPECT_EQ(s.item_part[0], Part::val);
  EXPECT_EQ(s.rating_holdout, std::vector<uint8_t>(11, 0));
}

TEST(RecsysSplit, SameSeedSameSplitOtherSeedOtherSplit) {
  const Dataset ds = small_world();
  SplitConfig c;
  c.seed = 11;
  const Split a = make_split(ds, c), b = make_split(ds, c);
  EXPECT_EQ(a.item_part, b.item_part);
  EXPECT_EQ(a.rating_holdout, b.rating_holdout);
  c.seed = 12;
  const Split d = make_split(ds, c);
  EXPECT_NE(a.item_part, d.item_part);
  EXPECT_NE(a.rating_holdout, d.rating_holdout);
}

TEST(RecsysSplit, FractionsDisjointPartsAndWarmHoldout) {
  const Dataset ds = small_world();
  SplitConfig c;
  c.seed = 4;
  c.warm_holdout = 0.2;
  const Split s = make_split(ds, c);
  std::vector<int> rating_count(static_cast<size_t>(ds.num_items()), 0);
  for (const Rating& r : ds.ratings) ++rating_count[static_cast<size_t>(r.item)];
  size_t n_rated = 0;
  for (size_t i = 0; i < rating_count.size(); ++i) {
    n_rated += rating_count[i] > 0;
    EXPECT_EQ(s.item_part[i] == Part::none, rating_count[i] == 0) << "item " << i;
  }
  const auto round = [](double x) { return static_cast<size_t>(std::floor(x + 0.5)); };
  EXPECT_EQ(s.train_items.size(), round(0.8 * static_cast<double>(n_rated)));
  EXPECT_EQ(s.val_items.size(), round(0.1 * static_cast<double>(n_rated)));
  EXPECT_EQ(s.train_items.size() + s.val_items.size() + s.test_items.size(), n_rated);
  std::set<int32_t> all;
  for (const Part p : {Part::train, Part::val, Part::test}) {
    const auto& items = s.items(p);
    EXPECT_TRUE(std::is_sorted(items.begin(), items.end()));
    for (const int32_t i : items) {
      EXPECT_EQ(s.item_part[static_cast<size_t>(i)], p);
      EXPECT_TRUE(all.insert(i).second) << "item " << i << " in two parts";
    }
  }
  // Per user: round(0.2 m) of the m train-item ratings held out, at most m - 1; only train items.
  std::vector<size_t> m(static_cast<size_t>(ds.num_users()), 0), held(m.size(), 0);
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    const Rating& r = ds.ratings[i];
    const bool train = s.item_part[static_cast<size_t>(r.item)] == Part::train;
    if (s.rating_holdout[i]) {
      EXPECT_TRUE(train) << "held-out rating " << i << " not on a train item";
    }
    m[static_cast<size_t>(r.user)] += train;
    held[static_cast<size_t>(r.user)] += s.rating_holdout[i];
  }
  size_t total_held = 0;
  for (size_t u = 0; u < m.size(); ++u) {
    if (m[u] == 0) continue;
    EXPECT_EQ(held[u], std::min(round(0.2 * static_cast<double>(m[u])), m[u] - 1)) << "user " << u;
    total_held += held[u];
  }
  EXPECT_GT(total_held, 0u);
}

TEST(RecsysSplit, HoldoutKeepsOneFitRatingPerUser) {
  const Dataset ds = small_world();
  SplitConfig c;
  c.warm_holdout = 0.999;
  const Split s = make_split(ds, c);
  std::vector<int> fit(static_cast<size_t>(ds.num_users()), 0), train(fit.size(), 0);
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    const Rating& r = ds.ratings[i];
    if (s.item_part[static_cast<size_t>(r.item)] != Part::train) continue;
    ++train[static_cast<size_t>(r.user)];
    fit[static_cast<size_t>(r.user)] += !s.rating_holdout[i];
  }
  for (size_t u = 0; u < fit.size(); ++u) {
    // round(0.999 m) = m for m < 500, capped at m - 1: exactly one fit rating left.
    if (train[u] > 0) {
      EXPECT_EQ(fit[u], 1) << "user " << u;
    }
  }
}

TEST(RecsysSplit, RejectsBadFractions) {
  const Dataset ds = tiny_dataset();
  SplitConfig c;
  c.train = 0.9;
  c.val = 0.2;
  EXPECT_THAT(error_of([&] { make_split(ds, c); }),
              HasSubstr("make_split: train 0.9 and val 0.2 must be fractions"));
  c = SplitConfig{};
  c.warm_holdout = 1;
  EXPECT_THAT(error_of([&] { make_split(ds, c); }), HasSubstr("warm_holdout 1 must be in [0, 1)"));
}

TEST(RecsysSplit, SaveLoadRoundTripAndMismatchErrors) {
  const Dataset ds = small_world();
  SplitConfig c;
  c.seed = 77;
  c.train = 0.7;
  c.val = 0.15;
  c.warm_holdout = 0.3;
  const Split s = make_split(ds, c);
  const std::string path = temp_path("split.safetensors");
  s.save(path);
  const Split t = Split::load(path, ds, c);
  EXPECT_EQ(t.config.seed, 77u);
  EXPECT_EQ(t.config.train, 0.7);
  EXPECT_EQ(t.config.val, 0.15);
  EXPECT_EQ(t.config.warm_holdout, 0.3);
  EXPECT_EQ(t.item_part, s.item_part);
  EXPECT_EQ(t.train_items, s.train_items);
  EXPECT_EQ(t.val_items, s.val_items);
  EXPECT_EQ(t.test_items, s.test_items);
  EXPECT_EQ(t.rating_holdout, s.rating_holdout);
  EXPECT_EQ(t.dataset_fingerprint, s.dataset_fingerprint);

  // Another dataset with other counts.
  const Dataset other = small_world(4);
  EXPECT_THAT(error_of([&] { Split::load(path, other); }),
              StartsWith(fmt::format("split file '{}' was made for a dataset with {} anime and {} "
                                     "ratings, but this one has {} anime and {} ratings",
                                     path, ds.num_items(), ds.ratings.size(), other.num_items(),
                                     other.ratings.size())));
  // Same counts, one score changed.
  Dataset changed = ds;
  changed.ratings[5].score = changed.ratings[5].score == 1 ? 2 : 1;
  EXPECT_THAT(error_of([&] { Split::load(path, changed); }),
              HasSubstr("was made for another dataset: same counts"));
  // Another config than expected.
  SplitConfig want = c;
  want.seed = 78;
  EXPECT_THAT(error_of([&] { Split::load(path, ds, want); }),
              HasSubstr("has seed 77 train 0.7 val 0.15 warm_holdout 0.3, expected seed 78"));
  fs::remove(path);

  // A safetensors file that is not a split.
  st::write(path, {}, {});
  EXPECT_EQ(
      error_of([&] { Split::load(path, ds); }),
      fmt::format("split file '{}': metadata key 'format' missing (not a split file?)", path));
  fs::remove(path);
}

TEST(RecsysSplit, ConfidenceFunctions) {
  ImplicitConfig c;
  c.alpha = 2;
  EXPECT_DOUBLE_EQ(confidence(8, c), 17.0);
  EXPECT_DOUBLE_EQ(confidence(0, c), 1.0);
  c.fn = ConfidenceFn::log1p;
  EXPECT_DOUBLE_EQ(confidence(9, c), 1.0 + 2.0 * 2.302585092994046);  // 1 + 2 ln 10
  EXPECT_DOUBLE_EQ(confidence(0, c), 1.0);
  c.alpha = 0.5;
  EXPECT_DOUBLE_EQ(confidence(std::exp(1.0) - 1, c), 1.5);
}

TEST(RecsysSplit, BuildInteractionsLinearByHand) {
  const Dataset ds = tiny_dataset();
  ImplicitConfig cfg;
  cfg.alpha = 2;
  const Interactions x = build_interactions(ds, tiny_split(), cfg);
  // Active: user 0 (items 0, 1), user 1 (item 4), user 3 (item 4); user 2's only train rating
  // (entry 7) is held out, so user 2 has no row and its val rating is not in `val`.
  EXPECT_EQ(x.users, (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(x.user_row, (std::vector<int32_t>{0, 1, -1, 2}));
  EXPECT_EQ(x.train_items, (std::vector<int32_t>{0, 1, 4}));
  EXPECT_EQ(x.item_col, (std::vector<int32_t>{0, 1, 0, 0, 2, -1}));
  expect_csr(x.fit, 3, 3, {0, 2, 3, 4}, {0, 1, 2, 2}, {17, 7, 21, 5}, "fit");
  expect_csr(x.fit_score, 3, 3, {0, 2, 3, 4}, {0, 1, 2, 2}, {8, 3, 10, 2}, "fit_score");
  expect_csr(x.warm_test, 3, 3, {0, 0, 1, 1}, {0}, {5}, "warm_test");
  expect_csr(x.val, 3, 1, {0, 1, 1, 2}, {0, 0}, {9, 4}, "val");
  expect_csr(x.test, 3, 1, {0, 1, 2, 2}, {0, 0}, {2, 7}, "test");
}

TEST(RecsysSplit, BuildInteractionsLog1pWithThresholdByHand) {
  const Dataset ds = tiny_dataset();
  ImplicitConfig cfg;
  cfg.alpha = 1;
  cfg.fn = ConfidenceFn::log1p;
  cfg.threshold = 3;
  const Interactions x = build_interactions(ds, tiny_split(), cfg);
  // Scores below 3 are dropped: entries 3 (test, 2) and 10 (train, 2); user 3 then has no fit
  // rating and no row.
  EXPECT_EQ(x.users, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(x.user_row, (std::vector<int32_t>{0, 1, -1, -1}));
  expect_csr(x.fit, 2, 3, {0, 2, 3}, {0, 1, 2},
             {static_cast<float>(1 + std::log(9.0)), static_cast<float>(1 + std::log(4.0)),
              static_cast<float>(1 + std::log(11.0))},
             "fit");
  expect_csr(x.fit_score, 2, 3, {0, 2, 3}, {0, 1, 2}, {8, 3, 10}, "fit_score");
  expect_csr(x.warm_test, 2, 3, {0, 0, 1}, {0}, {5}, "warm_test");
  expect_csr(x.val, 2, 1, {0, 1, 1}, {0}, {9}, "val");
  expect_csr(x.test, 2, 1, {0, 0, 1}, {0}, {7}, "test");
}

TEST(RecsysSplit, BuildInteractionsRejectsASplitOfAnotherDataset) {
  Dataset ds = tiny_dataset();
  ds.ratings.pop_back();
  EXPECT_THAT(error_of([&] { build_interactions(ds, tiny_split(), ImplicitConfig{}); }),
              HasSubstr("build_interactions: the split covers 6 anime and 11 ratings, the dataset "
                        "has 6 and 10"));
}

TEST(RecsysSplit, InteractionsOfASyntheticWorldAreConsistent) {
  const Dataset ds = small_world();
  const Split s = make_split(ds, SplitConfig{});
  const Interactions x = build_interactions(ds, s, ImplicitConfig{});
  for (const Csr* m : {&x.fit, &x.fit_score, &x.warm_test, &x.val, &x.test}) m->validate("m");
  int64_t fit = 0, held = 0;
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    if (s.item_part[static_cast<size_t>(ds.ratings[i].item)] != Part::train) continue;
    fit += !s.rating_holdout[i];
    held += s.rating_holdout[i];
  }
  EXPECT_EQ(x.fit.nnz(), fit);  // every user with train ratings keeps one: all fit ratings count
  EXPECT_EQ(x.warm_test.nnz(), held);
  EXPECT_EQ(x.fit.cols, static_cast<int64_t>(s.train_items.size()));
  EXPECT_EQ(x.val.cols, static_cast<int64_t>(s.val_items.size()));
  EXPECT_EQ(x.test.cols, static_cast<int64_t>(s.test_items.size()));
}

}  // namespace
}  // namespace dan::recsys
