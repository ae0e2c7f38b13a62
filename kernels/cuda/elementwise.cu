// CUDA elementwise kernels: unary/binary math (f32), comparisons, where/masked_fill/fill_/copy_/
// cast (any CUDA dtype), plus the shared copy helpers. Ops switch on the op code inside the
// kernel (uniform per launch, so no divergence) to keep one instantiation per kernel shape.
#include "kernels/cuda/common.cuh"

#include <cmath>
#include <cstring>

namespace dan::kernels::cuda {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluC = 0.044715f;

__device__ __forceinline__ float apply_unary(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return expf(x);
    case UnaryOp::log: return logf(x);
    case UnaryOp::sqrt: return sqrtf(x);
    case UnaryOp::rsqrt: return 1.0f / sqrtf(x);
    case UnaryOp::abs: return fabsf(x);
    case UnaryOp::relu: return x < 0.0f ? 0.0f : x;  // NaN stays NaN
    case UnaryOp::tanh: return tanhf(x);
    case UnaryOp::sigmoid: return 1.0f / (1.0f + expf(-x));
    case UnaryOp::gelu_erf: return 0.5f * x * (1.0f + erff(x * kInvSqrt2));
    case UnaryOp::gelu_tanh:
      return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kGeluC * x * x * x)));
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return 1.0f / x;
    case UnaryOp::sin: return sinf(x);
    case UnaryOp::cos: return cosf(x);
  }
  return x;
}

// g * f'(x), with y = f(x).
__device__ __forceinline__ float apply_unary_grad(UnaryOp op, float g, float x, float y) {
  switch (op) {
    case UnaryOp::neg: return -g;
    case UnaryOp::exp: return g * y;
    case UnaryOp::log: return g / x;
    case UnaryOp::sqrt: return g / (2.0f * y);
    case UnaryOp::rsqrt: return -0.5f * g * y * y * y;
    case UnaryOp::abs: return x > 0.0f ? g : (x < 0.0f ? -g : 0.0f);
    case UnaryOp::relu: return x > 0.0f ? g : 0.0f;
    case UnaryOp::tanh: return g * (1.0f - y * y);
    case UnaryOp::sigmoid: return g * y * (1.0f - y);
    case UnaryOp::gelu_erf: {
      const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
      const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
      return g * (cdf + x * pdf);
    }
    case UnaryOp::gelu_tanh: {
      const float t = tanhf(kSqrt2OverPi * (x + kGeluC * x * x * x));
      const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluC * x * x);
      return g * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
    case UnaryOp::square: return 2.0f * x * g;
    case UnaryOp::reciprocal: return -g * y * y;
    case UnaryOp::sin: return g * cosf(x);
    case UnaryOp::cos: return -g * sinf(x);
  }
  return g;
}

// NaN-propagating max/min, as PyTorch's maximum/minimum.
__device__ __forceinline__ float apply_binary(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::pow: return powf(a, b);
    case BinaryOp::maximum: return (a != a || a > b) ? a : b;
    case BinaryOp::minimum: return (a != a || a < b) ? a : b;
  }
  return a;
}

template <typename T>
__device__ __forceinline__ bool apply_compare(CompareOp op, T a, T b) {
  switch (op) {
    case CompareOp::eq: return a == b;
    case CompareOp::ne: return a != b;
    case CompareOp::lt: return a < b;
    case CompareOp::le: return a <= b;
    case CompareOp::gt: return a > b;
    case CompareOp::ge: return a >= b;
  }
  return false;
}

// ---- functors: f(linear index, element offsets of [out, in...]) --------------------------------
struct UnaryFn {
  float* out;
  const float* x;
  UnaryOp op;
  __device__ void operator()(int64_t, const int64_t* o) const { out[o[0]] = apply_unary(op, x[o[1]]); }
};

struct UnaryGradFn {
  float* out;
  const float* g;
  const float* x;
  const float* y;  // nullptr: recompute f(x)
  UnaryOp op;
  __device__ void operator()(int64_t, const int64_t* o) const {
    const float xv = x[o[2]];
    const float yv = y != nullptr ? y[o[3]] : apply_unary(op, xv);
    out[o[0]] = apply_unary_grad(op, g[o[1]], xv, yv);
  }
};

