// Static BERT anime2vec (models/bert/static_features, features.kind = bert): batched,
// length-sorted, padded encoding equals encoding every text on its own without padding; the
// pooling and normalization options; the feature cache; a missing model directory names the
// fetch command.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "models/bert/static_features.h"
#include "models/text/features.h"
#include "tests/models/tiny_bert_dir.h"

namespace fs = std::filesystem;
using namespace dan;

namespace {

std::string tiny_model_dir() { return dan::testing::tiny_bert_dir("static"); }

std::vector<std::string> texts() {
  return {"the hero of the space war .",
          "",
          "a girl and a boy in school , love and music !",
          "robot",
          "dark magic in the city of light , the team fight ##s in time and the world game ?",
          "unknownword the the the"};
}

}  // namespace

TEST(BertStatic, BatchedEqualsOneByOne) {
  const std::string dir = tiny_model_dir();
  const auto tok = bert::WordPieceTokenizer::from_dir(dir);
  auto model = bert::BertModel::from_pretrained(dir);
  for (bert::Pooling pool : {bert::Pooling::mean, bert::Pooling::cls}) {
    for (bool normalize : {true, false}) {
      bert::StaticConfig cfg;
      cfg.model_dir = dir;
      cfg.max_length = 12;  // the long text is truncated
      cfg.batch_size = 4;
      cfg.pooling = pool;
      cfg.normalize = normalize;
      const auto t = texts();
      const Tensor got = bert::encode_texts(*model, tok, t, cfg);
      ASSERT_EQ(got.shape(), (Shape{static_cast<int64_t>(t.size()), 32}));
      NoGradGuard ng;
      model->eval();
      for (size_t i = 0; i < t.size(); ++i) {
        const bert::Encoding e = tok.encode(t[i], cfg.max_length);
        const auto len = static_cast<int64_t>(e.ids.size());
        const Tensor ids = from_vector(e.ids, {1, len});
        const Tensor h = model->forward(ids);  // no padding at all
        Tensor v = pool == bert::Pooling::mean ? mean(h, {1}) : bert::cls_pool(h);
        if (normalize) v = bert::l2_normalize(v);
        const auto want = v.to_vector();
        const auto row = got.to_vector();
        double norm = 0;
        for (int64_t c = 0; c < 32; ++c) {
          EXPECT_NEAR(row[i * 32 + static_cast<size_t>(c)], want[static_cast<size_t>(c)], 2e-5) << i << "," << c;
          norm += row[i * 32 + static_cast<size_t>(c)] * row[i * 32 + static_cast<size_t>(c)];
        }
        if (normalize) {
          EXPECT_NEAR(norm, 1.0, 1e-5);
        }
      }
    }
  }
}

TEST(BertStatic, ItemFeaturesAndCache) {
  const std::string dir = tiny_model_dir();
  recsys::Dataset ds;
  const auto t = texts();
  for (size_t i = 0; i < t.size(); ++i) {
    recsys::Anime a;
    a.id = static_cast<int64_t>(i + 1);
    a.title = "t" + std::to_string(i);
    a.synopsis = t[i];
    a.genres = {i % 2 ? "Action" : "Drama"};
    ds.item_of_id[a.id] = static_cast<int32_t>(i);
    ds.anime.push_back(a);
  }
  text::FeatureConfig fc;
  fc.kind = text::ContentKind::bert;
  fc.metadata = false;
  fc.standardize = false;
  fc.bert.model_dir = dir;
  fc.bert.max_length = 16;
  const std::string cache = (fs::path(dir) / "cache").string();
  const auto a = text::build_item_features(ds, fc, cache);
  EXPECT_FALSE(a.from_cache);
  ASSERT_EQ(a.x.shape(), (Shape{6, 32}));
  EXPECT_EQ(a.column_names.front(), "bert0");
  const auto b = text::build_item_features(ds, fc, cache);
  EXPECT_TRUE(b.from_cache);
  EXPECT_EQ(a.x.to_vector(), b.x.to_vector());
  // Another max_length is another cache entry.
  fc.bert.max_length = 8;
  EXPECT_FALSE(text::build_item_features(ds, fc, cache).from_cache);
  // The raw documents carry the tag sentence.
  text::TextFields f;
  f.genres = true;
  f.title = true;
  f.synopsis = false;
  EXPECT_EQ(text::raw_documents(ds, f)[1], "t1 Genres: Action.");
}

TEST(BertStatic, MissingModelNamesTheFetchCommand) {
  bert::StaticConfig cfg;
  cfg.model_dir = "/nonexistent/minilm";
  try {
    bert::resolve_model_dir(cfg);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fetch_minilm.sh"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/nonexistent/minilm"), std::string::npos) << e.what();
  }
  EXPECT_THROW(bert::parse_pooling("max"), Error);
}

// The cache key covers the weights' bytes: a checkpoint of the same size with one value changed
// (MLM pre-training written twice into one directory, say) is another model.
TEST(BertStatic, FingerprintSeesTheWeightsBytes) {
  const std::string src = tiny_model_dir();
  const fs::path dir = fs::path(src).parent_path() / (fs::path(src).filename().string() + "_edited");
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "vocab.txt", "model.safetensors"})
    fs::copy_file(fs::path(src) / f, dir / f);
  const std::string before = bert::model_fingerprint(dir.string());
  EXPECT_EQ(before, bert::model_fingerprint(src)) << "same files, same identity";
  {
    // Flip one byte of the last tensor's data (the file's final byte), keeping the size.
    std::fstream w(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    w.seekg(-1, std::ios::end);
    const char c = static_cast<char>(w.get());
    w.seekp(-1, std::ios::end);
    w.put(static_cast<char>(c ^ 0x01));
  }
  EXPECT_EQ(fs::file_size(dir / "model.safetensors"), fs::file_size(fs::path(src) / "model.safetensors"));
  EXPECT_NE(bert::model_fingerprint(dir.string()), before);
  fs::remove_all(dir);
}
