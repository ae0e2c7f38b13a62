// Checked entry points: validate once here, then route to the backend of the inputs' device.
#include <algorithm>

#include "kernels/kernels.h"

namespace dan::kernels {

const char* name(UnaryOp op) {
  static const char* n[] = {"neg",  "exp",     "log",      "sqrt",      "rsqrt",
                            "abs",  "relu",    "tanh",     "sigmoid",   "gelu",
                            "gelu_tanh", "square", "reciprocal", "sin", "cos"};
  return n[static_cast<int>(op)];
}
const char* name(BinaryOp op) {
  static const char* n[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  return n[static_cast<int>(op)];
}
const char* name(CompareOp op) {
  static const char* n[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  return n[static_cast<int>(op)];
}
const char* name(ReduceOp op) {
  static const char* n[] = {"sum", "mean", "max", "min"};
  return n[static_cast<int>(op)];
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    DAN_CHECK(da == db || da == 1 || db == 1,
              "{}: shapes {} and {} cannot be broadcast together (dim {}: {} vs {})", op,
              shape_str(a), shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

void check_defined(const Tensor& t, const char* op, const char* what) {
  DAN_CHECK(t.defined(), "{}: {} is an undefined tensor", op, what);
}

void check_float(const Tensor& t, const char* op, const char* what) {
  check_defined(t, op, what);
  DAN_CHECK(is_floating(t.dtype()), "{}: {} must be f32 or f64, got {} (shape {})", op, what,
            t.dtype(), shape_str(t.shape()));
  DAN_CHECK(t.dtype() == DType::f32 || t.device().is_cpu(),
            "{}: f64 is supported on the CPU only; {} is on {}", op, what, t.device());
}

void check_same(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn) {
  check_defined(a, op, an);
  check_defined(b, op, bn);
  DAN_CHECK(a.device() == b.device(), "{}: device mismatch: {} is on {} {}, {} is on {} {}", op, an,
            a.device(), shape_str(a.shape()), bn, b.device(), shape_str(b.shape()));
  DAN_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch: {} is {} {}, {} is {} {}", op, an,
            a.dtype(), shape_str(a.shape()), bn, b.dtype(), shape_str(b.shape()));
}

void check_shape(const Tensor& t, const Shape& s, const char* op, const char* what) {
  DAN_CHECK(t.shape() == s, "{}: {} has shape {}, expected {}", op, what, shape_str(t.shape()),
            shape_str(s));
}

void check_index(const Tensor& t, const char* op) {
  check_defined(t, op, "index");
  DAN_CHECK(t.dtype() == DType::i32 || t.dtype() == DType::i64,
            "{}: index must be i32 or i64, got {}", op, t.dtype());
}

// Routes to the backend for `dev`. Without CUDA no CUDA tensor can exist (allocation
// fails first), so everything goes to the CPU.
#ifdef DAN_WITH_CUDA
#define DAN_ROUTE(dev, call) ((dev).is_cuda() ? cuda::call : cpu::call)
#else
#define DAN_ROUTE(dev, call) cpu::call
#endif

}  // namespace

Tensor unary(UnaryOp op, const Tensor& x) {
  check_float(x, name(op), "input");
  return DAN_ROUTE(x.device(), unary(op, x));
}

Tensor unary_backward(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y) {
  check_same(grad, x, name(op), "grad", "input");
  check_float(grad, name(op), "grad");
  check_shape(grad, x.shape(), name(op), "grad");
  if (y.defined()) {
    check_same(y, x, name(op), "output", "input");
    check_shape(y, x.shape(), name(op), "output");
  }
  return DAN_ROUTE(x.device(), unary_backward(op, grad, x, y));
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same(a, b, name(op), "a", "b");
  check_float(a, name(op), "a");
  broadcast_shapes(a.shape(), b.shape(), name(op));
  return DAN_ROUTE(a.device(), binary(op, a, b));
}

Tensor binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first) {
  check_float(a, name(op), "input");
  return DAN_ROUTE(a.device(), binary_scalar(op, a, s, scalar_first));
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same(a, b, name(op), "a", "b");
  broadcast_shapes(a.shape(), b.shape(), name(op));
  return DAN_ROUTE(a.device(), compare(op, a, b));
}

Tensor compare_scalar(CompareOp op, const Tensor& a, double s) {
  check_defined(a, name(op), "input");
  return DAN_ROUTE(a.device(), compare_scalar(op, a, s));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  DAN_CHECK(cond.dtype() == DType::b8, "where: cond must be bool, got {}", cond.dtype());
  check_same(a, b, "where", "a", "b");
  DAN_CHECK(cond.device() == a.device(), "where: cond is on {}, values are on {}", cond.device(),
            a.device());
  broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  return DAN_ROUTE(a.device(), where(cond, a, b));
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined(x, "masked_fill", "input");
  check_defined(mask, "masked_fill", "mask");
  DAN_CHECK(mask.dtype() == DType::b8, "masked_fill: mask must be bool, got {}", mask.dtype());
  DAN_CHECK(mask.device() == x.device(), "masked_fill: mask is on {}, input is on {}",
            mask.device(), x.device());
  DAN_CHECK(broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(),
            "masked_fill: mask {} does not broadcast to the input {}", shape_str(mask.shape()),
            shape_str(x.shape()));
  return DAN_ROUTE(x.device(), masked_fill(x, mask, value));
}

void fill_(const Tensor& t, double value) {
  check_defined(t, "fill_", "input");
  DAN_ROUTE(t.device(), fill_(t, value));
}

void copy_(const Tensor& dst, const Tensor& src) {
  check_same(dst, src, "copy_", "dst", "src");
  check_shape(src, dst.shape(), "copy_", "src");
  DAN_ROUTE(dst.device(), copy_(dst, src));
}

Tensor cast(const Tensor& x, DType to) {
  check_defined(x, "cast", "input");
  DAN_CHECK(to != DType::f64 || x.device().is_cpu(), "cast: f64 is supported on the CPU only");
  return DAN_ROUTE(x.device(), cast(x, to));
}

namespace {
void check_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> seen(std::max<int64_t>(x.dim(), 1), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), op);
    DAN_CHECK(!seen[w], "{}: dim {} repeated in [{}]", op, d, fmt::join(dims, ", "));
    seen[w] = true;
  }
}
}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_float(x, name(op), "input");
  check_dims(x, dims, name(op));
  if (op == ReduceOp::max || op == ReduceOp::min) {
    DAN_CHECK(x.numel() > 0, "{}: cannot reduce an empty tensor {}", name(op), shape_str(x.shape()));
  }
  return DAN_ROUTE(x.device(), reduce(op, x, dims, keepdim));
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_float(x, "argmax", "input");
  wrap_dim(dim, x.dim(), "argmax");
  DAN_CHECK(x.numel() > 0, "argmax: cannot reduce an empty tensor {}", shape_str(x.shape()));
  return DAN_ROUTE(x.device(), argmax(x, dim, keepdim));
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  check_float(x, "var", "input");
  check_dims(x, dims, "var");
  DAN_CHECK(correction >= 0, "var: correction must be >= 0, got {}", correction);
  return DAN_ROUTE(x.device(), var(x, dims, correction, keepdim));
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  check_float(g, "sum_to", "grad");
  DAN_CHECK(broadcast_shapes(shape, g.shape(), "sum_to") == g.shape(),
            "sum_to: {} does not broadcast to {}", shape_str(shape), shape_str(g.shape()));
  if (g.shape() == shape) return g;
  return DAN_ROUTE(g.device(), sum_to(g, shape));
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_same(a, b, "matmul", "a", "b");
  check_float(a, "matmul", "a");
  DAN_CHECK((a.dim() == 2 && b.dim() == 2) || (a.dim() == 3 && b.dim() == 3),
            "matmul: expected two 2-D or two 3-D tensors, got a {} and b {}", shape_str(a.shape()),
            shape_str(b.shape()));
  DAN_CHECK(a.size(-1) == b.size(-2), "matmul: inner dims differ: a is {}, b is {}",
            shape_str(a.shape()), shape_str(b.shape()));
  if (a.dim() == 3) {
    DAN_CHECK(a.size(0) == b.size(0) || a.size(0) == 1 || b.size(0) == 1,
              "matmul: batch dims differ: a is {}, b is {}", shape_str(a.shape()),
              shape_str(b.shape()));
  }
  return DAN_ROUTE(a.device(), matmul(a, b));
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_same(x, w, "linear", "input", "weight");
  check_float(x, "linear", "input");
  DAN_CHECK(x.dim() == 2 && w.dim() == 2, "linear: expected input [N, in] and weight [out, in], "
            "got input {} and weight {}", shape_str(x.shape()), shape_str(w.shape()));
  DAN_CHECK(x.size(1) == w.size(1), "linear: input has {} features {}, weight expects {} {}",
            x.size(1), shape_str(x.shape()), w.size(1), shape_str(w.shape()));
  if (bias.defined()) {
    check_same(x, bias, "linear", "input", "bias");
    check_shape(bias, {w.size(0)}, "linear", "bias");
  }
  return DAN_ROUTE(x.device(), linear(x, w, bias));
}

