// Tokenizer: UTF-8 decoding, lower-casing and word splitting by code-point class. The tables
// below are range lists over the Unicode blocks that occur in anime titles, synopses and reviews
// (Latin, Greek, Cyrillic, CJK, kana, Hangul, full-width forms); everything outside them falls
// back to a coarse per-block rule, which is all a bag-of-words model needs.
#include "models/text/tokenize.h"

#include <algorithm>
#include <array>

#include "core/error.h"

namespace dan::text {

namespace {

constexpr char32_t kReplacement = 0xFFFD;

bool in(char32_t c, char32_t lo, char32_t hi) { return c >= lo && c <= hi; }

// Full-width ASCII letters and digits (U+FF10-FF19, FF21-FF3A, FF41-FF5A) -> ASCII, so that
// "ＴＯＫＹＯ" and "tokyo" are the same token.
char32_t fold_width(char32_t c) {
  if (in(c, 0xFF10, 0xFF19) || in(c, 0xFF21, 0xFF3A) || in(c, 0xFF41, 0xFF5A)) return c - 0xFEE0;
  return c;
}

bool ascii_alnum(unsigned char b) {
  return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

}  // namespace

char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  // Latin-1 Supplement: U+00C0-00DE except the multiplication sign.
  if (in(c, 0xC0, 0xDE)) return c == 0xD7 ? c : c + 32;
  if (c < 0x100) return c;
  // Latin Extended-A: upper/lower pairs, upper case on the even or the odd code point.
  if (c == 0x130) return 'i';  // dotted capital I
  if (in(c, 0x100, 0x137)) return (c % 2 == 0) ? c + 1 : c;
  if (in(c, 0x139, 0x148)) return (c % 2 == 1) ? c + 1 : c;
  if (in(c, 0x14A, 0x177)) return (c % 2 == 0) ? c + 1 : c;
  if (c == 0x178) return 0xFF;  // Y with diaeresis
  if (in(c, 0x179, 0x17E)) return (c % 2 == 1) ? c + 1 : c;
  // Latin Extended-B: the regular pair runs (pinyin tones, Romanian, ...).
  if (in(c, 0x1CD, 0x1DC)) return (c % 2 == 1) ? c + 1 : c;
  if (in(c, 0x1DE, 0x1EF) || in(c, 0x1F8, 0x21F) || in(c, 0x222, 0x233))
    return (c % 2 == 0) ? c + 1 : c;
  // Greek.
  if (c == 0x386) return 0x3AC;
  if (in(c, 0x388, 0x38A)) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (in(c, 0x38E, 0x38F)) return c + 63;
  if (in(c, 0x391, 0x3A1) || in(c, 0x3A3, 0x3AB)) return c + 32;
  // Cyrillic.
  if (in(c, 0x400, 0x40F)) return c + 80;
  if (in(c, 0x410, 0x42F)) return c + 32;
  if (in(c, 0x460, 0x481) || in(c, 0x48A, 0x4BF)) return (c % 2 == 0) ? c + 1 : c;
  if (c == 0x4C0) return 0x4CF;
  if (in(c, 0x4C1, 0x4CE)) return (c % 2 == 1) ? c + 1 : c;
  if (in(c, 0x4D0, 0x52F)) return (c % 2 == 0) ? c + 1 : c;
  // Armenian.
  if (in(c, 0x531, 0x556)) return c + 48;
  // Latin Extended Additional (Vietnamese and others).
  if (in(c, 0x1E00, 0x1E95) || in(c, 0x1EA0, 0x1EFF)) return (c % 2 == 0) ? c + 1 : c;
  if (c == 0x1E9E) return 0xDF;  // capital sharp s
  // Full-width Latin capitals.
  if (in(c, 0xFF21, 0xFF3A)) return c + 32;
  return c;
}

CharClass char_class(char32_t c) {
  using enum CharClass;
  if (c < 0x80) return ascii_alnum(static_cast<unsigned char>(c)) ? word : separator;
  if (c < 0xC0) return (c == 0xAA || c == 0xB5 || c == 0xBA) ? word : separator;
  if (c < 0x250) return (c == 0xD7 || c == 0xF7) ? separator : word;
  if (c < 0x370) return word;  // IPA, modifier letters, combining diacritics
  if (c < 0x400) return (c == 0x375 || c == 0x37E || c == 0x387) ? separator : word;
  if (c < 0x530) return c == 0x482 ? separator : word;
  if (c < 0x590) return (c == 0x589 || c == 0x58A) ? separator : word;
  if (c < 0x600)
    return (c == 0x5BE || c == 0x5C0 || c == 0x5C3 || c == 0x5C6 || c == 0x5F3 || c == 0x5F4)
               ? separator
               : word;
  if (c < 0x700)
    return (c == 0x60C || c == 0x61B || c == 0x61F || in(c, 0x66A, 0x66D) || c == 0x6D4) ? separator
                                                                                         : word;
  if (c < 0x2000)
    return (c == 0x964 || c == 0x965 || c == 0xE5A || c == 0xE5B || c == 0x1680) ? separator : word;
  if (c < 0x2C00) return separator;  // punctuation, symbols, arrows, math, box drawing, ...
  if (c < 0x2E00) return word;       // Glagolitic, Latin Extended-C, Coptic, ...
  if (c < 0x2E80) return separator;  // supplemental punctuation
  if (c < 0x2FF0) return ideograph;  // CJK and Kangxi radicals
  if (c < 0x3040) return (c == 0x3005 || c == 0x3007) ? ideograph : separator;  // 々 〇
  if (c < 0x3100) return (c == 0x30A0 || c == 0x30FB) ? separator : word;       // kana
  if (c < 0x3200) return word;       // Bopomofo, Hangul compatibility jamo, kana extensions
  if (c < 0x3400) return separator;  // enclosed CJK letters, CJK compatibility symbols
  if (c < 0x4DC0) return ideograph;  // CJK Extension A
  if (c < 0x4E00) return separator;  // Yijing hexagrams
  if (c < 0xA000) return ideograph;  // CJK Unified Ideographs
  if (c < 0xD800) return word;       // Yi, ..., Hangul syllables
  if (c < 0xF900) return separator;  // surrogates (never decoded), private use
  if (c < 0xFB00) return ideograph;  // CJK Compatibility Ideographs
  if (c < 0xFE00) return (c == 0xFD3E || c == 0xFD3F) ? separator : word;
  if (c < 0xFE70) return separator;  // variation selectors, vertical and small forms
  if (c < 0xFF00) return c == 0xFEFF ? separator : word;  // Arabic forms; BOM
  if (c < 0xFFF0)
    return (in(c, 0xFF10, 0xFF19) || in(c, 0xFF21, 0xFF3A) || in(c, 0xFF41, 0xFF5A) ||
            in(c, 0xFF66, 0xFF9F) || in(c, 0xFFA0, 0xFFDC))
               ? word
               : separator;
  if (c < 0x10000) return separator;  // specials, U+FFFD
  if (c < 0x20000)
    return (in(c, 0x1D000, 0x1D3FF) || c >= 0x1F000) ? separator : word;  // emoji, music
  if (c < 0x31350) return ideograph;  // CJK Extensions B-H, compatibility supplement
  return separator;
}

size_t decode_utf8(std::string_view s, size_t i, char32_t* cp) {
  const size_t n = s.size();
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  char32_t c, min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, c = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, c = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    *cp = kReplacement;
    return 1;
  }
  if (i + len > n) {
    *cp = kReplacement;
    return 1;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      *cp = kReplacement;
      return 1;
    }
    c = (c << 6) | (b & 0x3F);
  }
  if (c < min || c > 0x10FFFF || in(c, 0xD800, 0xDFFF)) {
    *cp = kReplacement;
    return 1;
  }
  *cp = c;
  return len;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

