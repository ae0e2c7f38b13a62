// BERT WordPiece tokenizer. One pass over the UTF-8 input does Hugging Face's three stages at
// once: every code point is normalized through a table built at construction (clean text, CJK
// split, NFD + drop Mn, lower case: basic_tokenizer.cpp, on utf8proc's Unicode data), the
// normalized bytes are collected into the current word until whitespace or punctuation ends
// it, and each finished word goes through greedy longest-match-first WordPiece against a flat
// hash table.
#include "models/bert/tokenizer.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "core/threads.h"
#include "models/bert/basic_tokenizer.h"
#include "models/bert/paths.h"
#include "models/text/tokenize.h"

namespace dan::bert {

namespace {

using ViewMap = std::unordered_map<std::string_view, int32_t>;

bool valid_utf8(std::string_view s) {
  char32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = text::decode_utf8(s, i, &cp);
    // decode_utf8 maps malformed bytes to U+FFFD one byte at a time; a real U+FFFD is 3 bytes.
    if (cp == 0xFFFD && n != 3) return false;
    i += n;
  }
  return true;
}

}  // namespace

// ---- Vocab --------------------------------------------------------------------------------------

struct Vocab::Impl {
  std::string origin;
  std::vector<std::string> tokens;  // never resized after `index` is built: the views stay valid
  ViewMap index;
};

Vocab Vocab::from_tokens(const std::vector<std::string>& tokens, const std::string& origin) {
  DAN_CHECK(!tokens.empty(), "vocab '{}': no tokens", origin);
  DAN_CHECK(tokens.size() < static_cast<size_t>(INT32_MAX),
            "vocab '{}': {} tokens, more than int32 ids can address", origin, tokens.size());
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  impl->tokens = tokens;
  impl->index.reserve(tokens.size());
  for (size_t i = 0; i < impl->tokens.size(); ++i) {
    const std::string& t = impl->tokens[i];
    DAN_CHECK(!t.empty(), "vocab '{}': line {} is empty (expected one token per line)", origin,
              i + 1);
    DAN_CHECK(valid_utf8(t), "vocab '{}': line {} is not valid UTF-8", origin, i + 1);
    auto [it, fresh] = impl->index.emplace(t, static_cast<int32_t>(i));
    DAN_CHECK(fresh, "vocab '{}': token '{}' appears twice (lines {} and {})", origin, t,
              it->second + 1, i + 1);
  }
  Vocab v;
  v.impl_ = std::move(impl);
  return v;
}

Vocab Vocab::load(const std::string& vocab_txt) {
  std::ifstream f(vocab_txt, std::ios::binary);
  DAN_CHECK(f.good(), "vocab: cannot open '{}' (expected a vocab.txt with one token per line)",
            vocab_txt);
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(f, line)) {
    // Hugging Face trims trailing whitespace (CRLF files, stray spaces) from each line.
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    tokens.push_back(std::move(line));
  }
  DAN_CHECK(!f.bad(), "vocab: read error in '{}'", vocab_txt);
  DAN_CHECK(!tokens.empty(), "vocab: '{}' is empty", vocab_txt);
  return from_tokens(tokens, vocab_txt);
}

int64_t Vocab::size() const { return impl_ ? static_cast<int64_t>(impl_->tokens.size()) : 0; }

int32_t Vocab::id(std::string_view token) const {
  if (!impl_) return -1;
  auto it = impl_->index.find(token);
  return it == impl_->index.end() ? -1 : it->second;
}

const std::string& Vocab::token(int32_t id) const {
  DAN_CHECK(impl_ && id >= 0 && id < size(), "vocab '{}': id {} out of range [0, {})",
            impl_ ? impl_->origin : std::string(), id, size());
  return impl_->tokens[static_cast<size_t>(id)];
}

const std::string& Vocab::origin() const {
  static const std::string none;
  return impl_ ? impl_->origin : none;
}

// ---- per-code-point normalization --------------------------------------------------------------

