// MLP: a Sequential of Linear [-> BatchNorm1d] -> activation [-> Dropout] blocks and a final
// Linear [-> activation], numbered exactly like the equivalent torch.nn.Sequential so
// PyTorch checkpoints load by name.
#pragma once

#include <string>
#include <vector>

#include "layers/sequential.h"

namespace dan {

enum class Activation { none, tanh, relu, gelu, sigmoid };

// "none", "tanh", "relu", "gelu", "sigmoid" (config files); anything else is an error.
Activation parse_activation(const std::string& s);

struct MLPConfig {
  int64_t in_dim = 0;
  std::vector<int64_t> hidden;  // sizes of the hidden layers; empty = one Linear
  int64_t out_dim = 0;
  Activation activation = Activation::tanh;  // after each hidden layer (not none)
  bool batch_norm = false;                   // BatchNorm1d between a hidden Linear and its activation
  double dropout = 0.0;                      // Dropout after each hidden activation when > 0
  Activation final_activation = Activation::none;
  bool bias = true;
};

class MLP : public Sequential {
 public:
  // e.g. {300, {200}, 200, tanh, batch_norm} -> "0" Linear, "1" BatchNorm1d, "2" Tanh,
  // "3" Linear. Linear weights are drawn from `gen` in layer order; Dropout uses `gen` too.
  explicit MLP(const MLPConfig& cfg, Generator& gen = default_generator());
  std::string type_name() const override { return "MLP"; }
  const MLPConfig& config() const { return cfg_; }

 private:
  MLPConfig cfg_;
};

// The activation module for `a` (nullptr for none).
std::shared_ptr<Module> make_activation(Activation a);

}  // namespace dan
