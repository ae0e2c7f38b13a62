// Static BERT anime2vec: every anime's text encoded once by a pretrained encoder (no gradient,
// eval mode) into one vector — sentence-transformers' recipe (mean of the last hidden states
// over the real tokens, then L2 normalization) or the [CLS] state — cached like the other
// content features and fed to DropoutNet as φ^V.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/bert/bert.h"
#include "models/bert/tokenizer.h"

namespace dan::bert {

enum class Pooling { mean, cls };
Pooling parse_pooling(const std::string& s);  // "mean" | "cls"

struct StaticConfig {
  std::string model_dir;     // HF directory; "" = minilm_dir() (models/bert/paths.h)
  int64_t max_length = 256;  // tokens per text incl. [CLS]/[SEP]; longer texts are truncated
  int64_t batch_size = 32;
  Pooling pooling = Pooling::mean;
  bool normalize = true;     // L2-normalize each vector
  std::string key() const;   // canonical text (with the model's identity), for the cache
};

// The directory the config names, resolved; errors with the fetch hint when it is missing.
std::string resolve_model_dir(const StaticConfig& cfg);
// Identity of a model directory for cache keys: sizes and FNV-1a hashes of config.json,
// vocab.txt and model.safetensors (all of its bytes).
std::string model_fingerprint(const std::string& dir);

// [texts, hidden] f32 on the CPU. Texts are encoded in batches of similar length (sorted by
// token count, so little padding is computed) and written back in input order; an empty text
// is [CLS] [SEP]. The result does not depend on the batch composition beyond float rounding
// of the GEMMs. on_batch (may be empty) sees (texts done, total).
Tensor encode_texts(BertModel& model, const WordPieceTokenizer& tok,
                    const std::vector<std::string>& texts, const StaticConfig& cfg,
                    const std::function<void(int64_t, int64_t)>& on_batch = {});

}  // namespace dan::bert