namespace {

using detail::Kind;
using detail::normalize_cp;
using detail::NormFlags;
using detail::Piece;

struct Entry {
  uint32_t off = 0;  // normalized UTF-8 at Tables::bytes[off, off + len)
  uint8_t len = 0;
  uint8_t chars = 0;  // code points in it (for max_input_chars_per_word)
  Kind kind = Kind::drop;
};

constexpr char32_t kTableSize = 0x10000;  // the BMP; rarer code points are normalized on the fly

// FNV-1a runs forward byte by byte, so one pass over a word gives the hash of every prefix
// length; the greedy matcher then tries lengths from the longest down without rehashing.
constexpr uint64_t kFnvSeed = 0xCBF29CE484222325ull;
inline uint64_t fnv_step(uint64_t h, unsigned char b) { return (h ^ b) * 0x100000001B3ull; }
// FNV's low bits mix poorly; the slot index comes from this finalizer (splitmix64's).
inline uint64_t finish(uint64_t h) {
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

// String -> id, open addressing with linear probing over a flat array (at most half full): a
// lookup touches one slot line and, on a hash hit, the key. The keys are views into the Vocab's
// strings, which outlive the table.
class PieceTable {
 public:
  void build(const std::vector<std::pair<std::string_view, int32_t>>& items) {
    size_t cap = 16;
    while (cap < 2 * items.size()) cap *= 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const auto& [key, id] : items) {
      uint64_t h = kFnvSeed;
      for (char c : key) h = fnv_step(h, static_cast<unsigned char>(c));
      const uint64_t f = finish(h);
      size_t i = f & mask_;
      while (slots_[i].id >= 0) i = (i + 1) & mask_;
      slots_[i] = Slot{f, key.data(), static_cast<uint32_t>(key.size()), id};
      max_len_ = std::max(max_len_, key.size());
    }
  }
  // `state` is the FNV-1a state after the n bytes at p.
  int32_t find(uint64_t state, const char* p, size_t n) const {
    const uint64_t f = finish(state);
    for (size_t i = f & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == f && s.len == n && same_bytes(s.key, p, n)) return s.id;
    }
  }
  size_t max_len() const { return max_len_; }

 private:
  // Keys are a few bytes long: an inline loop beats a call to memcmp.
  static bool same_bytes(const char* a, const char* b, size_t n) {
    for (size_t k = 0; k < n; ++k)
      if (a[k] != b[k]) return false;
    return true;
  }
  struct Slot {
    uint64_t hash = 0;
    const char* key = nullptr;
    uint32_t len = 0;
    int32_t id = -1;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0, max_len_ = 0;
};

}  // namespace

struct WordPieceTokenizer::Tables {
  NormFlags flags{};
  std::vector<Entry> table;  // kTableSize entries
  std::string bytes;         // normalized UTF-8 of the table entries
  PieceTable start;          // every token -> id (the first piece of a word)
  PieceTable cont;           // suffix after the continuation prefix -> id
  int64_t max_chars = 100;
  int32_t unk = -1;
  // Special tokens recognised in the input: longest first, so the match is leftmost-longest.
  std::vector<std::pair<std::string, int32_t>> specials;
  bool special_first[256] = {};
};

