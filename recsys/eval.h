// The one evaluation module every model is judged by. Inputs: a dense score matrix
// (evaluated users x candidate items), the ground truth as a CSR of the same shape (stored
// entries = held-out interactions; values = the rating score) and optionally a CSR of entries
// to exclude from ranking (the user's train interactions, warm protocol).
// The exact definitions, the tie convention and the random-guessing expectations are written
// out in recsys/EVALUATION.md; this header only summarizes them.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "recsys/csr.h"

namespace dan::recsys {

// An ordered list of metric name -> value ("recall@50", "ndcg@50", ...).
struct Metrics {
  std::vector<std::pair<std::string, double>> values;
  bool has(const std::string& name) const;
  double get(const std::string& name) const;    // throws naming the metric when absent
  void set(const std::string& name, double v);  // replaces the value of an existing name
  std::string to_json() const;  // {"recall@5": 0.12, ...} in insertion order; NaN -> null
};

struct EvalConfig {
  std::vector<int> ks{5, 10, 20, 50, 100};  // distinct, each >= 1
  // The seed paper's metrics: sampled users/items, top-K recall, MRR of the most relevant.
  int seed_k = 5;
  int sample_users = 100, sample_items = 100;  // >= 1; at least the population: all of it
  uint64_t seed = 0;
};

// Standard protocol (DropoutNet's): per user (row) with >= 1 truth entry, rank all candidates
// (columns minus that row's `exclude` entries): recall@K, recall_capped@K, precision@K,
// ndcg@K, mrr; per candidate item (column) with >= 1 truth entry, rank the evaluated users
// (rows with >= 1 truth entry) minus those that exclude the item: user_recall@K, user_mrr.
// "users" and "items" are the numbers of rows and columns evaluated.
// Ties are scored by their expectation under a uniformly random tie break, so a constant
// score matrix gets exactly the random-guessing value of every metric.
// `scores` is 2-D, f32 or f64, any device and strides (copied to host f32 when needed).
// `exclude` may be empty (rows == 0). Errors: shape mismatches, a NaN score (named by row
// and column), a NaN truth value, an entry both in truth and exclude, ks not distinct / < 1,
// no truth entries at all.
Metrics evaluate(const Tensor& scores, const Csr& truth, const Csr& exclude, const EvalConfig& cfg);

// The expected value of every evaluate() metric under uniformly random rankings, for a
// "random" column beside the models (it depends only on truth, exclude and cfg; it equals
// evaluate() of a constant score matrix).
Metrics random_expectation(const Csr& truth, const Csr& exclude, const EvalConfig& cfg);

// The seed paper's four metrics on the same inputs, each with the exact expectation of
// random guessing: "seed_user_recall@5", "seed_user_recall@5.random", "seed_item_recall@5",
// ..., "seed_mrr_items_per_user", ..., "seed_mrr_users_per_item", ...; plus the sample sizes
// "seed_users", "seed_items". Users/items are sampled with Philox(cfg.seed).
Metrics evaluate_seed(const Tensor& scores, const Csr& truth, const Csr& exclude,
                      const EvalConfig& cfg);

// Side-by-side table: one column per (model name, metrics), rows = metric names of the first;
// a metric missing from a later column shows as "-". Values to 4 significant digits
// (integral values, the counts, in full).
std::string format_table(const std::vector<std::pair<std::string, Metrics>>& columns);

// ---- building blocks, exposed for tests and for other ranking code -------------------------

// E[|top-K ∩ relevant|] / min(K', relevant) for a uniformly random ranking of `candidates`
// items of which `relevant` are relevant, with K' = min(k, candidates).
double random_recall_capped(int64_t k, int64_t relevant, int64_t candidates);

// E[1 / (above + X)] where X is the best position of `m` marked items placed uniformly at
// random among `tied` positions: the expected reciprocal rank of the first of m relevant items
// sharing a score with tied - m others, below `above` strictly better candidates. With
// above = 0, tied = N it is the random-guessing MRR: sum_{r=1}^{N-m+1} (1/r) C(N-r, m-1)/C(N, m).
double expected_inverse_first_rank(int64_t above, int64_t tied, int64_t m);

// `count` distinct indices of [0, n), drawn by a partial Fisher-Yates shuffle from Philox
// (seed, offset), sorted ascending; all of [0, n) when count >= n.
std::vector<int32_t> philox_sample(int64_t n, int64_t count, uint64_t seed, uint64_t offset);

}  // namespace dan::recsys
