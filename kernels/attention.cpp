// Checked entry points of the fused transformer kernels (attention, bias + GELU, residual add +
// layer norm): validate shapes, dtypes and devices once, then route to the backend.
#include "kernels/kernels.h"

namespace dan::kernels {

namespace {

#ifdef DAN_WITH_CUDA
#define DAN_ATTN_ROUTE(dev, call) ((dev).is_cuda() ? cuda::call : cpu::call)
#else
#define DAN_ATTN_ROUTE(dev, call) cpu::call
#endif

void check_float(const Tensor& t, const char* op, const char* what) {
  DAN_CHECK(t.defined(), "{}: {} is an undefined tensor", op, what);
  DAN_CHECK(is_floating(t.dtype()), "{}: {} must be f32 or f64, got {} (shape {})", op, what,
            t.dtype(), shape_str(t.shape()));
  DAN_CHECK(t.dtype() == DType::f32 || t.device().is_cpu(),
            "{}: f64 is supported on the CPU only; {} is on {}", op, what, t.device());
}

void check_like(const Tensor& t, const Tensor& ref, const Shape& shape, const char* op,
                const char* what) {
  check_float(t, op, what);
  DAN_CHECK(t.device() == ref.device() && t.dtype() == ref.dtype(),
            "{}: {} is {} on {}, expected {} on {}", op, what, t.dtype(), t.device(), ref.dtype(),
            ref.device());
  DAN_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, what, shape_str(t.shape()),
            shape_str(shape));
}

void check_attention(const Tensor& qkv, const Tensor& key_bias, int64_t heads, double dropout_p,
                     const char* op) {
  check_float(qkv, op, "qkv");
  DAN_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0,
            "{}: qkv must be [batch, seq, 3 * hidden], got {}", op, shape_str(qkv.shape()));
  const int64_t h = qkv.size(2) / 3;
  DAN_CHECK(heads > 0 && h % heads == 0,
            "{}: hidden size {} (qkv {}) is not a multiple of heads = {}", op, h,
            shape_str(qkv.shape()), heads);
  DAN_CHECK(dropout_p >= 0 && dropout_p < 1, "{}: dropout_p must be in [0, 1), got {}", op,
            dropout_p);
  if (key_bias.defined()) {
    check_like(key_bias, qkv, {qkv.size(0), qkv.size(1)}, op, "key_bias");
  }
}

}  // namespace

Tensor attention_forward(const Tensor& qkv, const Tensor& key_bias, int64_t heads, double scale,
                         double dropout_p, uint64_t seed, uint64_t offset, const Tensor& stats) {
  check_attention(qkv, key_bias, heads, dropout_p, "attention_forward");
  if (stats.defined()) {
    check_like(stats, qkv, {qkv.size(0), heads, qkv.size(1), 2}, "attention_forward", "stats");
    DAN_CHECK(stats.is_contiguous(), "attention_forward: stats must be contiguous");
  }
  return DAN_ATTN_ROUTE(
      qkv.device(), attention_forward(qkv, key_bias, heads, scale, dropout_p, seed, offset, stats));
}

Tensor attention_backward(const Tensor& grad, const Tensor& qkv, const Tensor& out,
                          const Tensor& key_bias, const Tensor& stats, int64_t heads, double scale,
                          double dropout_p, uint64_t seed, uint64_t offset) {
  check_attention(qkv, key_bias, heads, dropout_p, "attention_backward");
  const Shape os = {qkv.size(0), qkv.size(1), qkv.size(2) / 3};
  check_like(grad, qkv, os, "attention_backward", "grad");
  check_like(out, qkv, os, "attention_backward", "out");
  check_like(stats, qkv, {qkv.size(0), heads, qkv.size(1), 2}, "attention_backward", "stats");
  return DAN_ATTN_ROUTE(qkv.device(), attention_backward(grad, qkv, out, key_bias, stats, heads,
                                                         scale, dropout_p, seed, offset));
}

Tensor bias_gelu(const Tensor& x, const Tensor& bias, bool approximate) {
  check_float(x, "bias_gelu", "x");
  DAN_CHECK(x.dim() >= 1, "bias_gelu: x must have at least 1 dim, got a scalar");
  check_like(bias, x, {x.size(-1)}, "bias_gelu", "bias");
  return DAN_ATTN_ROUTE(x.device(), bias_gelu(x, bias, approximate));
}

std::vector<Tensor> bias_gelu_backward(const Tensor& grad, const Tensor& x, const Tensor& bias,
                                       bool approximate) {
  check_float(x, "bias_gelu_backward", "x");
  DAN_CHECK(x.dim() >= 1, "bias_gelu_backward: x must have at least 1 dim, got a scalar");
  check_like(bias, x, {x.size(-1)}, "bias_gelu_backward", "bias");
  check_like(grad, x, x.shape(), "bias_gelu_backward", "grad");
  return DAN_ATTN_ROUTE(x.device(), bias_gelu_backward(grad, x, bias, approximate));
}

LayerNormOut add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                            const Tensor& bias, double eps, const Tensor& sum_out) {
  check_float(x, "add_layer_norm", "x");
  DAN_CHECK(x.dim() >= 1, "add_layer_norm: x must have at least 1 dim, got a scalar");
  check_like(residual, x, x.shape(), "add_layer_norm", "residual");
  if (weight.defined()) check_like(weight, x, {x.size(-1)}, "add_layer_norm", "weight");
  if (bias.defined()) check_like(bias, x, {x.size(-1)}, "add_layer_norm", "bias");
  if (sum_out.defined()) {
    check_like(sum_out, x, x.shape(), "add_layer_norm", "sum_out");
    DAN_CHECK(sum_out.is_contiguous(), "add_layer_norm: sum_out must be contiguous");
  }
  DAN_CHECK(eps > 0, "add_layer_norm: eps must be > 0, got {}", eps);
  return DAN_ATTN_ROUTE(x.device(), add_layer_norm(x, residual, weight, bias, eps, sum_out));
}

}  // namespace dan::kernels
