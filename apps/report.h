// Pieces every pipeline command shares: where the data comes from (a directory or the built-in
// synthetic world), the saved split, and the evaluation report of models beside baselines.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "recsys/dataset.h"
#include "recsys/eval.h"
#include "recsys/split.h"

namespace dan::apps {

// "" -> $DEEPANINET_DATA or ../shared/data/mal2023 if present, else the synthetic world;
// "synthetic" or "synthetic:SEED" -> the synthetic world; anything else -> that directory.
struct DataChoice {
  std::string dir;  // empty for synthetic
  uint64_t synthetic_seed = 0;
  int synthetic_items = 2000, synthetic_users = 3000;  // size of the synthetic world
  std::string describe() const;
};
DataChoice choose_data(const std::string& spec);
recsys::Dataset load_data(const DataChoice& c, const recsys::LoadOptions& opts = {});

// Reuses `path` when it exists (and matches the dataset and `cfg`), else makes and saves it.
recsys::Split load_or_make_split(const recsys::Dataset& ds, const recsys::SplitConfig& cfg,
                                 const std::string& path);

// log1p(members) per anime (missing: the median of the known values): the popularity signal a
// cold anime has.
std::vector<float> members_signal(const recsys::Dataset& ds);

// One evaluation protocol's table: model name -> metrics.
struct Table {
  std::string protocol;  // "warm" (held-out ratings of train anime) or "cold" (test anime)
  std::string description;
  std::vector<std::pair<std::string, recsys::Metrics>> columns;
};

struct Report {
  std::vector<Table> tables;
  void print() const;                          // markdown tables on stdout
  std::string to_json() const;                 // {"warm": {"WMF": {...}}, "cold": {...}}
  void write(const std::string& path) const;  // atomic
};

// evaluate() and evaluate_seed() of one score matrix, in one list.
recsys::Metrics all_metrics(const Tensor& scores, const recsys::Csr& truth, const recsys::Csr& exclude,
                            const recsys::EvalConfig& cfg);

// The "random" column: the exact expectation of every metric under random ranking, including
// the seed paper's metrics (their ".random" entries in `a_model`, which evaluate_seed made).
recsys::Metrics random_column(const recsys::Csr& truth, const recsys::Csr& exclude,
                              const recsys::EvalConfig& cfg, const recsys::Metrics& a_model);

// Warm protocol (candidates = train anime, truth = held-out ratings, fit ratings excluded):
// random, popularity (train interactions), popularity (MAL members), item-kNN, WMF.
// Cold protocol (candidates = test anime, truth = test ratings): random, popularity (members).
Report evaluate_wmf_and_baselines(const recsys::Dataset& ds, const recsys::Split& split,
                                  const recsys::Interactions& inter, const Tensor& U, const Tensor& V);

}  // namespace dan::apps
