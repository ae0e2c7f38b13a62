// Differentiable reductions and linear algebra.
#include <algorithm>

#include "autograd/ops.h"
#include "kernels/kernels.h"

namespace dan {

namespace k = kernels;
using autograd::record;
using autograd::saved;
using Needs = std::vector<bool>;
using Grads = std::vector<Tensor>;

namespace {

std::vector<int64_t> norm_dims(const std::vector<int64_t>& dims, int64_t ndim, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < ndim; ++d) out.push_back(d);
  } else {
    for (int64_t d : dims) out.push_back(wrap_dim(d, ndim, op));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The reduced gradient g viewed with size-1 dims where x was reduced (keepdim layout).
Tensor keepdim_view(const Tensor& g, const Shape& x_shape, const std::vector<int64_t>& dims) {
  Shape s = x_shape;
  for (int64_t d : dims) s[d] = 1;
  Tensor gc = g.is_contiguous() ? g : raw::contiguous_copy(g, g.device());
  return raw::view(gc, s);
}

// Materializes g broadcast back to x's shape.
Tensor expand_back(const Tensor& g, const Shape& x_shape, const std::vector<int64_t>& dims) {
  Tensor out = raw::empty(x_shape, g.dtype(), g.device());
  k::copy_(out, raw::expand(keepdim_view(g, x_shape, dims), x_shape));
  return out;
}

int64_t count_of(const Shape& s, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= s[d];
  return n;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const auto dims = norm_dims(dims_in, x.dim(), "sum");
  return record("sum", k::reduce(k::ReduceOp::sum, x, dims, keepdim), {x},
                [dims, s = x.shape()](const Tensor& g, const Needs&) {
                  return Grads{expand_back(g, s, dims)};
                });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const auto dims = norm_dims(dims_in, x.dim(), "mean");
  return record("mean", k::reduce(k::ReduceOp::mean, x, dims, keepdim), {x},
                [dims, s = x.shape()](const Tensor& g, const Needs&) {
                  const double n = static_cast<double>(count_of(s, dims));
                  return Grads{k::binary_scalar(k::BinaryOp::mul, expand_back(g, s, dims), 1.0 / n, false)};
                });
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, x.dim(), "max");
  Tensor idx = k::argmax(x, dim, true);
  return record("max", k::reduce(k::ReduceOp::max, x, {dim}, keepdim), {x},
                [dim, s = x.shape(), idx](const Tensor& g, const Needs&) {
                  // one-hot of the argmax along `dim`, broadcast against g in keepdim layout
                  Shape ar_shape(s.size(), 1);
                  ar_shape[dim] = s[dim];
                  Tensor ar = raw::view(arange(0, static_cast<double>(s[dim]), 1, DType::i64, g.device()), ar_shape);
                  Tensor hit = k::compare(k::CompareOp::eq, ar, idx);
                  Tensor zero = zeros({}, g.dtype(), g.device());
                  return Grads{k::where(hit, keepdim_view(g, s, {dim}), zero)};
                });
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return k::argmax(x, dim, keepdim); }

Tensor var(const Tensor& x, const std::vector<int64_t>& dims_in, int64_t correction, bool keepdim) {
  const auto dims = norm_dims(dims_in, x.dim(), "var");
  return record("var", k::var(x, dims, correction, keepdim), {x},
                [dims, correction, x = saved(x)](const Tensor& g, const Needs&) {
                  const double n = static_cast<double>(count_of(x.shape(), dims));
                  Tensor mu = k::reduce(k::ReduceOp::mean, x, dims, true);
                  Tensor centered = k::binary(k::BinaryOp::sub, x, mu);
                  Tensor scale = k::binary_scalar(k::BinaryOp::mul, keepdim_view(g, x.shape(), dims),
                                                  2.0 / (n - static_cast<double>(correction)), false);
                  return Grads{k::binary(k::BinaryOp::mul, centered, scale)};
                });
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  return record("matmul", k::matmul(a, b), {a, b},
                [a = saved(a), b = saved(b)](const Tensor& g, const Needs& n) {
                  Tensor ga, gb;
                  if (n[0]) ga = k::sum_to(k::matmul(g, raw::transpose(b, -1, -2)), a.shape());
                  if (n[1]) gb = k::sum_to(k::matmul(raw::transpose(a, -1, -2), g), b.shape());
                  return Grads{ga, gb};
                });
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  return record("linear", k::linear(x, w, bias), {x, w, bias},
                [x = saved(x), w = saved(w)](const Tensor& g, const Needs& n) {
                  Tensor gx, gw, gb;
                  if (n[0]) gx = k::matmul(g, w);
                  if (n[1]) gw = k::matmul(raw::transpose(g, 0, 1), x);
                  if (n[2]) gb = k::reduce(k::ReduceOp::sum, g, {0}, false);
                  return Grads{gx, gw, gb};
                });
}

}  // namespace dan
