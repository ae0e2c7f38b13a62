// BERT as a trainable anime2vec: each anime's text goes through a pretrained encoder whose last
// K layers train with the downstream loss (the paper fine-tuned the last layer of six) while the
// embeddings and the first L - K layers stay frozen.
//
// The frozen part never changes, so it runs once: its output for every text (the hidden states
// entering layer L - K, real tokens only) is cached on the host, and a training step runs only
// the K trainable layers on the texts of its batch. The frozen part runs in eval mode (no
// dropout) for the cache; the trainable layers follow the module's mode. With MiniLM (L = 6)
// and K = 1 a step costs a sixth of a full forward+backward.
//
// Memory: the cache holds (real tokens) x hidden floats, e.g. 15,878 anime x <= 128 tokens x
// 384 floats <= 3.1 GB; max_length bounds it. With cache_dir set, the same bytes go to disk
// once, and later runs of the same model and texts read them back instead of recomputing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "models/bert/bert.h"
#include "models/bert/static_features.h"
#include "models/bert/tokenizer.h"

namespace dan::bert {

struct TextEncoderConfig {
  int64_t trainable_layers = 1;  // K in [1, L]: the last K encoder layers train
  int64_t batch_size = 32;       // texts per no-grad batch (cache building, encode_all)
  Pooling pooling = Pooling::mean;
  bool normalize = true;         // L2-normalize each pooled vector (differentiably)
  // Optional disk copy of the frozen-prefix cache: with cache_dir set, the cache is stored as
  // cache_dir/bert-prefix-<16 hex>.safetensors and later encoders with the same key load it
  // instead of running the frozen layers. The key is model_key (the caller's identity of the
  // weights, e.g. model_fingerprint(dir)) plus the frozen layer count and a hash of every
  // token id; a file with another key, or one that cannot be read, is recomputed and rewritten.
  std::string cache_dir;
  std::string model_key;
};

// Children: the trainable layers under their encoder index, "layer.<i>.<HF names>" (i from L-K
// to L-1), so a state_dict holds exactly what fine-tuning changed; the frozen weights stay in the
// model directory the run names.
class TextEncoder : public Module {
 public:
  // `texts`: one tokenized text per row (from WordPieceTokenizer::encode_each, [CLS] ... [SEP],
  // truncated); an empty row is an error. Builds the frozen-prefix cache (no grad, eval mode);
  // on_batch (may be empty) sees (texts done, total). The model's first L - K layers and
  // embeddings get requires_grad = false, its last K layers true.
  TextEncoder(std::shared_ptr<BertModel> model, const std::vector<Encoding>& texts,
              const TextEncoderConfig& cfg,
              const std::function<void(int64_t, int64_t)>& on_batch = {});
  std::string type_name() const override { return "TextEncoder"; }
  using Module::forward;

  // Pooled vectors [idx.size(), hidden] for the texts idx (repeats allowed), computed by the
  // trainable layers in the current grad mode and module mode, on the module's device.
  Tensor encode(const std::vector<int32_t>& idx);
  // Every text, eval mode, no grad, batch_size texts at a time -> [texts, hidden] on the CPU.
  Tensor encode_all();

  int64_t num_texts() const { return static_cast<int64_t>(length_.size()); }
  int64_t hidden() const { return hidden_; }
  int64_t cached_tokens() const { return total_tokens_; }
  // The disk copy (cache_dir set): its path, and whether this encoder loaded it.
  const std::string& cache_file() const { return cache_file_; }
  bool loaded_from_file() const { return loaded_from_file_; }
  const TextEncoderConfig& config() const { return cfg_; }
  BertModel& model() { return *model_; }

 private:
  Tensor run_trainable(const std::vector<int32_t>& idx);
  bool load_cache(const std::string& key);
  void save_cache(const std::string& key) const;

  std::shared_ptr<BertModel> model_;
  TextEncoderConfig cfg_;
  int64_t hidden_ = 0, first_trainable_ = 0, total_tokens_ = 0;
  std::vector<int64_t> offset_;  // first cached row of each text
  std::vector<int32_t> length_;  // real tokens of each text
  std::vector<float> cache_;     // [total_tokens, hidden]: hidden states entering layer L - K
  std::string cache_file_;
  bool loaded_from_file_ = false;
};

}  // namespace dan::bert
