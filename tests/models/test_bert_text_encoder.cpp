// The fine-tuning encoder (models/bert/text_encoder): running only the trainable layers on the
// cached frozen prefix gives what the whole model gives (vectors and gradients), for any split
// point K, in any batch order; the cache's disk copy is reused only for the same model, split
// and token ids, and an unreadable one is recomputed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "models/bert/static_features.h"
#include "models/bert/text_encoder.h"
#include "tests/models/tiny_bert_dir.h"

using namespace dan;

namespace {

std::vector<std::string> texts() {
  return {"the hero of the space war .",
          "",
          "a girl and a boy in school , love and music !",
          "robot",
          "dark magic in the city of light , the team fight ##s in time and the world game ?",
          "unknownword the the the",
          "magic girl"};
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.contiguous().to_vector_as<float>(), y = b.contiguous().to_vector_as<float>();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(double(x[i]) - double(y[i])));
  return m;
}

}  // namespace

// encode / encode_all (cache + trainable layers, eval mode) == the whole encoder's static vectors.
TEST(BertTextEncoder, MatchesWholeModelForEverySplit) {
  const std::string dir = dan::testing::tiny_bert_dir("te");
  const auto tok = bert::WordPieceTokenizer::from_dir(dir);
  for (int64_t k : {1, 2}) {
    for (bert::Pooling pool : {bert::Pooling::mean, bert::Pooling::cls}) {
      auto model = bert::BertModel::from_pretrained(dir);
      bert::StaticConfig sc;
      sc.max_length = 12;
      sc.batch_size = 3;
      sc.pooling = pool;
      const Tensor want = bert::encode_texts(*model, tok, texts(), sc);
      bert::TextEncoderConfig tc;
      tc.trainable_layers = k;
      tc.batch_size = 2;
      tc.pooling = pool;
      bert::TextEncoder enc(model, tok.encode_each(texts(), sc.max_length), tc);
      EXPECT_LT(max_abs_diff(enc.encode_all(), want), 1e-5) << "k " << k;
      enc.eval();
      NoGradGuard ng;
      const std::vector<int32_t> idx = {4, 0, 4, 6, 1};
      const Tensor got = enc.encode(idx);
      ASSERT_EQ(got.size(0), 5);
      for (size_t r = 0; r < idx.size(); ++r)
        EXPECT_LT(max_abs_diff(got.select(0, static_cast<int64_t>(r)), want.select(0, idx[r])), 1e-5) << r;
    }
  }
}

// Gradients of the trainable layers equal those through the whole model (with the same layers
// frozen), and only the last K layers are parameters of the encoder.
TEST(BertTextEncoder, GradientsMatchWholeModel) {
  const std::string dir = dan::testing::tiny_bert_dir("te");
  const auto tok = bert::WordPieceTokenizer::from_dir(dir);
  const std::vector<std::string> t = texts();
  const std::vector<int32_t> idx = {2, 0, 5};
  // Reference: the whole model on the three texts, eval mode (no dropout), loss = sum(v * w).
  auto ref = bert::BertModel::from_pretrained(dir);
  ref->eval();
  ref->freeze_all_but_last(1);
  std::vector<bert::Encoding> rows;
  for (int32_t i : idx) rows.push_back(tok.encode(t[static_cast<size_t>(i)], 16));
  const bert::BatchEncoding be = tok.pad(rows, bert::Padding::longest, 16);
  const Tensor h = ref->forward(be.input_ids, be.attention_mask).last_hidden_state;
  const Tensor v_ref = bert::l2_normalize(bert::mean_pool(h, be.attention_mask));
  const Tensor w = randn({3, v_ref.size(1)});
  sum(v_ref * w).backward();

  auto model = bert::BertModel::from_pretrained(dir);
  bert::TextEncoderConfig tc;
  tc.trainable_layers = 1;
  bert::TextEncoder enc(model, tok.encode_each(t, 16), tc);
  enc.eval();
  const auto params = enc.named_parameters();
  ASSERT_FALSE(params.empty());
  for (const auto& [name, p] : params) EXPECT_EQ(name.rfind("layer.1.", 0), 0u) << name;
  EXPECT_FALSE(model->layers[0]->query.weight.requires_grad());
  sum(enc.encode(idx) * w).backward();
  const auto ref_params = ref->layers[1]->named_parameters();
  const auto got_params = model->layers[1]->named_parameters();
  ASSERT_EQ(ref_params.size(), got_params.size());
  for (size_t i = 0; i < ref_params.size(); ++i) {
    ASSERT_TRUE(got_params[i].second.grad().defined()) << got_params[i].first;
    EXPECT_LT(max_abs_diff(got_params[i].second.grad(), ref_params[i].second.grad()), 1e-5)
        << got_params[i].first;
  }
  EXPECT_FALSE(model->layers[0]->query.weight.grad().defined());
}