struct BinaryFn {
  float* out;
  const float* a;
  const float* b;
  BinaryOp op;
  __device__ void operator()(int64_t, const int64_t* o) const {
    out[o[0]] = apply_binary(op, a[o[1]], b[o[2]]);
  }
};

struct BinaryScalarFn {
  float* out;
  const float* a;
  float s;
  BinaryOp op;
  bool scalar_first;
  __device__ void operator()(int64_t, const int64_t* o) const {
    const float v = a[o[1]];
    out[o[0]] = scalar_first ? apply_binary(op, s, v) : apply_binary(op, v, s);
  }
};

template <typename T>
struct CompareFn {
  bool* out;
  const T* a;
  const T* b;
  CompareOp op;
  __device__ void operator()(int64_t, const int64_t* o) const {
    out[o[0]] = apply_compare<T>(op, a[o[1]], b[o[2]]);
  }
};

// C: the type the comparison happens in (see compare_scalar).
template <typename T, typename C>
struct CompareScalarFn {
  bool* out;
  const T* a;
  C s;
  CompareOp op;
  __device__ void operator()(int64_t, const int64_t* o) const {
    out[o[0]] = apply_compare<C>(op, static_cast<C>(a[o[1]]), s);
  }
};

template <typename U>
struct WhereFn {
  U* out;
  const bool* c;
  const U* a;
  const U* b;
  __device__ void operator()(int64_t, const int64_t* o) const {
    out[o[0]] = c[o[1]] ? a[o[2]] : b[o[3]];
  }
};

template <typename U>
struct MaskedFillFn {
  U* out;
  const U* x;
  const bool* m;
  U v;
  __device__ void operator()(int64_t, const int64_t* o) const { out[o[0]] = m[o[2]] ? v : x[o[1]]; }
};

template <typename U>
struct FillFn {
  U* out;
  U v;
  __device__ void operator()(int64_t, const int64_t* o) const { out[o[0]] = v; }
};

template <typename U>
struct CopyFn {
  U* out;
  const U* src;
  __device__ void operator()(int64_t, const int64_t* o) const { out[o[0]] = src[o[1]]; }
};

template <typename S, typename D>
struct CastFn {
  D* out;
  const S* src;
  __device__ void operator()(int64_t, const int64_t* o) const {
    out[o[0]] = static_cast<D>(src[o[1]]);
  }
};

// ---- float4 fast paths for dense, 16-byte aligned f32 operands -------------------------------------
__global__ void k_unary_vec4(float* __restrict__ out, const float* __restrict__ x, int64_t n,
                             UnaryOp op) {
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t n4 = n / 4;
  for (int64_t i = tid; i < n4; i += stride) {
    float4 v = reinterpret_cast<const float4*>(x)[i];
    v.x = apply_unary(op, v.x);
    v.y = apply_unary(op, v.y);
    v.z = apply_unary(op, v.z);
    v.w = apply_unary(op, v.w);
    reinterpret_cast<float4*>(out)[i] = v;
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride) out[i] = apply_unary(op, x[i]);
}

__global__ void k_binary_vec4(float* __restrict__ out, const float* __restrict__ a,
                              const float* __restrict__ b, int64_t n, BinaryOp op) {
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t n4 = n / 4;
  for (int64_t i = tid; i < n4; i += stride) {
    const float4 u = reinterpret_cast<const float4*>(a)[i];
    const float4 v = reinterpret_cast<const float4*>(b)[i];
    float4 r;
    r.x = apply_binary(op, u.x, v.x);
    r.y = apply_binary(op, u.y, v.y);
    r.z = apply_binary(op, u.z, v.z);
    r.w = apply_binary(op, u.w, v.w);
    reinterpret_cast<float4*>(out)[i] = r;
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride) out[i] = apply_binary(op, a[i], b[i]);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The value `v` converted to dtype T, returned as the raw bits of one element.
template <typename U>
U scalar_bits(DType dt, double v) {
  U bits = 0;
  DAN_CUDA_DISPATCH(dt, "fill", [&]<typename T>() {
    const T tv = static_cast<T>(v);
    if constexpr (sizeof(T) == sizeof(U)) std::memcpy(&bits, &tv, sizeof(U));
  });
  return bits;
}

int dev_of(const Tensor& t) { return t.device().index; }

}  // namespace

