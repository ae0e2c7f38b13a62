#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/ops.h"

namespace dan::autograd {

namespace {

// Scalar objective sum(out * proj) in double, computed without the tape.
double objective(const Tensor& out, const std::vector<double>& proj) {
  const std::vector<double> v = out.to_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * proj[i];
  return s;
}

// Storage offsets of each element of a (possibly strided) CPU tensor, row-major.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offs;
  offs.reserve(static_cast<size_t>(t.numel()));
  const int64_t nd = t.dim();
  std::vector<int64_t> idx(nd, 0);
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t off = t.offset();
    for (int64_t d = 0; d < nd; ++d) off += idx[d] * t.strides()[d];
    offs.push_back(off);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < t.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return offs;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  GradcheckResult res;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) {
      DAN_CHECK(t.dtype() == DType::f64 && t.device().is_cpu(),
                "gradcheck: inputs that require grad must be f64 on the CPU, got {} on {}",
                t.dtype(), t.device());
    }
  }
  Tensor out = fn(inputs);
  DAN_CHECK(is_floating(out.dtype()), "gradcheck: output must be floating, got {}", out.dtype());
  Generator gen(opt.seed);
  const std::vector<double> proj =
      randn(out.shape(), gen, DType::f64, Device::cpu()).to_vector();

  for (const Tensor& t : inputs) {
    if (t.defined()) t.impl().grad.reset();
  }
  if (needs_grad(out)) {
    Tensor proj_t = from_doubles(proj, out.shape(), out.dtype(), out.device());
    sum(mul(out, proj_t)).backward();
  }

  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const std::vector<double> analytic =
        x.grad().defined() ? x.grad().to_vector() : std::vector<double>(x.numel(), 0.0);
    double* base = static_cast<double*>(x.storage()->data());
    const std::vector<int64_t> offs = element_offsets(x);
    for (size_t e = 0; e < offs.size(); ++e) {
      double& v = base[offs[e]];
      const double orig = v;
      double fp, fm;
      {
        NoGradGuard ng;
        v = orig + opt.eps;
        fp = objective(fn(inputs), proj);
        v = orig - opt.eps;
        fm = objective(fn(inputs), proj);
        v = orig;
      }
      const double numeric = (fp - fm) / (2 * opt.eps);
      const double err = std::abs(numeric - analytic[e]);
      res.max_abs_err = std::max(res.max_abs_err, err);
      if (res.ok && !(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        res.ok = false;
        res.message = fmt::format("input {} {} element {}: analytic {:.10g}, numeric {:.10g} "
                                  "(abs err {:.3g})", k, shape_str(x.shape()), e, analytic[e],
                                  numeric, err);
      }
    }
  }
  return res;
}

}  // namespace dan::autograd
