// BERT's basic tokenization of one code point: Hugging Face's BertNormalizer (clean text, CJK
// spacing, NFD + drop Mn, lower case) and how BertPreTokenizer then sees the result (space,
// part of a word, or a word of its own). Internal to models/bert: tokenizer.cpp builds its
// per-code-point table from it.
#pragma once

#include <cstdint>
#include <vector>

namespace dan::bert::detail {

// What a code point becomes after Hugging Face's BertNormalizer, as seen by BertPreTokenizer.
enum class Kind : uint8_t {
  drop,     // removed (clean_text) or nothing left after dropping Mn marks
  space,    // a word boundary
  plain,    // normalized bytes that join the current word
  isolate,  // punctuation or a CJK ideograph: a word of its own
  complex,  // a decomposition mixing the above (none in Unicode 15; handled generally anyway)
};

struct NormFlags {
  bool clean, chinese, strip, lower;
};

// One output code point of the normalizer and how the pre-tokenizer sees it.
struct Piece {
  char32_t c;
  Kind kind;  // space, plain or isolate
};

// Normalizes one code point into `out` (at most 32 pieces) and returns the combined kind.
// Hugging Face's order: clean_text, CJK spacing, NFD + drop Mn (strip_accents), lower case.
Kind normalize_cp(char32_t cp, const NormFlags& f, std::vector<Piece>& out);

}  // namespace dan::bert::detail
