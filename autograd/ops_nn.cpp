// Differentiable neural-net ops: softmax family, normalization, dropout, indexing, losses,
// and the random factories.
#include "autograd/ops.h"
#include "core/philox.h"
#include "kernels/kernels.h"

namespace dan {

namespace k = kernels;
using autograd::record;
using autograd::saved;
using Needs = std::vector<bool>;
using Grads = std::vector<Tensor>;

Tensor softmax(const Tensor& x) {
  Tensor y = k::softmax(x);
  return record("softmax", y, {x}, [y = saved(y)](const Tensor& g, const Needs&) {
    return Grads{k::softmax_backward(g, y)};
  });
}

Tensor log_softmax(const Tensor& x) {
  Tensor y = k::log_softmax(x);
  return record("log_softmax", y, {x}, [y = saved(y)](const Tensor& g, const Needs&) {
    return Grads{k::log_softmax_backward(g, y)};
  });
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  k::LayerNormOut o = k::layer_norm(x, weight, bias, eps);
  return record("layer_norm", o.y, {x, weight, bias},
                [x = saved(x), w = saved(weight), mean = o.mean, rstd = o.rstd](
                    const Tensor& g, const Needs& n) {
                  k::LayerNormGrads r = k::layer_norm_backward(g, x, mean, rstd, w, n[1] || n[2]);
                  return Grads{n[0] ? r.dx : Tensor(), n[1] ? r.dweight : Tensor(),
                               n[2] ? r.dbias : Tensor()};
                });
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum, double eps) {
  k::BatchNormOut o = k::batch_norm(x, weight, bias, running_mean, running_var, training,
                                    momentum, eps);
  return record("batch_norm", o.y, {x, weight, bias},
                [x = saved(x), w = saved(weight), m = o.save_mean, is = o.save_invstd, training](
                    const Tensor& g, const Needs& n) {
                  k::BatchNormGrads r = k::batch_norm_backward(g, x, w, m, is, training, n[1] || n[2]);
                  return Grads{n[0] ? r.dx : Tensor(), n[1] ? r.dweight : Tensor(),
                               n[2] ? r.dbias : Tensor()};
                });
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  if (!training || p == 0.0) return x;
  const uint64_t offset = gen.reserve(philox::blocks_for(static_cast<uint64_t>(x.numel()), false));
  k::DropoutOut o = k::dropout(x, p, gen.seed(), offset);
  return record("dropout", o.y, {x}, [mask = o.mask](const Tensor& g, const Needs&) {
    return Grads{k::binary(k::BinaryOp::mul, g, mask)};
  });
}

namespace {
Tensor gather_rows(const char* name, const Tensor& x, const Tensor& index) {
  return record(name, k::index_select(x, index), {x},
                [index = saved(index), rows = x.size(0)](const Tensor& g, const Needs&) {
                  return Grads{k::index_add(g, index, rows)};
                });
}
}  // namespace

Tensor index_select(const Tensor& x, const Tensor& index) { return gather_rows("index_select", x, index); }
Tensor embedding(const Tensor& weight, const Tensor& index) {
  DAN_CHECK(weight.dim() == 2, "embedding: weight must be [num, dim], got {}", shape_str(weight.shape()));
  return gather_rows("embedding", weight, index);
}

Tensor mse_loss(const Tensor& pred, const Tensor& target) {
  return record("mse_loss", k::mse_loss(pred, target), {pred, target},
                [p = saved(pred), t = saved(target)](const Tensor& g, const Needs& n) {
                  Tensor dp = k::mse_loss_backward(g, p, t);
                  return Grads{n[0] ? dp : Tensor(), n[1] ? k::unary(k::UnaryOp::neg, dp) : Tensor()};
                });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  k::CrossEntropyOut o = k::cross_entropy(logits, target, ignore_index);
  return record("cross_entropy", o.loss, {logits},
                [lp = o.log_probs, t = saved(target), ignore_index](const Tensor& g, const Needs&) {
                  return Grads{k::cross_entropy_backward(g, lp, t, ignore_index)};
                });
}

Tensor rand(const Shape& s, Generator& gen, DType t, Device d) {
  Tensor out = raw::empty(s, t, d);
  const bool wide = t == DType::f64;
  k::uniform_(out, gen.seed(), gen.reserve(philox::blocks_for(static_cast<uint64_t>(out.numel()), wide)), 0.0, 1.0);
  return out;
}

Tensor randn(const Shape& s, Generator& gen, DType t, Device d) {
  Tensor out = raw::empty(s, t, d);
  const bool wide = t == DType::f64;
  k::normal_(out, gen.seed(), gen.reserve(philox::blocks_for(static_cast<uint64_t>(out.numel()), wide)), 0.0, 1.0);
  return out;
}

Tensor bernoulli(const Shape& s, double p, Generator& gen, DType t, Device d) {
  Tensor out = raw::empty(s, t, d);
  k::bernoulli_(out, gen.seed(), gen.reserve(philox::blocks_for(static_cast<uint64_t>(out.numel()), false)), p);
  return out;
}

Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }

}  // namespace dan
