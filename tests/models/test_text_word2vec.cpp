// word2vec: a planted corpus (four disjoint topic vocabularies, every sentence drawn from one
// topic) must put each frequent word's nearest neighbours in its own topic; one thread is
// bit-for-bit reproducible; document vectors are the (weighted) means computed by hand.
#include <gtest/gtest.h>

#include <string>

#include "models/text/word2vec.h"

using namespace dan;
using namespace dan::text;

namespace {

constexpr int kTopics = 4, kWordsPerTopic = 20;

std::string word(int topic, int j) { return "t" + std::to_string(topic) + "w" + std::to_string(j); }

// 1600 sentences of 12 words; within a topic, word j has weight 1/(j+1) (Zipf-like), so
// words 0..2 of each topic are the frequent ones.
Corpus planted_corpus() {
  uint64_t state = 12345;
  auto next = [&] {  // 64-bit LCG (Knuth's MMIX constants): portable, fixed corpus
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) * 0x1p-53;
  };
  double total = 0;
  for (int j = 0; j < kWordsPerTopic; ++j) total += 1.0 / (j + 1);
  std::vector<std::vector<std::string>> docs;
  for (int s = 0; s < 1600; ++s) {
    const int topic = s % kTopics;
    std::vector<std::string> sent;
    for (int w = 0; w < 12; ++w) {
      double u = next() * total;
      int j = 0;
      while (j + 1 < kWordsPerTopic && u >= 1.0 / (j + 1)) u -= 1.0 / (j + 1), ++j;
      sent.push_back(word(topic, j));
    }
    docs.push_back(std::move(sent));
  }
  return corpus_from_tokens(docs);
}

Word2VecConfig small_config(int threads) {
  Word2VecConfig c;
  c.dim = 32;
  c.window = 4;
  c.negative = 5;
  c.epochs = 5;
  c.min_count = 1;
  c.sample = 0;
  c.seed = 7;
  c.threads = threads;
  return c;
}

void expect_topical_neighbours(const Word2Vec& m) {
  ASSERT_EQ(m.vocab.size(), static_cast<size_t>(kTopics * kWordsPerTopic));
  for (int topic = 0; topic < kTopics; ++topic)
    for (int j = 0; j < 3; ++j) {
      const std::string w = word(topic, j);
      const auto nn = m.most_similar(w, 5);
      ASSERT_EQ(nn.size(), 5u);
      for (const auto& [other, sim] : nn)
        EXPECT_EQ(other.substr(0, 2), w.substr(0, 2)) << w << " -> " << other << " (" << sim << ")";
    }
}

}  // namespace

TEST(TextWord2Vec, PlantedTopicsOneThreadIsReproducible) {
  const Corpus c = planted_corpus();
  const Word2Vec a = train_word2vec(c, small_config(1));
  expect_topical_neighbours(a);
  // Vocabulary by descending count: the most frequent word is one of the topics' word 0.
  EXPECT_EQ(a.vocab[0].substr(2), "w0");
  EXPECT_GE(a.counts[0], a.counts[1]);
  const Word2Vec b = train_word2vec(c, small_config(1));
  ASSERT_EQ(a.vectors.shape(), (Shape{80, 32}));
  const std::vector<double> va = a.vectors.to_vector(), vb = b.vectors.to_vector();
  EXPECT_TRUE(va == vb) << "two single-thread runs differ";
  Word2VecConfig other = small_config(1);
  other.seed = 8;
  EXPECT_FALSE(train_word2vec(c, other).vectors.to_vector() == va);
}

TEST(TextWord2Vec, PlantedTopicsTwoThreadsHogwild) {
  expect_topical_neighbours(train_word2vec(planted_corpus(), small_config(2)));
}

TEST(TextWord2Vec, SubsamplingAndMinCount) {
  const Corpus c = planted_corpus();
  Word2VecConfig cfg = small_config(1);
  cfg.sample = 1e-2;
  cfg.min_count = 400;  // keeps only the frequent head of each topic
  const Word2Vec m = train_word2vec(c, cfg);
  ASSERT_FALSE(m.vocab.empty());
  for (int64_t cnt : m.counts) EXPECT_GE(cnt, 400);
  EXPECT_LT(m.vocab.size(), 80u);
  EXPECT_EQ(m.id("nope"), -1);
  cfg.window = 0;
  EXPECT_THROW(train_word2vec(c, cfg), Error);
}

TEST(TextWord2Vec, DocVectorsAreMeans) {
  Word2Vec m;
  m.vocab = {"aa", "bb"};
  m.counts = {1, 2};
  m.index = {{"aa", 0}, {"bb", 1}};
  m.vectors = from_doubles({1, 0, 0, 2}, {2, 2});
  const Corpus c = corpus_from_tokens({{"aa", "bb", "bb", "zz"}, {}, {"zz"}});
  const std::vector<double> plain = doc_vectors(m, c).to_vector();
  // (1,0) + 2 (0,2) over 3 in-vocabulary tokens; empty and all-unknown documents are 0.
  EXPECT_NEAR(plain[0], 1.0 / 3, 1e-6);
  EXPECT_NEAR(plain[1], 4.0 / 3, 1e-6);
  for (int i = 2; i < 6; ++i) EXPECT_EQ(plain[i], 0.0);
  Tfidf w;
  w.vocabulary = {"aa", "bb", "zz"};
  w.matrix.rows = 3;
  w.matrix.cols = 3;
  w.matrix.indptr = {0, 3, 3, 4};
  w.matrix.indices = {0, 1, 2, 2};
  w.matrix.values = {0.5f, 0.25f, 1.0f, 1.0f};
  const std::vector<double> weighted = doc_vectors(m, c, &w).to_vector();
  // (0.5 (1,0) + 0.25 (0,2)) / 0.75
  EXPECT_NEAR(weighted[0], 2.0 / 3, 1e-6);
  EXPECT_NEAR(weighted[1], 2.0 / 3, 1e-6);
  for (int i = 2; i < 6; ++i) EXPECT_EQ(weighted[i], 0.0);
}
