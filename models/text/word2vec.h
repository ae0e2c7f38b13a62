// word2vec: skip-gram with negative sampling (Mikolov et al. 2013), trained on the documents of
// a Corpus. As in the original tool: a random window shrink per centre word, subsampling of
// frequent words with threshold `sample`, negatives from the unigram^0.75 distribution (drawn
// here with an alias table), and a learning rate decaying linearly to alpha * min_alpha_ratio.
// Threads train Hogwild-style (lock-free updates of shared vectors) on contiguous document
// ranges; every random draw comes from Philox keyed by (seed, epoch, document), so one thread
// gives bit-identical vectors run to run (several threads race by design and do not).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/text/corpus.h"
#include "models/text/tfidf.h"

namespace dan::text {

struct Word2VecConfig {
  int64_t dim = 100;
  int window = 5;
  int negative = 5;
  int epochs = 5;
  int64_t min_count = 5;          // words rarer than this are dropped before training
  double sample = 1e-3;           // subsampling threshold t (0 = off)
  double alpha = 0.025;           // initial learning rate
  double min_alpha_ratio = 1e-4;  // final rate = alpha * min_alpha_ratio
  uint64_t seed = 1;
  int threads = 0;          // 0 = dan::num_threads()
  std::string key() const;  // every option but `threads`
};

struct Word2Vec {
  std::vector<std::string> vocab;  // word id -> word, by descending count (ties by word)
  std::vector<int64_t> counts;
  Tensor vectors;                                  // [vocab, dim] f32 input ("syn0") vectors
  std::unordered_map<std::string, int32_t> index;  // word -> id

  int32_t id(std::string_view word) const;  // -1 when absent
  // The `topn` words with the largest cosine similarity to `word` (itself excluded).
  std::vector<std::pair<std::string, float>> most_similar(std::string_view word,
                                                          int64_t topn = 10) const;
};

Word2Vec train_word2vec(const Corpus& corpus, const Word2VecConfig& cfg);

// Document vectors [docs, dim] f32: the mean of the vectors of each document's in-vocabulary
// tokens (zeros for a document with none). With `weights` (a TF-IDF fitted on the same corpus)
// each distinct word instead counts with its TF-IDF weight in that document: sum_w x_dw v_w /
// sum_w x_dw over words in both vocabularies.
Tensor doc_vectors(const Word2Vec& model, const Corpus& corpus, const Tfidf* weights = nullptr);

}  // namespace dan::text
