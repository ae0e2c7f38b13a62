// Embedding: a lookup table of rows, torch.nn.Embedding's names and N(0, 1) init.
#pragma once

#include "layers/module.h"

namespace dan {

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen = default_generator());

  // index (i32/i64, any shape) -> index.shape + [embedding_dim]; gradients accumulate into
  // the looked-up rows only.
  Tensor forward(const Tensor& index) override;
  std::string type_name() const override { return "Embedding"; }

  const Tensor& weight() const { return weight_; }
  int64_t num_embeddings() const { return num_; }
  int64_t embedding_dim() const { return dim_; }

 private:
  int64_t num_, dim_;
  Tensor weight_;
};

}  // namespace dan
