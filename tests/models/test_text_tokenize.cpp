// Tokenizer and corpus: the regex tokenizer of scripts/gen_tfidf_fixture.py on ASCII text
// (gold), hand-checked Unicode cases (lower-casing, CJK, full-width, invalid UTF-8), and the
// per-anime corpus assembly from a hand-built dataset.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/threads.h"
#include "models/text/corpus.h"
#include "models/text/tokenize.h"
#include "tests/models/test_text_fixture.h"

using namespace dan;
using namespace dan::text;
using Tokens = std::vector<std::string>;

namespace {

TokenizerConfig plain(int min_len = 2) {
  TokenizerConfig c;
  c.english_stop_words = false;
  c.min_token_len = min_len;
  return c;
}

}  // namespace

TEST(TextTokenize, MatchesRegexTokenizerOfFixture) {
  const std::vector<std::string> docs = textfx::gold_docs();
  ASSERT_EQ(docs.size(), 50u);
  for (const std::string name : {"plain", "custom"}) {
    const auto& spec = textfx::gold_meta("tokenizer." + name);
    TokenizerConfig cfg = plain(spec["min_len"].get<int>());
    cfg.stop_words = spec["stop_words"].get<std::vector<std::string>>();
    const Tokenizer tok(cfg);
    const auto want = textfx::gold_meta("tokens." + name).get<std::vector<Tokens>>();
    for (size_t d = 0; d < docs.size(); ++d)
      EXPECT_EQ(tok.tokenize(docs[d]), want[d]) << name << " doc " << d;
  }
}

TEST(TextTokenize, AsciiSplittingAndCase) {
  const Tokenizer tok(plain());
  EXPECT_EQ(tok.tokenize("Spike's BOUNTY-hunter crew (2071), x y z a1b2!"),
            (Tokens{"spike", "bounty", "hunter", "crew", "2071", "a1b2"}));
  EXPECT_EQ(tok.tokenize(""), Tokens{});
  EXPECT_EQ(tok.tokenize("  ...  "), Tokens{});
  EXPECT_EQ(Tokenizer(plain(1)).tokenize("a_b"), (Tokens{"a", "b"}));  // '_' separates
  TokenizerConfig keep_case = plain();
  keep_case.lowercase = false;
  EXPECT_EQ(Tokenizer(keep_case).tokenize("Cowboy BEBOP"), (Tokens{"Cowboy", "BEBOP"}));
}

TEST(TextTokenize, UnicodeLowerCasing) {
  const Tokenizer tok(plain());
  EXPECT_EQ(tok.tokenize("CAFÉ Naïve ÆRØ ŠKODA ŁÓDŹ ĞİŞ"),
            (Tokens{"café", "naïve", "ærø", "škoda", "łódź", "ğiş"}));
  EXPECT_EQ(tok.tokenize("ΑΘΗΝΑ Άρης МОСКВА Ёж ՀԱՅ"),
            (Tokens{"αθηνα", "άρης", "москва", "ёж", "հայ"}));
  EXPECT_EQ(tok.tokenize("TIẾNG VIỆT"), (Tokens{"tiếng", "việt"}));
  EXPECT_EQ(to_lower(U'Ÿ'), U'ÿ');
  EXPECT_EQ(to_lower(U'ẞ'), U'ß');
  EXPECT_EQ(to_lower(U'×'), U'×');  // not a letter
  EXPECT_EQ(to_lower(U'ı'), U'ı');
}

TEST(TextTokenize, CjkKanaHangulAndFullWidth) {
  const Tokenizer tok(plain());
  // Ideographs are single tokens (kept despite min length 2); kana runs are words, and the
  // lone "の" is below the minimum length.
  EXPECT_EQ(tok.tokenize("進撃の巨人"), (Tokens{"進", "撃", "巨", "人"}));
  EXPECT_EQ(tok.tokenize("ナルト・うずまき"), (Tokens{"ナルト", "うずまき"}));
  EXPECT_EQ(tok.tokenize("鬼滅の刃ファン"), (Tokens{"鬼", "滅", "刃", "ファン"}));
  EXPECT_EQ(tok.tokenize("「東京」、２０２３年！"), (Tokens{"東", "京", "2023", "年"}));
  EXPECT_EQ(tok.tokenize("ＴＯＫＹＯ Ｇｈｏｕｌ"), (Tokens{"tokyo", "ghoul"}));
  EXPECT_EQ(tok.tokenize("원피스 최고"), (Tokens{"원피스", "최고"}));
  EXPECT_EQ(tok.tokenize("fun😀times — great…"), (Tokens{"fun", "times", "great"}));
  EXPECT_EQ(char_class(U'々'), CharClass::ideograph);
  EXPECT_EQ(char_class(U'・'), CharClass::separator);
  EXPECT_EQ(char_class(0x20000), CharClass::ideograph);
}

TEST(TextTokenize, InvalidUtf8SplitsAndNeverThrows) {
  const Tokenizer tok(plain());
  EXPECT_EQ(tok.tokenize("ab\xff"
                         "cd"),
            (Tokens{"ab", "cd"}));
  EXPECT_EQ(tok.tokenize("ab\xc0\xaf"
                         "cd"),
            (Tokens{"ab", "cd"}));  // overlong '/'
  EXPECT_EQ(tok.tokenize("ab\xed\xa0\x80"
                         "cd"),
            (Tokens{"ab", "cd"}));                        // surrogate
  EXPECT_EQ(tok.tokenize("ab\xe3\x81"), (Tokens{"ab"}));  // truncated
  EXPECT_EQ(tok.tokenize("\xc3"
                         "ab"),
            (Tokens{"ab"}));  // bad continuation
  char32_t cp;
  EXPECT_EQ(decode_utf8("\xf4\x90\x80\x80", 0, &cp), 1u);  // > U+10FFFF
  EXPECT_EQ(cp, 0xFFFDu);
}