Tensor softmax(const Tensor& x) {
  check_float(x, "softmax", "input");
  DAN_CHECK(x.dim() >= 1, "softmax: input must have at least one dim");
  return DAN_ROUTE(x.device(), softmax(x));
}
Tensor softmax_backward(const Tensor& grad, const Tensor& y) {
  check_same(grad, y, "softmax_backward", "grad", "output");
  check_shape(grad, y.shape(), "softmax_backward", "grad");
  return DAN_ROUTE(y.device(), softmax_backward(grad, y));
}
Tensor log_softmax(const Tensor& x) {
  check_float(x, "log_softmax", "input");
  DAN_CHECK(x.dim() >= 1, "log_softmax: input must have at least one dim");
  return DAN_ROUTE(x.device(), log_softmax(x));
}
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y) {
  check_same(grad, y, "log_softmax_backward", "grad", "output");
  check_shape(grad, y.shape(), "log_softmax_backward", "grad");
  return DAN_ROUTE(y.device(), log_softmax_backward(grad, y));
}

LayerNormOut layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_float(x, "layer_norm", "input");
  DAN_CHECK(x.dim() >= 1, "layer_norm: input must have at least one dim");
  const Shape d = {x.size(-1)};
  if (weight.defined()) {
    check_same(x, weight, "layer_norm", "input", "weight");
    check_shape(weight, d, "layer_norm", "weight");
  }
  if (bias.defined()) {
    check_same(x, bias, "layer_norm", "input", "bias");
    check_shape(bias, d, "layer_norm", "bias");
  }
  DAN_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got {}", eps);
  return DAN_ROUTE(x.device(), layer_norm(x, weight, bias, eps));
}

LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, bool need_affine) {
  check_same(grad, x, "layer_norm_backward", "grad", "input");
  check_shape(grad, x.shape(), "layer_norm_backward", "grad");
  const Shape rows = {x.numel() / std::max<int64_t>(x.size(-1), 1)};
  check_same(x, mean, "layer_norm_backward", "input", "mean");
  check_same(x, rstd, "layer_norm_backward", "input", "rstd");
  check_shape(mean, rows, "layer_norm_backward", "mean");
  check_shape(rstd, rows, "layer_norm_backward", "rstd");
  if (weight.defined()) {
    check_same(x, weight, "layer_norm_backward", "input", "weight");
    check_shape(weight, {x.size(-1)}, "layer_norm_backward", "weight");
  }
  return DAN_ROUTE(x.device(), layer_norm_backward(grad, x, mean, rstd, weight, need_affine));
}

BatchNormOut batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Tensor& running_mean, const Tensor& running_var, bool training,
                        double momentum, double eps) {
  check_float(x, "batch_norm", "input");
  DAN_CHECK(x.dim() == 2, "batch_norm: expected input [N, C], got {}", shape_str(x.shape()));
  const Shape c = {x.size(1)};
  const std::pair<const Tensor*, const char*> params[] = {
      {&weight, "weight"}, {&bias, "bias"}, {&running_mean, "running_mean"},
      {&running_var, "running_var"}};
  for (auto [t, n] : params) {
    if (!t->defined()) continue;
    check_same(x, *t, "batch_norm", "input", n);
    check_shape(*t, c, "batch_norm", n);
  }
  if (training) {
    DAN_CHECK(x.size(0) > 1, "batch_norm: training needs more than one row per batch, got {}",
              shape_str(x.shape()));
  } else {
    DAN_CHECK(running_mean.defined() && running_var.defined(),
              "batch_norm: eval mode needs running_mean and running_var");
  }
  return DAN_ROUTE(x.device(), batch_norm(x, weight, bias, running_mean, running_var, training,
                                          momentum, eps));
}

