// SGD: option checks and the per-parameter call into the fused kernel.
#include "layers/optim/sgd.h"

#include "kernels/kernels.h"

namespace dan {

namespace {
SGDOptions checked(SGDOptions o) {
  DAN_CHECK(o.momentum >= 0 && o.dampening >= 0 && o.dampening <= 1,
            "SGD: expected momentum >= 0 and dampening in [0, 1], got {} and {}", o.momentum,
            o.dampening);
  DAN_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
            "SGD: nesterov needs momentum > 0 and dampening 0, got momentum {} dampening {}",
            o.momentum, o.dampening);
  return o;
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions opts)
    : SGD(std::vector<ParamGroup>{ParamGroup{std::move(params), opts.lr, opts.weight_decay, {}}},
          opts) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opts)
    : Optimizer(std::move(groups), "SGD"), opts_(checked(opts)) {}

void SGD::update(const ParamGroup& g, const Tensor& p, const Tensor& grad, ParamState& s) {
  Tensor buf;
  bool first = false;
  if (opts_.momentum != 0) {
    const auto it = s.tensors.find("momentum_buffer");
    first = it == s.tensors.end();
    // A fresh buffer is written whole by the kernel (buf = d on the first step).
    buf = first ? raw::empty(p.shape(), p.dtype(), p.device()) : it->second;
  }
  kernels::sgd_step(p, grad, buf, g.lr, opts_.momentum, opts_.dampening, g.weight_decay,
                    opts_.nesterov, first);
  if (first) s.tensors["momentum_buffer"] = buf;
  ++s.step;
}

std::vector<std::string> SGD::state_names() const {
  if (opts_.momentum == 0) return {};
  return {"momentum_buffer"};
}

}  // namespace dan
