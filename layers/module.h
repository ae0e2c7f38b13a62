// Module: the PyTorch-style base of every layer and model. It owns named parameters, buffers
// and child modules, and derives from them dotted names, state_dict, train/eval and to(device).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "core/generator.h"
#include "core/tensor.h"

namespace dan {

// Ordered (name, tensor) pairs: the order is registration order, as in PyTorch's OrderedDict.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What a non-strict load_state_dict did not match (strict loads throw instead).
struct LoadResult {
  std::vector<std::string> missing_keys;     // in the module, not in the checkpoint
  std::vector<std::string> unexpected_keys;  // in the checkpoint, not in the module
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // Modules own tensors that optimizers and other modules alias: copying one would silently
  // split that sharing, so it is forbidden (share a std::shared_ptr<Module> instead).
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Single-input forward; modules with other signatures add their own overloads.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  // Used in error messages ("load_state_dict for MLP: ...").
  virtual std::string type_name() const { return "Module"; }

  // Registration. Names are non-empty, contain no '.', and are unique across a module's
  // parameters, buffers and children. The returned handle aliases the registered tensor:
  // keep it as the member the forward uses (to() and load_state_dict() update it in place).
  // A parameter must be a floating leaf; it is marked requires_grad.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // Parameters of this module and (recursively) its children, pre-order, each tensor once
  // even when it is registered under several names (tied weights), as PyTorch.
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  int64_t num_parameters() const;  // total elements over parameters()

  // Training mode, set recursively (BatchNorm uses batch statistics, Dropout drops).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter, buffer and existing gradient to `d` in place: handles held by
  // members and optimizers stay valid and parameters stay leaves that require grad.
  void to(Device d);
  void zero_grad();  // drops the gradients (as PyTorch's set_to_none=True)

  // Parameters then buffers of each module, pre-order, with dotted names ("0.weight",
  // "1.running_mean"): the names torch.nn gives the same structure. The tensors alias the
  // module's (detached), like PyTorch's state_dict.
  NamedTensors state_dict() const;
  // Copies the values in (to the module's devices). Shape or dtype mismatches are always an
  // error; with strict, missing and unexpected keys are too. One error lists every problem.
  LoadResult load_state_dict(const std::map<std::string, Tensor>& sd, bool strict = true);
  LoadResult load_state_dict(const NamedTensors& sd, bool strict = true);

  // state_dict as a safetensors file (readable by safetensors.torch.load_file) and back.
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;
  LoadResult load(const std::string& path, bool strict = true);

 private:
  void check_new_name(const std::string& name, const char* what) const;
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  template <typename F>
  void visit(const std::string& prefix, F&& f) const;

  bool training_ = true;
  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// ---- initializers (in place, not recorded; Philox draws from `gen`) ------------------------
void init_uniform_(const Tensor& t, double lo, double hi, Generator& gen = default_generator());
void init_normal_(const Tensor& t, double mean, double std, Generator& gen = default_generator());

}  // namespace dan
