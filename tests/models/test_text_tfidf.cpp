// TF-IDF against scikit-learn's TfidfVectorizer (tests/fixtures/tfidf_gold.safetensors, made
// by scripts/gen_tfidf_fixture.py): vocabulary, idf and the CSR matrix for five option sets
// (df bounds as counts and fractions, max_features, smooth/plain idf, sublinear tf, no norm).
#include <gtest/gtest.h>

#include <cmath>

#include "models/text/tfidf.h"
#include "tests/models/test_text_fixture.h"

using namespace dan;
using namespace dan::text;

namespace {

DfLimit limit_of(const nlohmann::json& j) {
  return j["fraction"].get<bool>() ? DfLimit::frac(j["value"].get<double>())
                                   : DfLimit::count(j["value"].get<int64_t>());
}

void check_case(const std::string& name) {
  SCOPED_TRACE(name);
  const auto& p = textfx::gold_meta(name + ".params");
  const std::string tok_name = p["tokens"].get<std::string>();
  const auto& spec = textfx::gold_meta("tokenizer." + tok_name);
  TokenizerConfig tc;
  tc.english_stop_words = false;
  tc.min_token_len = spec["min_len"].get<int>();
  tc.stop_words = spec["stop_words"].get<std::vector<std::string>>();
  const Corpus corpus = build_corpus(textfx::gold_docs(), tc);

  TfidfConfig cfg;
  cfg.min_df = limit_of(p["min_df"]);
  cfg.max_df = limit_of(p["max_df"]);
  cfg.max_features = p["max_features"].get<int64_t>();
  cfg.smooth_idf = p["smooth_idf"].get<bool>();
  cfg.sublinear_tf = p["sublinear_tf"].get<bool>();
  cfg.l2_norm = p["norm"].get<std::string>() == "l2";
  const Tfidf got = tfidf(corpus, cfg);

  const auto vocab = textfx::gold_meta(name + ".vocab").get<std::vector<std::string>>();
  ASSERT_EQ(got.vocabulary, vocab);
  const std::vector<double> idf = textfx::gold_tensor(name + ".idf").to_vector();
  ASSERT_EQ(got.idf.size(), idf.size());
  for (size_t j = 0; j < idf.size(); ++j) EXPECT_NEAR(got.idf[j], idf[j], 1e-12) << vocab[j];

  const recsys::Csr want = textfx::gold_csr(name, static_cast<int64_t>(vocab.size()));
  const std::vector<double> want_values = textfx::gold_tensor(name + ".data").to_vector();
  got.matrix.validate("tfidf");
  ASSERT_EQ(got.matrix.rows, want.rows);
  ASSERT_EQ(got.matrix.cols, want.cols);
  ASSERT_EQ(got.matrix.indptr, want.indptr);
  ASSERT_EQ(got.matrix.indices, want.indices);
  for (size_t k = 0; k < want_values.size(); ++k)
    EXPECT_NEAR(got.matrix.values[k], want_values[k], 1e-6) << "entry " << k;
}

}  // namespace

TEST(TextTfidf, SklearnDefault) { check_case("default"); }
TEST(TextTfidf, SklearnDfBoundsSublinear) { check_case("pruned"); }
TEST(TextTfidf, SklearnFractionMinCountMaxPlainIdf) { check_case("fraction_min"); }
TEST(TextTfidf, SklearnMaxFeatures) { check_case("capped"); }
TEST(TextTfidf, SklearnNoNormCustomStopWords) { check_case("unnormalized"); }

TEST(TextTfidf, HandComputedTwoDocuments) {
  // docs "aa bb bb", "bb cc" and an empty one: n = 3, df = {aa: 1, bb: 2, cc: 1};
  // smooth idf: aa, cc: ln(4/2) + 1; bb: ln(4/3) + 1.
  const Corpus c = corpus_from_tokens({{"aa", "bb", "bb"}, {"bb", "cc"}, {}});
  const Tfidf t = tfidf(c, TfidfConfig{});
  ASSERT_EQ(t.vocabulary, (std::vector<std::string>{"aa", "bb", "cc"}));
  const double i1 = std::log(4.0 / 2.0) + 1, i2 = std::log(4.0 / 3.0) + 1;
  EXPECT_NEAR(t.idf[0], i1, 1e-12);
  EXPECT_NEAR(t.idf[1], i2, 1e-12);
  const double n0 = std::sqrt(i1 * i1 + 4 * i2 * i2), n1 = std::sqrt(i2 * i2 + i1 * i1);
  ASSERT_EQ(t.matrix.indptr, (std::vector<int64_t>{0, 2, 4, 4}));
  EXPECT_EQ(t.matrix.indices, (std::vector<int32_t>{0, 1, 1, 2}));
  EXPECT_NEAR(t.matrix.values[0], i1 / n0, 1e-7);
  EXPECT_NEAR(t.matrix.values[1], 2 * i2 / n0, 1e-7);
  EXPECT_NEAR(t.matrix.values[2], i2 / n1, 1e-7);
  EXPECT_NEAR(t.matrix.values[3], i1 / n1, 1e-7);
}

TEST(TextTfidf, BadBoundsAndEmptyVocabularyAreErrors) {
  const Corpus c = corpus_from_tokens({{"aa", "bb"}, {"bb"}});
  TfidfConfig cfg;
  cfg.min_df = DfLimit::count(2);
  cfg.max_df = DfLimit::count(1);
  EXPECT_THROW(tfidf(c, cfg), Error);  // max_df below min_df
  cfg = {};
  cfg.max_df = DfLimit::frac(1.5);
  EXPECT_THROW(tfidf(c, cfg), Error);
  cfg = {};
  cfg.min_df = DfLimit::count(3);
  EXPECT_THROW(tfidf(c, cfg), Error);  // nothing left
  cfg = {};
  cfg.max_features = -1;
  EXPECT_THROW(tfidf(c, cfg), Error);
  EXPECT_THROW(tfidf(corpus_from_tokens({{}, {}}), TfidfConfig{}), Error);
}
