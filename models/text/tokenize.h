// Word tokenizer for the classic text features (TF-IDF, word2vec): a small self-contained UTF-8
// decoder, a lower-casing table for Latin, Greek, Cyrillic and full-width letters, and a word
// splitter that keeps runs of letters/digits together and makes every CJK ideograph a token of
// its own (Chinese and Japanese text has no spaces between words).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace dan::text {

struct TokenizerConfig {
  bool lowercase = true;
  bool english_stop_words = true;       // drop the built-in list (english_stop_words())
  std::vector<std::string> stop_words;  // extra words to drop, compared after lower-casing
  int min_token_len = 2;                // in code points; single-ideograph tokens are always kept
  // Canonical text of every option, for cache keys.
  std::string key() const;
};

// How the splitter treats a code point.
enum class CharClass : uint8_t {
  separator,  // whitespace, punctuation, symbols, control characters, invalid bytes
  word,       // letters, digits, combining marks, scripts written with spaces (Hangul, ...)
  ideograph,  // CJK unified/compatibility ideographs: one token each
};

CharClass char_class(char32_t c);
// Simple (one-to-one) lower-casing; code points without a lower-case form are returned as is.
char32_t to_lower(char32_t c);
// Decodes the code point starting at s[i] into *cp and returns the number of bytes it used.
// Malformed sequences (bad lead/continuation bytes, overlongs, surrogates, > U+10FFFF) decode
// to U+FFFD one byte at a time, so every input splits somewhere and nothing throws.
size_t decode_utf8(std::string_view s, size_t i, char32_t* cp);
void append_utf8(std::string& out, char32_t cp);

// The built-in English stop-word list (lower case, sorted).
const std::vector<std::string>& english_stop_words();

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerConfig cfg = {});

  // Calls `emit` with each token of `text`, in order (the view is valid during the call only).
  void tokenize(std::string_view text, const std::function<void(std::string_view)>& emit) const;
  std::vector<std::string> tokenize(std::string_view text) const;
  bool is_stop_word(std::string_view token) const;
  const TokenizerConfig& config() const { return cfg_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  TokenizerConfig cfg_;
  std::unordered_set<std::string, Hash, std::equal_to<>> stop_;
};

}  // namespace dan::text
