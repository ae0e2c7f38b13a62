// Masked-language-model pre-training (models/bert/mlm.h): BertForMaskedLM against HF
// transformers' BertForMaskedLM on a tiny random-weight checkpoint HF wrote
// (tests/fixtures/bert/tiny_mlm*, scripts/gen_bert_mlm_fixture.py): logits at the labelled
// positions, loss and gradients (tied word embedding included); masking statistics and
// determinism; checkpoint round trips, HF's key set, encoder-only checkpoints; a few AdamW steps
// lowering the loss; document chunking; and all-MiniLM-L6-v2 (skipped without the weights).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "autograd/ops.h"
#include "core/safetensors.h"
#include "core/serialize.h"
#include "layers/optim/adam.h"
#include "models/bert/mlm.h"
#include "models/bert/paths.h"
#include "tests/models/bert_test_util.h"

using namespace dan;
using namespace dan::bert;
using dan::testing::max_abs;
using dan::testing::max_abs_diff;
using dan::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(DAN_FIXTURES_DIR) + "/bert";
const std::string kTinyMlm = kDir + "/tiny_mlm";

const std::map<std::string, Tensor>& gold() {
  static const std::map<std::string, Tensor> g =
      load_safetensors(kDir + "/tiny_mlm_gold.safetensors");
  return g;
}

