// Metadata features against hand-computed columns, and the item feature builder: shapes,
// column names, the config key, and the on-disk cache (second call loads the same bits; a
// corrupt or foreign file is recomputed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "models/text/features.h"
#include "tests/models/test_text_fixture.h"

using namespace dan;
using namespace dan::text;
namespace fs = std::filesystem;

namespace {

recsys::Dataset small_dataset() {
  recsys::Dataset ds;
  auto a0 = textfx::make_anime(10, "A", "x");
  a0.members = 99, a0.favorites = 0, a0.score = 8, a0.episodes = 24, a0.type = "TV";
  a0.genres = {"Action", "Drama"}, a0.studios = {"Sunrise"};
  auto a1 = textfx::make_anime(11, "B", "y");
  a1.members = 9, a1.favorites = 3, a1.score = NAN, a1.episodes = NAN, a1.type = "Movie";
  a1.genres = {"Drama"}, a1.themes = {"Space"}, a1.studios = {"Bones", "Sunrise"};
  auto a2 = textfx::make_anime(12, "C", "z");
  a2.members = NAN, a2.favorites = 1, a2.score = 6, a2.episodes = 0, a2.type = "";
  a2.studios = {"Bones", "Sunrise"};
  ds.anime = {a0, a1, a2};
  return ds;
}

// A dataset whose synopses come from three topics, for the feature builder.
recsys::Dataset topical_dataset() {
  const char* topics[3][6] = {{"ninja", "village", "chakra", "jutsu", "scroll", "kunai"},
                              {"mecha", "pilot", "robot", "colony", "orbit", "cockpit"},
                              {"school", "club", "festival", "exam", "rooftop", "summer"}};
  recsys::Dataset ds;
  for (int i = 0; i < 45; ++i) {
    std::string syn;
    for (int w = 0; w < 12; ++w) syn += std::string(topics[i % 3][(i * 7 + w * w) % 6]) + " ";
    auto a = textfx::make_anime(100 + i, "Title " + std::to_string(i), syn);
    a.members = 100.0 * (i + 1);
    a.genres = {i % 2 ? "Action" : "Comedy"};
    ds.anime.push_back(a);
  }
  ds.anime[5].synopsis = "";  // no text: a zero TF-IDF row
  ds.ratings.resize(17);
  return ds;
}

std::string temp_dir(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("dan_text_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

int64_t column(const std::vector<std::string>& cols, const std::string& name) {
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i] == name) return static_cast<int64_t>(i);
  ADD_FAILURE() << "no column " << name;
  return 0;
}

}  // namespace

TEST(TextMetadata, HandComputedColumns) {
  const recsys::Dataset ds = small_dataset();
  MetadataConfig cfg;
  cfg.standardize = false;
  cfg.top_studios = 1;
  const FeatureBlock b = metadata_features(ds, cfg);
  EXPECT_EQ(b.columns,
            (std::vector<std::string>{"log1p_members", "log1p_favorites", "score", "score_missing",
                                      "log1p_episodes", "log1p_episodes_missing", "type=Movie",
                                      "type=TV", "type=unknown", "genre=Action", "genre=Drama",
                                      "theme=Space", "studio=Sunrise"}));
  ASSERT_EQ(b.x.shape(), (Shape{3, 13}));
  const std::vector<double> x = b.x.to_vector();
  auto at = [&](int64_t i, const std::string& c) { return x[i * 13 + column(b.columns, c)]; };
  EXPECT_NEAR(at(0, "log1p_members"), std::log(100.0), 1e-6);
  EXPECT_EQ(at(2, "log1p_members"), 0.0);  // missing count -> 0
  EXPECT_NEAR(at(1, "log1p_favorites"), std::log(4.0), 1e-6);
  EXPECT_EQ(at(1, "score"), 7.0);  // mean of 8 and 6
  EXPECT_EQ(at(1, "score_missing"), 1.0);
  EXPECT_EQ(at(0, "score_missing"), 0.0);
  EXPECT_NEAR(at(1, "log1p_episodes"), (std::log(25.0) + 0.0) / 2, 1e-6);
  EXPECT_EQ(at(2, "type=unknown"), 1.0);
  EXPECT_EQ(at(1, "type=Movie"), 1.0);
  EXPECT_EQ(at(1, "type=TV"), 0.0);
  EXPECT_EQ(at(0, "genre=Drama") + at(1, "genre=Drama") + at(2, "genre=Drama"), 2.0);
  EXPECT_EQ(at(1, "theme=Space"), 1.0);
  EXPECT_EQ(at(2, "studio=Sunrise"), 1.0);  // Sunrise (3 anime) beats Bones (2)

  cfg.standardize = true;
  const std::vector<double> z = metadata_features(ds, cfg).x.to_vector();
  for (int64_t j = 0; j < 13; ++j) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < 3; ++i) mean += z[i * 13 + j] / 3;
    for (int64_t i = 0; i < 3; ++i) var += (z[i * 13 + j] - mean) * (z[i * 13 + j] - mean) / 3;
    EXPECT_NEAR(mean, 0, 1e-6) << b.columns[j];
    if (j != column(b.columns, "studio=Sunrise"))  // constant column: all 1 -> 0
      EXPECT_NEAR(var, 1, 1e-5) << b.columns[j];
    else
      EXPECT_EQ(var, 0) << b.columns[j];
  }
}

