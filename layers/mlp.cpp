// MLP construction from its config.
#include "layers/mlp.h"

#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/norm.h"

namespace dan {

Activation parse_activation(const std::string& s) {
  if (s == "none") return Activation::none;
  if (s == "tanh") return Activation::tanh;
  if (s == "relu") return Activation::relu;
  if (s == "gelu") return Activation::gelu;
  if (s == "sigmoid") return Activation::sigmoid;
  fail("MLP: unknown activation '{}' (expected none, tanh, relu, gelu or sigmoid)", s);
}

std::shared_ptr<Module> make_activation(Activation a) {
  switch (a) {
    case Activation::none: return nullptr;
    case Activation::tanh: return std::make_shared<Tanh>();
    case Activation::relu: return std::make_shared<ReLU>();
    case Activation::gelu: return std::make_shared<GELU>();
    case Activation::sigmoid: return std::make_shared<Sigmoid>();
  }
  return nullptr;
}

MLP::MLP(const MLPConfig& cfg, Generator& gen) : cfg_(cfg) {
  DAN_CHECK(cfg.in_dim > 0 && cfg.out_dim > 0, "MLP: in_dim and out_dim must be > 0, got {} and {}",
            cfg.in_dim, cfg.out_dim);
  DAN_CHECK(cfg.hidden.empty() || cfg.activation != Activation::none,
            "MLP: hidden layers need an activation (got none)");
  DAN_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, "MLP: dropout must be in [0, 1), got {}",
            cfg.dropout);
  int64_t d = cfg.in_dim;
  for (int64_t h : cfg.hidden) {
    DAN_CHECK(h > 0, "MLP: hidden sizes must be > 0, got {}", fmt::join(cfg.hidden, ", "));
    push_back(std::make_shared<Linear>(d, h, cfg.bias, gen));
    if (cfg.batch_norm) push_back(std::make_shared<BatchNorm1d>(h));
    push_back(make_activation(cfg.activation));
    if (cfg.dropout > 0) push_back(std::make_shared<Dropout>(cfg.dropout, gen));
    d = h;
  }
  push_back(std::make_shared<Linear>(d, cfg.out_dim, cfg.bias, gen));
  if (auto a = make_activation(cfg.final_activation)) push_back(a);
}

}  // namespace dan