// ---- shared helpers -------------------------------------------------------------------------------
Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  const size_t lead = shape.size() - static_cast<size_t>(t.dim());
  for (size_t i = 0; i < static_cast<size_t>(t.dim()); ++i) {
    if (t.shape()[i] != 1) st[lead + i] = t.strides()[i];
  }
  return st;
}

void copy_into(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  DeviceGuard guard(dev_of(dst));
  DAN_CUDA_DISPATCH_BYTES(dst.dtype(), "copy_", [&]<typename U>() {
    launch_elementwise<2>(dev_of(dst), dst.shape(),
                          {dst.strides(), broadcast_strides(src, dst.shape())},
                          CopyFn<U>{static_cast<U*>(dst.raw_data()),
                                    static_cast<const U*>(src.raw_data())});
  });
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  copy_into(out, t);
  return out;
}

ErrorFlag::ErrorFlag(int device)
    : buf_(raw::empty({2}, DType::i64, Device::cuda(device))), device_(device) {
  DAN_CUDA_CHECK(cudaMemsetAsync(buf_.raw_data(), 0, 2 * sizeof(int64_t), stream_of(device)));
}

bool ErrorFlag::raised(int64_t* value) const {
  int64_t host[2] = {0, 0};
  ::dan::cuda::memcpy(host, Device::cpu(), buf_.raw_data(), Device::cuda(device_), sizeof(host));
  if (value != nullptr) *value = host[1];
  return host[0] != 0;
}

// ---- ops ----------------------------------------------------------------------------------------------
Tensor unary(UnaryOp op, const Tensor& x) {
  require_f32(x, name(op), "input");
  const int dev = dev_of(x);
  DeviceGuard guard(dev);
  Tensor out = raw::empty(x.shape(), DType::f32, x.device());
  const int64_t n = x.numel();
  if (n == 0) return out;
  float* o = static_cast<float*>(out.raw_data());
  const float* xp = static_cast<const float*>(x.raw_data());
  if (x.is_contiguous() && aligned16(xp)) {
    k_unary_vec4<<<grid_for((n + 3) / 4, dev), kBlock, 0, stream_of(dev)>>>(o, xp, n, op);
    DAN_CUDA_CHECK_LAUNCH();
    return out;
  }
  launch_elementwise<2>(dev, x.shape(), {out.strides(), x.strides()}, UnaryFn{o, xp, op});
  return out;
}

Tensor unary_backward(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y) {
  require_f32(x, name(op), "input");
  const int dev = dev_of(x);
  DeviceGuard guard(dev);
  Tensor out = raw::empty(x.shape(), DType::f32, x.device());
  const Shape ys = y.defined() ? y.strides() : x.strides();
  launch_elementwise<4>(dev, x.shape(), {out.strides(), grad.strides(), x.strides(), ys},
                        UnaryGradFn{static_cast<float*>(out.raw_data()),
                                    static_cast<const float*>(grad.raw_data()),
                                    static_cast<const float*>(x.raw_data()),
                                    y.defined() ? static_cast<const float*>(y.raw_data()) : nullptr,
                                    op});
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  require_f32(a, name(op), "a");
  const int dev = dev_of(a);
  DeviceGuard guard(dev);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name(op));
  Tensor out = raw::empty(shape, DType::f32, a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  float* o = static_cast<float*>(out.raw_data());
  const float* ap = static_cast<const float*>(a.raw_data());
  const float* bp = static_cast<const float*>(b.raw_data());
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous() && aligned16(ap) &&
      aligned16(bp)) {
    k_binary_vec4<<<grid_for((n + 3) / 4, dev), kBlock, 0, stream_of(dev)>>>(o, ap, bp, n, op);
    DAN_CUDA_CHECK_LAUNCH();
    return out;
  }
  launch_elementwise<3>(dev, shape,
                        {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)},
                        BinaryFn{o, ap, bp, op});
  return out;
}

Tensor binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first) {
  require_f32(a, name(op), "input");
  const int dev = dev_of(a);
  DeviceGuard guard(dev);
  Tensor out = raw::empty(a.shape(), DType::f32, a.device());
  launch_elementwise<2>(dev, a.shape(), {out.strides(), a.strides()},
                        BinaryScalarFn{static_cast<float*>(out.raw_data()),
                                       static_cast<const float*>(a.raw_data()),
                                       static_cast<float>(s), op, scalar_first});
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  const int dev = dev_of(a);
  DeviceGuard guard(dev);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name(op));
  Tensor out = raw::empty(shape, DType::b8, a.device());
  DAN_CUDA_DISPATCH(a.dtype(), name(op), [&]<typename T>() {
    launch_elementwise<3>(dev, shape,
                          {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)},
                          CompareFn<T>{static_cast<bool*>(out.raw_data()),
                                       static_cast<const T*>(a.raw_data()),
                                       static_cast<const T*>(b.raw_data()), op});
  });
  return out;
}

