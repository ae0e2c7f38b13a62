// Adam / AdamW: option checks, lazy state, and the per-parameter call into the fused kernel.
#include "layers/optim/adam.h"

#include "kernels/kernels.h"

namespace dan {

namespace {
AdamOptions checked(AdamOptions o, const char* name) {
  DAN_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1,
            "{}: betas must be in [0, 1), got ({}, {})", name, o.beta1, o.beta2);
  DAN_CHECK(o.eps >= 0, "{}: eps must be >= 0, got {}", name, o.eps);
  return o;
}

std::vector<ParamGroup> one_group(std::vector<Tensor> params, const AdamOptions& o) {
  return {ParamGroup{std::move(params), o.lr, o.weight_decay, {}}};
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions opts)
    : Adam(one_group(std::move(params), opts), opts, false) {}
Adam::Adam(std::vector<ParamGroup> groups, AdamOptions opts) : Adam(std::move(groups), opts, false) {}
Adam::Adam(std::vector<ParamGroup> groups, AdamOptions opts, bool decoupled)
    : Optimizer(std::move(groups), decoupled ? "AdamW" : "Adam"),
      opts_(checked(opts, decoupled ? "AdamW" : "Adam")),
      decoupled_(decoupled) {}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions opts)
    : Adam(one_group(std::move(params), opts), opts, true) {}
AdamW::AdamW(std::vector<ParamGroup> groups, AdamOptions opts) : Adam(std::move(groups), opts, true) {}

void Adam::update(const ParamGroup& g, const Tensor& p, const Tensor& grad, ParamState& s) {
  if (s.step == 0) {
    s.tensors["exp_avg"] = zeros(p.shape(), p.dtype(), p.device());
    s.tensors["exp_avg_sq"] = zeros(p.shape(), p.dtype(), p.device());
  }
  kernels::adam_step(p, grad, s.tensors.at("exp_avg"), s.tensors.at("exp_avg_sq"), g.lr,
                     opts_.beta1, opts_.beta2, opts_.eps, g.weight_decay, s.step + 1, decoupled_);
  ++s.step;
}

}  // namespace dan
