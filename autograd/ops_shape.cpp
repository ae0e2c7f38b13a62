// Differentiable views, copies and concatenation (Tensor's view methods are defined here).
#include <numeric>

#include "autograd/ops.h"
#include "kernels/kernels.h"

namespace dan {

namespace k = kernels;
using autograd::record;
using Needs = std::vector<bool>;
using Grads = std::vector<Tensor>;

namespace {

Tensor materialize(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  k::copy_(out, t);
  return out;
}

Tensor reshape_raw(const Tensor& t, const Shape& s) { return raw::view(materialize(t), s); }

// Gradient of a view that picked part of the input: zeros, with g copied into the same view.
template <typename ViewFn>
Tensor scatter_into_zeros(const Tensor& g, const Shape& in_shape, ViewFn view) {
  Tensor out = zeros(in_shape, g.dtype(), g.device());
  k::copy_(view(out), g);
  return out;
}

bool can_view(const Tensor& t, const Shape& s) {
  try {
    raw::view(t, s);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

Tensor Tensor::detach() const { return autograd::saved(*this); }

Tensor Tensor::reshape(const Shape& s_in) const {
  const Shape s = raw::infer_shape(s_in, numel(), "reshape");
  Tensor out = is_contiguous() || can_view(*this, s) ? raw::view(*this, s) : reshape_raw(*this, s);
  return record("reshape", out, {*this}, [in = shape()](const Tensor& g, const Needs&) {
    return Grads{reshape_raw(g, in)};
  });
}

Tensor Tensor::view(const Shape& s) const {
  return record("reshape", raw::view(*this, s), {*this}, [in = shape()](const Tensor& g, const Needs&) {
    return Grads{reshape_raw(g, in)};
  });
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  DAN_CHECK(start <= end, "flatten: start dim {} is after end dim {}", start, end);
  Shape s(shape().begin(), shape().begin() + start);
  s.push_back(std::accumulate(shape().begin() + start, shape().begin() + end + 1, int64_t{1},
                              std::multiplies<>()));
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  return record("transpose", raw::transpose(*this, d0, d1), {*this},
                [d0, d1](const Tensor& g, const Needs&) { return Grads{raw::transpose(g, d0, d1)}; });
}

Tensor Tensor::permute(const Shape& dims) const {
  Tensor out = raw::permute(*this, dims);
  Shape inv(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inv[wrap_dim(dims[i], dim(), "permute")] = static_cast<int64_t>(i);
  return record("permute", out, {*this}, [inv](const Tensor& g, const Needs&) {
    return Grads{raw::permute(g, inv)};
  });
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  return record("slice", raw::slice(*this, d, start, end, step), {*this},
                [d, start, end, step, in = shape()](const Tensor& g, const Needs&) {
                  return Grads{scatter_into_zeros(g, in, [&](const Tensor& z) {
                    return raw::slice(z, d, start, end, step);
                  })};
                });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  const int64_t wd = wrap_dim(d, dim(), "narrow");
  DAN_CHECK(start >= 0 && length >= 0 && start + length <= shape()[wd],
            "narrow: [{}, {}) is out of range for dim {} of size {}", start, start + length, wd,
            shape()[wd]);
  return slice(wd, start, start + length, 1);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  return record("select", raw::select(*this, d, index), {*this},
                [d, index, in = shape()](const Tensor& g, const Needs&) {
                  return Grads{scatter_into_zeros(g, in, [&](const Tensor& z) {
                    return raw::select(z, d, index);
                  })};
                });
}

Tensor Tensor::expand(const Shape& s) const {
  return record("expand", raw::expand(*this, s), {*this}, [in = shape()](const Tensor& g, const Needs&) {
    return Grads{k::sum_to(g, in)};
  });
}

Tensor Tensor::squeeze(int64_t d) const {
  return record("squeeze", raw::squeeze(*this, d), {*this}, [in = shape()](const Tensor& g, const Needs&) {
    return Grads{reshape_raw(g, in)};
  });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  return record("unsqueeze", raw::unsqueeze(*this, d), {*this}, [in = shape()](const Tensor& g, const Needs&) {
    return Grads{reshape_raw(g, in)};
  });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return record("contiguous", materialize(*this), {*this},
                [](const Tensor& g, const Needs&) { return Grads{g}; });
}

Tensor Tensor::clone() const {
  Tensor out = raw::empty(shape(), dtype(), device());
  k::copy_(out, *this);
  return record("clone", out, {*this}, [](const Tensor& g, const Needs&) { return Grads{g}; });
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  return record("to_device", raw::contiguous_copy(*this, d), {*this},
                [src = device()](const Tensor& g, const Needs&) {
                  return Grads{raw::contiguous_copy(g, src)};
                });
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  return k::cast(*this, t);  // not differentiable (dtype changes end the graph, as documented)
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  DAN_CHECK(!xs.empty(), "cat: expected at least one tensor");
  const int64_t d = wrap_dim(dim, xs[0].dim(), "cat");
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.size(d));
  return record("cat", k::cat(xs, d), xs, [d, sizes](const Tensor& g, const Needs& n) {
    Grads out(sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (n[i]) out[i] = raw::slice(g, d, start, start + sizes[i], 1);
      start += sizes[i];
    }
    return out;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  DAN_CHECK(!xs.empty(), "stack: expected at least one tensor");
  const int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  for (const Tensor& x : xs) {
    DAN_CHECK(x.shape() == xs[0].shape(), "stack: all tensors need the same shape, got {} and {}",
              shape_str(xs[0].shape()), shape_str(x.shape()));
  }
  std::vector<Tensor> parts;
  for (const Tensor& x : xs) parts.push_back(raw::unsqueeze(x, d));
  return record("stack", k::cat(parts, d), xs, [d, n_in = xs.size()](const Tensor& g, const Needs& n) {
    Grads out(n_in);
    for (size_t i = 0; i < n_in; ++i) {
      if (n[i]) out[i] = raw::select(g, d, static_cast<int64_t>(i));
    }
    return out;
  });
}

}  // namespace dan
