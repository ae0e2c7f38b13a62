// TF-IDF fit + transform on an interned corpus: per-document term counts in parallel, then the
// vocabulary pruning and the weighting exactly as scikit-learn orders them (see tfidf.h).
#include "models/text/tfidf.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/threads.h"

namespace dan::text {

std::string DfLimit::str() const {
  return fraction ? fmt::format("{}f", value) : fmt::format("{}", value);
}

std::string TfidfConfig::key() const {
  return fmt::format("tfidf(min_df={},max_df={},max_features={},smooth={},sublinear={},l2={})",
                     min_df.str(), max_df.str(), max_features, smooth_idf, sublinear_tf, l2_norm);
}

namespace {

void check_limit(const DfLimit& l, const char* name) {
  if (l.fraction)
    DAN_CHECK(l.value >= 0 && l.value <= 1, "tfidf: {} as a fraction must be in [0, 1], got {}",
              name, l.value);
  else
    DAN_CHECK(l.value >= 0 && l.value == std::floor(l.value),
              "tfidf: {} as a document count must be a non-negative integer, got {}", name,
              l.value);
}

}  // namespace

Tfidf tfidf(const Corpus& corpus, const TfidfConfig& cfg) {
  check_limit(cfg.min_df, "min_df");
  check_limit(cfg.max_df, "max_df");
  DAN_CHECK(cfg.max_features >= 0, "tfidf: max_features must be >= 0 (0 = no cap), got {}",
            cfg.max_features);
  const int64_t n = corpus.num_docs();
  const int64_t v = corpus.num_terms();
  const double lo = cfg.min_df.threshold(n), hi = cfg.max_df.threshold(n);
  DAN_CHECK(hi >= lo, "tfidf: max_df ({} = {} documents) is below min_df ({} = {} documents)",
            cfg.max_df.str(), hi, cfg.min_df.str(), lo);

  // Per-document (term, count) pairs, terms ascending by id.
  std::vector<std::vector<std::pair<int32_t, int32_t>>> counts(n);
#pragma omp parallel for schedule(dynamic, 64) num_threads(num_threads()) if (n > 512)
  for (int64_t d = 0; d < n; ++d) {
    std::vector<int32_t> ids = corpus.docs[d];
    std::sort(ids.begin(), ids.end());
    auto& out = counts[d];
    for (size_t i = 0; i < ids.size();) {
      size_t j = i;
      while (j < ids.size() && ids[j] == ids[i]) ++j;
      out.emplace_back(ids[i], static_cast<int32_t>(j - i));
      i = j;
    }
  }
  std::vector<int64_t> df(v, 0), total(v, 0);
  for (const auto& doc : counts)
    for (auto [t, c] : doc) {
      ++df[t];
      total[t] += c;
    }

  // Sorted vocabulary, then the document-frequency mask, then the max_features cap.
  std::vector<int32_t> sorted(v);
  std::iota(sorted.begin(), sorted.end(), 0);
  std::sort(sorted.begin(), sorted.end(),
            [&](int32_t a, int32_t b) { return corpus.terms[a] < corpus.terms[b]; });
  std::vector<int32_t> kept;  // term ids, in sorted order
  for (int32_t t : sorted) {
    const auto f = static_cast<double>(df[t]);
    if (f >= lo && f <= hi) kept.push_back(t);
  }
  if (cfg.max_features > 0 && static_cast<int64_t>(kept.size()) > cfg.max_features) {
    std::vector<int32_t> by_count = kept;
    std::stable_sort(by_count.begin(), by_count.end(),
                     [&](int32_t a, int32_t b) { return total[a] > total[b]; });
    by_count.resize(cfg.max_features);
    std::vector<char> keep(v, 0);
    for (int32_t t : by_count) keep[t] = 1;
    std::erase_if(kept, [&](int32_t t) { return !keep[t]; });
  }
  DAN_CHECK(!kept.empty(),
            "tfidf: empty vocabulary after pruning ({} documents, {} distinct terms, min_df={}, "
            "max_df={}); the documents may hold only stop words",
            n, v, cfg.min_df.str(), cfg.max_df.str());

  Tfidf out;
  const auto m = static_cast<int64_t>(kept.size());
  std::vector<int32_t> column(v, -1);
  out.vocabulary.resize(m);
  out.idf.resize(m);
  out.df.resize(m);
  for (int64_t j = 0; j < m; ++j) {
    const int32_t t = kept[j];
    column[t] = static_cast<int32_t>(j);
    out.vocabulary[j] = corpus.terms[t];
    out.df[j] = df[t];
    const double nn = static_cast<double>(n) + (cfg.smooth_idf ? 1 : 0);
    const double dd = static_cast<double>(df[t]) + (cfg.smooth_idf ? 1 : 0);
    out.idf[j] = std::log(nn / dd) + 1.0;
  }

  recsys::Csr& x = out.matrix;
  x.rows = n;
  x.cols = m;
  x.indptr.assign(n + 1, 0);
  for (int64_t d = 0; d < n; ++d) {
    int64_t k = 0;
    for (auto [t, c] : counts[d]) k += column[t] >= 0;
    x.indptr[d + 1] = x.indptr[d] + k;
  }
  x.indices.resize(x.indptr[n]);
  x.values.resize(x.indptr[n]);
#pragma omp parallel for schedule(dynamic, 64) num_threads(num_threads()) if (n > 512)
  for (int64_t d = 0; d < n; ++d) {
    std::vector<std::pair<int32_t, double>> row;
    row.reserve(counts[d].size());
    for (auto [t, c] : counts[d]) {
      const int32_t j = column[t];
      if (j < 0) continue;
      const double tf = cfg.sublinear_tf ? 1.0 + std::log(static_cast<double>(c)) : c;
      row.emplace_back(j, tf * out.idf[j]);
    }
    std::sort(row.begin(), row.end());
    double norm = 0;
    for (auto& e : row) norm += e.second * e.second;
    const double scale = (cfg.l2_norm && norm > 0) ? 1.0 / std::sqrt(norm) : 1.0;
    int64_t k = x.indptr[d];
    for (auto& e : row) {
      x.indices[k] = e.first;
      x.values[k] = static_cast<float>(e.second * scale);
      ++k;
    }
  }
  return out;
}

}  // namespace dan::text
