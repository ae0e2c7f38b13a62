// Learning-rate schedulers, stepped once per epoch: each sets every group's lr to
// initial_lr * factor(epoch), a closed form, so resuming at an epoch needs only the epoch.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "layers/optim/optimizer.h"

namespace dan {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // The multiplier on each group's initial lr at `epoch` (0 before the first step()).
  virtual double factor(int64_t epoch) const = 0;
  // The multiplier for group `group` (PerGroupLR gives groups their own schedules).
  virtual double group_factor(int64_t epoch, size_t /*group*/) const { return factor(epoch); }

  // Call at the end of each epoch: epoch += 1 and the groups' lrs are set for the next one.
  void step();
  int64_t epoch() const { return epoch_; }
  std::vector<double> last_lrs() const;  // the lrs set by the last step (or construction)

  // "<prefix>epoch" (i64 0-d). Loading sets the epoch and re-applies the lrs.
  NamedTensors state_dict(const std::string& prefix = "scheduler.") const;
  void load_state_dict(const std::map<std::string, Tensor>& sd,
                       const std::string& prefix = "scheduler.");

 protected:
  // Records each group's initial_lr (from its lr if no scheduler set it before). Derived
  // constructors call apply() once their parameters are set, as torch sets the epoch-0 lr.
  explicit LRScheduler(Optimizer& opt);
  void apply();

 private:
  Optimizer& opt_;
  int64_t epoch_ = 0;
};

// lr = initial_lr at every epoch.
class ConstantLR : public LRScheduler {
 public:
  explicit ConstantLR(Optimizer& opt);
  double factor(int64_t) const override { return 1.0; }
};

// lr = initial_lr * gamma^(epoch / step_size) (integer division), as torch's StepLR.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  double factor(int64_t epoch) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = initial_lr * gamma^epoch, as torch's ExponentialLR.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& opt, double gamma);
  double factor(int64_t epoch) const override;

 private:
  double gamma_;
};

// lr = initial_lr * max(0, 1 - epoch / total_epochs): reaches 0 at epoch total_epochs.
class LinearDecay : public LRScheduler {
 public:
  LinearDecay(Optimizer& opt, int64_t total_epochs);
  double factor(int64_t epoch) const override;

 private:
  int64_t total_;
};

// For epoch < warmup: factor = start + (1 - start) * epoch / warmup, with start defaulting
// to 1 / (warmup + 1) (so the factors are 1/(W+1), 2/(W+1), ..., never 0). From epoch W on:
// 1, or then->factor(epoch - W) when chained (the chained schedule starts after warmup).
// `then` is owned and only used for its factor(): do not step it yourself.
class LinearWarmup : public LRScheduler {
 public:
  LinearWarmup(Optimizer& opt, int64_t warmup_epochs, std::unique_ptr<LRScheduler> then = nullptr,
               double start_factor = -1.0);
  double factor(int64_t epoch) const override;

 private:
  int64_t warmup_;
  double start_;
  std::unique_ptr<LRScheduler> then_;
};

// One schedule per parameter group: group g's lr = initial_lr * factors[g](epoch) — e.g. the
// paper's fine-tuning, with DropoutNet at a fixed lr and the BERT layers decaying. Groups past
// the list keep factor 1. factor() is group 0's.
class PerGroupLR : public LRScheduler {
 public:
  using Factor = std::function<double(int64_t)>;
  PerGroupLR(Optimizer& opt, std::vector<Factor> factors);
  double factor(int64_t epoch) const override { return group_factor(epoch, 0); }
  double group_factor(int64_t epoch, size_t group) const override;

 private:
  std::vector<Factor> factors_;
};

}  // namespace dan
