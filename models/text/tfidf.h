// TF-IDF with scikit-learn's TfidfVectorizer semantics (fit_transform), so it can be checked
// against scikit-learn directly:
//   - the vocabulary is every term of the corpus, sorted (code-point order);
//   - terms with document frequency df < min_df or df > max_df are dropped, each bound being a
//     document count or a fraction of the number of documents;
//   - max_features keeps the terms with the largest total count over the corpus (ties: the
//     earlier term in sorted order);
//   - idf = ln((1 + n) / (1 + df)) + 1 (smooth_idf) or ln(n / df) + 1, n = number of documents;
//   - tf = count, or 1 + ln(count) (sublinear_tf); value = tf * idf, rows scaled to unit L2 norm
//     (rows without terms stay empty).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/text/corpus.h"
#include "recsys/csr.h"

namespace dan::text {

// A document-frequency bound: an absolute count, or a fraction of the documents (the int vs
// float distinction of scikit-learn's min_df/max_df).
struct DfLimit {
  double value = 1;
  bool fraction = false;
  static DfLimit count(int64_t n) { return {static_cast<double>(n), false}; }
  static DfLimit frac(double f) { return {f, true}; }
  double threshold(int64_t num_docs) const {  // in documents
    return fraction ? value * static_cast<double>(num_docs) : value;
  }
  std::string str() const;
};

struct TfidfConfig {
  DfLimit min_df = DfLimit::count(1);
  DfLimit max_df = DfLimit::frac(1.0);
  int64_t max_features = 0;  // 0: no cap
  bool smooth_idf = true;
  bool sublinear_tf = false;
  bool l2_norm = true;
  std::string key() const;
};

struct Tfidf {
  std::vector<std::string> vocabulary;  // column -> term, sorted
  std::vector<double> idf;              // per column
  std::vector<int64_t> df;              // document frequency per column
  recsys::Csr matrix;                   // documents x vocabulary, f32 values
};

// Fits the vocabulary and idf on `corpus` and returns its TF-IDF matrix. Throws when the
// bounds are invalid (negative, fraction outside [0, 1], max_df below min_df in documents) or
// when no term survives them.
Tfidf tfidf(const Corpus& corpus, const TfidfConfig& cfg);

}  // namespace dan::text
