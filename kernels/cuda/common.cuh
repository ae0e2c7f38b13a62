// Shared pieces of the CUDA kernels: launch sizing, strided/broadcast indexing with dim
// merging, the elementwise launcher, warp/block reductions, the device error flag, and host
// helpers (contiguous copies, dtype dispatch) used by every kernels/cuda/*.cu file.
#pragma once

// fmt 9 disables its constexpr support when it sees __NVCC__, and then its C++20 consteval
// format-string checks no longer compile under nvcc. Its constexpr code is fine for nvcc 13.
#ifndef FMT_USE_CONSTEXPR
#define FMT_USE_CONSTEXPR 1
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/cuda/runtime.h"
#include "kernels/kernels.h"

namespace dan::kernels::cuda {

using ::dan::cuda::DeviceGuard;

constexpr int kMaxDims = 8;
constexpr int kBlock = 256;
constexpr unsigned kFullMask = 0xffffffffu;

inline cudaStream_t stream_of(int device) { return ::dan::cuda::current_stream(device); }

// Grid for a grid-stride loop over n items: enough blocks to fill the device several times
// over, no more (the loop covers the rest).
inline unsigned grid_for(int64_t n, int device, int block = kBlock) {
  const int64_t want = (n + block - 1) / block;
  const int64_t cap = int64_t{32} * ::dan::cuda::device_props(device).sm_count;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(want, cap)));
}

inline void require_f32(const Tensor& t, const char* op, const char* what) {
  DAN_CHECK(t.dtype() == DType::f32, "{}: {} must be f32 on CUDA, got {} {}", op, what,
            t.dtype(), shape_str(t.shape()));
}

// ---- strided indexing -------------------------------------------------------------------------
// Offsets (in elements) of N operands for one logical element. Shape and strides travel by
// value as a kernel parameter, after merging dims that are contiguous for every operand.
template <int N>
struct Geometry {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  __device__ __forceinline__ void offsets(int64_t linear, int64_t* off) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t sz = sizes[d];
      const int64_t idx = linear % sz;
      linear /= sz;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += idx * strides[k][d];
    }
  }
};

// Strides of t seen through NumPy broadcasting to `shape` (0 along broadcast dims).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

// Drops size-1 dims and merges neighbours that are contiguous in every operand. `contiguous`
// is set when the result is one dense run with unit stride for all operands.
template <int N>
Geometry<N> make_geometry(const Shape& shape, const std::array<Shape, N>& strides,
                          bool* contiguous) {
  std::vector<int64_t> sz;
  std::vector<std::array<int64_t, N>> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    std::array<int64_t, N> s{};
    for (int k = 0; k < N; ++k) s[k] = strides[k][d];
    bool merge = !sz.empty();
    for (int k = 0; k < N && merge; ++k) merge = st.back()[k] == s[k] * shape[d];
    if (merge) {
      sz.back() *= shape[d];
      st.back() = s;
    } else {
      sz.push_back(shape[d]);
      st.push_back(s);
    }
  }
  DAN_CHECK(sz.size() <= static_cast<size_t>(kMaxDims),
            "cuda elementwise: shape {} needs {} strided dims after merging, at most {} are "
            "supported; make an operand contiguous first", shape_str(shape), sz.size(), kMaxDims);
  bool dense = sz.size() <= 1;
  for (int k = 0; k < N && dense && !sz.empty(); ++k) dense = st[0][k] == 1;
  *contiguous = dense;
  Geometry<N> g;
  g.ndim = static_cast<int>(sz.size());
  for (size_t d = 0; d < sz.size(); ++d) {
    g.sizes[d] = sz[d];
    for (int k = 0; k < N; ++k) g.strides[k][d] = st[d][k];
  }
  return g;
}

// F: __device__ void operator()(int64_t linear_index, const int64_t* offsets) const.
template <int N, typename F>
__global__ void k_elementwise_strided(int64_t n, Geometry<N> g, F f) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t off[N];
    g.offsets(i, off);
    f(i, off);
  }
}

template <int N, typename F>
__global__ void k_elementwise_dense(int64_t n, F f) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = i;
    f(i, off);
  }
}

// Runs f over every element of `shape`; strides[k] are operand k's element strides (already
// broadcast to `shape`). Launches on the device's stream.
template <int N, typename F>
void launch_elementwise(int device, const Shape& shape, const std::array<Shape, N>& strides,
                        const F& f) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  bool dense = false;
  const Geometry<N> g = make_geometry<N>(shape, strides, &dense);
  const unsigned grid = grid_for(n, device);
  if (dense) {
    k_elementwise_dense<N, F><<<grid, kBlock, 0, stream_of(device)>>>(n, f);
  } else {
    k_elementwise_strided<N, F><<<grid, kBlock, 0, stream_of(device)>>>(n, g, f);
  }
  DAN_CUDA_CHECK_LAUNCH();
}

// ---- reductions ---------------------------------------------------------------------------------
struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

// Lane order of the butterfly is fixed, so results are deterministic; every lane gets the total.
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Reduction over the x-dimension of a block (blockDim.x a multiple of 32, blockDim.y == 1).
// `smem` holds 32 Ts; every thread gets the result and smem may be reused right after.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = smem[lane < nwarps ? lane : 0];
    // Lanes past nwarps repeat warp 0's value; only lanes < nwarps take part below.
    for (int o = 16; o > 0; o >>= 1) {
      const T other = __shfl_down_sync(kFullMask, w, o);
      if (lane + o < nwarps) w = op(w, other);
    }
    if (lane == 0) smem[0] = w;
  }
  __syncthreads();
  const T r = smem[0];
  __syncthreads();
  return r;
}

