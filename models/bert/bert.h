// BERT encoder (Devlin et al. 2019) as HF transformers' BertModel: embeddings, N post-LN
// transformer layers, optional pooler, with HF's parameter names so that HF checkpoints load
// by name (from_pretrained) and ours load in HF (save_pretrained). Built from autograd ops, so
// it trains (fine-tuning, MLM pre-training) like any other Module. See models/bert/README.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "layers/norm.h"
#include "models/bert/config.h"

namespace dan::bert {

// How a layer computes; both give the same function (tests compare them).
enum class Kernels {
  fused,     // fused attention (no [B, heads, T, T] tensor kept), bias+GELU, residual+LayerNorm
  composed,  // the textbook chain of matmul / softmax / dropout / add / layer_norm ops
};

struct BertOutput {
  Tensor last_hidden_state;  // [B, T, hidden]
  Tensor pooler_output;      // [B, hidden] = tanh(dense(h[:, 0])); undefined without a pooler
};

// A module that only groups children, so that state_dict names follow HF's nesting
// ("attention.self.query.weight").
class Group : public Module {
 public:
  explicit Group(std::string type) : type_(std::move(type)) {}
  std::string type_name() const override { return type_; }

 private:
  std::string type_;
};

// The parameters of one torch.nn.Linear (weight [out, in], bias [out]), registered on a child
// module so the names are HF's ("<name>.weight", "<name>.bias"). Unlike dan::Linear it draws
// nothing when the values will come from a checkpoint anyway.
struct Dense {
  Tensor weight, bias;
  Tensor operator()(const Tensor& x) const { return linear(x, weight, bias); }  // x [N, in]
};

// word + position + token-type embeddings, LayerNorm, dropout.
class BertEmbeddings : public Module {
 public:
  // init: HF's N(0, 0.02) draws; otherwise uninitialized (from_pretrained overwrites them).
  BertEmbeddings(const BertConfig& cfg, bool init, Generator& gen);
  std::string type_name() const override { return "BertEmbeddings"; }
  using Module::forward;
  // input_ids [B, T] (validated by BertModel), token_type_ids [B, T] or undefined (all 0).
  Tensor forward(const Tensor& input_ids, const Tensor& token_type_ids, Generator& gen);

  // The tables (children word_embeddings, position_embeddings, token_type_embeddings, each
  // with a "weight") and the LayerNorm (registered as "LayerNorm", HF's name).
  Tensor word_embeddings, position_embeddings, token_type_embeddings;
  std::shared_ptr<LayerNorm> layer_norm;

 private:
  double dropout_p_;
  int64_t pad_token_id_;
};

// One post-LN transformer layer:
//   a = LN(x + drop(dense(self_attention(x))));  y = LN(a + drop(dense(gelu(dense(a))))).
class BertLayer : public Module {
 public:
  BertLayer(const BertConfig& cfg, bool init, Generator& gen);
  std::string type_name() const override { return "BertLayer"; }
  using Module::forward;
  // x [B * T, hidden] (rows batch-major); key_bias [B, T] additive (0 for real tokens, the
  // dtype's lowest value for padding: HF's extended attention mask) or undefined.
  Tensor forward(const Tensor& x, const Tensor& key_bias, int64_t batch, int64_t seq,
                 Kernels kernels, Generator& gen);

  // Children in HF's nesting: attention.self.{query,key,value}, attention.output.{dense,
  // LayerNorm}, intermediate.dense, output.{dense,LayerNorm}.
  Dense query, key, value, attn_out_dense, intermediate_dense, out_dense;
  std::shared_ptr<LayerNorm> attn_out_norm, out_norm;

