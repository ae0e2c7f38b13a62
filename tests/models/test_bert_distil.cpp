// DistilBERT checkpoints read as BERT (models/bert/config.cpp, checkpoint.cpp, mlm.cpp): a tiny
// random-weight DistilBertForMaskedLM written by HF itself (tests/fixtures/bert/tiny_distil,
// scripts/gen_distilbert_fixture.py) gives the encoder's hidden states, mean pooling, the MLM
// logits and the gradient of every encoder parameter within f32 rounding of transformers';
// the prefix-free DistilBertModel layout loads too; config and key errors use the file's names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>

#include "autograd/ops.h"
#include "core/serialize.h"
#include "models/bert/bert.h"
#include "models/bert/mlm.h"
#include "tests/models/bert_test_util.h"

using namespace dan;
using namespace dan::bert;
using dan::testing::expect_contains;
using dan::testing::max_abs;
using dan::testing::max_abs_diff;
using dan::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kModel = std::string(DAN_FIXTURES_DIR) + "/bert/tiny_distil";
const std::string kGold = std::string(DAN_FIXTURES_DIR) + "/bert/tiny_distil_gold.safetensors";

Tensor gold(const std::string& k) {
  static const std::map<std::string, Tensor> g = load_safetensors(kGold);
  const auto it = g.find(k);
  if (it == g.end()) fail("{} has no key '{}'", kGold, k);
  return it->second;
}

// HF DistilBERT's name of a BertModel parameter, written out here independently of the loader.
std::string distil_name(const std::string& bert) {
  static const std::pair<const char*, const char*> kLayer[] = {
      {"attention.self.query.", "attention.q_lin."},
      {"attention.self.key.", "attention.k_lin."},
      {"attention.self.value.", "attention.v_lin."},
      {"attention.output.dense.", "attention.out_lin."},
      {"attention.output.LayerNorm.", "sa_layer_norm."},
      {"intermediate.dense.", "ffn.lin1."},
      {"output.dense.", "ffn.lin2."},
      {"output.LayerNorm.", "output_layer_norm."},
  };
  const std::string layer = "encoder.layer.";
  if (bert.rfind(layer, 0) != 0) return bert;  // embeddings.*: the same names
  const size_t dot = bert.find('.', layer.size());
  const std::string index = bert.substr(layer.size(), dot - layer.size());
  const std::string rest = bert.substr(dot + 1);
  for (const auto& [b, d] : kLayer)
    if (rest.rfind(b, 0) == 0)
      return "transformer.layer." + index + "." + d + rest.substr(std::string(b).size());
  return bert;
}

// kModel's files into dir, the config edited by `edit` and the tensors renamed (or dropped:
// an empty name) by `rename`.
template <typename Edit, typename Rename>
void write_variant(const fs::path& dir, Edit edit, Rename rename) {
  fs::create_directories(dir);
  nlohmann::json cfg;
  std::ifstream(fs::path(kModel) / "config.json") >> cfg;
  edit(cfg);
  std::ofstream(dir / "config.json") << cfg.dump(2);
  NamedTensors out;
  for (const auto& [k, t] : load_safetensors(kModel + "/model.safetensors")) {
    const std::string n = rename(k);
    if (!n.empty()) out.emplace_back(n, t);
  }
  save_safetensors((dir / "model.safetensors").string(), out, {});
}