TEST(TextFeatures, TfidfSvdPlusMetadataAndCache) {
  const recsys::Dataset ds = topical_dataset();
  FeatureConfig cfg;
  cfg.svd_dims = 6;
  cfg.meta.top_studios = 0;
  const std::string dir = temp_dir("cache");
  const FeatureCacheStats before = feature_cache_stats();
  const ItemFeatures a = build_item_features(ds, cfg, dir);
  EXPECT_FALSE(a.from_cache);
  ASSERT_TRUE(fs::exists(a.cache_path));
  ASSERT_EQ(a.x.dim(), 2);
  EXPECT_EQ(a.x.size(0), 45);
  ASSERT_EQ(a.x.size(1), static_cast<int64_t>(a.column_names.size()));
  EXPECT_EQ(a.column_names[0], "svd0");
  EXPECT_EQ(a.column_names[5], "svd5");
  EXPECT_EQ(a.column_names[6], "log1p_members");

  const ItemFeatures b = build_item_features(ds, cfg, dir);
  EXPECT_TRUE(b.from_cache);
  EXPECT_EQ(b.cache_path, a.cache_path);
  EXPECT_EQ(b.column_names, a.column_names);
  ASSERT_EQ(b.x.shape(), a.x.shape());
  EXPECT_EQ(0, std::memcmp(a.x.data<float>(), b.x.data<float>(), a.x.nbytes()));
  const FeatureCacheStats after = feature_cache_stats();
  EXPECT_EQ(after.hits - before.hits, 1);
  EXPECT_EQ(after.misses - before.misses, 1);
  EXPECT_EQ(after.writes - before.writes, 1);

  // Same topic -> close rows: row 0 (ninja) is nearer to row 3 (ninja) than to row 1 (mecha).
  const std::vector<double> x = a.x.to_vector();
  auto dist = [&](int64_t i, int64_t j) {
    double s = 0;
    for (int64_t c = 0; c < 6; ++c)
      s += (x[i * a.x.size(1) + c] - x[j * a.x.size(1) + c]) *
           (x[i * a.x.size(1) + c] - x[j * a.x.size(1) + c]);
    return s;
  };
  EXPECT_LT(dist(0, 3), dist(0, 1));

  // Another config -> another file; another dataset -> another file.
  FeatureConfig other = cfg;
  other.svd_dims = 4;
  const ItemFeatures c = build_item_features(ds, other, dir);
  EXPECT_FALSE(c.from_cache);
  EXPECT_NE(c.cache_path, a.cache_path);
  EXPECT_EQ(c.x.size(1), a.x.size(1) - 2);
  recsys::Dataset ds2 = ds;
  ds2.anime[3].synopsis += " robot";
  EXPECT_FALSE(build_item_features(ds2, cfg, dir).from_cache);

  // A damaged cache file is recomputed (same bits) and rewritten.
  { std::ofstream(a.cache_path, std::ios::binary | std::ios::trunc) << "garbage"; }
  const ItemFeatures d = build_item_features(ds, cfg, dir);
  EXPECT_FALSE(d.from_cache);
  EXPECT_EQ(0, std::memcmp(a.x.data<float>(), d.x.data<float>(), a.x.nbytes()));
  EXPECT_TRUE(build_item_features(ds, cfg, dir).from_cache);
  fs::remove_all(dir);
}