Tensor key(const std::string& k) {
  const auto it = gold().find(k);
  if (it == gold().end()) fail("tiny_mlm_gold.safetensors has no key '{}'", k);
  return it->second;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

std::set<std::string> file_keys(const std::string& path) {
  std::set<std::string> s;
  const st::Reader r = st::Reader::open(path);
  for (const auto& t : r.tensors()) s.insert(t.name);
  return s;
}

std::string load_error(const std::string& dir) {
  try {
    BertForMaskedLM::from_pretrained(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ---- gold -------------------------------------------------------------------------------------

class MlmTinyGold : public ::testing::TestWithParam<Kernels> {};

TEST_P(MlmTinyGold, LogitsLossAndGradsMatchTransformers) {
  auto model = BertForMaskedLM::from_pretrained(kTinyMlm);
  model->bert->set_kernels(GetParam());
  // Tied: the decoder uses the very tensor of the input table.
  EXPECT_TRUE(model->decoder_weight.same(model->bert->embeddings->word_embeddings));

  const MlmOutput o = model->forward(key("input_ids"), key("attention_mask"), key("labels"));
  const Tensor g_logits = key("masked_logits");
  EXPECT_EQ(o.num_predicted, g_logits.size(0));
  EXPECT_LE(max_abs_diff(o.logits, g_logits), 1e-5 * (1 + max_abs(g_logits)));
  const double g_loss = key("loss").item();
  EXPECT_NEAR(o.loss.item(), g_loss, 1e-5 * std::abs(g_loss));

  o.loss.backward();
  std::map<std::string, Tensor> params;
  for (const auto& [n, p] : model->named_parameters()) params.emplace(n, p);
  int checked = 0;
  for (const auto& [k, g] : gold()) {
    if (k.rfind("grad.", 0) != 0) continue;
    const std::string name = k.substr(5);
    ASSERT_TRUE(params.count(name)) << name;
    const Tensor ours = params.at(name).grad();
    ASSERT_TRUE(ours.defined()) << name;
    EXPECT_LE(max_abs_diff(ours, g), 2e-5 * (1 + max_abs(g))) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 9);
}

INSTANTIATE_TEST_SUITE_P(Kernels, MlmTinyGold, ::testing::Values(Kernels::fused, Kernels::composed),
                         [](const auto& info) {
                           return info.param == Kernels::fused ? "fused" : "composed";
                         });

TEST(MlmTiny, ForwardWithoutLabelsGivesEveryPosition) {
  auto model = BertForMaskedLM::from_pretrained(kTinyMlm);
  const Tensor ids = key("input_ids"), mask = key("attention_mask"), labels = key("labels");
  const MlmOutput all = model->forward(ids, mask, Tensor());
  ASSERT_EQ(all.logits.size(0), ids.numel());
  EXPECT_EQ(all.logits.size(1), 100);
  const MlmOutput sel = model->forward(ids, mask, labels);
  const auto lab = labels.to_vector();
  int64_t r = 0;
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (lab[static_cast<size_t>(i)] == kIgnoreLabel) continue;
    EXPECT_LE(max_abs_diff(all.logits.select(0, i), sel.logits.select(0, r)), 1e-5);
    ++r;
  }
  // No labelled position: no loss, an empty logits matrix.
  const MlmOutput none = model->forward(ids, mask, full(ids.shape(), -100, DType::i64));
  EXPECT_EQ(none.num_predicted, 0);
  EXPECT_FALSE(none.loss.defined());
  EXPECT_THROW(model->forward(ids, mask, full(ids.shape(), 100, DType::i64)), Error);
  EXPECT_THROW(model->forward(ids, mask, full({2, 2}, 1, DType::i64)), Error);
}

// ---- masking ----------------------------------------------------------------------------------

namespace {

// Vocabulary of the tiny fixture: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK], 5-64 words,
// 65-99 "##" pieces.
MaskVocab tiny_vocab() {
  MaskVocab v;
  v.size = 100;
  v.mask_id = 4;
  v.special_ids = {0, 1, 2, 3, 4};
  v.continuation.assign(100, 0);
  for (int i = 65; i < 100; ++i) v.continuation[static_cast<size_t>(i)] = 1;
  return v;
}

struct RandomBatch {
  Tensor ids, mask;
};

// [200, 512] rows of [CLS] tokens [SEP] [PAD]..., lengths 100..512: ~60k eligible tokens, a
// third of them "##" pieces, some [UNK]s among them.
RandomBatch random_batch(uint64_t seed) {
  Generator g(seed);
  const int64_t b = 200, t = 512;
  const auto u = rand({b, t}, g, DType::f64).to_vector();
  const auto len = rand({b}, g, DType::f64).to_vector();
  std::vector<int64_t> ids(static_cast<size_t>(b * t), 0), mask(static_cast<size_t>(b * t), 0);
  for (int64_t r = 0; r < b; ++r) {
    const auto n = static_cast<int64_t>(100 + len[static_cast<size_t>(r)] * 412);
    for (int64_t c = 0; c < n; ++c) {
      const size_t i = static_cast<size_t>(r * t + c);
      mask[i] = 1;
      ids[i] = c == 0 ? 2 : c == n - 1 ? 3 : u[i] < 0.01 ? 1 : 5 + static_cast<int64_t>(u[i] * 95);
    }
  }
  return {from_vector(ids, {b, t}), from_vector(mask, {b, t})};
}

}  // namespace

TEST(MlmMasking, StatisticsFollowTheEightyTenTenRule) {
  const MaskVocab v = tiny_vocab();
  const RandomBatch rb = random_batch(11);
  const Tensor special = special_tokens_mask(rb.ids, rb.mask, v);
  Generator gen(5);
  const MaskedBatch m = mask_tokens(rb.ids, special, v, {}, gen);
  const auto ids = rb.ids.to_vector(), sp = special.to_vector(), out = m.input_ids.to_vector(),
             lab = m.labels.to_vector();
  int64_t eligible = 0, selected = 0, masked = 0, random = 0, kept = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (sp[i] != 0) {
      EXPECT_EQ(lab[i], kIgnoreLabel);  // [CLS], [SEP], [PAD], [UNK] and padding: never
      EXPECT_EQ(out[i], ids[i]);
      continue;
    }
    ++eligible;
    if (lab[i] == kIgnoreLabel) {
      EXPECT_EQ(out[i], ids[i]);
      continue;
    }
    ++selected;
    EXPECT_EQ(lab[i], ids[i]);
    if (out[i] == 4) {
      ++masked;
    } else if (out[i] == ids[i]) {
      ++kept;
    } else {
      ++random;
    }
  }
  ASSERT_GT(eligible, 50000);
  EXPECT_EQ(selected, m.num_selected);
  EXPECT_NEAR(static_cast<double>(selected) / eligible, 0.15, 0.006);
  // A random draw hits [MASK] or the original id with chance 1/100 each: within the margins.
  EXPECT_NEAR(static_cast<double>(masked) / selected, 0.80, 0.02);
  EXPECT_NEAR(static_cast<double>(random) / selected, 0.10, 0.015);
  EXPECT_NEAR(static_cast<double>(kept) / selected, 0.10, 0.015);
}

TEST(MlmMasking, DeterministicPerGeneratorState) {
  const MaskVocab v = tiny_vocab();
  const RandomBatch rb = random_batch(3);
  const Tensor special = special_tokens_mask(rb.ids, rb.mask, v);
  for (bool ww : {false, true}) {
    Generator a(9), b(9), c(10);
    const MaskingOptions opt{.prob = 0.15, .whole_word = ww};
    const MaskedBatch x = mask_tokens(rb.ids, special, v, opt, a);
    const MaskedBatch y = mask_tokens(rb.ids, special, v, opt, b);
    const MaskedBatch z = mask_tokens(rb.ids, special, v, opt, c);
    EXPECT_TRUE(same_bits(x.input_ids, y.input_ids));
    EXPECT_TRUE(same_bits(x.labels, y.labels));
    EXPECT_FALSE(same_bits(x.labels, z.labels));
    // The generator moved on: the next batch gets other draws.
    const MaskedBatch x2 = mask_tokens(rb.ids, special, v, opt, a);
    EXPECT_FALSE(same_bits(x.labels, x2.labels));
  }
}

TEST(MlmMasking, WholeWordSelectsWholeWords) {
  const MaskVocab v = tiny_vocab();
  const RandomBatch rb = random_batch(21);
  const Tensor special = special_tokens_mask(rb.ids, rb.mask, v);
  Generator gen(1);
  const MaskedBatch m = mask_tokens(rb.ids, special, v, {.prob = 0.15, .whole_word = true}, gen);
  const auto ids = rb.ids.to_vector(), sp = special.to_vector(), lab = m.labels.to_vector();
  const int64_t t = rb.ids.size(1);
  int64_t eligible = 0, selected = 0, multi_piece_words_selected = 0;
  for (size_t row = 0; row < static_cast<size_t>(rb.ids.size(0)); ++row) {
    // Words: an eligible token that is not "##" (or follows a non-eligible one) opens a word.
    std::vector<std::vector<size_t>> words;
    bool prev = false;
    for (int64_t c = 0; c < t; ++c) {
      const size_t i = row * static_cast<size_t>(t) + static_cast<size_t>(c);
      if (sp[i] != 0) {
        prev = false;
        continue;
      }
      if (!prev || ids[i] < 65) words.emplace_back();
      words.back().push_back(i);
      prev = true;
    }
    for (const auto& w : words) {
      int64_t s = 0;
      for (size_t i : w) s += lab[i] != kIgnoreLabel ? 1 : 0;
      EXPECT_TRUE(s == 0 || s == static_cast<int64_t>(w.size()));
      eligible += static_cast<int64_t>(w.size());
      selected += s;
      if (s > 1) ++multi_piece_words_selected;
    }
  }
  EXPECT_GT(multi_piece_words_selected, 500);
  EXPECT_NEAR(static_cast<double>(selected) / eligible, 0.15, 0.01);
  // Without whole_word, pieces of one word are selected independently.
  Generator g2(1);
  const MaskedBatch p = mask_tokens(rb.ids, special, v, {}, g2);
  EXPECT_FALSE(same_bits(p.labels, m.labels));
}

TEST(MlmMasking, Errors) {
  const MaskVocab v = tiny_vocab();
  const Tensor ids = full({2, 3}, 7, DType::i64);
  Generator g(0);
  EXPECT_THROW(mask_tokens(ids, full({2, 2}, 0, DType::i64), v, {}, g), Error);
  EXPECT_THROW(mask_tokens(ids, zeros({2, 3}), v, {.prob = 1.5}, g), Error);
  EXPECT_THROW(mask_tokens(full({2, 3}, 100, DType::i64), zeros({2, 3}), v, {}, g), Error);
  MaskVocab no_pieces = v;
  no_pieces.continuation.clear();
  EXPECT_THROW(mask_tokens(ids, zeros({2, 3}), no_pieces, {.whole_word = true}, g), Error);
  // prob 1: every eligible token is selected.
  const MaskedBatch all = mask_tokens(ids, zeros({2, 3}), v, {.prob = 1.0}, g);
  EXPECT_EQ(all.num_selected, 6);
}

// ---- checkpoints ------------------------------------------------------------------------------

TEST(MlmCheckpoint, SaveLoadRoundTripIsBitIdenticalWithHfKeys) {
  TempDir tmp("mlm");
  auto model = BertForMaskedLM::from_pretrained(kTinyMlm);
  const std::string out = tmp.str() + "/saved";
  model->save_pretrained(out, kTinyMlm);
  EXPECT_TRUE(fs::exists(out + "/vocab.txt"));
  EXPECT_FALSE(fs::exists(out + fmt::format(".tmp-{}", ::getpid())));
  // Exactly the keys HF's own save_pretrained wrote (tied decoder weight/bias left out).
  EXPECT_EQ(file_keys(out + "/model.safetensors"), file_keys(kTinyMlm + "/model.safetensors"));
  std::ifstream cf(out + "/config.json");
  const auto cfg = nlohmann::json::parse(cf);
  EXPECT_EQ(cfg.at("architectures"), nlohmann::json::array({"BertForMaskedLM"}));

  auto back = BertForMaskedLM::from_pretrained(out);
  const NamedTensors a = model->state_dict(), b = back->state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(same_bits(a[i].second, b[i].second)) << a[i].first;
  }
  EXPECT_TRUE(back->decoder_weight.same(back->bert->embeddings->word_embeddings));
  // The encoder of an MLM directory loads in BertModel (HF's file and ours alike).
  for (const std::string& dir : {kTinyMlm, out}) {
    auto enc = BertModel::from_pretrained(dir);
    EXPECT_FALSE(enc->has_pooler());
    const NamedTensors e = enc->state_dict(), m = model->bert->state_dict();
    ASSERT_EQ(e.size(), m.size());
    for (size_t i = 0; i < e.size(); ++i) EXPECT_TRUE(same_bits(e[i].second, m[i].second));
  }
}

TEST(MlmCheckpoint, EncoderOnlyDirectoryGetsAFreshHead) {
  Generator g1(7), g2(7);
  auto model = BertForMaskedLM::from_pretrained(kDir + "/tiny", g1);  // BertModel with pooler
  auto again = BertForMaskedLM::from_pretrained(kDir + "/tiny", g2);
  auto enc = BertModel::from_pretrained(kDir + "/tiny");
  // The encoder is the file's; the pooler is gone.
  std::map<std::string, Tensor> e;
  for (const auto& [k, v] : enc->state_dict()) e.emplace(k, v);
  for (const auto& [k, v] : model->bert->state_dict()) {
    ASSERT_TRUE(e.count(k)) << k;
    EXPECT_TRUE(same_bits(v, e.at(k))) << k;
  }
  EXPECT_FALSE(model->bert->has_pooler());
  // HF's init: N(0, 0.02) dense weight, zero biases, unit LayerNorm; the same for one seed.
  EXPECT_EQ(max_abs(model->transform_bias), 0.0);
  EXPECT_EQ(max_abs(model->decoder_bias), 0.0);
  EXPECT_EQ(max_abs(model->transform_norm->bias()), 0.0);
  EXPECT_EQ(max_abs(model->transform_norm->weight() - 1.0), 0.0);
  const auto w = model->transform_weight.to_vector();
  double s = 0, s2 = 0;
  for (double x : w) {
    s += x;
    s2 += x * x;
  }
  const double mean = s / static_cast<double>(w.size());
  const double std = std::sqrt(s2 / static_cast<double>(w.size()) - mean * mean);
  EXPECT_NEAR(std, 0.02, 0.002);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_TRUE(same_bits(model->transform_weight, again->transform_weight));
  EXPECT_FALSE(model->is_training());
}

TEST(MlmCheckpoint, OlderHeadNamesAndErrors) {
  TempDir tmp("mlm");
  auto sd = load_safetensors(kTinyMlm + "/model.safetensors");
  // An older file: decoder weight stored, bias under the decoder's name, gamma/beta.
  {
    NamedTensors old;
    for (const auto& [k, v] : sd) {
      std::string n = k;
      if (n == "cls.predictions.bias") n = "cls.predictions.decoder.bias";
      if (n == "cls.predictions.transform.LayerNorm.weight")
        n = "cls.predictions.transform.LayerNorm.gamma";
      if (n == "cls.predictions.transform.LayerNorm.bias")
        n = "cls.predictions.transform.LayerNorm.beta";
      old.emplace_back(n, v);
    }
    old.emplace_back("cls.predictions.decoder.weight",
                     sd.at("bert.embeddings.word_embeddings.weight"));
    fs::create_directories(tmp.path() / "old");
    fs::copy_file(kTinyMlm + "/config.json", tmp.path() / "old" / "config.json");
    save_safetensors((tmp.path() / "old" / "model.safetensors").string(), old);
    auto m = BertForMaskedLM::from_pretrained(tmp.str() + "/old");
    EXPECT_TRUE(same_bits(m->decoder_bias, sd.at("cls.predictions.bias")));
    EXPECT_TRUE(same_bits(m->transform_norm->weight(),
                          sd.at("cls.predictions.transform.LayerNorm.weight")));
  }
  // Part of a head: an error naming what is missing.
  {
    NamedTensors part;
    for (const auto& [k, v] : sd) {
      if (k != "cls.predictions.transform.dense.bias") part.emplace_back(k, v);
    }
    fs::create_directories(tmp.path() / "part");
    fs::copy_file(kTinyMlm + "/config.json", tmp.path() / "part" / "config.json");
    save_safetensors((tmp.path() / "part" / "model.safetensors").string(), part);
    const std::string err = load_error(tmp.str() + "/part");
    EXPECT_NE(err.find("cls.predictions.transform.dense.bias"), std::string::npos) << err;
  }
  const std::string missing = load_error(tmp.str() + "/nope");
  EXPECT_NE(missing.find("fetch_minilm.sh"), std::string::npos) << missing;
}

// ---- training ---------------------------------------------------------------------------------

TEST(MlmTraining, AdamWStepsLowerTheMaskedLoss) {
  Generator gen(3);
  auto model = BertForMaskedLM::from_pretrained(kTinyMlm, gen);
  const MaskVocab v = tiny_vocab();
  const RandomBatch rb = random_batch(5);
  // 8 rows of 64 tokens.
  const Tensor ids = rb.ids.narrow(0, 0, 8).narrow(1, 0, 64).contiguous();
  const Tensor mask = ones({8, 64}, DType::i64);
  Generator mg(4);
  const MaskedBatch m = mask_tokens(ids, special_tokens_mask(ids, mask, v), v, {}, mg);
  const std::vector<MlmBatch> batch = {{m.input_ids, mask, m.labels}};
  const double before = evaluate_mlm(*model, batch).loss;
  model->train();
  AdamW opt(model->parameters(), {.lr = 1e-3, .weight_decay = 0.01});
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    model->forward(m.input_ids, mask, m.labels).loss.backward();
    opt.step();
  }
  EXPECT_TRUE(model->is_training());
  const MlmEval after = evaluate_mlm(*model, batch);
  EXPECT_TRUE(model->is_training());  // evaluate_mlm restores the mode
  EXPECT_LT(after.loss, 0.7 * before) << "before " << before << " after " << after.loss;
  EXPECT_NEAR(after.perplexity, std::exp(after.loss), 1e-9 * after.perplexity);
  // Still tied after the updates.
  EXPECT_TRUE(model->decoder_weight.same(model->bert->embeddings->word_embeddings));
}