namespace {

using Tables = WordPieceTokenizer::Tables;

// Greedy longest-match-first WordPiece of one normalized word, appended to `out`: the whole
// word becomes one [UNK] when it is too long or some position has no matching piece.
void wordpiece(const Tables& t, std::string_view w, int64_t chars, std::vector<int32_t>& out) {
  if (chars > t.max_chars) {
    out.push_back(t.unk);
    return;
  }
  const size_t first = out.size();
  // state[k]: FNV-1a of the k bytes after `start` (no key is longer than 64 bytes in practice;
  // longer keys are looked up by rehashing, see below).
  uint64_t state[65];
  size_t start = 0;
  while (start < w.size()) {
    const PieceTable& map = start == 0 ? t.start : t.cont;
    size_t end = std::min(w.size(), start + map.max_len());
    while (end < w.size() && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80) --end;
    const size_t hashed = std::min<size_t>(end - start, 64);
    state[0] = kFnvSeed;
    for (size_t k = 0; k < hashed; ++k)
      state[k + 1] = fnv_step(state[k], static_cast<unsigned char>(w[start + k]));
    int32_t id = -1;
    while (end > start) {
      const size_t n = end - start;
      uint64_t h = n <= 64 ? state[n] : state[64];
      for (size_t k = 64; k < n; ++k) h = fnv_step(h, static_cast<unsigned char>(w[start + k]));
      id = map.find(h, w.data() + start, n);
      if (id >= 0) break;
      do --end;  // back one code point
      while (end > start && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80);
    }
    if (id < 0) {
      out.resize(first);
      out.push_back(t.unk);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

void append_entry(std::string& word, int64_t& chars, const Tables& t, const Entry& e) {
  if (e.len == 1)
    word.push_back(t.bytes[e.off]);
  else
    word.append(t.bytes, e.off, e.len);
  chars += e.chars;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(Vocab vocab, TokenizerOptions opts)
    : vocab_(std::move(vocab)), opts_(std::move(opts)) {
  DAN_CHECK(vocab_.impl_ != nullptr, "WordPieceTokenizer: empty vocab");
  const std::string& origin = vocab_.origin();
  auto special_id = [&](const std::string& name, const char* what) {
    const int32_t id = vocab_.id(name);
    DAN_CHECK(id >= 0, "tokenizer: vocab '{}' has no {} token '{}'", origin, what, name);
    return id;
  };
  unk_id_ = special_id(opts_.unk_token, "unknown");
  cls_id_ = special_id(opts_.cls_token, "CLS");
  sep_id_ = special_id(opts_.sep_token, "SEP");
  pad_id_ = special_id(opts_.pad_token, "padding");
  mask_id_ = special_id(opts_.mask_token, "mask");
  DAN_CHECK(opts_.max_input_chars_per_word > 0,
            "tokenizer: max_input_chars_per_word must be positive, got {}",
            opts_.max_input_chars_per_word);
  DAN_CHECK(!opts_.continuing_subword_prefix.empty(),
            "tokenizer: continuing_subword_prefix must not be empty");

  auto t = std::make_shared<Tables>();
  t->flags = {opts_.clean_text, opts_.handle_chinese_chars,
              opts_.strip_accents.value_or(opts_.lowercase), opts_.lowercase};
  t->max_chars = opts_.max_input_chars_per_word;
  t->unk = unk_id_;
  const auto& prefix = opts_.continuing_subword_prefix;
  const Vocab::Impl* vi = vocab_.impl_.get();
  std::vector<std::pair<std::string_view, int32_t>> starts, conts;
  starts.reserve(vi->tokens.size());
  for (size_t i = 0; i < vi->tokens.size(); ++i) {
    std::string_view tok = vi->tokens[i];
    starts.emplace_back(tok, static_cast<int32_t>(i));
    if (tok.size() > prefix.size() && tok.substr(0, prefix.size()) == prefix) {
      tok.remove_prefix(prefix.size());
      conts.emplace_back(tok, static_cast<int32_t>(i));
    }
  }
  t->start.build(starts);
  t->cont.build(conts);
  if (!opts_.split_special_tokens) {
    const std::pair<std::string, int32_t> all[] = {{opts_.unk_token, unk_id_},
                                                   {opts_.cls_token, cls_id_},
                                                   {opts_.sep_token, sep_id_},
                                                   {opts_.pad_token, pad_id_},
                                                   {opts_.mask_token, mask_id_}};
    for (const auto& [name, id] : all) {
      t->specials.emplace_back(name, id);
      t->special_first[static_cast<unsigned char>(name[0])] = true;
    }
    std::stable_sort(t->specials.begin(), t->specials.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }

  t->table.resize(kTableSize);
  std::vector<Piece> pieces;
  for (char32_t cp = 0; cp < kTableSize; ++cp) {
    Entry& e = t->table[cp];
    e.kind = normalize_cp(cp, t->flags, pieces);
    if (e.kind == Kind::drop || e.kind == Kind::space) continue;
    e.off = static_cast<uint32_t>(t->bytes.size());
    for (const Piece& p : pieces) text::append_utf8(t->bytes, p.c);
    e.len = static_cast<uint8_t>(t->bytes.size() - e.off);
    e.chars = static_cast<uint8_t>(pieces.size());
  }
  tables_ = std::move(t);
}

WordPieceTokenizer WordPieceTokenizer::from_dir(const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model_dir)) {
    if (fs::path(model_dir).filename() == kMiniLmName) fail("{}", missing_weights_hint(model_dir));
    fail("tokenizer: model directory '{}' not found", model_dir);
  }
  const fs::path vocab_path = fs::path(model_dir) / "vocab.txt";
  DAN_CHECK(fs::exists(vocab_path), "tokenizer: '{}' has no vocab.txt", model_dir);
  TokenizerOptions opts;
  const fs::path cfg_path = fs::path(model_dir) / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    const std::string where = cfg_path.string();
    nlohmann::json cfg;
    try {
      std::ifstream f(cfg_path);
      cfg = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      fail("tokenizer: '{}' is not valid JSON: {}", where, e.what());
    }
    DAN_CHECK(cfg.is_object(), "tokenizer: '{}' must hold a JSON object", where);
    auto get_bool = [&](const char* key, bool& out) {
      auto it = cfg.find(key);
      if (it == cfg.end() || it->is_null()) return;
      DAN_CHECK(it->is_boolean(), "tokenizer: '{}': '{}' must be true or false, got {}", where, key,
                it->dump());
      out = it->get<bool>();
    };
    get_bool("do_lower_case", opts.lowercase);
    get_bool("tokenize_chinese_chars", opts.handle_chinese_chars);
    if (auto it = cfg.find("strip_accents"); it != cfg.end() && !it->is_null()) {
      DAN_CHECK(it->is_boolean(),
                "tokenizer: '{}': 'strip_accents' must be null, true or false, "
                "got {}",
                where, it->dump());
      opts.strip_accents = it->get<bool>();
    }
    if (auto it = cfg.find("model_max_length"); it != cfg.end() && !it->is_null()) {
      DAN_CHECK(it->is_number() && it->get<double>() >= 2,
                "tokenizer: '{}': 'model_max_length' must be a number >= 2, got {}", where,
                it->dump());
      // Hugging Face writes a huge float (1e30) for "no limit".
      const double v = it->get<double>();
      opts.model_max_length = v > 1e9 ? -1 : static_cast<int64_t>(v);
    }
    // Special token names: a string, or {"content": "..."} in newer files.
    auto get_token = [&](const char* key, std::string& out) {
      auto it = cfg.find(key);
      if (it == cfg.end() || it->is_null()) return;
      if (it->is_object() && it->contains("content")) it = it->find("content");
      DAN_CHECK(it->is_string() && !it->get<std::string>().empty(),
                "tokenizer: '{}': '{}' must be a non-empty string, got {}", where, key, it->dump());
      out = it->get<std::string>();
    };
    get_token("unk_token", opts.unk_token);
    get_token("cls_token", opts.cls_token);
    get_token("sep_token", opts.sep_token);
    get_token("pad_token", opts.pad_token);
    get_token("mask_token", opts.mask_token);
  }
  return WordPieceTokenizer(Vocab::load(vocab_path.string()), std::move(opts));
}

// The one pass: calls sink.word(normalized_bytes, code_points) for each pre-tokenized word and
// sink.special(id) for each special token found in the text; either returns false to stop.
template <typename Sink>
void WordPieceTokenizer::run(std::string_view text, Sink& sink) const {
  const Tables& t = *tables_;
  std::string word;
  word.reserve(64);
  int64_t chars = 0;
  std::vector<Piece> pieces;
  bool go = true;
  auto flush = [&]() {
    if (!word.empty()) go = sink.word(std::string_view(word), chars);
    word.clear();
    chars = 0;
  };
  auto isolate = [&](std::string_view bytes, int64_t n) {
    flush();
    if (go) go = sink.word(bytes, n);
  };
  // Normalizes text[begin, end) and emits its words; the end is a word boundary.
  auto segment = [&](size_t begin, size_t end) {
    const std::string_view s = text.substr(0, end);
    size_t i = begin;
    while (i < end && go) {
      const auto b = static_cast<unsigned char>(s[i]);
      char32_t cp = b;
      if (b < 0x80) {
        ++i;
      } else {
        i += text::decode_utf8(s, i, &cp);  // malformed bytes -> U+FFFD
      }
      if (cp < kTableSize) {
        const Entry& e = t.table[cp];
        switch (e.kind) {
          case Kind::drop:
            continue;
          case Kind::space:
            flush();
            continue;
          case Kind::plain:
            append_entry(word, chars, t, e);
            continue;
          case Kind::isolate:
            isolate(std::string_view(t.bytes).substr(e.off, e.len), e.chars);
            continue;
          case Kind::complex:
            break;
        }
      }
      // Outside the table, or a mixed decomposition: normalize now.
      const Kind k = normalize_cp(cp, t.flags, pieces);
      if (k == Kind::drop) continue;
      if (k == Kind::space) {
        flush();
        continue;
      }
      if (k == Kind::isolate && pieces.size() > 1) {  // a CJK ideograph decomposing further
        std::string bytes;
        for (const Piece& p : pieces) text::append_utf8(bytes, p.c);
        isolate(bytes, static_cast<int64_t>(pieces.size()));
        continue;
      }
      for (const Piece& p : pieces) {
        if (!go) break;
        if (p.kind == Kind::space) {
          flush();
        } else if (p.kind == Kind::isolate) {
          std::string bytes;
          text::append_utf8(bytes, p.c);
          isolate(bytes, 1);
        } else {
          text::append_utf8(word, p.c);
          ++chars;
        }
      }
    }
    if (go) flush();
  };

  if (t.specials.empty()) {
    segment(0, text.size());
    return;
  }
  size_t pos = 0, i = 0;
  while (go && i < text.size()) {
    if (!t.special_first[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int32_t id = -1;
    size_t len = 0;
    for (const auto& [name, sid] : t.specials) {
      if (text.substr(i, name.size()) == name) {
        id = sid;
        len = name.size();
        break;
      }
    }
    if (id < 0) {
      ++i;
      continue;
    }
    segment(pos, i);
    if (go) go = sink.special(id);
    pos = i = i + len;
  }
  if (go) segment(pos, text.size());
}

namespace {

struct WordsSink {
  const Vocab& vocab;
  std::vector<std::string> words;
  bool word(std::string_view w, int64_t) {
    words.emplace_back(w);
    return true;
  }
  bool special(int32_t id) {
    words.push_back(vocab.token(id));
    return true;
  }
};

// Collects the ids and word indices of at most `cap` tokens (cap < 0: no limit); stops as soon
// as one more token would not fit.
struct IdsSink {
  const Tables& t;
  std::vector<int32_t>& ids;
  std::vector<int32_t>& words;
  int64_t cap;
  size_t base = ids.size();
  int32_t next_word = 0;
  bool truncated = false;
  bool fits() {
    if (cap >= 0 && ids.size() - base > static_cast<size_t>(cap)) {
      ids.resize(base + static_cast<size_t>(cap));
      words.resize(ids.size());
      truncated = true;
      return false;
    }
    return true;
  }
  bool word(std::string_view w, int64_t chars) {
    wordpiece(t, w, chars, ids);
    words.resize(ids.size(), next_word++);
    return fits();
  }
  bool special(int32_t id) {
    ids.push_back(id);
    words.push_back(next_word++);
    return fits();
  }
};

}  // namespace

std::vector<std::string> WordPieceTokenizer::pre_tokenize(std::string_view text) const {
  WordsSink sink{vocab_, {}};
  run(text, sink);
  return std::move(sink.words);
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<int32_t> ids, words;
  IdsSink sink{*tables_, ids, words, -1};
  run(text, sink);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) out.push_back(vocab_.token(id));
  return out;
}

Encoding WordPieceTokenizer::encode(std::string_view text, int64_t max_length,
                                    bool add_special) const {
  const int64_t reserved = add_special ? 2 : 0;
  DAN_CHECK(max_length < 0 || max_length >= reserved,
            "tokenizer: max_length {} leaves no room for [CLS] and [SEP] (need >= {}; < 0 means "
            "no limit)",
            max_length, reserved);
  Encoding e;
  const size_t guess =
      std::min<size_t>(text.size() / 3 + 8, max_length < 0 ? SIZE_MAX : max_length);
  e.ids.reserve(guess);
  e.word_ids.reserve(guess);
  if (add_special) {
    e.ids.push_back(cls_id_);
    e.word_ids.push_back(-1);
  }
  IdsSink sink{*tables_, e.ids, e.word_ids, max_length < 0 ? -1 : max_length - reserved};
  run(text, sink);
  e.truncated = sink.truncated;
  if (add_special) {
    e.ids.push_back(sep_id_);
    e.word_ids.push_back(-1);
  }
  e.type_ids.assign(e.ids.size(), 0);
  e.attention_mask.assign(e.ids.size(), 1);
  return e;
}

template <typename Str>
std::vector<Encoding> WordPieceTokenizer::encode_each_impl(const std::vector<Str>& texts,
                                                           int64_t max_length,
                                                           bool add_special) const {
  std::vector<Encoding> out(texts.size());
  const auto n = static_cast<int64_t>(texts.size());
  std::string error;
  // Dynamic chunks balance long and short texts; each row is written by index, so the result
  // is the same for any thread count.
#pragma omp parallel for schedule(dynamic, 16) num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) {
    try {
      out[static_cast<size_t>(i)] =
          encode(std::string_view(texts[static_cast<size_t>(i)]), max_length, add_special);
    } catch (const std::exception& e) {
#pragma omp critical(dan_bert_tokenizer_error)
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty()) throw Error(error);
  return out;
}

std::vector<Encoding> WordPieceTokenizer::encode_each(const std::vector<std::string>& texts,
                                                      int64_t max_length, bool add_special) const {
  return encode_each_impl(texts, max_length, add_special);
}

std::vector<Encoding> WordPieceTokenizer::encode_each(const std::vector<std::string_view>& texts,
                                                      int64_t max_length, bool add_special) const {
  return encode_each_impl(texts, max_length, add_special);
}

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts,
                                               int64_t max_length, Padding padding,
                                               DType dtype) const {
  return pad(encode_each(texts, max_length), padding, max_length, dtype);
}

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::string_view>& texts,
                                               int64_t max_length, Padding padding,
                                               DType dtype) const {
  return pad(encode_each(texts, max_length), padding, max_length, dtype);
}

BatchEncoding WordPieceTokenizer::pad(std::vector<Encoding> encodings, Padding padding,
                                      int64_t max_length, DType dtype) const {
  DAN_CHECK(dtype == DType::i64 || dtype == DType::i32,
            "tokenizer pad: dtype must be i64 or i32, got {}", dtype);
  int64_t longest = 0;
  for (const Encoding& e : encodings) longest = std::max(longest, e.size());
  int64_t len = longest;
  if (padding == Padding::max_length) {
    DAN_CHECK(max_length >= 0, "tokenizer pad: Padding::max_length needs max_length >= 0, got {}",
              max_length);
    DAN_CHECK(longest <= max_length, "tokenizer pad: a row has {} tokens, more than max_length {}",
              longest, max_length);
    len = max_length;
  }
  for (Encoding& e : encodings) {
    const auto n = static_cast<size_t>(len);
    e.ids.resize(n, pad_id_);
    e.type_ids.resize(n, 0);
    e.attention_mask.resize(n, 0);
    e.word_ids.resize(n, -1);
  }
  BatchEncoding b;
  const Shape shape{static_cast<int64_t>(encodings.size()), len};
  b.input_ids = empty(shape, dtype);
  b.token_type_ids = empty(shape, dtype);
  b.attention_mask = empty(shape, dtype);
  auto fill = [&](auto* ids, auto* types, auto* mask) {
    for (size_t r = 0; r < encodings.size(); ++r) {
      const Encoding& e = encodings[r];
      const size_t o = r * static_cast<size_t>(len);
      std::copy(e.ids.begin(), e.ids.end(), ids + o);
      std::copy(e.type_ids.begin(), e.type_ids.end(), types + o);
      std::copy(e.attention_mask.begin(), e.attention_mask.end(), mask + o);
    }
  };
  if (dtype == DType::i64)
    fill(b.input_ids.data<int64_t>(), b.token_type_ids.data<int64_t>(),
         b.attention_mask.data<int64_t>());
  else
    fill(b.input_ids.data<int32_t>(), b.token_type_ids.data<int32_t>(),
         b.attention_mask.data<int32_t>());
  b.encodings = std::move(encodings);
  return b;
}

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
}

}  // namespace

