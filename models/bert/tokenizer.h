// BERT WordPiece tokenizer: the text -> ids step in front of every BERT-family encoder. Same
// output as Hugging Face `tokenizers` (BertNormalizer + BertPreTokenizer + WordPiece + the
// [CLS] ... [SEP] template), gold-tested against it on real synopses and hard cases.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace dan::bert {

// A WordPiece vocabulary (vocab.txt: one token per line, id = 0-based line number). Immutable;
// copies share the same tables.
class Vocab {
 public:
  // Errors: missing/unreadable file, empty file, an empty line, a token that is not valid
  // UTF-8, a token listed twice (both line numbers named).
  static Vocab load(const std::string& vocab_txt);
  // The same checks on an in-memory list; `origin` names it in error messages.
  static Vocab from_tokens(const std::vector<std::string>& tokens,
                           const std::string& origin = "vocab");

  int64_t size() const;
  int32_t id(std::string_view token) const;  // -1 when absent
  bool contains(std::string_view token) const { return id(token) >= 0; }
  const std::string& token(int32_t id) const;  // throws on an id outside [0, size())
  const std::string& origin() const;           // the file it came from

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  friend class WordPieceTokenizer;
};

// The settings of Hugging Face's BertTokenizer(Fast); from_dir reads them from
// tokenizer_config.json.
struct TokenizerOptions {
  bool lowercase = true;              // do_lower_case
  std::optional<bool> strip_accents;  // NFD + drop Mn marks; unset: follows `lowercase`
  bool clean_text = true;             // drop NUL, U+FFFD, control/format/unassigned/private chars
  bool handle_chinese_chars = true;   // tokenize_chinese_chars: each CJK ideograph is a word
  int64_t max_input_chars_per_word = 100;  // longer words become [UNK]
  std::string continuing_subword_prefix = "##";
  int64_t model_max_length = 512;  // the default max_length of encode()/encode_batch()
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]",
              mask_token = "[MASK]";
  // As Hugging Face's flag: false (the default) recognises the special tokens' exact text in the
  // input ("a [MASK] b" gives the [MASK] id); true tokenizes that text like any other.
  bool split_special_tokens = false;
};

// One encoded text. All vectors have the same length.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;        // 0 (single sequences)
  std::vector<int32_t> attention_mask;  // 1 for tokens, 0 for padding
  // Index of the pre-tokenized word (whitespace/punctuation split) each token came from, as
  // Hugging Face's word_ids(); -1 for [CLS], [SEP] and padding. Whole-word masking groups by it.
  std::vector<int32_t> word_ids;
  bool truncated = false;  // tokens were dropped to fit max_length
  int64_t size() const { return static_cast<int64_t>(ids.size()); }
};

enum class Padding {
  longest,     // pad every row to the longest row of the batch
  max_length,  // pad every row to max_length
};

// A padded batch, PyTorch/HF style: [B, T] tensors (i64 by default) on the CPU.
struct BatchEncoding {
  Tensor input_ids, token_type_ids, attention_mask;
  std::vector<Encoding> encodings;  // the padded rows, with word_ids
  int64_t batch() const { return static_cast<int64_t>(encodings.size()); }
  int64_t seq_len() const { return encodings.empty() ? 0 : encodings[0].size(); }
};

class WordPieceTokenizer {
 public:
  // Errors when the vocab lacks one of the five special tokens named in `opts`.
  explicit WordPieceTokenizer(Vocab vocab, TokenizerOptions opts = {});
  // A pretrained directory: vocab.txt, plus tokenizer_config.json when present (do_lower_case,
  // strip_accents, tokenize_chinese_chars, model_max_length, the special token names).
  static WordPieceTokenizer from_dir(const std::string& model_dir);

  // The normalized words before WordPiece (Hugging Face's normalizer + pre-tokenizer output;
  // special tokens in the text are words of their own unless split_special_tokens).
  std::vector<std::string> pre_tokenize(std::string_view text) const;
  // WordPiece tokens of `text`, no special tokens added, no truncation.
  std::vector<std::string> tokenize(std::string_view text) const;
  // [CLS] tokens [SEP] (add_special) with the tokens cut to max_length - 2; max_length < 0: no
  // limit. Input bytes that are not valid UTF-8 read as U+FFFD (dropped by clean_text).
  Encoding encode(std::string_view text, int64_t max_length, bool add_special = true) const;
  Encoding encode(std::string_view text) const { return encode(text, opts_.model_max_length); }

  // encode() of every text, in parallel over texts (OpenMP); the result does not depend on the
  // thread count.
  std::vector<Encoding> encode_each(const std::vector<std::string>& texts, int64_t max_length,
                                    bool add_special = true) const;
  std::vector<Encoding> encode_each(const std::vector<std::string_view>& texts, int64_t max_length,
                                    bool add_special = true) const;
  // encode_each, then pad() to a batch.
  BatchEncoding encode_batch(const std::vector<std::string>& texts, int64_t max_length,
                             Padding padding = Padding::longest, DType dtype = DType::i64) const;
  BatchEncoding encode_batch(const std::vector<std::string_view>& texts, int64_t max_length,
                             Padding padding = Padding::longest, DType dtype = DType::i64) const;
  // Pads encodings on the right ([PAD] id, type 0, mask 0, word -1) into [B, T] tensors of
  // `dtype` (i64 or i32). Padding::max_length needs every row to fit in max_length.
  BatchEncoding pad(std::vector<Encoding> encodings, Padding padding, int64_t max_length,
                    DType dtype = DType::i64) const;

  // Tokens joined back to text as Hugging Face's WordPiece decoder does ("##" pieces glued,
  // " ." -> "." and the other cleanup rules); special tokens left out when skip_special_tokens.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  const Vocab& vocab() const { return vocab_; }
  const TokenizerOptions& options() const { return opts_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t cls_id() const { return cls_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t mask_id() const { return mask_id_; }

  struct Tables;  // per-code-point normalization and the WordPiece lookup (tokenizer.cpp)

 private:
  template <typename Sink>
  void run(std::string_view text, Sink& sink) const;
  template <typename Str>
  std::vector<Encoding> encode_each_impl(const std::vector<Str>& texts, int64_t max_length,
                                         bool add_special) const;

  Vocab vocab_;
  TokenizerOptions opts_;
  int32_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, mask_id_ = -1;
  std::shared_ptr<const Tables> tables_;
};

}  // namespace dan::bert
