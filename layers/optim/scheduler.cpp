// LR schedulers: closed-form factors applied to each group's initial lr.
#include "layers/optim/scheduler.h"

#include <algorithm>
#include <cmath>

namespace dan {

LRScheduler::LRScheduler(Optimizer& opt) : opt_(opt) {
  for (ParamGroup& g : opt_.param_groups()) {
    if (!g.initial_lr) g.initial_lr = g.lr;
  }
}

void LRScheduler::apply() {
  size_t i = 0;
  for (ParamGroup& g : opt_.param_groups()) {
    if (!g.initial_lr) g.initial_lr = g.lr;  // a group added after the scheduler was made
    g.lr = *g.initial_lr * group_factor(epoch_, i++);
  }
}

void LRScheduler::step() {
  ++epoch_;
  apply();
}

std::vector<double> LRScheduler::last_lrs() const {
  std::vector<double> out;
  for (const ParamGroup& g : opt_.param_groups()) out.push_back(g.lr);
  return out;
}

NamedTensors LRScheduler::state_dict(const std::string& prefix) const {
  return {{prefix + "epoch", scalar_tensor(static_cast<double>(epoch_), DType::i64)}};
}

void LRScheduler::load_state_dict(const std::map<std::string, Tensor>& sd, const std::string& prefix) {
  const auto it = sd.find(prefix + "epoch");
  DAN_CHECK(it != sd.end(), "LRScheduler.load_state_dict: missing \"{}epoch\"", prefix);
  DAN_CHECK(it->second.numel() == 1 && it->second.dtype() == DType::i64 && it->second.item() >= 0,
            "LRScheduler.load_state_dict: \"{}epoch\" must be a non-negative i64 scalar, got {} {}",
            prefix, it->second.dtype(), shape_str(it->second.shape()));
  epoch_ = static_cast<int64_t>(it->second.item());
  apply();
}

ConstantLR::ConstantLR(Optimizer& opt) : LRScheduler(opt) { apply(); }

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
  DAN_CHECK(step_size > 0, "StepLR: step_size must be > 0, got {}", step_size);
  apply();
}

double StepLR::factor(int64_t epoch) const {
  return std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

ExponentialLR::ExponentialLR(Optimizer& opt, double gamma) : LRScheduler(opt), gamma_(gamma) {
  DAN_CHECK(gamma > 0, "ExponentialLR: gamma must be > 0, got {}", gamma);
  apply();
}

double ExponentialLR::factor(int64_t epoch) const {
  return std::pow(gamma_, static_cast<double>(epoch));
}

LinearDecay::LinearDecay(Optimizer& opt, int64_t total_epochs) : LRScheduler(opt), total_(total_epochs) {
  DAN_CHECK(total_epochs > 0, "LinearDecay: total_epochs must be > 0, got {}", total_epochs);
  apply();
}

double LinearDecay::factor(int64_t epoch) const {
  return std::max(0.0, 1.0 - static_cast<double>(epoch) / static_cast<double>(total_));
}

LinearWarmup::LinearWarmup(Optimizer& opt, int64_t warmup_epochs, std::unique_ptr<LRScheduler> then,
                           double start_factor)
    : LRScheduler(opt), warmup_(warmup_epochs),
      start_(start_factor < 0 ? 1.0 / static_cast<double>(warmup_epochs + 1) : start_factor),
      then_(std::move(then)) {
  DAN_CHECK(warmup_epochs >= 0, "LinearWarmup: warmup_epochs must be >= 0, got {}", warmup_epochs);
  DAN_CHECK(start_ <= 1, "LinearWarmup: start_factor must be in [0, 1], got {}", start_factor);
  apply();
}

double LinearWarmup::factor(int64_t epoch) const {
  if (epoch < warmup_) {
    return start_ + (1.0 - start_) * static_cast<double>(epoch) / static_cast<double>(warmup_);
  }
  return then_ ? then_->factor(epoch - warmup_) : 1.0;
}

PerGroupLR::PerGroupLR(Optimizer& opt, std::vector<Factor> factors)
    : LRScheduler(opt), factors_(std::move(factors)) {
  for (size_t g = 0; g < factors_.size(); ++g)
    DAN_CHECK(factors_[g] != nullptr, "PerGroupLR: no schedule for group {}", g);
  apply();
}

double PerGroupLR::group_factor(int64_t epoch, size_t group) const {
  return group < factors_.size() ? factors_[group](epoch) : 1.0;
}

}  // namespace dan
