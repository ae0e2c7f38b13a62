// Optimizer base: parameter groups (each with its own lr and weight decay), per-parameter
// state, a no-grad step over the fused update kernels, and a tensor state_dict that goes into
// the same safetensors checkpoint as the model.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "layers/module.h"

namespace dan {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  // The lr schedulers multiply; set from lr by the first scheduler attached (as torch's
  // 'initial_lr'), kept in the state_dict.
  std::optional<double> initial_lr;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const std::string& type_name() const { return name_; }  // "SGD", "Adam", "AdamW"

  // Each parameter must be a floating leaf and appear in at most one group.
  void add_param_group(ParamGroup g);
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  void set_lr(double lr);  // every group

  void zero_grad();  // drops the gradients (set_to_none, as torch's default)
  // Updates every parameter that has a gradient, under NoGradGuard; parameters without one
  // are skipped and their state (step count included) does not advance.
  void step();

  // Keys (after `prefix`), numbering parameters in group order from 0 as torch does:
  //   state.<i>.step (i64 0-d), state.<i>.<name> (the optimizer's per-parameter tensors),
  //   param_groups.<g>.lr / .weight_decay / .initial_lr (f64 0-d), .num_params (i64 0-d).
  NamedTensors state_dict(const std::string& prefix = "") const;
  // Reads the keys that start with `prefix` (others belong to someone else and are ignored).
  // The group structure, parameter shapes and the key set must match; one error lists every
  // problem, and nothing changes unless all match. State is copied to each parameter's device.
  void load_state_dict(const std::map<std::string, Tensor>& sd, const std::string& prefix = "");

 protected:
  struct ParamState {
    int64_t step = 0;                       // updates applied so far
    std::map<std::string, Tensor> tensors;  // e.g. exp_avg, exp_avg_sq, momentum_buffer
  };

  Optimizer(std::vector<ParamGroup> groups, std::string name);
  // One parameter's update; grad is contiguous and on p's device. Must advance s.step.
  virtual void update(const ParamGroup& g, const Tensor& p, const Tensor& grad, ParamState& s) = 0;
  // The state tensors a parameter that has taken a step holds (for load validation).
  virtual std::vector<std::string> state_names() const = 0;

 private:
  std::string name_;
  std::vector<ParamGroup> groups_;
  // Keyed by the parameter's impl, which stays the same across Module::to() and loads.
  std::unordered_map<const TensorImpl*, ParamState> state_;
};

}  // namespace dan
