// The experiment runner as a function, for `deepaninet train`, `demo` and the tests.
#pragma once
#include <memory>
#include <string>

#include "apps/pipeline.h"
#include "apps/report.h"
#include "models/dropoutnet/dropoutnet.h"
#include "recsys/config.h"

namespace dan::apps {

struct TrainOutcome {
  std::string run_dir;
  int64_t best_epoch = 0;
  double best_val = 0;
  Report report;  // the cold test table
  std::shared_ptr<Model> model;                   // the best epoch's weights
  std::shared_ptr<const Prepared> prepared;       // data, split, WMF and features it trained on
};

// Trains in the existing run folder `run_dir` (from scratch, or from its checkpoint when
// `resume`), writing everything described in recsys/RUNS.md there.
TrainOutcome run_training(const recsys::Config& cfg, const std::string& run_dir, bool resume);

}  // namespace dan::apps
