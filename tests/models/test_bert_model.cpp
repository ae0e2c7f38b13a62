// Gold test of the BERT encoder against HF transformers' BertModel on a tiny random-weight
// checkpoint that HF itself wrote (tests/fixtures/bert/, scripts/gen_bert_fixture.py):
// last_hidden_state, pooler_output, mean-pooled embeddings and the gradient of every
// parameter, for both the fused and the composed kernels; plus checkpoint errors, the
// save_pretrained -> from_pretrained roundtrip, dropout in training mode and freezing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "autograd/ops.h"
#include "core/serialize.h"
#include "models/bert/bert.h"
#include "tests/models/bert_test_util.h"

using namespace dan;
using namespace dan::bert;
using dan::testing::expect_contains;
using dan::testing::max_abs;
using dan::testing::max_abs_diff;
using dan::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(DAN_FIXTURES_DIR) + "/bert";

const std::map<std::string, Tensor>& gold(const std::string& file) {
  static std::map<std::string, std::map<std::string, Tensor>> cache;
  auto it = cache.find(file);
  if (it == cache.end()) it = cache.emplace(file, load_safetensors(kDir + "/" + file)).first;
  return it->second;
}

Tensor key(const std::string& file, const std::string& k) {
  const auto& g = gold(file);
  const auto it = g.find(k);
  if (it == g.end()) fail("{} has no key '{}'", file, k);
  return it->second;
}

class BertTinyGold : public ::testing::TestWithParam<Kernels> {};

// Forward within 1e-5 of HF (f32 with the same op order up to reassociation in the GEMMs:
// the differences we see are ~1e-6 on O(1) activations).
TEST_P(BertTinyGold, ForwardMatchesTransformers) {
  auto model = BertModel::from_pretrained(kDir + "/tiny");
  model->set_kernels(GetParam());
  ASSERT_FALSE(model->is_training()) << "from_pretrained returns the model in eval mode, as HF";
  ASSERT_TRUE(model->has_pooler());
  const std::string f = "tiny_gold.safetensors";
  NoGradGuard no_grad;
  const Tensor mask = key(f, "attention_mask");
  const BertOutput o = model->forward(key(f, "input_ids"), mask, key(f, "token_type_ids"));
  const double dh = max_abs_diff(o.last_hidden_state, key(f, "last_hidden_state"));
  EXPECT_LE(dh, 1e-5);
  EXPECT_LE(max_abs_diff(o.pooler_output, key(f, "pooler_output")), 1e-5);
  fmt::print("tiny gold forward: max |h - h_HF| = {:.2e} (max |h_HF| = {:.2f})\n", dh,
             max_abs(key(f, "last_hidden_state")));
  const Tensor pooled = mean_pool(o.last_hidden_state, mask);
  EXPECT_LE(max_abs_diff(pooled, key(f, "mean_pooled")), 1e-5);
  EXPECT_LE(max_abs_diff(l2_normalize(pooled), key(f, "sentence_embedding")), 1e-5);
  EXPECT_LE(max_abs_diff(cls_pool(o.last_hidden_state), key(f, "last_hidden_state").select(1, 0)),
            1e-5);

  // No mask, no token types (HF: all ones / all zeros), through the one-argument forward.
  const Tensor h = model->forward(key(f, "input_ids"));
  EXPECT_LE(max_abs_diff(h, key(f, "nomask.last_hidden_state")), 1e-5);
}