TEST(BertTextEncoder, RejectsBadInput) {
  const std::string dir = dan::testing::tiny_bert_dir("te");
  const auto tok = bert::WordPieceTokenizer::from_dir(dir);
  auto model = bert::BertModel::from_pretrained(dir);
  bert::TextEncoderConfig tc;
  tc.trainable_layers = 3;  // the tiny model has 2
  EXPECT_THROW(bert::TextEncoder(model, tok.encode_each(texts(), 8), tc), Error);
  tc.trainable_layers = 1;
  bert::TextEncoder enc(model, tok.encode_each(texts(), 8), tc);
  EXPECT_THROW(enc.encode({7}), Error);
  EXPECT_THROW(enc.encode({}), Error);
}

// The frozen-prefix cache on disk: written once, read back bit for bit by the next encoder of
// the same key; another split point, model key or text is another file; a damaged file is
// recomputed (no error) and rewritten.
TEST(BertTextEncoder, DiskCacheIsReusedOnlyForTheSameKey) {
  namespace fs = std::filesystem;
  const std::string dir = dan::testing::tiny_bert_dir("te");
  const auto tok = bert::WordPieceTokenizer::from_dir(dir);
  const fs::path cache = fs::temp_directory_path() / ("dan_prefix_cache_" + std::to_string(::getpid()));
  fs::remove_all(cache);
  auto make = [&](int64_t k, const std::string& model_key, const std::vector<std::string>& t) {
    bert::TextEncoderConfig tc;
    tc.trainable_layers = k;
    tc.batch_size = 3;
    tc.cache_dir = cache.string();
    tc.model_key = model_key;
    return std::make_unique<bert::TextEncoder>(bert::BertModel::from_pretrained(dir), tok.encode_each(t, 12),
                                               tc);
  };
  auto bits = [](const Tensor& t) { return t.contiguous().to_vector_as<float>(); };
  auto first = make(1, "m1", texts());
  EXPECT_FALSE(first->loaded_from_file());
  ASSERT_TRUE(fs::exists(first->cache_file())) << first->cache_file();
  const auto want = bits(first->encode_all());

  auto again = make(1, "m1", texts());
  EXPECT_TRUE(again->loaded_from_file());
  EXPECT_EQ(again->cache_file(), first->cache_file());
  const auto got = bits(again->encode_all());
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);

  EXPECT_FALSE(make(2, "m1", texts())->loaded_from_file()) << "another split point";
  EXPECT_FALSE(make(1, "m2", texts())->loaded_from_file()) << "another model";
  std::vector<std::string> other = texts();
  other.back() += " robot";
  EXPECT_FALSE(make(1, "m1", other)->loaded_from_file()) << "another text";

  // A truncated file: recomputed without an error, rewritten whole.
  const auto size = fs::file_size(first->cache_file());
  fs::resize_file(first->cache_file(), size / 2);
  auto damaged = make(1, "m1", texts());
  EXPECT_FALSE(damaged->loaded_from_file());
  EXPECT_EQ(fs::file_size(first->cache_file()), size);
  EXPECT_TRUE(make(1, "m1", texts())->loaded_from_file());
  fs::remove_all(cache);
}