// ---- chunking ---------------------------------------------------------------------------------

TEST(MlmChunks, LongDocumentsSplitAtWordStartsWithoutLoss) {
  Encoding e;
  // 25 words of 1-3 pieces.
  for (int32_t w = 0; w < 25; ++w) {
    for (int32_t p = 0; p <= w % 3; ++p) {
      e.ids.push_back(p == 0 ? 5 + w : 65 + p);
      e.word_ids.push_back(w);
    }
  }
  const auto chunks = split_into_chunks(e, 10, 2, 3);
  std::vector<int32_t> joined;
  for (const auto& c : chunks) {
    ASSERT_GE(c.size(), 3u);
    EXPECT_LE(c.size(), 10u);
    EXPECT_EQ(c.front(), 2);
    EXPECT_EQ(c.back(), 3);
    EXPECT_LT(c[1], 65);  // every chunk starts with a word, not a "##" piece
    joined.insert(joined.end(), c.begin() + 1, c.end() - 1);
  }
  EXPECT_EQ(joined, e.ids);
  EXPECT_TRUE(split_into_chunks(Encoding{}, 10, 2, 3).empty());
  // A word longer than a chunk is cut where it must.
  Encoding longword;
  longword.ids.assign(20, 66);
  longword.word_ids.assign(20, 0);
  EXPECT_EQ(split_into_chunks(longword, 10, 2, 3).size(), 3u);
}

