// Stateless activation modules, so activations can sit in a Sequential like torch.nn.Tanh.
#pragma once

#include "layers/module.h"

namespace dan {

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override { return tanh(x); }
  std::string type_name() const override { return "Tanh"; }
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
  std::string type_name() const override { return "Sigmoid"; }
};

// Exact erf form by default; approximate = true is torch's approximate='tanh'.
class GELU : public Module {
 public:
  explicit GELU(bool approximate = false) : approximate_(approximate) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximate_); }
  std::string type_name() const override { return "GELU"; }

 private:
  bool approximate_;
};

}  // namespace dan
