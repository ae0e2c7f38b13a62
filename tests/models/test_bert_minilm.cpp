// Gold test with real weights: all-MiniLM-L6-v2 (from dan::bert::minilm_dir(); skipped when
// absent) on 8 mal2023 synopses tokenized by HF's BertTokenizerFast, against HF transformers'
// BertModel (tests/fixtures/bert/minilm_gold.safetensors, scripts/gen_bert_fixture.py):
// hidden states within 1e-4, sentence embeddings (mean pool + L2) with cosine >= 0.9999.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "autograd/ops.h"
#include "core/serialize.h"
#include "models/bert/bert.h"
#include "models/bert/paths.h"
#include "tests/models/bert_test_util.h"

using namespace dan;
using namespace dan::bert;
using dan::testing::max_abs_diff;

namespace {

const std::map<std::string, Tensor>& gold() {
  static const std::map<std::string, Tensor> g =
      load_safetensors(std::string(DAN_FIXTURES_DIR) + "/bert/minilm_gold.safetensors");
  return g;
}

Tensor key(const std::string& k) {
  const auto it = gold().find(k);
  if (it == gold().end()) fail("minilm_gold.safetensors has no key '{}'", k);
  return it->second;
}

std::shared_ptr<BertModel> load_minilm() {
  const std::string dir = minilm_dir();
  if (!std::filesystem::exists(dir)) return nullptr;
  return BertModel::from_pretrained(dir);
}

class MiniLmGold : public ::testing::TestWithParam<Kernels> {};

TEST_P(MiniLmGold, HiddenStatesAndSentenceEmbeddingsMatchTransformers) {
  auto model = load_minilm();
  if (!model) GTEST_SKIP() << missing_weights_hint(minilm_dir());
  model->set_kernels(GetParam());
  const BertConfig& c = model->config();
  ASSERT_EQ(c.hidden_size, 384);
  ASSERT_EQ(c.num_hidden_layers, 6);
  ASSERT_EQ(c.num_attention_heads, 12);
  NoGradGuard no_grad;
  const Tensor mask = key("attention_mask");
  const BertOutput o = model->forward(key("input_ids"), mask, key("token_type_ids"));
  const Tensor h = o.last_hidden_state;
  ASSERT_EQ(shape_str(h.shape()), shape_str(Shape{8, key("input_ids").size(1), 384}));

  // The longest sequence in full, and every sequence at [CLS], 1, its last token and a
  // padded (or middle) position.
  const int64_t longest = static_cast<int64_t>(key("longest_index").item());
  const double d_full = max_abs_diff(h.select(0, longest), key("longest_last_hidden_state"));
  EXPECT_LE(d_full, 1e-4);
  const Tensor pos = key("positions");
  double d_pos = 0;
  for (int64_t b = 0; b < 8; ++b) {
    for (int64_t j = 0; j < 4; ++j) {
      const auto t = static_cast<int64_t>(pos.at({b, j}));
      d_pos = std::max(d_pos, max_abs_diff(h.select(0, b).select(0, t),
                                           key("hidden_at_positions").select(0, b).select(0, j)));
    }
  }
  EXPECT_LE(d_pos, 1e-4);
  EXPECT_LE(max_abs_diff(o.pooler_output, key("pooler_output")), 1e-4);

  const Tensor emb = l2_normalize(mean_pool(h, mask));
  const Tensor want = key("sentence_embedding");
  double worst_cos = 1;
  for (int64_t b = 0; b < 8; ++b) {
    const auto x = emb.select(0, b).to_vector(), y = want.select(0, b).to_vector();
    double xy = 0, xx = 0, yy = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      xy += x[i] * y[i];
      xx += x[i] * x[i];
      yy += y[i] * y[i];
    }
    worst_cos = std::min(worst_cos, xy / std::sqrt(xx * yy));
  }
  EXPECT_GE(worst_cos, 0.9999);
  EXPECT_LE(max_abs_diff(emb, want), 1e-5);
  fmt::print(
      "MiniLM gold: max |h - h_HF| {:.2e} (longest sequence), {:.2e} (4 positions x 8); "
      "min cosine of sentence embeddings {:.8f}\n",
      d_full, d_pos, worst_cos);
}

INSTANTIATE_TEST_SUITE_P(Kernels, MiniLmGold, ::testing::Values(Kernels::fused, Kernels::composed),
                         [](const auto& info) {
                           return info.param == Kernels::fused ? std::string("fused")
                                                               : std::string("composed");
                         });

}  // namespace
