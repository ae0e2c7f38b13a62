// Skip-gram negative-sampling training loop (see word2vec.h). The update per (context, centre)
// pair is word2vec.c's: the context word's input vector is trained to predict the centre word
// against `negative` sampled words, its gradient accumulated and applied after all of them.
#include "models/text/word2vec.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/philox.h"
#include "core/threads.h"

namespace dan::text {

std::string Word2VecConfig::key() const {
  return fmt::format(
      "w2v(dim={},window={},negative={},epochs={},min_count={},sample={},alpha={},min_alpha={},"
      "seed={})",
      dim, window, negative, epochs, min_count, sample, alpha, min_alpha_ratio, seed);
}

int32_t Word2Vec::id(std::string_view word) const {
  auto it = index.find(std::string(word));
  return it == index.end() ? -1 : it->second;
}

std::vector<std::pair<std::string, float>> Word2Vec::most_similar(std::string_view word,
                                                                  int64_t topn) const {
  const int32_t w = id(word);
  DAN_CHECK(w >= 0, "word2vec: '{}' is not in the vocabulary", word);
  const int64_t v = static_cast<int64_t>(vocab.size()), d = vectors.size(1);
  const float* x = vectors.data<float>();
  std::vector<double> norm(v);
  for (int64_t i = 0; i < v; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += static_cast<double>(x[i * d + j]) * x[i * d + j];
    norm[i] = std::sqrt(s);
  }
  std::vector<std::pair<double, int64_t>> sims;
  for (int64_t i = 0; i < v; ++i) {
    if (i == w) continue;
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += static_cast<double>(x[i * d + j]) * x[w * d + j];
    const double den = norm[i] * norm[w];
    sims.emplace_back(den > 0 ? s / den : 0.0, i);
  }
  const auto k = std::min<int64_t>(topn, static_cast<int64_t>(sims.size()));
  std::partial_sort(sims.begin(), sims.begin() + k, sims.end(), [](auto& a, auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::pair<std::string, float>> out;
  for (int64_t i = 0; i < k; ++i)
    out.emplace_back(vocab[sims[i].second], static_cast<float>(sims[i].first));
  return out;
}

namespace {

// Philox stream of one (epoch, document): the counter is (n, document, epoch + 1); the +1 keeps
// it apart from the (i, 0, 0) counters of the initial vectors.
class Stream {
 public:
  Stream(uint64_t seed, uint32_t epoch, uint32_t doc)
      : k0_(static_cast<uint32_t>(seed)),
        k1_(static_cast<uint32_t>(seed >> 32)),
        epoch_(epoch + 1),
        doc_(doc) {}
  uint32_t next() {
    if (pos_ == 4) {
      buf_ = philox::philox4x32_10(
          philox::U32x4{{static_cast<uint32_t>(n_), static_cast<uint32_t>(n_ >> 32), doc_, epoch_}},
          k0_, k1_);
      ++n_;
      pos_ = 0;
    }
    return buf_.v[pos_++];
  }

 private:
  uint32_t k0_, k1_, epoch_, doc_;
  uint64_t n_ = 0;
  philox::U32x4 buf_{};
  int pos_ = 4;
};

// Walker's alias method: O(1) draws from a discrete distribution with one 32-bit number.
struct AliasTable {
  std::vector<uint32_t> threshold;  // accept bucket i when the low 32 bits are below this
  std::vector<int32_t> alias;
  int32_t sample(uint32_t u) const {
    const uint64_t x = static_cast<uint64_t>(u) * threshold.size();
    const auto i = static_cast<int32_t>(x >> 32);
    return static_cast<uint32_t>(x) < threshold[i] ? i : alias[i];
  }
};

AliasTable make_alias(const std::vector<double>& w) {
  const int64_t n = static_cast<int64_t>(w.size());
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  std::vector<double> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = w[i] * static_cast<double>(n) / total;
  AliasTable t;
  t.threshold.assign(n, 0xFFFFFFFFu);
  t.alias.resize(n);
  std::iota(t.alias.begin(), t.alias.end(), 0);
  std::vector<int64_t> small, large;
  for (int64_t i = 0; i < n; ++i) (p[i] < 1.0 ? small : large).push_back(i);
  while (!small.empty() && !large.empty()) {
    const int64_t s = small.back(), g = large.back();
    small.pop_back();
    t.threshold[s] = static_cast<uint32_t>(std::min(p[s] * 4294967296.0, 4294967295.0));
    t.alias[s] = static_cast<int32_t>(g);
    p[g] -= 1.0 - p[s];
    if (p[g] < 1.0) {
      large.pop_back();
      small.push_back(g);
    }
  }
  return t;  // leftovers (rounding) keep threshold = always accept
}

constexpr int kExpTableSize = 1024;
constexpr float kMaxExp = 6.0f;

// One (context, centre) pair: the context's input vector `in` learns to score targets[0] (the
// centre word, label 1) above targets[1..n) (negatives, label 0); word2vec.c's update. Its
// three dim-long loops are all the arithmetic of training (gathering the random rows of syn1
// costs as much; an AVX2 clone of this function measured only 15 % faster).
void sgns_update(float* in, float* syn1, const int32_t* targets, int n, float alpha, int64_t dim,
                 float* acc, const float* exp_table) {
  std::fill(acc, acc + dim, 0.0f);
  for (int k = 0; k < n; ++k) {
    const float label = k == 0 ? 1.0f : 0.0f;
    float* out = syn1 + static_cast<int64_t>(targets[k]) * dim;
    float f = 0;
#pragma omp simd reduction(+ : f)
    for (int64_t j = 0; j < dim; ++j) f += in[j] * out[j];
    float g;
    if (f > kMaxExp)
      g = (label - 1) * alpha;
    else if (f < -kMaxExp)
      g = label * alpha;
    else
      g = (label -
           exp_table[std::min(kExpTableSize - 1,
                              static_cast<int>((f + kMaxExp) * (kExpTableSize / (2 * kMaxExp))))]) *
          alpha;
#pragma omp simd
    for (int64_t j = 0; j < dim; ++j) {
      acc[j] += g * out[j];
      out[j] += g * in[j];
    }
  }
#pragma omp simd
  for (int64_t j = 0; j < dim; ++j) in[j] += acc[j];
}

}  // namespace

Word2Vec train_word2vec(const Corpus& corpus, const Word2VecConfig& cfg) {
  DAN_CHECK(cfg.dim >= 1 && cfg.window >= 1 && cfg.negative >= 0 && cfg.epochs >= 0 &&
                cfg.min_count >= 1 && cfg.sample >= 0 && cfg.alpha > 0 &&
                cfg.min_alpha_ratio >= 0 && cfg.min_alpha_ratio <= 1 && cfg.threads >= 0,
            "word2vec: invalid config {} (need dim, window, min_count >= 1; negative, epochs, "
            "sample, threads >= 0; alpha > 0; min_alpha_ratio in [0, 1])",
            cfg.key());
  // Vocabulary: words with count >= min_count, by descending count, ties by word.
  const int64_t nt = corpus.num_terms();
  std::vector<int64_t> term_count(nt, 0);
  for (const auto& doc : corpus.docs)
    for (int32_t t : doc) ++term_count[t];
  std::vector<int32_t> kept;
  for (int32_t t = 0; t < nt; ++t)
    if (term_count[t] >= cfg.min_count) kept.push_back(t);
  std::sort(kept.begin(), kept.end(), [&](int32_t a, int32_t b) {
    return term_count[a] != term_count[b] ? term_count[a] > term_count[b]
                                          : corpus.terms[a] < corpus.terms[b];
  });
  Word2Vec model;
  const auto v = static_cast<int64_t>(kept.size());
  std::vector<int32_t> to_word(nt, -1);
  for (int64_t i = 0; i < v; ++i) {
    to_word[kept[i]] = static_cast<int32_t>(i);
    model.vocab.push_back(corpus.terms[kept[i]]);
    model.counts.push_back(term_count[kept[i]]);
    model.index.emplace(corpus.terms[kept[i]], static_cast<int32_t>(i));
  }
  const int64_t dim = cfg.dim;
  model.vectors = empty({v, dim});
  if (v == 0) return model;
  float* syn0 = model.vectors.data<float>();
  for (int64_t i = 0; i < v * dim; ++i)
    syn0[i] = (philox::uniform_f32(cfg.seed, 0, static_cast<uint64_t>(i)) - 0.5f) /
              static_cast<float>(dim);
  std::vector<float> syn1(static_cast<size_t>(v * dim), 0.0f);

  // Sentences: the documents without out-of-vocabulary tokens.
  const int64_t ndocs = corpus.num_docs();
  std::vector<std::vector<int32_t>> sent(ndocs);
  int64_t train_words = 0;
  for (int64_t d = 0; d < ndocs; ++d) {
    for (int32_t t : corpus.docs[d])
      if (to_word[t] >= 0) sent[d].push_back(to_word[t]);
    train_words += static_cast<int64_t>(sent[d].size());
  }
  // Subsampling: keep word w with probability (sqrt(f/(tT)) + 1) tT/f, as a 32-bit threshold.
  std::vector<uint64_t> keep(v, 1ull << 32);
  if (cfg.sample > 0)
    for (int64_t i = 0; i < v; ++i) {
      const double f = static_cast<double>(model.counts[i]);
      const double tt = cfg.sample * static_cast<double>(train_words);
      const double p = (std::sqrt(f / tt) + 1) * tt / f;
      keep[i] = p >= 1 ? (1ull << 32) : static_cast<uint64_t>(p * 4294967296.0);
    }
  std::vector<double> unigram(v);
  for (int64_t i = 0; i < v; ++i) unigram[i] = std::pow(static_cast<double>(model.counts[i]), 0.75);
  const AliasTable negatives = make_alias(unigram);
  std::vector<float> exp_table(kExpTableSize);
  for (int i = 0; i < kExpTableSize; ++i) {
    const double x = (2.0 * (i + 0.5) / kExpTableSize - 1.0) * kMaxExp;
    exp_table[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
  }

  // Contiguous document ranges of about equal token counts, one per thread.
  const int threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(cfg.threads > 0 ? cfg.threads : num_threads(), ndocs)));
  std::vector<int64_t> begin(threads + 1, ndocs);
  begin[0] = 0;
  {
    int64_t acc = 0;
    int t = 1;
    for (int64_t d = 0; d < ndocs && t < threads; ++d) {
      acc += static_cast<int64_t>(sent[d].size());
      if (acc * threads >= train_words * t) begin[t++] = d + 1;
    }
  }
  const float alpha0 = static_cast<float>(cfg.alpha);
  const float min_alpha = static_cast<float>(cfg.alpha * cfg.min_alpha_ratio);
  float* s1 = syn1.data();

#pragma omp parallel num_threads(threads)
  {
    const int th = omp_get_thread_num();
    int64_t local_words = 0;
    for (int64_t d = begin[th]; d < begin[th + 1]; ++d)
      local_words += static_cast<int64_t>(sent[d].size());
    const double total = static_cast<double>(std::max<int64_t>(1, local_words * cfg.epochs));
    std::vector<float> neu1e(dim);
    std::vector<int32_t> targets(cfg.negative + 1);
    std::vector<int32_t> s;
    int64_t done = 0;
    for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
      for (int64_t d = begin[th]; d < begin[th + 1]; ++d) {
        Stream rng(cfg.seed, static_cast<uint32_t>(epoch), static_cast<uint32_t>(d));
        s.clear();
        for (int32_t w : sent[d])
          if (keep[w] > (1ull << 32) - 1 || rng.next() < keep[w]) s.push_back(w);
        const float alpha = std::max(
            min_alpha, alpha0 * static_cast<float>(1.0 - static_cast<double>(done) / total));
        done += static_cast<int64_t>(sent[d].size());
        const auto len = static_cast<int64_t>(s.size());
        for (int64_t pos = 0; pos < len; ++pos) {
          const int32_t centre = s[pos];
          const int64_t b = rng.next() % static_cast<uint32_t>(cfg.window);
          const int64_t lo = std::max<int64_t>(0, pos - cfg.window + b);
          const int64_t hi = std::min<int64_t>(len - 1, pos + cfg.window - b);
          for (int64_t c = lo; c <= hi; ++c) {
            if (c == pos) continue;
            int nt = 0;
            targets[nt++] = centre;
            for (int k = 0; k < cfg.negative; ++k) {
              const int32_t t = negatives.sample(rng.next());
              if (t != centre) targets[nt++] = t;
            }
            sgns_update(syn0 + static_cast<int64_t>(s[c]) * dim, s1, targets.data(), nt, alpha, dim,
                        neu1e.data(), exp_table.data());
          }
        }
      }
    }
  }
  return model;
}

Tensor doc_vectors(const Word2Vec& model, const Corpus& corpus, const Tfidf* weights) {
  const int64_t n = corpus.num_docs();
  const int64_t dim =
      model.vectors.defined() && model.vectors.dim() == 2 ? model.vectors.size(1) : 0;
  Tensor out = zeros({n, dim});
  if (dim == 0 || model.vocab.empty()) return out;
  const float* x = model.vectors.data<float>();
  float* o = out.data<float>();
  if (weights != nullptr) {
    DAN_CHECK(weights->matrix.rows == n,
              "doc_vectors: the TF-IDF matrix has {} rows, the corpus {} documents",
              weights->matrix.rows, n);
    std::vector<int32_t> col_word(weights->vocabulary.size());
    for (size_t j = 0; j < col_word.size(); ++j) col_word[j] = model.id(weights->vocabulary[j]);
    const recsys::Csr& m = weights->matrix;
#pragma omp parallel for schedule(dynamic, 64) num_threads(num_threads()) if (n * dim > 65536)
    for (int64_t d = 0; d < n; ++d) {
      std::vector<double> acc(dim, 0.0);
      double wsum = 0;
      for (int64_t k = m.indptr[d]; k < m.indptr[d + 1]; ++k) {
        const int32_t w = col_word[m.indices[k]];
        if (w < 0) continue;
        const double wt = m.values[k];
        wsum += wt;
        for (int64_t j = 0; j < dim; ++j) acc[j] += wt * x[w * dim + j];
      }
      if (wsum > 0)
        for (int64_t j = 0; j < dim; ++j) o[d * dim + j] = static_cast<float>(acc[j] / wsum);
    }
    return out;
  }
  std::vector<int32_t> term_word(corpus.num_terms());
  for (int64_t t = 0; t < corpus.num_terms(); ++t) term_word[t] = model.id(corpus.terms[t]);
#pragma omp parallel for schedule(dynamic, 64) num_threads(num_threads()) if (n * dim > 65536)
  for (int64_t d = 0; d < n; ++d) {
    std::vector<double> acc(dim, 0.0);
    int64_t cnt = 0;
    for (int32_t t : corpus.docs[d]) {
      const int32_t w = term_word[t];
      if (w < 0) continue;
      ++cnt;
      for (int64_t j = 0; j < dim; ++j) acc[j] += x[w * dim + j];
    }
    if (cnt > 0)
      for (int64_t j = 0; j < dim; ++j)
        o[d * dim + j] = static_cast<float>(acc[j] / static_cast<double>(cnt));
  }
  return out;
}

}  // namespace dan::text