// Gradients of loss = sum(h * Wh) + sum(pooled * Wp) for every parameter. Tolerance:
// 1e-4 * (1 + max |grad|) per tensor; f32 backward through 2 layers with O(1) values.
TEST_P(BertTinyGold, EveryParameterGradientMatchesTransformers) {
  auto model = BertModel::from_pretrained(kDir + "/tiny");
  model->set_kernels(GetParam());
  const std::string f = "tiny_gold.safetensors";
  const BertOutput o =
      model->forward(key(f, "input_ids"), key(f, "attention_mask"), key(f, "token_type_ids"));
  const Tensor loss = sum(o.last_hidden_state * key(f, "loss_weight")) +
                      sum(o.pooler_output * key(f, "pooler_weight"));
  EXPECT_NEAR(loss.item(), key(f, "loss").item(), 1e-4);
  loss.backward();
  int checked = 0;
  double worst = 0;
  for (const auto& [name, p] : model->named_parameters()) {
    const Tensor want = key(f, "grad." + name);
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    const double tol = 1e-4 * (1 + max_abs(want));
    const double d = max_abs_diff(p.grad(), want);
    EXPECT_LE(d, tol) << name;
    worst = std::max(worst, d / (1 + max_abs(want)));
    ++checked;
  }
  fmt::print("tiny gold gradients: worst max|g - g_HF| / (1 + max|g_HF|) = {:.2e}\n", worst);
  EXPECT_EQ(checked, 2 * 16 + 5 + 2) << "embeddings (5) + 2 layers (16 each) + pooler (2)";
}

INSTANTIATE_TEST_SUITE_P(Kernels, BertTinyGold,
                         ::testing::Values(Kernels::fused, Kernels::composed),
                         [](const auto& info) {
                           return info.param == Kernels::fused ? std::string("fused")
                                                               : std::string("composed");
                         });

TEST(BertTiny, GeluNewVariantMatchesTransformers) {
  auto model = BertModel::from_pretrained(kDir + "/tiny_gelu_new");
  EXPECT_EQ(model->config().hidden_act, HiddenAct::gelu_tanh);
  const std::string f = "tiny_gelu_new_gold.safetensors";
  NoGradGuard no_grad;
  for (Kernels k : {Kernels::fused, Kernels::composed}) {
    model->set_kernels(k);
    const BertOutput o =
        model->forward(key(f, "input_ids"), key(f, "attention_mask"), key(f, "token_type_ids"));
    EXPECT_LE(max_abs_diff(o.last_hidden_state, key(f, "last_hidden_state")), 1e-5);
    EXPECT_LE(max_abs_diff(o.pooler_output, key(f, "pooler_output")), 1e-5);
  }
}

// i32 ids and a bool mask give the same result as i64 ids and an i64 mask.
TEST(BertTiny, AcceptsI32IdsAndBoolMask) {
  auto model = BertModel::from_pretrained(kDir + "/tiny");
  const std::string f = "tiny_gold.safetensors";
  NoGradGuard no_grad;
  const BertOutput o =
      model->forward(key(f, "input_ids").to(DType::i32), key(f, "attention_mask").to(DType::b8),
                     key(f, "token_type_ids").to(DType::i32));
  EXPECT_LE(max_abs_diff(o.last_hidden_state, key(f, "last_hidden_state")), 1e-5);
}

// ---- training mode ------------------------------------------------------------------------

TEST(BertTiny, DropoutOnlyInTrainingModeAndDeterministicPerSeed) {
  const std::string f = "tiny_gold.safetensors";
  auto run = [&](bool train, uint64_t seed, Kernels k) {
    Generator gen(seed);
    auto model = BertModel::from_pretrained(kDir + "/tiny", gen);
    model->set_kernels(k);
    model->train(train);
    NoGradGuard no_grad;
    return model->forward(key(f, "input_ids"), key(f, "attention_mask"), key(f, "token_type_ids"))
        .last_hidden_state;
  };
  const Tensor eval = run(false, 1, Kernels::fused);
  EXPECT_LE(max_abs_diff(eval, key(f, "last_hidden_state")), 1e-5);
  const Tensor a = run(true, 1, Kernels::fused), b = run(true, 1, Kernels::fused);
  const Tensor c = run(true, 2, Kernels::fused);
  EXPECT_EQ(max_abs_diff(a, b), 0.0) << "same seed, same masks";
  EXPECT_GT(max_abs_diff(a, eval), 1e-2) << "training mode drops";
  EXPECT_GT(max_abs_diff(a, c), 1e-2) << "another seed, other masks";
  // The fused ops draw the same Philox counters as the composed dropout ops.
  const Tensor d = run(true, 1, Kernels::composed);
  EXPECT_LE(max_abs_diff(a, d), 1e-5) << "fused and composed dropout masks differ";
}

