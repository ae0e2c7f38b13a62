// BertConfig: the architecture of a BERT encoder as HF transformers writes it in config.json,
// read with HF's defaults for absent fields and validated, and written back in HF's format.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace dan::bert {

enum class HiddenAct {
  gelu,       // exact erf form ("gelu")
  gelu_tanh,  // tanh approximation ("gelu_new", "gelu_pytorch_tanh")
};

// Field names and defaults are HF's BertConfig; fields config.json lacks keep these values.
struct BertConfig {
  std::string model_type = "bert";  // or "distilbert": the file's own names (see from_json)
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  HiddenAct hidden_act = HiddenAct::gelu;
  std::string hidden_act_name = "gelu";  // as written in config.json (kept for save)
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }

  // Throws dan::Error naming `origin` and the field for a non-positive size, hidden_size not
  // divisible by num_attention_heads, a dropout outside [0, 1) or a non-positive eps.
  void validate(const std::string& origin = "BertConfig") const;

  // From a parsed config.json object. model_type must be "bert" or "distilbert" (RoBERTa-style
  // and other architectures differ in position ids or layout and are rejected by name);
  // hidden_act "gelu", "gelu_new" or "gelu_pytorch_tanh"; position_embedding_type "absolute"
  // when given. A DistilBERT config (dim, n_layers, n_heads, hidden_dim, activation "gelu",
  // dropout, attention_dropout, learned positions) becomes the equivalent BERT: one token type,
  // eps 1e-12, model_type "distilbert" (to_json writes it as BERT). `origin` (a file path)
  // prefixes every error; errors name the fields as the file spells them.
  static BertConfig from_json(const nlohmann::json& j, const std::string& origin = "config.json");
  // Reads and parses `path` (a config.json file).
  static BertConfig from_json_file(const std::string& path);
  // HF-compatible config.json content (architectures ["BertModel"], model_type "bert").
  nlohmann::json to_json() const;
};

}  // namespace dan::bert