TEST(TextFeatures, KindsShapesAndKeys) {
  const recsys::Dataset ds = topical_dataset();
  FeatureConfig cfg;
  cfg.kind = ContentKind::word2vec;
  cfg.word2vec.dim = 8;
  cfg.word2vec.epochs = 1;
  cfg.word2vec.min_count = 1;
  cfg.word2vec.threads = 1;
  cfg.metadata = false;
  const ItemFeatures w = build_item_features(ds, cfg, "");
  EXPECT_EQ(w.x.shape(), (Shape{45, 8}));
  EXPECT_EQ(w.column_names.front(), "w2v0");
  EXPECT_TRUE(w.cache_path.empty());
  cfg.word2vec_tfidf_weighted = true;
  EXPECT_EQ(item_features(ds, cfg, "").shape(), (Shape{45, 8}));

  FeatureConfig dense;
  dense.svd_dims = 0;
  dense.metadata = false;
  dense.standardize = false;
  const ItemFeatures t = build_item_features(ds, dense, "");
  EXPECT_EQ(t.column_names.front().rfind("tfidf:", 0), 0u);
  EXPECT_EQ(t.x.size(1), static_cast<int64_t>(t.column_names.size()));
  double row0 = 0;
  for (int64_t j = 0; j < t.x.size(1); ++j) row0 += t.x.at({0, j}) * t.x.at({0, j});
  EXPECT_NEAR(row0, 1.0, 1e-5);  // L2-normalized TF-IDF row

  FeatureConfig meta_only;
  meta_only.kind = ContentKind::none;
  EXPECT_EQ(item_features(ds, meta_only, "").size(0), 45);
  meta_only.metadata = false;
  EXPECT_THROW(item_features(ds, meta_only, ""), Error);

  // The key moves with every option that changes the result, not with thread counts.
  FeatureConfig k1, k2;
  EXPECT_EQ(k1.key(), k2.key());
  k2.tfidf.min_df = DfLimit::count(3);
  EXPECT_NE(k1.key(), k2.key());
  k2 = k1;
  k2.fields.reviews = true;
  EXPECT_NE(k1.key(), k2.key());
  k2 = k1;
  k2.kind = ContentKind::word2vec;
  FeatureConfig k3 = k2;
  k3.word2vec.threads = 7;
  EXPECT_EQ(k2.key(), k3.key());
  k3.word2vec.dim = 50;
  EXPECT_NE(k2.key(), k3.key());
  EXPECT_EQ(parse_content_kind("word2vec"), ContentKind::word2vec);
  EXPECT_EQ(parse_content_kind("bert"), ContentKind::bert);
  EXPECT_THROW(parse_content_kind("elmo"), Error);
  EXPECT_NE(dataset_fingerprint(ds), dataset_fingerprint(small_dataset()));
}

TEST(TextFeatures, RealDatasetSmoke) {
  const std::string dir = recsys::default_data_dir();
  if (dir.empty())
    GTEST_SKIP() << "no dataset: set DEEPANINET_DATA or put mal2023 in ../shared/data";
  recsys::LoadOptions opts;
  opts.recommendations = opts.rec_texts = false;
  const recsys::Dataset ds = recsys::load_dataset(dir, opts);
  // Synopses -> TF-IDF -> a small SVD (one power iteration keeps this fast) + metadata.
  FeatureConfig cfg;
  cfg.svd_dims = 16;
  cfg.svd.power_iters = 1;
  const ItemFeatures f = build_item_features(ds, cfg, "");
  ASSERT_EQ(f.x.size(0), ds.num_items());
  ASSERT_EQ(f.x.size(1), static_cast<int64_t>(f.column_names.size()));
  EXPECT_EQ(f.column_names[16], "log1p_members");
  for (const char* c : {"type=TV", "type=Movie", "genre=Action", "score_missing"})
    EXPECT_NE(std::find(f.column_names.begin(), f.column_names.end(), c), f.column_names.end())
        << c;
  const float* x = f.x.data<float>();
  for (int64_t i = 0; i < f.x.numel(); ++i) ASSERT_TRUE(std::isfinite(x[i])) << i;
  // Standardized blocks: every SVD column has mean ~0 and unit variance.
  const int64_t n = f.x.size(0), d = f.x.size(1);
  for (int64_t j = 0; j < 16; ++j) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i * d + j], s2 += double(x[i * d + j]) * x[i * d + j];
    EXPECT_NEAR(s / n, 0, 1e-4);
    EXPECT_NEAR(s2 / n, 1, 1e-3);
  }
}
