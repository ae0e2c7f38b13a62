// Embedding layer: weight [num, dim] ~ N(0, 1) as torch.nn.Embedding.reset_parameters.
#include "layers/embedding.h"

namespace dan {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen)
    : num_(num_embeddings), dim_(embedding_dim) {
  DAN_CHECK(num_embeddings >= 0 && embedding_dim >= 0,
            "Embedding: sizes must be >= 0, got num_embeddings {} and embedding_dim {}",
            num_embeddings, embedding_dim);
  weight_ = register_parameter("weight", empty({num_embeddings, embedding_dim}));
  init_normal_(weight_, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& index) { return embedding(weight_, index); }

}  // namespace dan