TEST(BertTiny, FreezeAllButLast) {
  auto model = BertModel::from_pretrained(kDir + "/tiny");
  model->freeze_all_but_last(1);
  const std::string f = "tiny_gold.safetensors";
  const BertOutput o = model->forward(key(f, "input_ids"), key(f, "attention_mask"));
  (sum(o.last_hidden_state * key(f, "loss_weight")) + sum(o.pooler_output)).backward();
  for (const auto& [name, p] : model->named_parameters()) {
    const bool trainable = name.rfind("encoder.layer.1.", 0) == 0 || name.rfind("pooler.", 0) == 0;
    EXPECT_EQ(p.requires_grad(), trainable) << name;
    EXPECT_EQ(p.grad().defined(), trainable) << name;
  }
  model->freeze_all_but_last(5);  // every layer, not the embeddings
  for (const auto& [name, p] : model->named_parameters()) {
    EXPECT_EQ(p.requires_grad(), name.rfind("embeddings.", 0) != 0) << name;
  }
  model->freeze_all_but_last(0);
  for (const auto& [name, p] : model->named_parameters()) {
    EXPECT_EQ(p.requires_grad(), name.rfind("pooler.", 0) == 0) << name;
  }
  model->unfreeze_all();
  for (const auto& [name, p] : model->named_parameters()) EXPECT_TRUE(p.requires_grad()) << name;
}

// ---- input errors -----------------------------------------------------------------------------