std::string WordPieceTokenizer::decode(const std::vector<int32_t>& ids,
                                       bool skip_special_tokens) const {
  const std::string& prefix = opts_.continuing_subword_prefix;
  std::string out, piece;
  bool first = true;
  for (int32_t id : ids) {
    if (skip_special_tokens &&
        (id == unk_id_ || id == cls_id_ || id == sep_id_ || id == pad_id_ || id == mask_id_))
      continue;
    const std::string& tok = vocab_.token(id);
    if (first) {
      piece = tok;
    } else if (tok.compare(0, prefix.size(), prefix) == 0) {
      piece.assign(tok, prefix.size());
    } else {
      piece = " " + tok;
    }
    first = false;
    // Hugging Face's cleanup, applied to each token as its decoder does.
    replace_all(piece, " .", ".");
    replace_all(piece, " ?", "?");
    replace_all(piece, " !", "!");
    replace_all(piece, " ,", ",");
    replace_all(piece, " ' ", "'");
    replace_all(piece, " n't", "n't");
    replace_all(piece, " 'm", "'m");
    replace_all(piece, " do not", " don't");
    replace_all(piece, " 's", "'s");
    replace_all(piece, " 've", "'ve");
    replace_all(piece, " 're", "'re");
    out += piece;
  }
  return out;
}

}  // namespace dan::bert
