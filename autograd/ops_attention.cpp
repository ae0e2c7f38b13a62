// Differentiable fused transformer ops: self_attention, bias_gelu, add_layer_norm. Each is the
// composition of existing ops (tests compare them), done in fewer passes over memory.
#include "autograd/ops.h"
#include "core/philox.h"
#include "kernels/kernels.h"

namespace dan {

namespace k = kernels;
using autograd::record;
using autograd::saved;
using Needs = std::vector<bool>;
using Grads = std::vector<Tensor>;

namespace {
// Whether record() will put the op on the tape, so the forward keeps what the backward needs.
bool recording(std::initializer_list<Tensor> inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (autograd::needs_grad(t)) return true;
  }
  return false;
}
}  // namespace

Tensor self_attention(const Tensor& qkv, const Tensor& key_bias, int64_t num_heads, double scale,
                      double dropout_p, bool training, Generator& gen) {
  DAN_CHECK(qkv.defined() && qkv.dim() == 3,
            "self_attention: qkv must be [batch, seq, 3 * hidden], got {}",
            qkv.defined() ? shape_str(qkv.shape()) : "an undefined tensor");
  DAN_CHECK(!autograd::needs_grad(key_bias),
            "self_attention: key_bias is a mask and takes no gradient; detach it");
  const double p = training ? dropout_p : 0.0;
  uint64_t offset = 0;
  if (p > 0) {
    const uint64_t n = static_cast<uint64_t>(qkv.size(0) * num_heads * qkv.size(1) * qkv.size(1));
    offset = gen.reserve(philox::blocks_for(n, false));
  }
  const uint64_t seed = p > 0 ? gen.seed() : 0;
  Tensor stats;
  if (recording({qkv})) {
    stats = raw::empty({qkv.size(0), num_heads, qkv.size(1), 2}, qkv.dtype(), qkv.device());
  }
  Tensor out = k::attention_forward(qkv, key_bias, num_heads, scale, p, seed, offset, stats);
  return record("self_attention", out, {qkv},
                [qkv = saved(qkv), y = saved(out), kb = saved(key_bias), stats, num_heads, scale, p,
                 seed, offset](const Tensor& g, const Needs&) {
                  return Grads{k::attention_backward(g, qkv, y, kb, stats, num_heads, scale, p,
                                                     seed, offset)};
                });
}

Tensor bias_gelu(const Tensor& x, const Tensor& bias, bool approximate) {
  return record("bias_gelu", k::bias_gelu(x, bias, approximate), {x, bias},
                [x = saved(x), b = saved(bias), approximate](const Tensor& g, const Needs& n) {
                  std::vector<Tensor> r = k::bias_gelu_backward(g, x, b, approximate);
                  return Grads{n[0] ? r[0] : Tensor(), n[1] ? r[1] : Tensor()};
                });
}

Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                      const Tensor& bias, double eps) {
  DAN_CHECK(x.defined(), "add_layer_norm: x is an undefined tensor");
  // The backward is layer_norm's on the sum, so the sum is kept only when it will run.
  Tensor s;
  if (recording({x, residual, weight, bias})) s = raw::empty(x.shape(), x.dtype(), x.device());
  k::LayerNormOut o = k::add_layer_norm(x, residual, weight, bias, eps, s);
  return record(
      "add_layer_norm", o.y, {x, residual, weight, bias},
      [s, w = saved(weight), mean = o.mean, rstd = o.rstd](const Tensor& g, const Needs& n) {
        k::LayerNormGrads r = k::layer_norm_backward(g, s, mean, rstd, w, n[2] || n[3]);
        return Grads{n[0] ? r.dx : Tensor(), n[1] ? r.dx : Tensor(), n[2] ? r.dweight : Tensor(),
                     n[3] ? r.dbias : Tensor()};
      });
}

}  // namespace dan
