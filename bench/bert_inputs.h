// What the BERT benchmarks (bench_bert on the CPU, cuda/bench_bert_cuda on a GPU) build their
// runs from: the encoder shapes they time and batches of random token ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/bert/config.h"

namespace dan::bench {

// The part of a BERT encoder's shape the benchmarks vary.
struct BertShape {
  std::string name;
  int64_t layers, hidden, heads, inter;
};

inline const BertShape kMiniLM = {"MiniLM", 6, 384, 12, 1536};  // all-MiniLM-L6-v2
inline const BertShape kBertBase = {"BERT-base", 12, 768, 12, 3072};

// The config of `s`; vocab, positions, dropout 0.1 and GELU keep HF's BERT defaults.
inline bert::BertConfig bert_config(const BertShape& s) {
  bert::BertConfig cfg;
  cfg.num_hidden_layers = s.layers;
  cfg.hidden_size = s.hidden;
  cfg.num_attention_heads = s.heads;
  cfg.intermediate_size = s.inter;
  return cfg;
}

// A [B, T] batch of token ids and its attention mask, row-major.
struct TokenBatch {
  int64_t B = 0, T = 0;
  int64_t tokens = 0;  // real (unpadded) tokens
  std::vector<int64_t> ids, mask;

  Tensor ids_tensor(Device dev = Device::cpu()) const { return from_vector(ids, {B, T}, dev); }
  Tensor mask_tensor(Device dev = Device::cpu()) const { return from_vector(mask, {B, T}, dev); }
};

// Row b holds length(b) real tokens, each id from draw_id() (the callers draw ids in
// [1000, vocab): no special tokens are needed for timing), then padding (id 0, mask 0). The
// calls come in row order, length(b) before the row's ids, so a seeded generator behind them
// gives the same batch every run.
template <typename Length, typename DrawId>
TokenBatch make_token_batch(int64_t B, int64_t T, const Length& length, const DrawId& draw_id) {
  TokenBatch tb;
  tb.B = B;
  tb.T = T;
  tb.ids.resize(static_cast<size_t>(B * T));
  tb.mask.resize(static_cast<size_t>(B * T));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = length(b);
    tb.tokens += len;
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = static_cast<size_t>(b * T + t);
      tb.mask[i] = t < len ? 1 : 0;
      tb.ids[i] = t < len ? static_cast<int64_t>(draw_id()) : 0;
    }
  }
  return tb;
}

}  // namespace dan::bench
