// Tensor: a reference-counted handle to (storage, shape, strides, offset, dtype) plus the
// autograd fields. Copies of a Tensor alias the same data, as in PyTorch.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/storage.h"

namespace dan {

using Shape = std::vector<int64_t>;

namespace autograd {
struct Node;
}

std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t numel_of(const Shape& s);
Shape contiguous_strides(const Shape& s);

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;
  DType dtype = DType::f32;

  // Autograd: a leaf that requires grad accumulates into `grad`; a non-leaf records the
  // node that produced it (grad_fn) and which of that node's outputs it is.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;
  bool retains_grad = false;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t numel() const { return numel_of(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  // Pointer to element 0 of this view (storage base + offset).
  void* raw_data() const;
  template <typename T>
  T* data() const {
    DAN_CHECK(dtype_of<T>::value == dtype(), "data<{}>(): tensor has dtype {}",
              dtype_of<T>::value, dtype());
    return static_cast<T*>(raw_data());
  }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // Element access for tests and small host code (CPU only; strided).
  double item() const;                       // one-element tensor -> double
  double at(std::initializer_list<int64_t> idx) const;
  std::vector<double> to_vector() const;     // any device/dtype -> host doubles, row-major
  template <typename T>
  std::vector<T> to_vector_as() const {
    std::vector<double> v = to_vector();
    return std::vector<T>(v.begin(), v.end());
  }
  std::string str(int64_t max_per_dim = 6) const;  // printing

  // --- autograd fields ----------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad_() { impl().grad.reset(); }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  void set_grad_fn(std::shared_ptr<autograd::Node> fn) { impl().grad_fn = std::move(fn); }
  void retain_grad() { impl().retains_grad = true; }

  // Defined in autograd/ (the tape): differentiable views and transfers as methods, so
  // `x.transpose(0, 1)` records its backward like every other op.
  void backward(const Tensor& grad = Tensor()) const;
  Tensor detach() const;
  Tensor reshape(const Shape& s) const;
  Tensor view(const Shape& s) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor permute(const Shape& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& s) const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(Device d) const;
  Tensor to(DType t) const;

  TensorImpl& impl() const {
    DAN_CHECK(impl_ != nullptr, "tensor: use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Normalizes a possibly negative dim against rank `ndim`; errors name the op.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

// --- raw (non-differentiable) constructors and views: the core vocabulary kernels use ---
namespace raw {
Tensor empty(const Shape& s, DType t = DType::f32, Device d = Device::cpu());
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);
Tensor view(const Tensor& t, const Shape& s);          // requires compatible strides
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor permute(const Tensor& t, const Shape& dims);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step);
Tensor select(const Tensor& t, int64_t dim, int64_t index);
Tensor expand(const Tensor& t, const Shape& s);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);
// Strided copy into a freshly allocated contiguous tensor on `d` (any devices).
Tensor contiguous_copy(const Tensor& t, Device d);
// Copies src into dst elementwise (same shape; any strides/devices; same dtype).
void copy_(const Tensor& dst, const Tensor& src);
Tensor cast(const Tensor& t, DType to);  // CPU dtype conversion (CUDA via kernels)
// Resolves -1 in a target shape and checks the element count.
Shape infer_shape(const Shape& s, int64_t numel, const char* op);
}  // namespace raw

// --- factories (not recording; set requires_grad on the result for leaves) ---
Tensor empty(const Shape& s, DType t = DType::f32, Device d = Device::cpu());
Tensor zeros(const Shape& s, DType t = DType::f32, Device d = Device::cpu());
Tensor ones(const Shape& s, DType t = DType::f32, Device d = Device::cpu());
Tensor full(const Shape& s, double value, DType t = DType::f32, Device d = Device::cpu());
Tensor arange(double start, double end, double step = 1.0, DType t = DType::f32,
              Device d = Device::cpu());
Tensor scalar_tensor(double v, DType t = DType::f32, Device d = Device::cpu());
template <typename T>
Tensor from_vector(const std::vector<T>& v, const Shape& s, Device d = Device::cpu());
Tensor from_doubles(const std::vector<double>& v, const Shape& s, DType t = DType::f32,
                    Device d = Device::cpu());

}  // namespace dan
