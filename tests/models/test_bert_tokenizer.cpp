// The BERT WordPiece tokenizer. Gold from Hugging Face `tokenizers`
// (tests/fixtures/bert_tokenizer/gold.json, scripts/gen_bert_tokenizer_fixture.py): every code
// point's normalization and word split (always run), hard cases and ~250 mal2023 synopses with the
// real MiniLM vocab (skipped when the weights or the dataset are absent). WordPiece itself,
// truncation, padding, word ids, decode and the errors run on a tiny vocab written here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "models/bert/paths.h"
#include "models/bert/tokenizer.h"
#include "models/text/tokenize.h"
#include "recsys/dataset.h"

using namespace dan;
using namespace dan::bert;
namespace fs = std::filesystem;

namespace {

const nlohmann::json& gold() {
  static const nlohmann::json g = [] {
    const std::string path = std::string(DAN_FIXTURES_DIR) + "/bert_tokenizer/gold.json";
    std::ifstream f(path);
    if (!f) fail("cannot open {}", path);
    return nlohmann::json::parse(f);
  }();
  return g;
}

std::string fnv1a64(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return fmt::format("{:016x}", h);
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string temp_dir(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("dan_bert_tok_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

const std::vector<std::string> kSpecials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

// ids: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK], then `extra` in order from 5.
Vocab tiny_vocab(const std::vector<std::string>& extra) {
  std::vector<std::string> t = kSpecials;
  t.insert(t.end(), extra.begin(), extra.end());
  return Vocab::from_tokens(t, "tiny");
}

const std::vector<std::string> kTinyExtra = {
    "un",   "##aff", "##able", "a",     "ab", "abc", "##b", "##c", "##bc",
    "##x",  "x",     "hello",  "world", ",",  ".",   "'",   "t",   "don",
    "cafe", "!",     "##s",    "[",     "]",  "cl",  "##",  "#"};

WordPieceTokenizer tiny(TokenizerOptions opts = {}) {
  return WordPieceTokenizer(tiny_vocab(kTinyExtra), std::move(opts));
}

std::vector<int32_t> ids_of(const WordPieceTokenizer& t, const std::vector<std::string>& toks) {
  std::vector<int32_t> out;
  for (const auto& s : toks) out.push_back(t.vocab().id(s));
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The real MiniLM tokenizer, or null when the weights were not fetched.
const WordPieceTokenizer* minilm() {
  static const std::unique_ptr<WordPieceTokenizer> t = []() -> std::unique_ptr<WordPieceTokenizer> {
    if (!fs::exists(fs::path(minilm_dir()) / "vocab.txt")) return nullptr;
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_dir(minilm_dir()));
  }();
  return t.get();
}

std::string case_text(const nlohmann::json& c) {
  return c.contains("bytes_hex") ? from_hex(c["bytes_hex"].get<std::string>())
                                 : c["text"].get<std::string>();
}

}  // namespace

// ---- WordPiece on a tiny vocab
// -------------------------------------------------------------------

TEST(BertTokenizer, GreedyLongestMatchFirst) {
  const auto t = tiny();
  EXPECT_EQ(t.tokenize("unaffable"), (std::vector<std::string>{"un", "##aff", "##able"}));
  EXPECT_EQ(t.tokenize("abc"), (std::vector<std::string>{"abc"}));  // not ab ##c
  EXPECT_EQ(t.tokenize("abx"), (std::vector<std::string>{"ab", "##x"}));
  EXPECT_EQ(t.tokenize("abcbc"), (std::vector<std::string>{"abc", "##bc"}));
  EXPECT_EQ(t.tokenize("abcbbx"), (std::vector<std::string>{"abc", "##b", "##b", "##x"}));
  // A word with any unmatchable position is one [UNK], whatever matched before it.
  EXPECT_EQ(t.tokenize("abcd x"), (std::vector<std::string>{"[UNK]", "x"}));
  EXPECT_EQ(t.tokenize("b"), (std::vector<std::string>{"[UNK]"}));  // "##b" only continues
}

TEST(BertTokenizer, NormalizationAndSplitting) {
  const auto t = tiny();
  EXPECT_EQ(t.tokenize("Hello, WORLD!"), (std::vector<std::string>{"hello", ",", "world", "!"}));
  EXPECT_EQ(t.tokenize("don't"), (std::vector<std::string>{"don", "'", "t"}));
  EXPECT_EQ(t.tokenize("  Café\t\n"), (std::vector<std::string>{"cafe"}));  // NFD, Mn dropped
  EXPECT_EQ(t.pre_tokenize("A\u00a0b\u200bc 中文 x!"),
            (std::vector<std::string>{"a", "bc", "中", "文", "x", "!"}));
  TokenizerOptions cased;
  cased.lowercase = false;
  EXPECT_EQ(tiny(cased).pre_tokenize("Café ÉTÉ"), (std::vector<std::string>{"Café", "ÉTÉ"}));
  TokenizerOptions keep;
  keep.strip_accents = false;
  EXPECT_EQ(tiny(keep).pre_tokenize("Café İ"),
            (std::vector<std::string>{"café", "i\u0307"}));  // full lower case of U+0130
}

TEST(BertTokenizer, LongWordsBecomeUnk) {
  const auto t = tiny();
  const std::string w100(100, 'x'), w101(101, 'x');
  const auto toks = t.tokenize(w100);
  ASSERT_EQ(toks.size(), 100u);
  EXPECT_EQ(toks[0], "x");
  EXPECT_EQ(toks[99], "##x");
  EXPECT_EQ(t.tokenize(w101 + " x"), (std::vector<std::string>{"[UNK]", "x"}));
  TokenizerOptions o;
  o.max_input_chars_per_word = 3;
  EXPECT_EQ(tiny(o).tokenize("xxx xxxx"), (std::vector<std::string>{"x", "##x", "##x", "[UNK]"}));
  // The limit counts code points of the normalized word: "Cafe" + U+0301 is 5 in, 4 out.
  o.max_input_chars_per_word = 4;
  EXPECT_EQ(tiny(o).tokenize("Cafe\u0301"), (std::vector<std::string>{"cafe"}));
  o.max_input_chars_per_word = 3;
  EXPECT_EQ(tiny(o).tokenize("Cafe\u0301"), (std::vector<std::string>{"[UNK]"}));
}

TEST(BertTokenizer, EncodeAddsSpecialsAndWordIds) {
  const auto t = tiny();
  const Encoding e = t.encode("Hello unaffable, x", 512);
  EXPECT_EQ(e.ids, ids_of(t, {"[CLS]", "hello", "un", "##aff", "##able", ",", "x", "[SEP]"}));
  EXPECT_EQ(e.word_ids, (std::vector<int32_t>{-1, 0, 1, 1, 1, 2, 3, -1}));
  EXPECT_EQ(e.type_ids, std::vector<int32_t>(8, 0));
  EXPECT_EQ(e.attention_mask, std::vector<int32_t>(8, 1));
  EXPECT_FALSE(e.truncated);
  const Encoding bare = t.encode("hello x", 512, false);
  EXPECT_EQ(bare.ids, ids_of(t, {"hello", "x"}));
  EXPECT_EQ(bare.word_ids, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(t.encode("").ids, ids_of(t, {"[CLS]", "[SEP]"}));
}

TEST(BertTokenizer, TruncationKeepsSep) {
  const auto t = tiny();
  const Encoding e = t.encode("hello unaffable world", 4);
  EXPECT_EQ(e.ids, ids_of(t, {"[CLS]", "hello", "un", "[SEP]"}));
  EXPECT_EQ(e.word_ids, (std::vector<int32_t>{-1, 0, 1, -1}));
  EXPECT_TRUE(e.truncated);
  const Encoding exact = t.encode("hello world", 4);  // fits exactly: not truncated
  EXPECT_EQ(exact.ids, ids_of(t, {"[CLS]", "hello", "world", "[SEP]"}));
  EXPECT_FALSE(exact.truncated);
  EXPECT_EQ(t.encode("hello", 2).ids, ids_of(t, {"[CLS]", "[SEP]"}));
  EXPECT_EQ(t.encode("hello world x", 2, false).ids, ids_of(t, {"hello", "world"}));
  EXPECT_EQ(t.encode(std::string(3000, ' ') + "x", -1).ids, ids_of(t, {"[CLS]", "x", "[SEP]"}));
  EXPECT_NE(error_of([&] { t.encode("x", 1); }).find("max_length 1"), std::string::npos);
}

TEST(BertTokenizer, SpecialTokensInText) {
  const auto t = tiny();
  const Encoding e = t.encode("a[MASK]b [cls] [SEP]", 512);
  EXPECT_EQ(e.ids,
            ids_of(t, {"[CLS]", "a", "[MASK]", "[UNK]", "[", "cl", "##s", "]", "[SEP]", "[SEP]"}));
  EXPECT_EQ(e.word_ids, (std::vector<int32_t>{-1, 0, 1, 2, 3, 4, 4, 5, 6, -1}));
  TokenizerOptions split;
  split.split_special_tokens = true;
  EXPECT_EQ(tiny(split).tokenize("[MASK]"), (std::vector<std::string>{"[", "[UNK]", "]"}));
}

TEST(BertTokenizer, PaddingAndTensors) {
  const auto t = tiny();
  const std::vector<std::string> texts = {"hello", "unaffable world", ""};
  const BatchEncoding b = t.encode_batch(texts, 512, Padding::longest);
  ASSERT_EQ(b.input_ids.shape(), (Shape{3, 6}));
  EXPECT_EQ(b.input_ids.dtype(), DType::i64);
  const int64_t P = t.pad_id(), C = t.cls_id(), S = t.sep_id();
  const auto h = t.vocab().id("hello"), un = t.vocab().id("un"), aff = t.vocab().id("##aff"),
             able = t.vocab().id("##able"), w = t.vocab().id("world");
  EXPECT_EQ(b.input_ids.to_vector_as<int64_t>(),
            (std::vector<int64_t>{C, h, S, P, P, P, C, un, aff, able, w, S, C, S, P, P, P, P}));
  EXPECT_EQ(b.attention_mask.to_vector_as<int64_t>(),
            (std::vector<int64_t>{1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(b.token_type_ids.to_vector_as<int64_t>(), std::vector<int64_t>(18, 0));
  EXPECT_EQ(b.encodings[0].word_ids, (std::vector<int32_t>{-1, 0, -1, -1, -1, -1}));
  EXPECT_EQ(b.batch(), 3);
  EXPECT_EQ(b.seq_len(), 6);

  const BatchEncoding m = t.encode_batch(texts, 8, Padding::max_length, DType::i32);
  ASSERT_EQ(m.input_ids.shape(), (Shape{3, 8}));
  EXPECT_EQ(m.attention_mask.dtype(), DType::i32);
  EXPECT_EQ(m.attention_mask.to_vector_as<int32_t>()[7], 0);
  // Rows longer than max_length cannot be padded to it.
  std::vector<Encoding> long_rows = {t.encode("hello world x", -1)};
  EXPECT_NE(error_of([&] { t.pad(long_rows, Padding::max_length, 3); }).find("more than"),
            std::string::npos);
  EXPECT_THROW(t.pad({}, Padding::longest, 8, DType::f32), Error);
}

TEST(BertTokenizer, BatchDoesNotDependOnThreads) {
  const auto t = tiny();
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i)
    texts.push_back(std::string(static_cast<size_t>(i % 17), 'x') + " hello, unaffable " +
                    std::string(static_cast<size_t>(i % 5), 'a'));
  const int saved = num_threads();
  set_num_threads(1);
  const auto one = t.encode_each(texts, 12);
  set_num_threads(2);
  const auto two = t.encode_each(texts, 12);
  set_num_threads(saved);
  ASSERT_EQ(one.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(one[i].ids, two[i].ids) << i;
    EXPECT_EQ(one[i].ids, t.encode(texts[i], 12).ids) << i;
  }
}

TEST(BertTokenizer, InvalidUtf8ReadsAsDroppedReplacement) {
  const auto t = tiny();
  // Malformed bytes become U+FFFD, which clean_text drops (Hugging Face does the same with
  // U+FFFD): they neither split the word nor add a token.
  EXPECT_EQ(t.tokenize("ab\xff"
                       "c"),
            t.tokenize("abc"));
  EXPECT_EQ(t.tokenize("hello \xe3\x81"), t.tokenize("hello"));     // cut-off sequence at the end
  EXPECT_EQ(t.tokenize("\xc0\xaf\xed\xa0\x80x"), t.tokenize("x"));  // overlong, surrogate
  TokenizerOptions raw;
  raw.clean_text = false;
  EXPECT_EQ(tiny(raw).tokenize("a\xff"), (std::vector<std::string>{"[UNK]"}));  // kept: a\uFFFD
}

TEST(BertTokenizer, DecodeJoinsPiecesAndCleansUp) {
  const auto t = tiny();
  EXPECT_EQ(t.decode(t.encode("Hello unaffable, world! don't").ids),
            "hello unaffable, world! don ' t");  // " ' " is never seen: cleanup is per token
  EXPECT_EQ(t.decode(t.encode("x [MASK] x").ids, false), "[CLS] x [MASK] x [SEP]");
  EXPECT_EQ(t.decode(ids_of(t, {"##x", "x", "."})), "##x x.");
  EXPECT_THROW(t.decode({999}), Error);
}

TEST(BertTokenizer, VocabErrors) {
  const std::string dir = temp_dir("errors");
  EXPECT_NE(error_of([&] { Vocab::load(dir + "/nope.txt"); }).find("cannot open"),
            std::string::npos);
  write_file(fs::path(dir) / "dup.txt", "[PAD]\na\nb\na\n");
  EXPECT_NE(error_of([&] { Vocab::load(dir + "/dup.txt"); }).find("lines 2 and 4"),
            std::string::npos);
  write_file(fs::path(dir) / "hole.txt", "[PAD]\n\nb\n");
  EXPECT_NE(error_of([&] { Vocab::load(dir + "/hole.txt"); }).find("line 2 is empty"),
            std::string::npos);
  write_file(fs::path(dir) / "empty.txt", "");
  EXPECT_NE(error_of([&] { Vocab::load(dir + "/empty.txt"); }).find("empty"), std::string::npos);
  write_file(fs::path(dir) / "bad.txt", "[PAD]\nab\xff\n");
  EXPECT_NE(error_of([&] { Vocab::load(dir + "/bad.txt"); }).find("line 2 is not valid UTF-8"),
            std::string::npos);
  write_file(fs::path(dir) / "crlf.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nx\r\n");
  const Vocab crlf = Vocab::load(dir + "/crlf.txt");
  EXPECT_EQ(crlf.size(), 6);
  EXPECT_EQ(crlf.id("x"), 5);
  EXPECT_EQ(crlf.id("y"), -1);
  EXPECT_THROW(crlf.token(6), Error);

  const std::string no_unk = error_of([] {
    (void)WordPieceTokenizer(Vocab::from_tokens({"[PAD]", "[CLS]", "[SEP]"}));
  });
  EXPECT_NE(no_unk.find("no unknown token '[UNK]'"), std::string::npos) << no_unk;
  fs::remove_all(dir);
}

TEST(BertTokenizer, FromDirReadsConfigAndNamesMissingFiles) {
  const std::string dir = temp_dir("fromdir");
  std::string vocab;
  for (const auto& s : kSpecials) vocab += s + "\n";
  vocab += "Café\ncafe\n";
  write_file(fs::path(dir) / "vocab.txt", vocab);
  EXPECT_EQ(WordPieceTokenizer::from_dir(dir).tokenize("Café"), (std::vector<std::string>{"cafe"}));
  write_file(fs::path(dir) / "tokenizer_config.json",
             R"({"do_lower_case": false, "strip_accents": null, "model_max_length": 7,
                 "unk_token": {"content": "[UNK]"}, "tokenizer_class": "BertTokenizer"})");
  const auto cased = WordPieceTokenizer::from_dir(dir);
  EXPECT_EQ(cased.tokenize("Café"), (std::vector<std::string>{"Café"}));
  EXPECT_EQ(cased.options().model_max_length, 7);
  EXPECT_EQ(cased.encode(std::string(20, 'x') + " a b c d e f g").size(), 7);
  write_file(fs::path(dir) / "tokenizer_config.json", R"({"do_lower_case": "yes"})");
  const std::string bad = error_of([&] { WordPieceTokenizer::from_dir(dir); });
  EXPECT_NE(bad.find("'do_lower_case' must be true or false"), std::string::npos) << bad;
  EXPECT_NE(bad.find("tokenizer_config.json"), std::string::npos) << bad;

  const std::string missing = error_of([&] { WordPieceTokenizer::from_dir(dir + "/nothing"); });
  EXPECT_NE(missing.find("not found"), std::string::npos) << missing;
  const std::string minilm =
      error_of([&] { WordPieceTokenizer::from_dir(dir + "/nothing/" + kMiniLmName); });
  EXPECT_NE(minilm.find("fetch_minilm.sh"), std::string::npos) << minilm;
  fs::remove(fs::path(dir) / "vocab.txt");
  EXPECT_NE(error_of([&] { WordPieceTokenizer::from_dir(dir); }).find("has no vocab.txt"),
            std::string::npos);
  fs::remove_all(dir);
}

// ---- gold: every code point, against tokenizers ----------------------------------------------

// "a<c>b " for every code point of each 4096 block, pre-tokenized, hashed: the same as the
// fixture script. Runs without the real vocab (pre-tokenization does not use it).
TEST(BertTokenizer, CodePointsMatchTokenizers) {
  const nlohmann::json& cp = gold()["codepoints"];
  const std::map<std::string, std::pair<bool, std::optional<bool>>> settings = {
      {"uncased", {true, std::nullopt}},
      {"cased", {false, std::nullopt}},
      {"lower_keep_accents", {true, false}}};
  for (const auto& [name, flags] : settings) {
    TokenizerOptions o;
    o.lowercase = flags.first;
    o.strip_accents = flags.second;
    const auto t = tiny(o);
    const auto& hashes = cp.at(name);
    ASSERT_EQ(hashes.size(), 0x110000u / 4096);
    int bad = 0;
    for (char32_t lo = 0; lo < 0x110000; lo += 4096) {
      std::string text;
      for (char32_t c = lo; c < lo + 4096; ++c) {
        if (c >= 0xD800 && c < 0xE000) continue;
        text += 'a';
        text::append_utf8(text, c);
        text += "b ";
      }
      std::string joined;
      for (const auto& w : t.pre_tokenize(text)) (joined += joined.empty() ? "" : "\x01") += w;
      const std::string want = hashes[static_cast<size_t>(lo / 4096)].get<std::string>();
      if (fnv1a64(joined) != want && bad++ < 5)
        ADD_FAILURE() << name << ": code points U+"
                      << fmt::format("{:04X}-U+{:04X}", static_cast<uint32_t>(lo),
                                     static_cast<uint32_t>(lo + 4095))
                      << " normalize or split differently from tokenizers (list them with "
                         "scripts/gen_bert_tokenizer_fixture.py --codepoints)";
    }
    EXPECT_EQ(bad, 0) << name;
  }
}

// ---- gold: the real vocab -------------------------------------------------------------------

TEST(BertTokenizerMiniLm, HardCasesMatchTokenizers) {
  const WordPieceTokenizer* t = minilm();
  if (!t) GTEST_SKIP() << missing_weights_hint(minilm_dir());
  ASSERT_EQ(t->vocab().size(), 30522);
  for (const auto& c : gold()["cases"]) {
    const std::string name = c["name"];
    const Encoding e =
        t->encode(case_text(c), c["max_length"].get<int64_t>(), c["add_special"].get<bool>());
    EXPECT_EQ(e.ids, c["ids"].get<std::vector<int32_t>>()) << name;
    EXPECT_EQ(e.word_ids, c["word_ids"].get<std::vector<int32_t>>()) << name;
    EXPECT_EQ(t->decode(e.ids), c["decoded"].get<std::string>()) << name;
  }
}

TEST(BertTokenizerMiniLm, SynopsesMatchTokenizers) {
  const WordPieceTokenizer* t = minilm();
  if (!t) GTEST_SKIP() << missing_weights_hint(minilm_dir());
  const std::string dir = recsys::default_data_dir();
  if (dir.empty() || !fs::exists(fs::path(dir) / "anime.csv"))
    GTEST_SKIP() << "no dataset: set DEEPANINET_DATA or put mal2023 in ../shared/data";
  recsys::LoadOptions lo;
  lo.reviews = lo.recommendations = lo.rec_texts = false;
  const recsys::Dataset ds = recsys::load_dataset(dir, lo);
  const auto& real = gold()["real"];
  ASSERT_GE(real.size(), 200u);
  std::vector<std::string> texts;
  for (const auto& r : real) {
    const auto it = ds.item_of_id.find(r["anime_id"].get<int64_t>());
    if (it == ds.item_of_id.end())
      GTEST_SKIP() << "dataset at " << dir << " lacks anime " << r["anime_id"]
                   << ": not the mal2023 the fixture was made from";
    const std::string& syn = ds.anime[static_cast<size_t>(it->second)].synopsis;
    if (fnv1a64(syn) != r["text_fnv1a64"].get<std::string>())
      GTEST_SKIP() << "synopsis of anime " << r["anime_id"] << " in " << dir
                   << " differs from the one the fixture was made from";
    texts.push_back(syn);
  }
  const auto each = t->encode_each(texts, 512);
  const BatchEncoding batch = t->encode_batch(texts, 512);
  const auto batch_ids = batch.input_ids.to_vector_as<int32_t>();
  int truncated = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto want = real[i]["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(each[i].ids, want) << "anime " << real[i]["anime_id"];
    std::string words;
    for (int32_t w : each[i].word_ids) (words += words.empty() ? "" : ",") += std::to_string(w);
    EXPECT_EQ(fnv1a64(words), real[i]["word_ids_fnv1a64"].get<std::string>())
        << "word ids of anime " << real[i]["anime_id"];
    const auto T = static_cast<size_t>(batch.seq_len());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), batch_ids.begin() + i * T))
        << "batched row of anime " << real[i]["anime_id"];
    truncated += each[i].truncated;
  }
  EXPECT_GT(truncated, 0);  // the fixture includes synopses longer than 512 tokens
}