TEST(TextTokenize, Utf8RoundTrip) {
  for (char32_t c : {0x41u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xFFFDu, 0x10000u, 0x10FFFFu, 0x4E00u}) {
    std::string s;
    append_utf8(s, c);
    char32_t back = 0;
    EXPECT_EQ(decode_utf8(s, 0, &back), s.size());
    EXPECT_EQ(back, c);
  }
}

TEST(TextTokenize, StopWordsAndMinLength) {
  const Tokenizer en{TokenizerConfig{}};
  EXPECT_EQ(en.tokenize("The hero and his friends don't give up on the ninja way"),
            (Tokens{"hero", "friends", "give", "ninja", "way"}));
  const auto& list = english_stop_words();
  EXPECT_TRUE(std::is_sorted(list.begin(), list.end()));
  EXPECT_TRUE(std::binary_search(list.begin(), list.end(), "the"));
  EXPECT_FALSE(std::binary_search(list.begin(), list.end(), "ninja"));
  TokenizerConfig custom = plain();
  custom.stop_words = {"NINJA", "Ｗａｙ"};  // normalized like tokens
  EXPECT_EQ(Tokenizer(custom).tokenize("ninja way of the hero"), (Tokens{"of", "the", "hero"}));
  custom.stop_words = {"two words"};
  EXPECT_THROW(Tokenizer{custom}, Error);
  // Length counts code points: "é" is one.
  EXPECT_EQ(Tokenizer(plain(2)).tokenize("é éa"), (Tokens{"éa"}));
  EXPECT_EQ(Tokenizer(plain(4)).tokenize("ab abc abcd"), (Tokens{"abcd"}));
  EXPECT_THROW(Tokenizer(plain(0)), Error);
}

TEST(TextCorpus, InternsInFirstOccurrenceOrderForAnyThreadCount) {
  const std::vector<std::string> docs = textfx::gold_docs();
  const int saved = num_threads();
  set_num_threads(1);
  const Corpus one = build_corpus(docs, plain());
  set_num_threads(2);
  const Corpus two = build_corpus(docs, plain());
  set_num_threads(saved);
  EXPECT_EQ(one.terms, two.terms);
  EXPECT_EQ(one.docs, two.docs);
  // First occurrence order, and the ids spell the fixture's tokens back.
  const auto want = textfx::gold_meta("tokens.plain").get<std::vector<Tokens>>();
  std::vector<std::string> seen;
  for (size_t d = 0; d < docs.size(); ++d) {
    Tokens got;
    for (int32_t id : one.docs[d]) got.push_back(one.terms[id]);
    EXPECT_EQ(got, want[d]);
    for (const auto& t : want[d])
      if (std::find(seen.begin(), seen.end(), t) == seen.end()) seen.push_back(t);
  }
  EXPECT_EQ(one.terms, seen);
}

TEST(TextCorpus, FieldsOfADataset) {
  recsys::Dataset ds;
  ds.anime.push_back(textfx::make_anime(1, "Alpha Quest", "Heroes travel far."));
  ds.anime.push_back(textfx::make_anime(2, "Beta", "Robots fight."));
  ds.anime.push_back(textfx::make_anime(3, "Gamma", ""));
  ds.anime[0].genres = {"Slice of Life", "Action"};
  ds.anime[1].studios = {"Studio Deen"};
  ds.anime[2].themes = {"Time Travel"};
  ds.reviews = {{1, 8, "great robots"}, {0, NAN, "long travel"}, {1, 5, "boring fight"}};
  ds.rec_texts = {{0, 1, "both have journeys"}};
  auto doc_tokens = [](const Corpus& c, size_t d) {
    Tokens t;
    for (int32_t id : c.docs[d]) t.push_back(c.terms[id]);
    return t;
  };
  const Corpus syn = build_corpus(ds, TextFields{}, plain());
  ASSERT_EQ(syn.num_docs(), 3);
  EXPECT_EQ(doc_tokens(syn, 0), (Tokens{"heroes", "travel", "far"}));
  EXPECT_EQ(doc_tokens(syn, 2), Tokens{});

  TextFields all{true, true, true, true, true, true, true};
  const Corpus c = build_corpus(ds, all, plain());
  EXPECT_EQ(doc_tokens(c, 0),
            (Tokens{"alpha", "quest", "heroes", "travel", "far", "long", "travel", "both", "have",
                    "journeys", "genre:slice_of_life", "genre:action"}));
  EXPECT_EQ(doc_tokens(c, 1), (Tokens{"beta", "robots", "fight", "great", "robots", "boring",
                                      "fight", "both", "have", "journeys", "studio:studio_deen"}));
  EXPECT_EQ(doc_tokens(c, 2), (Tokens{"gamma", "theme:time_travel"}));
  EXPECT_EQ(tag_token("genre", "Boys Love"), "genre:boys_love");

  ds.reviews.push_back({7, 1, "out of range"});
  EXPECT_THROW(build_corpus(ds, all, plain()), Error);
}