// Row kernels run in one of two shapes: kWarp (blockDim (32, 8): one warp per row, for rows of
// up to kWarpRowLimit elements) or block (blockDim (kRowBlock, 1): one block per row).
constexpr int64_t kWarpRowLimit = 1024;
constexpr int kRowBlock = 256;
constexpr int kWarpRowsPerBlock = 8;

template <bool kWarp>
__device__ __forceinline__ int64_t row_first() {
  return kWarp ? static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y : blockIdx.x;
}
template <bool kWarp>
__device__ __forceinline__ int64_t row_step() {
  return kWarp ? static_cast<int64_t>(gridDim.x) * blockDim.y : gridDim.x;
}
template <bool kWarp, typename T, typename Op>
__device__ __forceinline__ T row_reduce(T v, Op op, T* smem) {
  if constexpr (kWarp) {
    return warp_reduce(v, op);
  } else {
    return block_reduce(v, op, smem);
  }
}

struct RowLaunch {
  bool warp;
  dim3 grid, block;
};
inline RowLaunch row_launch(int64_t rows, int64_t cols, int device) {
  const int64_t cap = int64_t{32} * ::dan::cuda::device_props(device).sm_count;
  if (cols <= kWarpRowLimit) {
    const int64_t blocks = (rows + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock;
    return {true, dim3(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, cap))),
            dim3(32, kWarpRowsPerBlock)};
  }
  return {false, dim3(static_cast<unsigned>(std::clamp<int64_t>(rows, 1, cap))),
          dim3(kRowBlock, 1)};
}

// ---- device error flag ----------------------------------------------------------------------------
// Kernels that find bad input (an index out of range) record it here; the host checks after the
// launch (a synchronizing copy) and throws. slot[0] = 1 when set, slot[1] = an offending value.
class ErrorFlag {
 public:
  explicit ErrorFlag(int device);
  long long* data() const { return static_cast<long long*>(buf_.raw_data()); }
  // Synchronizes the stream; true (and *value) when a kernel raised the flag.
  bool raised(int64_t* value) const;

 private:
  Tensor buf_;
  int device_;
};

__device__ __forceinline__ void raise_flag(long long* flag, long long value) {
  // Any one offending value is enough for the message; the racing plain store is benign.
  flag[1] = value;
  atomicExch(reinterpret_cast<unsigned long long*>(flag), 1ull);
}

// ---- host helpers (elementwise.cu) ----------------------------------------------------------------
// t itself when contiguous, else a contiguous copy on t's device (via the copy kernel).
Tensor contiguous(const Tensor& t);
// dst (any strides) = src (same shape, any strides incl. stride 0), same dtype, same device.
void copy_into(const Tensor& dst, const Tensor& src);

// Calls f.template operator()<T>() with T one of float/int32/int64/bool; f64 is CPU-only.
#define DAN_CUDA_DISPATCH(DT, OPNAME, ...)                                                   \
  [&]() {                                                                                    \
    switch (DT) {                                                                            \
      case ::dan::DType::f32: return (__VA_ARGS__).template operator()<float>();             \
      case ::dan::DType::i32: return (__VA_ARGS__).template operator()<int32_t>();           \
      case ::dan::DType::i64: return (__VA_ARGS__).template operator()<int64_t>();           \
      case ::dan::DType::b8: return (__VA_ARGS__).template operator()<bool>();               \
      default: ::dan::fail("{}: dtype {} is not supported on CUDA (f64 is CPU-only)", OPNAME, DT); \
    }                                                                                        \
  }()

// For pure data movement: calls f.template operator()<U>() with U an unsigned type of the
// element size.
#define DAN_CUDA_DISPATCH_BYTES(DT, OPNAME, ...)                                            \
  [&]() {                                                                                   \
    switch (::dan::dtype_size(DT)) {                                                        \
      case 1: return (__VA_ARGS__).template operator()<uint8_t>();                          \
      case 2: return (__VA_ARGS__).template operator()<uint16_t>();                         \
      case 4: return (__VA_ARGS__).template operator()<uint32_t>();                         \
      case 8: return (__VA_ARGS__).template operator()<uint64_t>();                         \
      default: ::dan::fail("{}: unsupported element size for dtype {}", OPNAME, DT);        \
    }                                                                                       \
  }()

// Device time of f() for choosing between implementations: one warm-up run, then the fastest
// of three timed runs, in ms, between events on the device's stream (each waits for its stop
// event, so this synchronizes; not for use inside graph capture).
template <typename F>
double best_of_three_ms(int device, const F& f) {
  const cudaStream_t st = stream_of(device);
  cudaEvent_t t0{}, t1{};
  DAN_CUDA_CHECK(cudaEventCreate(&t0));
  DAN_CUDA_CHECK(cudaEventCreate(&t1));
  f();
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    DAN_CUDA_CHECK(cudaEventRecord(t0, st));
    f();
    DAN_CUDA_CHECK(cudaEventRecord(t1, st));
    DAN_CUDA_CHECK(cudaEventSynchronize(t1));
    float ms = 0;
    DAN_CUDA_CHECK(cudaEventElapsedTime(&ms, t0, t1));
    best = std::min(best, static_cast<double>(ms));
  }
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  return best;
}

}  // namespace dan::kernels::cuda
