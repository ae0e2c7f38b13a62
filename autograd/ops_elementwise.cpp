// Differentiable elementwise ops: forward = one kernel call, backward next to it.
#include "autograd/ops.h"
#include "kernels/kernels.h"

namespace dan {

namespace k = kernels;
using autograd::record;
using autograd::saved;
using Needs = std::vector<bool>;
using Grads = std::vector<Tensor>;

namespace {

Tensor bin(k::BinaryOp op, const Tensor& a, const Tensor& b) { return k::binary(op, a, b); }
Tensor kmul(const Tensor& a, const Tensor& b) { return bin(k::BinaryOp::mul, a, b); }
Tensor kdiv(const Tensor& a, const Tensor& b) { return bin(k::BinaryOp::div, a, b); }
Tensor kscal(k::BinaryOp op, const Tensor& a, double s) { return k::binary_scalar(op, a, s, false); }
Tensor as_float(const Tensor& mask, const Tensor& like) { return k::cast(mask, like.dtype()); }

Tensor unary_op(const char* name, k::UnaryOp op, const Tensor& x) {
  Tensor y = k::unary(op, x);
  return record(name, y, {x}, [op, x = saved(x), y = saved(y)](const Tensor& g, const Needs&) {
    return Grads{k::unary_backward(op, g, x, y)};
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return record("add", bin(k::BinaryOp::add, a, b), {a, b},
                [sa = a.shape(), sb = b.shape()](const Tensor& g, const Needs& n) {
                  return Grads{n[0] ? k::sum_to(g, sa) : Tensor(), n[1] ? k::sum_to(g, sb) : Tensor()};
                });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return record("sub", bin(k::BinaryOp::sub, a, b), {a, b},
                [sa = a.shape(), sb = b.shape()](const Tensor& g, const Needs& n) {
                  return Grads{n[0] ? k::sum_to(g, sa) : Tensor(),
                               n[1] ? k::sum_to(k::unary(k::UnaryOp::neg, g), sb) : Tensor()};
                });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return record("mul", kmul(a, b), {a, b},
                [a = saved(a), b = saved(b)](const Tensor& g, const Needs& n) {
                  return Grads{n[0] ? k::sum_to(kmul(g, b), a.shape()) : Tensor(),
                               n[1] ? k::sum_to(kmul(g, a), b.shape()) : Tensor()};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = kdiv(a, b);
  return record("div", y, {a, b},
                [a = saved(a), b = saved(b), y = saved(y)](const Tensor& g, const Needs& n) {
                  Tensor ga, gb;
                  if (n[0]) ga = k::sum_to(kdiv(g, b), a.shape());
                  if (n[1]) gb = k::sum_to(k::unary(k::UnaryOp::neg, kdiv(kmul(g, y), b)), b.shape());
                  return Grads{ga, gb};
                });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor y = bin(k::BinaryOp::pow, a, b);
  return record("pow", y, {a, b},
                [a = saved(a), b = saved(b), y = saved(y)](const Tensor& g, const Needs& n) {
                  Tensor ga, gb;
                  if (n[0]) {  // b * a^(b-1)
                    Tensor d = kmul(b, bin(k::BinaryOp::pow, a, kscal(k::BinaryOp::sub, b, 1.0)));
                    ga = k::sum_to(kmul(g, d), a.shape());
                  }
                  if (n[1]) gb = k::sum_to(kmul(kmul(g, y), k::unary(k::UnaryOp::log, a)), b.shape());
                  return Grads{ga, gb};
                });
}

namespace {
// maximum/minimum: the gradient goes to the winner; ties split it evenly (as PyTorch).
Tensor extremum(const char* name, k::BinaryOp op, k::CompareOp wins, const Tensor& a,
                const Tensor& b) {
  return record(name, bin(op, a, b), {a, b},
                [wins, a = saved(a), b = saved(b)](const Tensor& g, const Needs& n) {
                  Tensor wa = as_float(k::compare(wins, a, b), g);
                  Tensor tie = kscal(k::BinaryOp::mul, as_float(k::compare(k::CompareOp::eq, a, b), g), 0.5);
                  Tensor fa = bin(k::BinaryOp::add, wa, tie);
                  Tensor fb = k::binary_scalar(k::BinaryOp::sub, fa, 1.0, true);
                  return Grads{n[0] ? k::sum_to(kmul(g, fa), a.shape()) : Tensor(),
                               n[1] ? k::sum_to(kmul(g, fb), b.shape()) : Tensor()};
                });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return extremum("maximum", k::BinaryOp::maximum, k::CompareOp::gt, a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return extremum("minimum", k::BinaryOp::minimum, k::CompareOp::lt, a, b);
}

Tensor add(const Tensor& a, double s) {
  return record("add_scalar", kscal(k::BinaryOp::add, a, s), {a},
                [](const Tensor& g, const Needs&) { return Grads{g}; });
}
Tensor mul(const Tensor& a, double s) {
  return record("mul_scalar", kscal(k::BinaryOp::mul, a, s), {a},
                [s](const Tensor& g, const Needs&) { return Grads{kscal(k::BinaryOp::mul, g, s)}; });
}
Tensor pow(const Tensor& a, double s) {
  return record("pow_scalar", kscal(k::BinaryOp::pow, a, s), {a},
                [s, a = saved(a)](const Tensor& g, const Needs&) {
                  Tensor d = kscal(k::BinaryOp::mul, kscal(k::BinaryOp::pow, a, s - 1.0), s);
                  return Grads{kmul(g, d)};
                });
}
Tensor rsub(const Tensor& a, double s) {
  return record("rsub_scalar", k::binary_scalar(k::BinaryOp::sub, a, s, true), {a},
                [](const Tensor& g, const Needs&) { return Grads{k::unary(k::UnaryOp::neg, g)}; });
}
Tensor rdiv(const Tensor& a, double s) {
  Tensor y = k::binary_scalar(k::BinaryOp::div, a, s, true);
  return record("rdiv_scalar", y, {a}, [a = saved(a), y = saved(y)](const Tensor& g, const Needs&) {
    return Grads{k::unary(k::UnaryOp::neg, kdiv(kmul(g, y), a))};
  });
}

Tensor neg(const Tensor& x) { return unary_op("neg", k::UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary_op("exp", k::UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary_op("log", k::UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary_op("sqrt", k::UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary_op("rsqrt", k::UnaryOp::rsqrt, x); }
Tensor abs(const Tensor& x) { return unary_op("abs", k::UnaryOp::abs, x); }
Tensor relu(const Tensor& x) { return unary_op("relu", k::UnaryOp::relu, x); }
Tensor tanh(const Tensor& x) { return unary_op("tanh", k::UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op("sigmoid", k::UnaryOp::sigmoid, x); }
Tensor square(const Tensor& x) { return unary_op("square", k::UnaryOp::square, x); }
Tensor gelu(const Tensor& x, bool approximate) {
  return approximate ? unary_op("gelu_tanh", k::UnaryOp::gelu_tanh, x)
                     : unary_op("gelu", k::UnaryOp::gelu_erf, x);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return record("where", k::where(cond, a, b), {a, b},
                [cond = saved(cond), sa = a.shape(), sb = b.shape()](const Tensor& g, const Needs& n) {
                  Tensor ga, gb;
                  if (n[0]) ga = k::sum_to(k::masked_fill(g, k::compare_scalar(k::CompareOp::eq, cond, 0), 0.0), sa);
                  if (n[1]) gb = k::sum_to(k::masked_fill(g, cond, 0.0), sb);
                  return Grads{ga, gb};
                });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return record("masked_fill", k::masked_fill(x, mask, value), {x},
                [mask = saved(mask)](const Tensor& g, const Needs&) {
                  return Grads{k::masked_fill(g, mask, 0.0)};
                });
}

Tensor eq(const Tensor& a, const Tensor& b) { return k::compare(k::CompareOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return k::compare(k::CompareOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return k::compare(k::CompareOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return k::compare(k::CompareOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return k::compare(k::CompareOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return k::compare(k::CompareOp::ge, a, b); }
Tensor gt(const Tensor& a, double s) { return k::compare_scalar(k::CompareOp::gt, a, s); }
Tensor lt(const Tensor& a, double s) { return k::compare_scalar(k::CompareOp::lt, a, s); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(double s, const Tensor& a) { return rsub(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(double s, const Tensor& a) { return rdiv(a, s); }

void fill_(const Tensor& t, double v) { k::fill_(t, v); }
void copy_(const Tensor& dst, const Tensor& src) {
  if (dst.device() == src.device()) {
    k::copy_(dst, src);
  } else {
    raw::copy_(dst, src);
  }
}

}  // namespace dan
