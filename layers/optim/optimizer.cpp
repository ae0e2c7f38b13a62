// Optimizer base: group bookkeeping, the step loop and state_dict (de)serialization.
#include "layers/optim/optimizer.h"

#include <cmath>
#include <set>
#include <unordered_set>

namespace dan {

namespace {

Tensor f64_scalar(double v) { return scalar_tensor(v, DType::f64); }
Tensor i64_scalar(int64_t v) { return scalar_tensor(static_cast<double>(v), DType::i64); }

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, std::string name) : name_(std::move(name)) {
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup g) {
  DAN_CHECK(std::isfinite(g.lr) && g.lr >= 0, "{}: lr must be >= 0, got {}", type_name(), g.lr);
  DAN_CHECK(std::isfinite(g.weight_decay) && g.weight_decay >= 0,
            "{}: weight_decay must be >= 0, got {}", type_name(), g.weight_decay);
  std::unordered_set<const TensorImpl*> seen;
  for (const ParamGroup& other : groups_) {
    for (const Tensor& p : other.params) seen.insert(p.impl_ptr().get());
  }
  for (size_t i = 0; i < g.params.size(); ++i) {
    const Tensor& p = g.params[i];
    DAN_CHECK(p.defined(), "{}: parameter {} of group {} is undefined", type_name(), i,
              groups_.size());
    DAN_CHECK(is_floating(p.dtype()) && p.is_leaf(),
              "{}: parameter {} of group {} must be a floating leaf tensor, got {} {}{}",
              type_name(), i, groups_.size(), p.dtype(), shape_str(p.shape()),
              p.is_leaf() ? "" : " produced by an op");
    DAN_CHECK(seen.insert(p.impl_ptr().get()).second,
              "{}: parameter {} of group {} ({}) appears more than once across the groups",
              type_name(), i, groups_.size(), shape_str(p.shape()));
  }
  groups_.push_back(std::move(g));
}

void Optimizer::set_lr(double lr) {
  for (ParamGroup& g : groups_) g.lr = lr;
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_) {
    for (Tensor& p : g.params) p.zero_grad_();
  }
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (const ParamGroup& g : groups_) {
    for (const Tensor& p : g.params) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (!grad.is_contiguous()) grad = raw::contiguous_copy(grad, grad.device());
      ParamState& s = state_[p.impl_ptr().get()];
      // The module was moved (Module::to) after earlier steps: the state follows it.
      for (auto& [_, t] : s.tensors) {
        if (t.device() != p.device()) t = raw::contiguous_copy(t, p.device());
      }
      update(g, p, grad, s);
    }
  }
}

NamedTensors Optimizer::state_dict(const std::string& prefix) const {
  NamedTensors out;
  int64_t i = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    const std::string gp = fmt::format("{}param_groups.{}.", prefix, gi);
    out.emplace_back(gp + "lr", f64_scalar(g.lr));
    out.emplace_back(gp + "weight_decay", f64_scalar(g.weight_decay));
    if (g.initial_lr) out.emplace_back(gp + "initial_lr", f64_scalar(*g.initial_lr));
    out.emplace_back(gp + "num_params", i64_scalar(static_cast<int64_t>(g.params.size())));
    for (const Tensor& p : g.params) {
      const auto it = state_.find(p.impl_ptr().get());
      if (it != state_.end() && it->second.step > 0) {
        const std::string sp = fmt::format("{}state.{}.", prefix, i);
        out.emplace_back(sp + "step", i64_scalar(it->second.step));
        for (const auto& [name, t] : it->second.tensors) out.emplace_back(sp + name, t);
      }
      ++i;
    }
  }
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& sd, const std::string& prefix) {
  std::vector<std::string> problems;
  std::set<std::string> used;
  auto find = [&](const std::string& key) -> Tensor {
    const auto it = sd.find(prefix + key);
    if (it == sd.end()) return Tensor();
    used.insert(it->first);
    return it->second;
  };
  auto scalar = [&](const std::string& key, bool required) -> std::optional<double> {
    const Tensor t = find(key);
    if (!t.defined()) {
      if (required) problems.push_back(fmt::format("missing \"{}{}\"", prefix, key));
      return std::nullopt;
    }
    if (t.numel() != 1) {
      problems.push_back(fmt::format("\"{}{}\" has shape {}, expected a scalar", prefix, key,
                                     shape_str(t.shape())));
      return std::nullopt;
    }
    return t.item();
  };

  struct GroupValues {
    double lr = 0, weight_decay = 0;
    std::optional<double> initial_lr;
  };
  std::vector<GroupValues> gv(groups_.size());
  std::unordered_map<const TensorImpl*, ParamState> new_state;
  const std::vector<std::string> names = state_names();
  int64_t i = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const std::string gp = fmt::format("param_groups.{}.", gi);
    gv[gi].lr = scalar(gp + "lr", true).value_or(0);
    gv[gi].weight_decay = scalar(gp + "weight_decay", true).value_or(0);
    gv[gi].initial_lr = scalar(gp + "initial_lr", false);
    const auto n = scalar(gp + "num_params", true);
    const int64_t have = static_cast<int64_t>(groups_[gi].params.size());
    if (n && static_cast<int64_t>(*n) != have) {
      problems.push_back(fmt::format("group {} has {} parameters in the checkpoint, {} here", gi,
                                     static_cast<int64_t>(*n), have));
    }
    for (const Tensor& p : groups_[gi].params) {
      const std::string sp = fmt::format("state.{}.", i++);
      const auto step = scalar(sp + "step", false);
      if (!step) continue;  // a parameter that has not stepped yet has no state
      ParamState s;
      s.step = static_cast<int64_t>(*step);
      for (const std::string& name : names) {
        const Tensor t = find(sp + name);
        if (!t.defined()) {
          problems.push_back(fmt::format("missing \"{}{}{}\"", prefix, sp, name));
        } else if (t.shape() != p.shape() || t.dtype() != p.dtype()) {
          problems.push_back(fmt::format("\"{}{}{}\" is {} {}, the parameter is {} {}", prefix, sp,
                                         name, shape_str(t.shape()), t.dtype(),
                                         shape_str(p.shape()), p.dtype()));
        } else {
          // A private copy: the update kernels write the state in place.
          s.tensors[name] = raw::contiguous_copy(t, p.device());
        }
      }
      new_state[p.impl_ptr().get()] = std::move(s);
    }
  }
  for (const auto& [key, _] : sd) {
    if (key.rfind(prefix, 0) == 0 && !used.count(key)) {
      problems.push_back(fmt::format("unexpected \"{}\"", key));
    }
  }
  DAN_CHECK(problems.empty(), "{}.load_state_dict: {}", type_name(), fmt::join(problems, "; "));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    groups_[gi].lr = gv[gi].lr;
    groups_[gi].weight_decay = gv[gi].weight_decay;
    groups_[gi].initial_lr = gv[gi].initial_lr;
  }
  state_ = std::move(new_state);
}

}  // namespace dan