const std::vector<std::string>& english_stop_words() {
  // Function words of English, plus the fragments that splitting contractions at the
  // apostrophe leaves behind ("don't" -> "don", "t").
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w = {
        "a",       "about",      "above",    "after",   "again",     "against",   "all",
        "almost",  "also",       "although", "always",  "am",        "among",     "an",
        "and",     "another",    "any",      "anyone",  "anything",  "are",       "aren",
        "around",  "as",         "at",       "be",      "became",    "because",   "become",
        "becomes", "been",       "before",   "being",   "below",     "between",   "both",
        "but",     "by",         "can",      "cannot",  "could",     "couldn",    "did",
        "didn",    "do",         "does",     "doesn",   "doing",     "don",       "down",
        "during",  "each",       "either",   "else",    "enough",    "etc",       "even",
        "ever",    "every",      "few",      "for",     "from",      "further",   "had",
        "hadn",    "has",        "hasn",     "have",    "haven",     "having",    "he",
        "her",     "here",       "hers",     "herself", "him",       "himself",   "his",
        "how",     "however",    "i",        "if",      "in",        "into",      "is",
        "isn",     "it",         "its",      "itself",  "just",      "ll",        "may",
        "me",      "might",      "more",     "most",    "much",      "must",      "my",
        "myself",  "neither",    "no",       "nor",     "not",       "now",       "of",
        "off",     "on",         "once",     "only",    "onto",      "or",        "other",
        "others",  "otherwise",  "our",      "ours",    "ourselves", "out",       "over",
        "own",     "per",        "quite",    "rather",  "re",        "same",      "shall",
        "shan",    "she",        "should",   "shouldn", "since",     "so",        "some",
        "still",   "such",       "than",     "that",    "the",       "their",     "theirs",
        "them",    "themselves", "then",     "there",   "therefore", "these",     "they",
        "this",    "those",      "though",   "through", "thus",      "to",        "too",
        "toward",  "towards",    "under",    "until",   "up",        "upon",      "us",
        "ve",      "very",       "via",      "was",     "wasn",      "we",        "were",
        "weren",   "what",       "whatever", "when",    "whenever",  "where",     "whether",
        "which",   "while",      "who",      "whoever", "whom",      "whose",     "why",
        "will",    "with",       "within",   "without", "won",       "would",     "wouldn",
        "yet",     "you",        "your",     "yours",   "yourself",  "yourselves"};
    std::sort(w.begin(), w.end());
    w.erase(std::unique(w.begin(), w.end()), w.end());
    return w;
  }();
  return words;
}