Tensor compare_scalar(CompareOp op, const Tensor& a, double s) {
  const int dev = dev_of(a);
  DeviceGuard guard(dev);
  Tensor out = raw::empty(a.shape(), DType::b8, a.device());
  // As the CPU: a float tensor compares with s rounded to its dtype (x_f32 == 0.1 means 0.1f);
  // integers compare exactly in int64 when s is integral, else in double (2 < 2.5 holds).
  const bool integral_s = s == std::trunc(s) && s >= -0x1p63 && s < 0x1p63;
  DAN_CUDA_DISPATCH(a.dtype(), name(op), [&]<typename T>() {
    auto run = [&]<typename C>() {
      launch_elementwise<2>(dev, a.shape(), {out.strides(), a.strides()},
                            CompareScalarFn<T, C>{static_cast<bool*>(out.raw_data()),
                                                  static_cast<const T*>(a.raw_data()),
                                                  static_cast<C>(s), op});
    };
    if constexpr (std::is_same_v<T, float>) {
      run.template operator()<float>();
    } else if (integral_s) {
      run.template operator()<int64_t>();
    } else {
      run.template operator()<double>();
    }
  });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const int dev = dev_of(a);
  DeviceGuard guard(dev);
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = raw::empty(shape, a.dtype(), a.device());
  DAN_CUDA_DISPATCH_BYTES(a.dtype(), "where", [&]<typename U>() {
    launch_elementwise<4>(dev, shape,
                          {out.strides(), broadcast_strides(cond, shape),
                           broadcast_strides(a, shape), broadcast_strides(b, shape)},
                          WhereFn<U>{static_cast<U*>(out.raw_data()),
                                     static_cast<const bool*>(cond.raw_data()),
                                     static_cast<const U*>(a.raw_data()),
                                     static_cast<const U*>(b.raw_data())});
  });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  const int dev = dev_of(x);
  DeviceGuard guard(dev);
  Tensor out = raw::empty(x.shape(), x.dtype(), x.device());
  DAN_CUDA_DISPATCH_BYTES(x.dtype(), "masked_fill", [&]<typename U>() {
    launch_elementwise<3>(dev, x.shape(),
                          {out.strides(), x.strides(), broadcast_strides(mask, x.shape())},
                          MaskedFillFn<U>{static_cast<U*>(out.raw_data()),
                                          static_cast<const U*>(x.raw_data()),
                                          static_cast<const bool*>(mask.raw_data()),
                                          scalar_bits<U>(x.dtype(), value)});
  });
  return out;
}

void fill_(const Tensor& t, double value) {
  const int dev = dev_of(t);
  DeviceGuard guard(dev);
  DAN_CUDA_DISPATCH_BYTES(t.dtype(), "fill_", [&]<typename U>() {
    launch_elementwise<1>(dev, t.shape(), {t.strides()},
                          FillFn<U>{static_cast<U*>(t.raw_data()), scalar_bits<U>(t.dtype(), value)});
  });
}

void copy_(const Tensor& dst, const Tensor& src) { copy_into(dst, src); }

Tensor cast(const Tensor& x, DType to) {
  const int dev = dev_of(x);
  DeviceGuard guard(dev);
  Tensor out = raw::empty(x.shape(), to, x.device());
  if (to == x.dtype()) {
    copy_into(out, x);
    return out;
  }
  DAN_CUDA_DISPATCH(x.dtype(), "cast", [&]<typename S>() {
    DAN_CUDA_DISPATCH(to, "cast", [&]<typename D>() {
      launch_elementwise<2>(dev, x.shape(), {out.strides(), x.strides()},
                            CastFn<S, D>{static_cast<D*>(out.raw_data()),
                                         static_cast<const S*>(x.raw_data())});
    });
  });
  return out;
}

}  // namespace dan::kernels::cuda