std::string load_error(const fs::path& dir) {
  try {
    BertModel::from_pretrained(dir.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DistilBert, ConfigBecomesTheEquivalentBert) {
  const BertConfig c = BertConfig::from_json_file(kModel + "/config.json");
  EXPECT_EQ(c.model_type, "distilbert");
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.intermediate_size, 64);
  EXPECT_EQ(c.type_vocab_size, 1);
  EXPECT_EQ(c.layer_norm_eps, 1e-12);
  EXPECT_EQ(c.to_json()["model_type"], "bert") << "saved as the BERT it is";
}

// Hidden states within 1e-5 of transformers' DistilBertModel, and mean pooling.
TEST(DistilBert, ForwardMatchesTransformers) {
  for (const Kernels k : {Kernels::fused, Kernels::composed}) {
    SCOPED_TRACE(k == Kernels::fused ? "fused" : "composed");
    auto model = BertModel::from_pretrained(kModel);
    model->set_kernels(k);
    EXPECT_FALSE(model->has_pooler());
    NoGradGuard no_grad;
    const Tensor mask = gold("attention_mask");
    const BertOutput o = model->forward(gold("input_ids"), mask);
    const double d = max_abs_diff(o.last_hidden_state, gold("last_hidden_state"));
    EXPECT_LE(d, 1e-5) << "max |h_HF| = " << max_abs(gold("last_hidden_state"));
    fmt::print("distil gold forward: max |h - h_HF| = {:.2e} (max |h_HF| = {:.2f})\n", d,
               max_abs(gold("last_hidden_state")));
    EXPECT_LE(max_abs_diff(mean_pool(o.last_hidden_state, mask), gold("mean_pooled")), 1e-5);
  }
}

// loss = sum(h * W): every encoder parameter's gradient against transformers' under its
// DistilBERT name; the zero token-type row is ours alone.
TEST(DistilBert, EveryParameterGradientMatchesTransformers) {
  auto model = BertModel::from_pretrained(kModel);
  const BertOutput o = model->forward(gold("input_ids"), gold("attention_mask"));
  const Tensor loss = sum(o.last_hidden_state * gold("loss_weight"));
  EXPECT_NEAR(loss.item(), gold("loss").item(), 1e-3);
  loss.backward();
  int checked = 0;
  double worst = 0;
  for (const auto& [name, p] : model->named_parameters()) {
    if (name == "embeddings.token_type_embeddings.weight") continue;
    const Tensor want = gold("grad." + distil_name(name));
    ASSERT_TRUE(p.grad().defined()) << name;
    const double d = max_abs_diff(p.grad(), want) / (1 + max_abs(want));
    EXPECT_LE(d, 1e-4) << name;
    worst = std::max(worst, d);
    ++checked;
  }
  fmt::print("distil gold gradients: worst max|g - g_HF| / (1 + max|g_HF|) = {:.2e}\n", worst);
  EXPECT_EQ(checked, 4 + 2 * 16) << "embeddings (word, position, LayerNorm x2) + 2 layers x 16";
}

// The MLM head (vocab_transform, vocab_layer_norm, vocab_projector, tied) loads as BERT's.
TEST(DistilBert, MaskedLmLogitsMatchTransformers) {
  auto model = BertForMaskedLM::from_pretrained(kModel);
  NoGradGuard no_grad;
  const MlmOutput o = model->forward(gold("input_ids"), gold("attention_mask"), Tensor());
  const Tensor want = gold("logits");
  const double d = max_abs_diff(o.logits, want.reshape({-1, want.size(-1)}));
  EXPECT_LE(d, 1e-4 * (1 + max_abs(want)));
  fmt::print("distil gold MLM logits: max diff {:.2e} (max |logit| {:.1f})\n", d, max_abs(want));
}

// DistilBertModel files have no "distilbert." prefix; they load to the same model.
TEST(DistilBert, PrefixFreeLayoutLoads) {
  TempDir tmp("distil");
  write_variant(
      tmp.path(), [](nlohmann::json&) {},
      [](const std::string& k) {
        const std::string p = "distilbert.";
        return k.rfind(p, 0) == 0 ? k.substr(p.size()) : std::string();
      });
  auto model = BertModel::from_pretrained(tmp.path().string());
  NoGradGuard no_grad;
  const BertOutput o = model->forward(gold("input_ids"), gold("attention_mask"));
  EXPECT_LE(max_abs_diff(o.last_hidden_state, gold("last_hidden_state")), 1e-5);
}

TEST(DistilBert, ErrorsUseTheFilesNames) {
  TempDir tmp("distil");
  auto keep = [](const std::string& k) { return k; };
  write_variant(
      tmp.path() / "relu", [](nlohmann::json& j) { j["activation"] = "relu"; }, keep);
  expect_contains(load_error(tmp.path() / "relu"),
                  "field \"activation\" is \"relu\"; supported for DistilBERT: \"gelu\"");
  write_variant(
      tmp.path() / "sin", [](nlohmann::json& j) { j["sinusoidal_pos_embds"] = true; }, keep);
  expect_contains(load_error(tmp.path() / "sin"), "field \"sinusoidal_pos_embds\" is true");
  write_variant(
      tmp.path() / "heads", [](nlohmann::json& j) { j["n_heads"] = 5; }, keep);
  expect_contains(load_error(tmp.path() / "heads"), "dim (32) is not a multiple of n_heads (5)");
  write_variant(
      tmp.path() / "missing", [](nlohmann::json&) {},
      [](const std::string& k) {
        return k == "distilbert.transformer.layer.1.attention.q_lin.weight" ? std::string() : k;
      });
  expect_contains(load_error(tmp.path() / "missing"),
                  "missing keys [\"transformer.layer.1.attention.q_lin.weight\"]");
  write_variant(
      tmp.path() / "layers", [](nlohmann::json& j) { j["n_layers"] = 1; }, keep);
  const std::string msg = load_error(tmp.path() / "layers");
  expect_contains(msg, "keys the config has no place for [");
  expect_contains(msg, "\"transformer.layer.1.attention.k_lin.bias\"");
  expect_contains(msg, "(16 in all)");
}

}  // namespace