BatchNormGrads batch_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   bool training, bool need_affine) {
  check_same(grad, x, "batch_norm_backward", "grad", "input");
  check_shape(grad, x.shape(), "batch_norm_backward", "grad");
  DAN_CHECK(x.dim() == 2, "batch_norm_backward: expected input [N, C], got {}", shape_str(x.shape()));
  const Shape c = {x.size(1)};
  check_same(x, save_mean, "batch_norm_backward", "input", "save_mean");
  check_same(x, save_invstd, "batch_norm_backward", "input", "save_invstd");
  check_shape(save_mean, c, "batch_norm_backward", "save_mean");
  check_shape(save_invstd, c, "batch_norm_backward", "save_invstd");
  if (weight.defined()) {
    check_same(x, weight, "batch_norm_backward", "input", "weight");
    check_shape(weight, c, "batch_norm_backward", "weight");
  }
  return DAN_ROUTE(x.device(), batch_norm_backward(grad, x, weight, save_mean, save_invstd,
                                                   training, need_affine));
}

void uniform_(const Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  check_float(t, "uniform_", "tensor");
  DAN_CHECK(lo <= hi, "uniform_: expected lo <= hi, got {} > {}", lo, hi);
  DAN_ROUTE(t.device(), uniform_(t, seed, offset, lo, hi));
}
void normal_(const Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  check_float(t, "normal_", "tensor");
  DAN_CHECK(std >= 0, "normal_: std must be >= 0, got {}", std);
  DAN_ROUTE(t.device(), normal_(t, seed, offset, mean, std));
}
void bernoulli_(const Tensor& t, uint64_t seed, uint64_t offset, double p) {
  check_defined(t, "bernoulli_", "tensor");
  DAN_CHECK(p >= 0 && p <= 1, "bernoulli_: p must be in [0, 1], got {}", p);
  DAN_ROUTE(t.device(), bernoulli_(t, seed, offset, p));
}
DropoutOut dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  check_float(x, "dropout", "input");
  DAN_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got {}", p);
  return DAN_ROUTE(x.device(), dropout(x, p, seed, offset));
}

Tensor index_select(const Tensor& x, const Tensor& index) {
  check_defined(x, "index_select", "input");
  check_index(index, "index_select");
  DAN_CHECK(x.dim() >= 1, "index_select: input must have at least one dim");
  DAN_CHECK(x.device() == index.device(), "index_select: input is on {}, index is on {}",
            x.device(), index.device());
  return DAN_ROUTE(x.device(), index_select(x, index));
}

Tensor index_add(const Tensor& grad, const Tensor& index, int64_t num_rows) {
  check_float(grad, "index_add", "grad");
  check_index(index, "index_add");
  DAN_CHECK(grad.dim() >= index.dim() &&
                Shape(grad.shape().begin(), grad.shape().begin() + index.dim()) == index.shape(),
            "index_add: grad {} must start with the index shape {}", shape_str(grad.shape()),
            shape_str(index.shape()));
  DAN_CHECK(num_rows >= 0, "index_add: num_rows must be >= 0, got {}", num_rows);
  return DAN_ROUTE(grad.device(), index_add(grad, index, num_rows));
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  DAN_CHECK(!xs.empty(), "cat: expected at least one tensor");
  const Tensor& a = xs[0];
  check_defined(a, "cat", "tensor 0");
  DAN_CHECK(a.dim() >= 1, "cat: zero-dimensional tensors cannot be concatenated (use stack)");
  dim = wrap_dim(dim, a.dim(), "cat");
  for (size_t i = 1; i < xs.size(); ++i) {
    check_same(a, xs[i], "cat", "tensor 0", "a later tensor");
    DAN_CHECK(xs[i].dim() == a.dim(), "cat: tensor {} has rank {} {}, tensor 0 has rank {} {}", i,
              xs[i].dim(), shape_str(xs[i].shape()), a.dim(), shape_str(a.shape()));
    for (int64_t d = 0; d < a.dim(); ++d) {
      DAN_CHECK(d == dim || xs[i].size(d) == a.size(d),
                "cat: tensor {} has shape {}, tensor 0 has {}: they must match except in dim {}", i,
                shape_str(xs[i].shape()), shape_str(a.shape()), dim);
    }
  }
  return DAN_ROUTE(a.device(), cat(xs, dim));
}

