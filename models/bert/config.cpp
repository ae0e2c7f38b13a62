// BertConfig from / to HF's config.json: every field checked for type and range, errors name
// the file and the field.
#include "models/bert/config.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dan::bert {

namespace {

using nlohmann::json;

int64_t get_int(const json& j, const char* key, int64_t def, const std::string& origin) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  DAN_CHECK(it->is_number_integer(), "{}: field \"{}\" must be an integer, got {}", origin, key,
            it->dump());
  return it->get<int64_t>();
}

double get_double(const json& j, const char* key, double def, const std::string& origin) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  DAN_CHECK(it->is_number(), "{}: field \"{}\" must be a number, got {}", origin, key, it->dump());
  return it->get<double>();
}

std::string get_string(const json& j, const char* key, const std::string& def,
                       const std::string& origin) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  DAN_CHECK(it->is_string(), "{}: field \"{}\" must be a string, got {}", origin, key, it->dump());
  return it->get<std::string>();
}

}  // namespace

void BertConfig::validate(const std::string& origin) const {
  // Errors name the field as the config file spells it.
  const bool distil = model_type == "distilbert";
  auto name = [&](const char* bert, const char* distilbert) { return distil ? distilbert : bert; };
  auto positive = [&](int64_t v, const char* field) {
    DAN_CHECK(v > 0, "{}: field \"{}\" must be > 0, got {}", origin, field, v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, name("hidden_size", "dim"));
  positive(num_hidden_layers, name("num_hidden_layers", "n_layers"));
  positive(num_attention_heads, name("num_attention_heads", "n_heads"));
  positive(intermediate_size, name("intermediate_size", "hidden_dim"));
  positive(max_position_embeddings, "max_position_embeddings");
  positive(type_vocab_size, "type_vocab_size");
  DAN_CHECK(hidden_size % num_attention_heads == 0, "{}: {} ({}) is not a multiple of {} ({})",
            origin, name("hidden_size", "dim"), hidden_size,
            name("num_attention_heads", "n_heads"), num_attention_heads);
  DAN_CHECK(hidden_dropout_prob >= 0 && hidden_dropout_prob < 1,
            "{}: field \"{}\" must be in [0, 1), got {}", origin,
            name("hidden_dropout_prob", "dropout"), hidden_dropout_prob);
  DAN_CHECK(attention_probs_dropout_prob >= 0 && attention_probs_dropout_prob < 1,
            "{}: field \"{}\" must be in [0, 1), got {}", origin,
            name("attention_probs_dropout_prob", "attention_dropout"),
            attention_probs_dropout_prob);
  DAN_CHECK(layer_norm_eps > 0, "{}: field \"layer_norm_eps\" must be > 0, got {}", origin,
            layer_norm_eps);
}

namespace {

// DistilBERT is BERT without token types and without a pooler, under other names: its
// config.json (HF's DistilBertConfig: dim, n_layers, n_heads, hidden_dim, activation, dropout,
// attention_dropout; LayerNorm eps fixed at 1e-12) maps onto BertConfig with one token type
// (the loader gives it a zero embedding, so every output is DistilBERT's).
BertConfig distilbert_from_json(const json& j, const std::string& origin) {
  BertConfig c;
  c.model_type = "distilbert";
  c.vocab_size = get_int(j, "vocab_size", c.vocab_size, origin);
  c.hidden_size = get_int(j, "dim", 768, origin);
  c.num_hidden_layers = get_int(j, "n_layers", 6, origin);
  c.num_attention_heads = get_int(j, "n_heads", 12, origin);
  c.intermediate_size = get_int(j, "hidden_dim", 3072, origin);
  c.max_position_embeddings =
      get_int(j, "max_position_embeddings", c.max_position_embeddings, origin);
  c.type_vocab_size = 1;
  c.pad_token_id = get_int(j, "pad_token_id", c.pad_token_id, origin);
  c.hidden_dropout_prob = get_double(j, "dropout", 0.1, origin);
  c.attention_probs_dropout_prob = get_double(j, "attention_dropout", 0.1, origin);
  c.layer_norm_eps = 1e-12;
  c.hidden_act_name = get_string(j, "activation", "gelu", origin);
  DAN_CHECK(c.hidden_act_name == "gelu",
            "{}: field \"activation\" is \"{}\"; supported for DistilBERT: \"gelu\"", origin,
            c.hidden_act_name);
  c.hidden_act = HiddenAct::gelu;
  const auto sin = j.find("sinusoidal_pos_embds");
  DAN_CHECK(sin == j.end() || sin->is_null() || (sin->is_boolean() && !sin->get<bool>()),
            "{}: field \"sinusoidal_pos_embds\" is {}; only learned position embeddings "
            "(false) are supported",
            origin, sin == j.end() ? "" : sin->dump());
  c.validate(origin);
  return c;
}

}  // namespace

BertConfig BertConfig::from_json(const json& j, const std::string& origin) {
  DAN_CHECK(j.is_object(), "{}: expected a JSON object, got {}", origin, j.type_name());
  BertConfig c;
  DAN_CHECK(j.contains("model_type"),
            "{}: field \"model_type\" is missing (expected \"bert\" or \"distilbert\"; is this a "
            "HF config.json?)",
            origin);
  c.model_type = get_string(j, "model_type", "", origin);
  if (c.model_type == "distilbert") return distilbert_from_json(j, origin);
  // RoBERTa, ELECTRA, ... share most names but not the position ids or the layout: refusing
  // them here beats loading weights into the wrong architecture.
  DAN_CHECK(c.model_type == "bert",
            "{}: unsupported architecture model_type \"{}\" (this encoder implements \"bert\" "
            "and \"distilbert\")",
            origin, c.model_type);
  c.vocab_size = get_int(j, "vocab_size", c.vocab_size, origin);
  c.hidden_size = get_int(j, "hidden_size", c.hidden_size, origin);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", c.num_hidden_layers, origin);
  c.num_attention_heads = get_int(j, "num_attention_heads", c.num_attention_heads, origin);
  c.intermediate_size = get_int(j, "intermediate_size", c.intermediate_size, origin);
  c.max_position_embeddings =
      get_int(j, "max_position_embeddings", c.max_position_embeddings, origin);
  c.type_vocab_size = get_int(j, "type_vocab_size", c.type_vocab_size, origin);
  c.pad_token_id = get_int(j, "pad_token_id", c.pad_token_id, origin);
  c.hidden_dropout_prob = get_double(j, "hidden_dropout_prob", c.hidden_dropout_prob, origin);
  c.attention_probs_dropout_prob =
      get_double(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, origin);
  c.layer_norm_eps = get_double(j, "layer_norm_eps", c.layer_norm_eps, origin);

  c.hidden_act_name = get_string(j, "hidden_act", "gelu", origin);
  if (c.hidden_act_name == "gelu") {
    c.hidden_act = HiddenAct::gelu;
  } else if (c.hidden_act_name == "gelu_new" || c.hidden_act_name == "gelu_pytorch_tanh") {
    c.hidden_act = HiddenAct::gelu_tanh;
  } else {
    fail(
        "{}: field \"hidden_act\" is \"{}\"; supported: \"gelu\" (erf), \"gelu_new\" and "
        "\"gelu_pytorch_tanh\" (tanh approximation)",
        origin, c.hidden_act_name);
  }
  const std::string pos = get_string(j, "position_embedding_type", "absolute", origin);
  DAN_CHECK(pos == "absolute",
            "{}: field \"position_embedding_type\" is \"{}\"; only \"absolute\" is supported",
            origin, pos);
  DAN_CHECK(!j.value("is_decoder", false) && !j.value("add_cross_attention", false),
            "{}: decoder / cross-attention BERT configs are not supported (encoder only)", origin);
  c.validate(origin);
  return c;
}

BertConfig BertConfig::from_json_file(const std::string& path) {
  std::ifstream f(path);
  DAN_CHECK(f.good(), "{}: cannot open config file (missing or unreadable)", path);
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  DAN_CHECK(!j.is_discarded(), "{}: not valid JSON", path);
  return from_json(j, path);
}

json BertConfig::to_json() const {
  json j;
  j["architectures"] = json::array({"BertModel"});
  j["model_type"] = "bert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act_name;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["pad_token_id"] = pad_token_id;
  j["position_embedding_type"] = "absolute";
  j["initializer_range"] = 0.02;
  return j;
}

}  // namespace dan::bert