std::string TokenizerConfig::key() const {
  std::string k = "tok(lower=" + std::to_string(lowercase) +
                  ",en_stop=" + std::to_string(english_stop_words) +
                  ",min_len=" + std::to_string(min_token_len) + ",stop=[";
  std::vector<std::string> sw = stop_words;
  std::sort(sw.begin(), sw.end());
  for (const std::string& w : sw) k += w + "\x1f";
  return k + "])";
}

Tokenizer::Tokenizer(TokenizerConfig cfg) : cfg_(std::move(cfg)) {
  DAN_CHECK(cfg_.min_token_len >= 1 && cfg_.min_token_len <= 1000,
            "Tokenizer: min_token_len must be in [1, 1000], got {}", cfg_.min_token_len);
  if (cfg_.english_stop_words)
    for (const std::string& w : english_stop_words()) stop_.insert(w);
  for (const std::string& w : cfg_.stop_words) {
    // Stop words are matched against tokens, so normalize them the same way.
    std::vector<std::string> toks;
    Tokenizer plain(TokenizerConfig{cfg_.lowercase, false, {}, 1});
    plain.tokenize(w, [&](std::string_view t) { toks.emplace_back(t); });
    DAN_CHECK(toks.size() == 1, "Tokenizer: stop word '{}' is not a single token ({} tokens)", w,
              toks.size());
    stop_.insert(toks[0]);
  }
}

bool Tokenizer::is_stop_word(std::string_view token) const {
  return !stop_.empty() && stop_.find(token) != stop_.end();
}

void Tokenizer::tokenize(std::string_view text,
                         const std::function<void(std::string_view)>& emit) const {
  std::string tok;
  int tok_len = 0;  // code points in tok
  auto flush = [&] {
    if (tok_len >= cfg_.min_token_len && !is_stop_word(tok)) emit(tok);
    tok.clear();
    tok_len = 0;
  };
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {  // ASCII fast path
      if (ascii_alnum(b)) {
        tok.push_back(static_cast<char>(cfg_.lowercase && b >= 'A' && b <= 'Z' ? b + 32 : b));
        ++tok_len;
      } else if (tok_len > 0) {
        flush();
      }
      ++i;
      continue;
    }
    char32_t c;
    i += decode_utf8(text, i, &c);
    c = fold_width(c);
    switch (char_class(c)) {
      case CharClass::separator:
        if (tok_len > 0) flush();
        break;
      case CharClass::ideograph: {
        if (tok_len > 0) flush();
        std::string one;
        append_utf8(one, c);
        if (!is_stop_word(one)) emit(one);
        break;
      }
      case CharClass::word:
        append_utf8(tok, cfg_.lowercase ? to_lower(c) : c);
        ++tok_len;
        break;
    }
  }
  if (tok_len > 0) flush();
}

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  tokenize(text, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

}  // namespace dan::text
