// CUDA random fills and dropout. Element i (row-major logical index of the possibly strided
// tensor) takes its numbers from core/philox.h exactly as the CPU backend does, so uniform,
// bernoulli and dropout give the CPU's bits (normal_ differs in the last bits: CUDA's logf/
// sinf/cosf are not glibc's). The f32 affine maps use explicit _rn intrinsics so nvcc cannot
// contract them into FMAs that the CPU build does not use.
#include "kernels/cuda/common.cuh"

#include "core/philox.h"

namespace dan::kernels::cuda {

namespace {

// lo + (hi - lo) * u in f32 with lo and hi - lo rounded to f32 first, as the CPU does.
struct UniformFn {
  float* out;
  uint64_t seed, offset;
  float lo, range;
  __device__ void operator()(int64_t i, const int64_t* o) const {
    const float u = philox::uniform_f32(seed, offset, static_cast<uint64_t>(i));
    out[o[0]] = __fadd_rn(lo, __fmul_rn(range, u));
  }
};

struct NormalFn {
  float* out;
  uint64_t seed, offset;
  float mean, std;
  __device__ void operator()(int64_t i, const int64_t* o) const {
    const float z = philox::normal_f32(seed, offset, static_cast<uint64_t>(i));
    out[o[0]] = __fadd_rn(mean, __fmul_rn(std, z));
  }
};

template <typename T>
struct BernoulliFn {
  T* out;
  uint64_t seed, offset;
  double p;
  __device__ void operator()(int64_t i, const int64_t* o) const {
    const double u = philox::uniform_f32(seed, offset, static_cast<uint64_t>(i));
    out[o[0]] = static_cast<T>(u < p ? 1 : 0);
  }
};

struct DropoutFn {
  float* y;
  float* mask;
  const float* x;
  uint64_t seed, offset;
  double p;
  float scale;
  __device__ void operator()(int64_t i, const int64_t* o) const {
    const double u = philox::uniform_f32(seed, offset, static_cast<uint64_t>(i));
    const float m = u >= p ? scale : 0.0f;
    mask[o[0]] = m;
    y[o[0]] = __fmul_rn(x[o[1]], m);
  }
};

}  // namespace

void uniform_(const Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  require_f32(t, "uniform_", "tensor");
  const int dev = t.device().index;
  DeviceGuard guard(dev);
  launch_elementwise<1>(dev, t.shape(), {t.strides()},
                        UniformFn{static_cast<float*>(t.raw_data()), seed, offset,
                                  static_cast<float>(lo), static_cast<float>(hi - lo)});
}

void normal_(const Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  require_f32(t, "normal_", "tensor");
  const int dev = t.device().index;
  DeviceGuard guard(dev);
  launch_elementwise<1>(dev, t.shape(), {t.strides()},
                        NormalFn{static_cast<float*>(t.raw_data()), seed, offset,
                                 static_cast<float>(mean), static_cast<float>(std)});
}

void bernoulli_(const Tensor& t, uint64_t seed, uint64_t offset, double p) {
  const int dev = t.device().index;
  DeviceGuard guard(dev);
  DAN_CUDA_DISPATCH(t.dtype(), "bernoulli_", [&]<typename T>() {
    launch_elementwise<1>(dev, t.shape(), {t.strides()},
                          BernoulliFn<T>{static_cast<T*>(t.raw_data()), seed, offset, p});
  });
}

DropoutOut dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  require_f32(x, "dropout", "input");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  DropoutOut out{raw::empty(x.shape(), DType::f32, x.device()),
                 raw::empty(x.shape(), DType::f32, x.device())};
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  launch_elementwise<2>(dev, x.shape(), {out.y.strides(), x.strides()},
                        DropoutFn{static_cast<float*>(out.y.raw_data()),
                                  static_cast<float*>(out.mask.raw_data()),
                                  static_cast<const float*>(x.raw_data()), seed, offset, p, scale});
  return out;
}

}  // namespace dan::kernels::cuda
