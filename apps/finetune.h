// BERT fine-tuned inside DropoutNet (features.kind = bert, features.bert.finetune_layers = K > 0):
// φ^V_v = [standardize(TextEncoder(text_v)) ‖ metadata_v] with the encoder's last K layers
// trained by DropoutNet's loss, and φ^U_u = the mean of φ^V over u's top-N rated train anime
// (model.user_content_top_n; the paper used 5), also differentiable. Each step encodes the
// distinct anime of its batch (its items and its users' top-N) once.
//
// The standardization is a constant affine map: the column means and scales of the pretrained
// encoder's vectors, as features.standardize applies them to static features, so fine-tuning
// starts from exactly the static content.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "models/bert/text_encoder.h"
#include "models/dropoutnet/dropoutnet.h"
#include "recsys/config.h"
#include "recsys/csr.h"
#include "recsys/sampler.h"

namespace dan::apps {

struct Prepared;

struct TextInputs {
  std::shared_ptr<bert::TextEncoder> encoder;  // over every anime's text (row = anime index)
  Tensor mean, scale;                  // [1, hidden] on the model's device, or undefined (no standardization)
  Tensor meta;                         // [anime, d_meta] columns after the text block, or undefined
  std::vector<int32_t> anime_of_item;  // BatchMaker item row -> anime
  std::vector<std::vector<int32_t>> user_top;  // per user: its top-N rated train anime
  bool user_content = true;
  int top_n = 0;                               // model.user_content_top_n
  // features.bert.user_grad = false: φ^U comes from this [users, d] table (the content at the
  // start of the epoch, no gradient) instead of encoding the users' anime at every step — a
  // step then encodes only its items (about 1 + top_n times fewer texts).
  bool user_grad = true;
  Tensor user_table;

  // Content rows for `anime` (sorted, distinct) in the current grad and module mode.
  Tensor content(const std::vector<int32_t>& anime);
  void to(Device d);
};

// Column means and scales for the text block: text::standardize_columns' z-scoring, except that
// a column's std is floored at 25% of the median column std. An (almost) constant column of the
// pretrained vectors would otherwise get a scale up to 1e12 (MiniLM has such columns), and as
// fine-tuning moves it the amplified content makes training diverge (NaN within a few SGD
// steps). Constant columns get scale 0. Columns below the floor start less spread out than in
// the static features.
void standardization(const Tensor& x, std::vector<float>* mean, std::vector<float>* scale);

// The encoder and its inputs for this config (K = features.bert.finetune_layers), built from the
// config's model directory; `static_text` is the static text block (p.features.x's first hidden
// columns) whose standardization the encoder reuses.
std::shared_ptr<TextInputs> build_text_inputs(const recsys::Config& cfg, const Prepared& p);

// Content of every anime (eval, no grad, CPU): phi_all [anime, d] and phiU [users, d].
void text_content_all(TextInputs& in, const Prepared& p, Tensor* phi_all, Tensor* phiU);

// A DropoutNet batch (WMF parts from the maker) with φ^V and φ^U from the encoder.
dropoutnet::Batch text_batch(TextInputs& in, const dropoutnet::Batch& b, const int32_t* users,
                             const int32_t* items, int64_t n);

// One epoch with gradient accumulation: every `accumulate` consecutive batches of batch_size
// pairs make one optimizer step whose gradient is that of their union's mean loss (each batch
// loss weighted by its share of the pairs). make(begin, end, b) builds batch b = pairs
// [begin, end). The modules in `train` are put in training mode first.
dropoutnet::EpochResult accumulate_epoch(
    dropoutnet::DropoutNet& net, const std::vector<Module*>& train, Optimizer& opt,
    const recsys::Pairs& pairs, int64_t batch_size, int64_t accumulate,
    const std::function<dropoutnet::Batch(int64_t, int64_t, int64_t)>& make,
    const std::function<void(int64_t, double)>& on_batch = {});

}  // namespace dan::apps