// ---- all-MiniLM-L6-v2 (an encoder-only checkpoint) ----------------------------------------------

TEST(MlmMiniLm, SavedMlmDirectoryLoadsAsTheSameEncoder) {
  const std::string dir = minilm_dir();
  if (!fs::is_directory(dir)) GTEST_SKIP() << missing_weights_hint(dir);
  TempDir tmp("mlm");
  auto mlm = BertForMaskedLM::from_pretrained(dir);
  mlm->save_pretrained(tmp.str() + "/mlm", dir);
  for (const char* f :
       {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_TRUE(fs::exists(tmp.path() / "mlm" / f)) << f;
  }
  auto ours = BertModel::from_pretrained(tmp.str() + "/mlm");
  auto orig = BertModel::from_pretrained(dir);
  auto tok = WordPieceTokenizer::from_dir(tmp.str() + "/mlm");
  const BatchEncoding b = tok.encode_batch(
      std::vector<std::string>{"A boy who can see ghosts.", "Pirates search for treasure."}, 32);
  const Tensor h1 = ours->forward(b.input_ids, b.attention_mask).last_hidden_state;
  const Tensor h2 = orig->forward(b.input_ids, b.attention_mask).last_hidden_state;
  EXPECT_TRUE(same_bits(h1, h2));
  auto back = BertForMaskedLM::from_pretrained(tmp.str() + "/mlm");
  EXPECT_TRUE(same_bits(back->transform_weight, mlm->transform_weight));
}
