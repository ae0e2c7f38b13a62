#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace dan {

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  DAN_CHECK(dim >= lo && dim <= hi, "{}: dim {} out of range for a tensor of rank {}", op, dim,
            ndim);
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // nothing to lay out
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * dtype_size(dtype());
}

Tensor& Tensor::set_requires_grad(bool r) {
  DAN_CHECK(!r || is_floating(dtype()), "requires_grad: only floating tensors can require "
            "gradients, got {}", dtype());
  DAN_CHECK(is_leaf(), "requires_grad: can only be set on a leaf tensor (this one was produced "
            "by an op); use detach() first");
  impl().requires_grad = r;
  return *this;
}

namespace {

template <typename T>
double load_as_double(const void* p, int64_t i) {
  return static_cast<double>(static_cast<const T*>(p)[i]);
}

double load_elem(const void* base, DType t, int64_t i) {
  return DAN_DISPATCH_ALL(t, "load", [&]<typename T>() { return load_as_double<T>(base, i); });
}

void store_elem(void* base, DType t, int64_t i, double v) {
  DAN_DISPATCH_ALL(t, "store", [&]<typename T>() { static_cast<T*>(base)[i] = static_cast<T>(v); });
}

// Calls f(linear_index, storage_element_offset) for every element in row-major order.
template <typename F>
void for_each_offset(const Shape& shape, const Shape& strides, int64_t offset, F&& f) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t off = offset;
  for (int64_t i = 0; i < n; ++i) {
    f(i, off);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

}  // namespace

std::vector<double> Tensor::to_vector() const {
  Tensor h = device().is_cpu() ? *this : raw::contiguous_copy(*this, Device::cpu());
  std::vector<double> out(static_cast<size_t>(h.numel()));
  const void* base = h.storage()->data();
  for_each_offset(h.shape(), h.strides(), h.offset(),
                  [&](int64_t i, int64_t off) { out[i] = load_elem(base, h.dtype(), off); });
  return out;
}

double Tensor::item() const {
  DAN_CHECK(numel() == 1, "item: tensor has {} elements {}, expected exactly 1", numel(),
            shape_str(shape()));
  return to_vector()[0];
}

double Tensor::at(std::initializer_list<int64_t> idx) const {
  DAN_CHECK(static_cast<int64_t>(idx.size()) == dim(), "at: {} indices for a tensor of rank {}",
            idx.size(), dim());
  DAN_CHECK(device().is_cpu(), "at: tensor is on {}, element access needs a CPU tensor", device());
  int64_t off = offset(), d = 0;
  for (int64_t i : idx) {
    DAN_CHECK(i >= 0 && i < shape()[d], "at: index {} out of range for dim {} of size {}", i, d,
              shape()[d]);
    off += i * strides()[d++];
  }
  return load_elem(storage()->data(), dtype(), off);
}

namespace {
void print_rec(std::string& out, const std::vector<double>& v, const Shape& s, size_t d,
               int64_t base, int64_t max_per_dim, bool integral) {
  if (d == s.size()) {
    out += integral ? fmt::format("{}", static_cast<int64_t>(v[base])) : fmt::format("{:.6g}", v[base]);
    return;
  }
  int64_t inner = 1;
  for (size_t k = d + 1; k < s.size(); ++k) inner *= s[k];
  out += "[";
  for (int64_t i = 0; i < s[d]; ++i) {
    if (s[d] > max_per_dim && i == max_per_dim / 2) {
      out += "..., ";
      i = s[d] - max_per_dim / 2 - 1;
      continue;
    }
    print_rec(out, v, s, d + 1, base + i * inner, max_per_dim, integral);
    if (i + 1 < s[d]) out += d + 1 == s.size() ? ", " : ",\n" + std::string(d + 1, ' ');
  }
  out += "]";
}
}  // namespace

std::string Tensor::str(int64_t max_per_dim) const {
  if (!defined()) return "Tensor(undefined)";
  std::string body;
  print_rec(body, to_vector(), shape(), 0, 0, std::max<int64_t>(max_per_dim, 2),
            !is_floating(dtype()));
  return fmt::format("Tensor({}, shape={}, dtype={}, device={}{})", body, shape_str(shape()),
                     dtype(), device(), requires_grad() ? ", requires_grad" : "");
}

// ------------------------------------------------------------------------------------------
namespace raw {

Tensor empty(const Shape& s, DType t, Device d) {
  for (int64_t x : s) DAN_CHECK(x >= 0, "empty: negative dimension in shape {}", shape_str(s));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(d, static_cast<size_t>(numel_of(s)) * dtype_size(t));
  impl->shape = s;
  impl->strides = contiguous_strides(s);
  impl->dtype = t;
  return Tensor(std::move(impl));
}

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Shape infer_shape(const Shape& s, int64_t numel, const char* op) {
  Shape out = s;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DAN_CHECK(infer < 0, "{}: only one dimension can be -1, got {}", op, shape_str(s));
      infer = static_cast<int64_t>(i);
    } else {
      DAN_CHECK(s[i] >= 0, "{}: invalid dimension {} in {}", op, s[i], shape_str(s));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DAN_CHECK(known != 0 && numel % known == 0, "{}: cannot infer -1 in {} for {} elements", op,
              shape_str(s), numel);
    out[infer] = numel / known;
  }
  DAN_CHECK(numel_of(out) == numel, "{}: shape {} is invalid for a tensor of {} elements", op,
            shape_str(s), numel);
  return out;
}

Tensor view(const Tensor& t, const Shape& s_in) {
  const Shape s = infer_shape(s_in, t.numel(), "view");
  // Fold the source into chunks of dims that are mutually contiguous; each target dim run
  // must fall within one chunk (PyTorch's computeStride rule).
  Shape new_strides(s.size());
  if (t.numel() == 0 || t.is_contiguous()) {
    new_strides = contiguous_strides(s);
    return make_view(t, s, new_strides, t.offset());
  }
  int64_t view_d = static_cast<int64_t>(s.size()) - 1;
  int64_t chunk_base_stride = t.strides().empty() ? 1 : t.strides().back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = t.dim() - 1; td >= 0; --td) {
    tensor_numel *= t.shape()[td];
    if (td == 0 || (t.shape()[td - 1] != 1 &&
                    t.strides()[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || s[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= s[view_d];
        --view_d;
      }
      DAN_CHECK(view_numel == tensor_numel,
                "view: shape {} is not compatible with the strides {} of a {} tensor; use "
                "reshape() (copies) instead", shape_str(s), shape_str(t.strides()),
                shape_str(t.shape()));
      if (td > 0) {
        chunk_base_stride = t.strides()[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  DAN_CHECK(view_d == -1, "view: shape {} is not compatible with tensor {}", shape_str(s),
            shape_str(t.shape()));
  return make_view(t, s, new_strides, t.offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  d0 = wrap_dim(d0, t.dim(), "transpose");
  d1 = wrap_dim(d1, t.dim(), "transpose");
  Shape sh = t.shape(), st = t.strides();
  std::swap(sh[d0], sh[d1]);
  std::swap(st[d0], st[d1]);
  return make_view(t, sh, st, t.offset());
}

Tensor permute(const Tensor& t, const Shape& dims) {
  DAN_CHECK(static_cast<int64_t>(dims.size()) == t.dim(),
            "permute: got {} dims {} for a tensor of rank {}", dims.size(), shape_str(dims), t.dim());
  Shape sh(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], t.dim(), "permute");
    DAN_CHECK(!seen[d], "permute: dim {} repeated in {}", d, shape_str(dims));
    seen[d] = true;
    sh[i] = t.shape()[d];
    st[i] = t.strides()[d];
  }
  return make_view(t, sh, st, t.offset());
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = wrap_dim(dim, t.dim(), "slice");
  DAN_CHECK(step > 0, "slice: step must be positive, got {}", step);
  const int64_t n = t.shape()[dim];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = t.shape(), st = t.strides();
  sh[dim] = (end - start + step - 1) / step;
  st[dim] *= step;
  return make_view(t, sh, st, t.offset() + start * t.strides()[dim]);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  dim = wrap_dim(dim, t.dim(), "select");
  const int64_t n = t.shape()[dim];
  DAN_CHECK(index >= -n && index < n, "select: index {} out of range for dim {} of size {}", index,
            dim, n);
  if (index < 0) index += n;
  Shape sh = t.shape(), st = t.strides();
  sh.erase(sh.begin() + dim);
  st.erase(st.begin() + dim);
  return make_view(t, sh, st, t.offset() + index * t.strides()[dim]);
}

Tensor expand(const Tensor& t, const Shape& s) {
  DAN_CHECK(static_cast<int64_t>(s.size()) >= t.dim(),
            "expand: target {} has fewer dims than the tensor {}", shape_str(s), shape_str(t.shape()));
  const int64_t lead = static_cast<int64_t>(s.size()) - t.dim();
  Shape sh(s.size()), st(s.size());
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    const int64_t src = i - lead;
    if (src < 0) {
      DAN_CHECK(s[i] >= 0, "expand: -1 not allowed for a new leading dim in {}", shape_str(s));
      sh[i] = s[i];
      st[i] = 0;
      continue;
    }
    const int64_t cur = t.shape()[src];
    const int64_t want = s[i] == -1 ? cur : s[i];
    DAN_CHECK(cur == want || cur == 1, "expand: cannot expand {} to {} (dim {} is {}, not 1)",
              shape_str(t.shape()), shape_str(s), src, cur);
    sh[i] = want;
    st[i] = cur == want ? t.strides()[src] : 0;
  }
  return make_view(t, sh, st, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "squeeze");
  if (t.dim() == 0 || t.shape()[dim] != 1) return make_view(t, t.shape(), t.strides(), t.offset());
  Shape sh = t.shape(), st = t.strides();
  sh.erase(sh.begin() + dim);
  st.erase(st.begin() + dim);
  return make_view(t, sh, st, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape sh = t.shape(), st = t.strides();
  const int64_t s = dim < t.dim() ? t.shape()[dim] * t.strides()[dim] : 1;
  sh.insert(sh.begin() + dim, 1);
  st.insert(st.begin() + dim, s);
  return make_view(t, sh, st, t.offset());
}

void copy_(const Tensor& dst, const Tensor& src) {
  DAN_CHECK(dst.shape() == src.shape(), "copy_: shapes differ: dst is {}, src is {}",
            shape_str(dst.shape()), shape_str(src.shape()));
  DAN_CHECK(dst.dtype() == src.dtype(), "copy_: dtypes differ: dst is {}, src is {}", dst.dtype(),
            src.dtype());
  const size_t es = dtype_size(src.dtype());
  if (dst.is_contiguous() && src.is_contiguous()) {
    copy_bytes(dst.raw_data(), dst.device(), src.raw_data(), src.device(), dst.nbytes());
    return;
  }
  if (src.device().is_cpu() && dst.device().is_cpu()) {
    // Gather src into a contiguous scratch order, then scatter into dst.
    std::vector<char> buf(dst.nbytes());
    const char* sb = static_cast<const char*>(src.storage()->data());
    for_each_offset(src.shape(), src.strides(), src.offset(), [&](int64_t i, int64_t off) {
      std::memcpy(buf.data() + i * es, sb + off * es, es);
    });
    char* db = static_cast<char*>(dst.storage()->data());
    for_each_offset(dst.shape(), dst.strides(), dst.offset(), [&](int64_t i, int64_t off) {
      std::memcpy(db + off * es, buf.data() + i * es, es);
    });
    return;
  }
  // Cross-device copy: stage the source through a contiguous host buffer. A strided CUDA
  // destination goes through the device copy kernel (kernels::copy_) instead.
  DAN_CHECK(dst.is_contiguous(), "copy_: raw copy into a strided {} tensor is not supported; "
            "use kernels::copy_", dst.device());
  Tensor src_h = contiguous_copy(src, Device::cpu());
  copy_bytes(dst.raw_data(), dst.device(), src_h.raw_data(), Device::cpu(), dst.nbytes());
}

Tensor contiguous_copy(const Tensor& t, Device d) {
  Tensor out = raw::empty(t.shape(), t.dtype(), d);
  if (t.is_contiguous()) {
    copy_bytes(out.raw_data(), d, t.raw_data(), t.device(), t.nbytes());
  } else if (t.device().is_cpu()) {
    Tensor host = d.is_cpu() ? out : raw::empty(t.shape(), t.dtype(), Device::cpu());
    copy_(host, t);
    if (!d.is_cpu()) copy_bytes(out.raw_data(), d, host.raw_data(), Device::cpu(), t.nbytes());
  } else {
    // Strided CUDA source: copy the spanned storage to the host, then gather there.
    auto st = std::make_shared<Storage>(Device::cpu(), t.storage()->nbytes());
    copy_bytes(st->data(), Device::cpu(), t.storage()->data(), t.device(), st->nbytes());
    auto impl = std::make_shared<TensorImpl>(t.impl());
    impl->storage = st;
    impl->grad.reset();
    impl->grad_fn.reset();
    Tensor host_src(impl);
    return contiguous_copy(host_src, d);
  }
  return out;
}

Tensor cast(const Tensor& t, DType to) {
  DAN_CHECK(t.device().is_cpu(), "cast: raw::cast is CPU only, tensor is on {}", t.device());
  Tensor src = t.is_contiguous() ? t : contiguous_copy(t, Device::cpu());
  Tensor out = raw::empty(t.shape(), to, Device::cpu());
  const int64_t n = t.numel();
  DAN_DISPATCH_ALL(src.dtype(), "cast", [&]<typename S>() {
    const S* s = static_cast<const S*>(src.raw_data());
    DAN_DISPATCH_ALL(to, "cast", [&]<typename D>() {
      D* d = static_cast<D*>(out.raw_data());
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
    });
  });
  return out;
}

}  // namespace raw

// ------------------------------------------------------------------------------------------
Tensor empty(const Shape& s, DType t, Device d) { return raw::empty(s, t, d); }

Tensor full(const Shape& s, double value, DType t, Device d) {
  Tensor host = raw::empty(s, t, Device::cpu());
  void* p = host.raw_data();
  const int64_t n = host.numel();
  DAN_DISPATCH_ALL(t, "full", [&]<typename T>() {
    std::fill_n(static_cast<T*>(p), n, static_cast<T>(value));
  });
  return d.is_cpu() ? host : raw::contiguous_copy(host, d);
}

Tensor zeros(const Shape& s, DType t, Device d) { return full(s, 0.0, t, d); }
Tensor ones(const Shape& s, DType t, Device d) { return full(s, 1.0, t, d); }
Tensor scalar_tensor(double v, DType t, Device d) { return full({}, v, t, d); }

Tensor arange(double start, double end, double step, DType t, Device d) {
  DAN_CHECK(step != 0, "arange: step must be non-zero");
  const double span = (end - start) / step;
  const int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * step;
  return from_doubles(v, {n}, t, d);
}

Tensor from_doubles(const std::vector<double>& v, const Shape& s, DType t, Device d) {
  DAN_CHECK(static_cast<int64_t>(v.size()) == numel_of(s),
            "from_vector: {} values for shape {} ({} elements)", v.size(), shape_str(s), numel_of(s));
  Tensor host = raw::empty(s, t, Device::cpu());
  void* p = host.raw_data();
  for (size_t i = 0; i < v.size(); ++i) store_elem(p, t, static_cast<int64_t>(i), v[i]);
  return d.is_cpu() ? host : raw::contiguous_copy(host, d);
}

template <typename T>
Tensor from_vector(const std::vector<T>& v, const Shape& s, Device d) {
  DAN_CHECK(static_cast<int64_t>(v.size()) == numel_of(s),
            "from_vector: {} values for shape {} ({} elements)", v.size(), shape_str(s), numel_of(s));
  Tensor host = raw::empty(s, dtype_of<T>::value, Device::cpu());
  T* p = static_cast<T*>(host.raw_data());
  for (size_t i = 0; i < v.size(); ++i) p[i] = v[i];
  return d.is_cpu() ? host : raw::contiguous_copy(host, d);
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, Device);

}  // namespace dan
