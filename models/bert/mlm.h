// Masked-language-model pre-training of a BERT encoder (Devlin et al. 2019, §3.1 task 1), as
// HF transformers' BertForMaskedLM + DataCollatorForLanguageModeling: the model with the
// prediction head tied to the word embeddings, HF-compatible checkpoints, token masking
// (80% [MASK] / 10% random / 10% kept, optionally whole words) and a held-out masked loss.
// See models/bert/README.md, "MLM pre-training".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/bert/bert.h"
#include "models/bert/tokenizer.h"

namespace dan::bert {

// The label value of positions that are not predicted (torch's CrossEntropyLoss default).
inline constexpr int64_t kIgnoreLabel = -100;

struct MlmOutput {
  // [N, vocab]: the logits at the N positions whose label is not kIgnoreLabel (row-major
  // order of [B, T]); without labels, at all B * T positions.
  Tensor logits;
  Tensor targets;  // [N] i64, the labels of those rows (undefined without labels)
  Tensor loss;     // mean cross-entropy over the N rows; undefined without labels or when N = 0
  int64_t num_predicted = 0;
};

// HF's BertForMaskedLM: child "bert" (a BertModel without pooler) and "cls.predictions" =
// transform (dense hidden -> hidden, hidden_act, LayerNorm) then a decoder whose weight IS
// bert.embeddings.word_embeddings (the same tensor: both uses add to one gradient) plus
// "cls.predictions.bias" [vocab]. state_dict() names are HF's; the tied decoder weight is not
// in it (HF's safetensors save leaves it out as well).
class BertForMaskedLM : public Module {
 public:
  // init_weights: HF's init for everything (N(0, 0.02) dense/embeddings, zero biases, unit
  // LayerNorm); otherwise the encoder is left uninitialized and only the head is drawn.
  // `gen` draws the init and every dropout mask; it must outlive the model.
  explicit BertForMaskedLM(const BertConfig& cfg, Generator& gen = default_generator(),
                           bool init_weights = true);
  std::string type_name() const override { return "BertForMaskedLM"; }

  // An HF directory holding a BertForMaskedLM checkpoint (head loaded; the decoder weight and
  // bias keys of older files are accepted and tied) or an encoder-only one (BertModel, e.g.
  // all-MiniLM-L6-v2; its pooler is dropped): the head is then drawn fresh from `gen`, silently.
  // Encoder errors are BertModel::from_pretrained's; a partial head is an error naming the
  // missing keys. Returned in eval mode.
  static std::shared_ptr<BertForMaskedLM> from_pretrained(const std::string& dir,
                                                          Generator& gen = default_generator());
  // config.json (architectures ["BertForMaskedLM"]) and model.safetensors, written atomically
  // (write_pretrained_dir); the tokenizer files of `tokenizer_dir` (vocab.txt, tokenizer.json,
  // tokenizer_config.json, special_tokens_map.json; those present) are copied along.
  void save_pretrained(const std::string& dir, const std::string& tokenizer_dir = "") const;

  // input_ids / attention_mask / token_type_ids as BertModel::forward; labels [B, T] integer
  // (kIgnoreLabel or a token id). The head runs only on the labelled rows: the vocabulary
  // projection is most of an MLM step's cost when every position goes through it.
  MlmOutput forward(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& labels,
                    const Tensor& token_type_ids = Tensor());
  // The prediction head on hidden rows [N, hidden] -> logits [N, vocab].
  Tensor predict(const Tensor& hidden_rows) const;

  const BertConfig& config() const { return bert->config(); }

  std::shared_ptr<BertModel> bert;
  Tensor transform_weight, transform_bias;  // cls.predictions.transform.dense
  std::shared_ptr<LayerNorm> transform_norm;
  Tensor decoder_weight;  // aliases bert->embeddings->word_embeddings
  Tensor decoder_bias;    // cls.predictions.bias

 private:
  std::shared_ptr<Module> cls_;  // "cls" (the head's state_dict root)
};

// ---- masking (DataCollatorForLanguageModeling) ------------------------------------------------

// What the masking needs to know about the vocabulary.
struct MaskVocab {
  int64_t size = 0;
  int32_t mask_id = -1;
  std::vector<int32_t> special_ids;   // never selected ([CLS], [SEP], [PAD], [MASK], [UNK])
  std::vector<uint8_t> continuation;  // per id: 1 for "##" pieces (whole-word grouping)
  static MaskVocab from_tokenizer(const WordPieceTokenizer& tok);
};

struct MaskingOptions {
  double prob = 0.15;  // chance that an eligible token (whole_word: word) is selected
  bool whole_word = false;
  // Of the selected tokens: this fraction becomes [MASK], then of the rest half a random id
  // drawn uniformly from the whole vocabulary (HF's randint(len(tokenizer))), half unchanged.
  double mask_fraction = 0.8;
};

struct MaskedBatch {
  Tensor input_ids;  // [B, T] i64 with the replacements
  Tensor labels;     // [B, T] i64: the original id where selected, else kIgnoreLabel
  int64_t num_selected = 0;
};

// [B, T] bool: true where a token must never be selected (a special id or attention_mask 0).
// attention_mask may be undefined.
Tensor special_tokens_mask(const Tensor& input_ids, const Tensor& attention_mask,
                           const MaskVocab& vocab);

// Selects tokens where `special` ([B, T], nonzero = never) is 0, each with probability
// opt.prob; whole_word selects a word (a token and the "##" pieces that follow it) or none of
// it, per word with probability opt.prob. Every selected token then draws its replacement.
// Random numbers: three Philox words per position from one range reserved on `gen`, so the
// result depends only on the generator's state and the inputs.
MaskedBatch mask_tokens(const Tensor& input_ids, const Tensor& special, const MaskVocab& vocab,
                        const MaskingOptions& opt, Generator& gen);

// ---- long documents ----------------------------------------------------------------------

// Splits an encoding made without special tokens (encode(text, -1, false)) into consecutive
// sequences [CLS] piece [SEP] of at most max_length tokens, so no text is thrown away. A cut
// falls at a word start (word_ids) when the piece can end before the word; a word longer than
// a whole piece is cut where it must. An empty encoding gives no sequence.
std::vector<std::vector<int32_t>> split_into_chunks(const Encoding& e, int64_t max_length,
                                                    int32_t cls_id, int32_t sep_id);

// ---- evaluation -----------------------------------------------------------------------------

// One batch ready for the model: masked ids, mask, labels.
struct MlmBatch {
  Tensor input_ids, attention_mask, labels;
};

struct MlmEval {
  double loss = 0;        // mean cross-entropy over every predicted token of all batches
  double perplexity = 0;  // exp(loss)
  int64_t num_predicted = 0;
};

// Eval mode and no tape for the pass (the model's mode is restored afterwards). The batches
// carry their masking, so masking them once with a fixed seed makes before/after comparable.
MlmEval evaluate_mlm(BertForMaskedLM& model, const std::vector<MlmBatch>& batches);

}  // namespace dan::bert