Tensor mse_loss(const Tensor& pred, const Tensor& target) {
  check_same(pred, target, "mse_loss", "input", "target");
  check_float(pred, "mse_loss", "input");
  check_shape(target, pred.shape(), "mse_loss", "target");
  return DAN_ROUTE(pred.device(), mse_loss(pred, target));
}
Tensor mse_loss_backward(const Tensor& grad, const Tensor& pred, const Tensor& target) {
  check_same(pred, target, "mse_loss_backward", "input", "target");
  check_shape(target, pred.shape(), "mse_loss_backward", "target");
  check_same(pred, grad, "mse_loss_backward", "input", "grad");
  DAN_CHECK(grad.numel() == 1, "mse_loss_backward: grad must have one element, got {}",
            shape_str(grad.shape()));
  return DAN_ROUTE(pred.device(), mse_loss_backward(grad, pred, target));
}

CrossEntropyOut cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  check_float(logits, "cross_entropy", "logits");
  check_index(target, "cross_entropy");
  DAN_CHECK(logits.dim() == 2 && target.dim() == 1 && target.size(0) == logits.size(0),
            "cross_entropy: expected logits [N, C] and target [N], got logits {} and target {}",
            shape_str(logits.shape()), shape_str(target.shape()));
  DAN_CHECK(logits.device() == target.device(), "cross_entropy: logits on {}, target on {}",
            logits.device(), target.device());
  return DAN_ROUTE(logits.device(), cross_entropy(logits, target, ignore_index));
}
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& log_probs, const Tensor& target,
                              int64_t ignore_index) {
  check_float(log_probs, "cross_entropy_backward", "log_probs");
  check_index(target, "cross_entropy_backward");
  check_same(log_probs, grad, "cross_entropy_backward", "log_probs", "grad");
  DAN_CHECK(grad.numel() == 1, "cross_entropy_backward: grad must have one element, got {}",
            shape_str(grad.shape()));
  DAN_CHECK(log_probs.dim() == 2 && target.dim() == 1 && target.size(0) == log_probs.size(0) &&
                target.device() == log_probs.device(),
            "cross_entropy_backward: expected log_probs [N, C] and target [N] on one device, got "
            "{} and {}", shape_str(log_probs.shape()), shape_str(target.shape()));
  return DAN_ROUTE(log_probs.device(),
                   cross_entropy_backward(grad, log_probs, target, ignore_index));
}

namespace {
void check_param_like(const Tensor& p, const Tensor& t, const char* op, const char* what) {
  check_same(p, t, op, "param", what);
  check_shape(t, p.shape(), op, what);
  DAN_CHECK(t.is_contiguous(), "{}: {} must be contiguous", op, what);
}
}  // namespace

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, double lr, double beta1, double beta2, double eps,
               double weight_decay, int64_t step, bool decoupled_wd) {
  check_float(param, "adam_step", "param");
  DAN_CHECK(param.is_contiguous(), "adam_step: param must be contiguous");
  check_param_like(param, grad, "adam_step", "grad");
  check_param_like(param, exp_avg, "adam_step", "exp_avg");
  check_param_like(param, exp_avg_sq, "adam_step", "exp_avg_sq");
  DAN_CHECK(step >= 1, "adam_step: step counts from 1, got {}", step);
  DAN_ROUTE(param.device(), adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                                      weight_decay, step, decoupled_wd));
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buf, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov,
              bool first_step) {
  check_float(param, "sgd_step", "param");
  DAN_CHECK(param.is_contiguous(), "sgd_step: param must be contiguous");
  check_param_like(param, grad, "sgd_step", "grad");
  if (momentum != 0) check_param_like(param, momentum_buf, "sgd_step", "momentum_buf");
  DAN_ROUTE(param.device(), sgd_step(param, grad, momentum_buf, lr, momentum, dampening,
                                     weight_decay, nesterov, first_step));
}

}  // namespace dan::kernels