TEST(BertTiny, InputErrorsNameTheProblem) {
  auto model = BertModel::from_pretrained(kDir + "/tiny");
  auto expect_error = [&](const Tensor& ids, const Tensor& mask, const std::string& needle) {
    try {
      model->forward(ids, mask);
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const Tensor ids = full({2, 5}, 7, DType::i64);
  expect_error(full({2, 5}, 100, DType::i64), Tensor(),
               "input_ids[0, 0] = 100 is outside [0, 100)");
  expect_error(ids, ones({2, 4}, DType::i64), "attention_mask must be [2, 5]");
  expect_error(full({1, 65}, 1, DType::i64), Tensor(), "exceeds max_position_embeddings 64");
  expect_error(full({2, 5}, 1.0, DType::f32), Tensor(), "input_ids must be i32 or i64");
  expect_error(full({10}, 1, DType::i64), Tensor(), "input_ids must be [batch, seq]");
}

// ---- checkpoints --------------------------------------------------------------------------

// Copies the tiny checkpoint into `dir`, applying `edit` to the tensors and `edit_config`
// to config.json.
void write_variant(const fs::path& dir,
                   const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit,
                   const std::function<void(nlohmann::json&)>& edit_config = {}) {
  fs::create_directories(dir);
  nlohmann::json cfg;
  {
    std::ifstream in(kDir + "/tiny/config.json");
    in >> cfg;
  }
  if (edit_config) edit_config(cfg);
  std::ofstream(dir / "config.json") << cfg.dump(2);
  const auto sd = load_safetensors(kDir + "/tiny/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> v(sd.begin(), sd.end());
  edit(v);
  save_safetensors((dir / "model.safetensors").string(), v, {{"format", "pt"}});
}

std::string load_error(const std::string& dir) {
  try {
    BertModel::from_pretrained(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BertCheckpoint, MissingDirectoryAndFiles) {
  TempDir tmp;
  expect_contains(load_error(tmp.str() + "/nope"), "not found");
  expect_contains(load_error(tmp.str() + "/nope"), "fetch_minilm.sh");
  expect_contains(load_error(tmp.str()), "config.json is missing");
  fs::copy_file(kDir + "/tiny/config.json", tmp.path() / "config.json");
  expect_contains(load_error(tmp.str()), "model.safetensors is missing");
}

TEST(BertCheckpoint, ConfigErrorsNameFileAndField) {
  TempDir tmp;
  const auto same = [](std::vector<std::pair<std::string, Tensor>>&) {};
  auto variant = [&](const std::string& name, const std::function<void(nlohmann::json&)>& e) {
    const fs::path d = tmp.path() / name;
    write_variant(d, same, e);
    return load_error(d.string());
  };
  std::string msg = variant("roberta", [](nlohmann::json& j) { j["model_type"] = "roberta"; });
  expect_contains(msg, "unsupported architecture model_type \"roberta\"");
  expect_contains(msg, "roberta/config.json");
  msg = variant("notype", [](nlohmann::json& j) { j.erase("model_type"); });
  expect_contains(msg, "field \"model_type\" is missing");
  msg = variant("heads", [](nlohmann::json& j) { j["num_attention_heads"] = 5; });
  expect_contains(msg, "hidden_size (32) is not a multiple of num_attention_heads (5)");
  msg = variant("act", [](nlohmann::json& j) { j["hidden_act"] = "swish"; });
  expect_contains(msg, "field \"hidden_act\" is \"swish\"");
  msg = variant("type", [](nlohmann::json& j) { j["hidden_size"] = "32"; });
  expect_contains(msg, "field \"hidden_size\" must be an integer");
  msg = variant("pos", [](nlohmann::json& j) { j["position_embedding_type"] = "relative_key"; });
  expect_contains(msg, "position_embedding_type");
  // Not JSON at all.
  const fs::path bad = tmp.path() / "badjson";
  write_variant(bad, same);
  std::ofstream(bad / "config.json") << "{\"model_type\": \"bert\",";
  msg = load_error(bad.string());
  expect_contains(msg, "badjson/config.json: not valid JSON");
}

TEST(BertCheckpoint, MissingKeyAndShapeMismatchAreNamed) {
  TempDir tmp;
  write_variant(tmp.path() / "missing", [](auto& v) {
    std::erase_if(v,
                  [](const auto& kv) { return kv.first == "encoder.layer.1.output.dense.bias"; });
  });
  std::string msg = load_error((tmp.path() / "missing").string());
  expect_contains(msg, "missing keys [\"encoder.layer.1.output.dense.bias\"]");
  expect_contains(msg, "missing/model.safetensors");

  write_variant(tmp.path() / "shape", [](auto& v) {
    for (auto& [k, t] : v) {
      if (k == "encoder.layer.0.intermediate.dense.weight") t = zeros({48, 32});
    }
  });
  msg = load_error((tmp.path() / "shape").string());
  expect_contains(
      msg, "\"encoder.layer.0.intermediate.dense.weight\": checkpoint [48, 32], model [64, 32]");

  // A third layer the config does not know about.
  write_variant(tmp.path() / "extra",
                [](auto& v) { v.emplace_back("encoder.layer.2.output.dense.bias", zeros({32})); });
  msg = load_error((tmp.path() / "extra").string());
  expect_contains(msg, "keys the config has no place for [\"encoder.layer.2.output.dense.bias\"]");
}

// A BertForMaskedLM-style file: "bert." prefix, cls.* head, position_ids buffer, old
// gamma/beta LayerNorm names, no pooler. Loads, and gives the same hidden states.
TEST(BertCheckpoint, MlmStyleNamesLoad) {
  TempDir tmp;
  write_variant(tmp.path(), [](auto& v) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (auto& [k, t] : v) {
      if (k.rfind("pooler.", 0) == 0) continue;
      std::string n = "bert." + k;
      if (n == "bert.embeddings.LayerNorm.weight") n = "bert.embeddings.LayerNorm.gamma";
      if (n == "bert.embeddings.LayerNorm.bias") n = "bert.embeddings.LayerNorm.beta";
      out.emplace_back(n, t);
    }
    out.emplace_back("cls.predictions.bias", zeros({100}));
    out.emplace_back("cls.predictions.transform.dense.weight", zeros({32, 32}));
    out.emplace_back("bert.embeddings.position_ids", arange(0, 64, 1, DType::i64).reshape({1, 64}));
    v = out;
  });
  auto model = BertModel::from_pretrained(tmp.str());
  EXPECT_FALSE(model->has_pooler());
  const std::string f = "tiny_gold.safetensors";
  NoGradGuard no_grad;
  const BertOutput o =
      model->forward(key(f, "input_ids"), key(f, "attention_mask"), key(f, "token_type_ids"));
  EXPECT_FALSE(o.pooler_output.defined());
  EXPECT_LE(max_abs_diff(o.last_hidden_state, key(f, "last_hidden_state")), 1e-5);
}

TEST(BertCheckpoint, SavePretrainedRoundtrip) {
  TempDir tmp;
  auto model = BertModel::from_pretrained(kDir + "/tiny");
  const std::string out = tmp.str() + "/saved";
  model->save_pretrained(out);
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().filename(), "saved") << "temporary left behind: " << e.path();
  }
  auto back = BertModel::from_pretrained(out);
  const BertConfig &a = model->config(), &b = back->config();
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.layer_norm_eps, b.layer_norm_eps);
  EXPECT_EQ(a.hidden_act_name, b.hidden_act_name);
  // The file holds exactly HF's names.
  const auto sd = load_safetensors(out + "/model.safetensors");
  const auto hf = load_safetensors(kDir + "/tiny/model.safetensors");
  ASSERT_EQ(sd.size(), hf.size());
  for (const auto& [k, t] : hf) {
    ASSERT_TRUE(sd.count(k)) << k;
    EXPECT_EQ(max_abs_diff(sd.at(k), t), 0.0) << k;
  }
  const std::string f = "tiny_gold.safetensors";
  NoGradGuard no_grad;
  const Tensor h1 = model->forward(key(f, "input_ids"), key(f, "attention_mask")).last_hidden_state;
  const Tensor h2 = back->forward(key(f, "input_ids"), key(f, "attention_mask")).last_hidden_state;
  EXPECT_EQ(max_abs_diff(h1, h2), 0.0);

  // Saving again into the existing directory replaces our files and keeps the others.
  std::ofstream(out + "/vocab.txt") << "[PAD]\n";
  back->save_pretrained(out);
  EXPECT_TRUE(fs::exists(out + "/vocab.txt"));
  EXPECT_NO_THROW(BertModel::from_pretrained(out));
}

// A fresh model (HF's init) saves and loads; the config survives the JSON roundtrip.
TEST(BertCheckpoint, FreshModelRoundtrip) {
  TempDir tmp;
  BertConfig cfg;
  cfg.vocab_size = 50;
  cfg.hidden_size = 16;
  cfg.num_hidden_layers = 1;
  cfg.num_attention_heads = 2;
  cfg.intermediate_size = 24;
  cfg.max_position_embeddings = 20;
  cfg.hidden_act = HiddenAct::gelu_tanh;
  cfg.hidden_act_name = "gelu_new";
  Generator gen(5);
  BertModel m(cfg, true, gen);
  m.save_pretrained(tmp.str() + "/m");
  auto back = BertModel::from_pretrained(tmp.str() + "/m");
  EXPECT_EQ(back->config().hidden_act, HiddenAct::gelu_tanh);
  for (const auto& [k, t] : m.state_dict()) {
    const auto sd = back->state_dict();
    const auto it =
        std::find_if(sd.begin(), sd.end(), [&](const auto& kv) { return kv.first == k; });
    ASSERT_NE(it, sd.end()) << k;
    EXPECT_EQ(max_abs_diff(it->second, t), 0.0) << k;
  }
  // HF's init: N(0, 0.02) weights, zero biases, unit LayerNorm.
  const auto sd = m.state_dict();
  for (const auto& [k, t] : sd) {
    if (k.find("LayerNorm.weight") != std::string::npos) {
      EXPECT_EQ(max_abs_diff(t, ones(t.shape())), 0.0) << k;
    } else if (k.find("bias") != std::string::npos) {
      EXPECT_EQ(max_abs(t), 0.0) << k;
    } else {
      EXPECT_GT(max_abs(t), 0.02) << k;
      EXPECT_LT(max_abs(t), 0.2) << k;
    }
  }
}

}  // namespace