 private:
  Tensor attention(const Tensor& x, const Tensor& key_bias, int64_t batch, int64_t seq,
                   Kernels kernels, Generator& gen);
  BertConfig cfg_;
};

class BertModel : public Module {
 public:
  // Weights as HF's _init_weights: Linear and Embedding N(0, 0.02), biases 0, LayerNorm 1/0
  // (init_weights = false leaves them uninitialized, for a load that overwrites them). `gen` draws
  // the init and, later, every dropout mask; it must outlive the model.
  explicit BertModel(const BertConfig& cfg, bool add_pooling_layer = true,
                     Generator& gen = default_generator(), bool init_weights = true);
  std::string type_name() const override { return "BertModel"; }

  // config.json + model.safetensors from an HF model directory. Accepts BertModel names and
  // the "bert."-prefixed names of BertFor* checkpoints; ignores head weights (cls.*,
  // classifier.*, ...) and embeddings.position_ids; maps old LayerNorm gamma/beta names. The
  // pooler is built when the checkpoint has one. Missing keys, shape mismatches and unknown
  // encoder keys are one error naming the file and every offending key (with both shapes).
  static std::shared_ptr<BertModel> from_pretrained(const std::string& dir,
                                                    Generator& gen = default_generator());
  // Writes config.json and model.safetensors (HF names, metadata format "pt") into `dir`:
  // both files go to a temporary directory first and are renamed into place.
  void save_pretrained(const std::string& dir) const;

  // input_ids [B, T] (i32/i64, ids < vocab_size, T <= max_position_embeddings);
  // attention_mask [B, T] (1 = token, 0 = padding; any numeric or bool dtype) or undefined
  // (all tokens); token_type_ids [B, T] or undefined (all 0).
  BertOutput forward(const Tensor& input_ids, const Tensor& attention_mask,
                     const Tensor& token_type_ids = Tensor());
  // last_hidden_state with no padding.
  Tensor forward(const Tensor& input_ids) override;

  // For fine-tuning: the embeddings and the first num_hidden_layers - k layers stop
  // requiring grad (k >= num_hidden_layers leaves every layer trainable, embeddings still
  // frozen); the last k layers and the pooler require it again. unfreeze_all() undoes it.
  void freeze_all_but_last(int64_t k);
  void unfreeze_all();

  void set_kernels(Kernels k) { kernels_ = k; }
  Kernels kernels() const { return kernels_; }
  const BertConfig& config() const { return cfg_; }
  bool has_pooler() const { return pooler_dense_.weight.defined(); }

  std::shared_ptr<BertEmbeddings> embeddings;
  std::vector<std::shared_ptr<BertLayer>> layers;  // encoder.layer.{i}

 private:
  BertConfig cfg_;
  Generator* gen_;
  Kernels kernels_ = Kernels::fused;
  Dense pooler_dense_;  // undefined tensors without a pooler
};

// The directory write behind save_pretrained (BertModel, BertForMaskedLM): config.json,
// model.safetensors (metadata format "pt") and copies of `copy_files` (paths; vocab.txt, say)
// go into `dir`.tmp-<pid>/, which is renamed to `dir`; into an existing directory each file is
// renamed over the old one and other files stay. `who` prefixes errors.
void write_pretrained_dir(const std::string& dir, const nlohmann::json& config,
                          const NamedTensors& tensors,
                          const std::vector<std::string>& copy_files = {},
                          const std::string& who = "save_pretrained");

// ---- sentence embeddings (sentence-transformers' Pooling / Normalize) ---------------------
// h [B, T, H] -> h[:, 0].
Tensor cls_pool(const Tensor& hidden);
// Mask-weighted mean over tokens: sum_t h[b, t] m[b, t] / max(sum_t m[b, t], 1e-9).
// attention_mask [B, T], any numeric or bool dtype.
Tensor mean_pool(const Tensor& hidden, const Tensor& attention_mask);
// Rows divided by max(||row||_2, eps) (torch.nn.functional.normalize, dim -1).
Tensor l2_normalize(const Tensor& x, double eps = 1e-12);

// The additive key mask HF derives from attention_mask: (1 - m) * lowest(dtype), shape [B, T].
Tensor extended_attention_mask(const Tensor& attention_mask, DType dtype);

}  // namespace dan::bert
