// CUDA index_select, index_add and cat. index_add is deterministic without float atomics:
// the (row, position) pairs of the index are packed into unique 64-bit keys and bitonic-sorted,
// so each output row's contributions form one run in position order; one warp-row of threads
// per output row then sums its run in that fixed order (the CPU's sequential order, in f32).
#include "kernels/cuda/common.cuh"

#include <cstdint>

namespace dan::kernels::cuda {

namespace {

constexpr uint64_t kNoKey = ~uint64_t{0};
constexpr int64_t kSortTile = 2048;  // keys per shared-memory bitonic tile (1024 threads)

template <typename U, typename I>
__global__ void k_index_select(const U* __restrict__ x, const I* __restrict__ idx,
                               U* __restrict__ out, int64_t total, int64_t inner, int64_t rows,
                               long long* flag) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t k = e / inner, j = e - k * inner;
    const int64_t v = static_cast<int64_t>(idx[k]);
    if (v < 0 || v >= rows) {
      raise_flag(flag, v);
      out[e] = U(0);
    } else {
      out[e] = x[v * inner + j];
    }
  }
}

template <typename I>
__global__ void k_build_keys(const I* __restrict__ idx, int64_t n, int64_t n_pad, int64_t rows,
                             uint64_t* __restrict__ keys, long long* flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n_pad;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    uint64_t key = kNoKey;
    if (i < n) {
      const int64_t v = static_cast<int64_t>(idx[i]);
      if (v < 0 || v >= rows) {
        raise_flag(flag, v);
      } else {
        key = (static_cast<uint64_t>(v) << 32) | static_cast<uint64_t>(i);
      }
    }
    keys[i] = key;
  }
}

// Index of the lower element of compare-exchange pair t at distance j (j a power of two).
__device__ __forceinline__ int64_t pair_low(int64_t t, int64_t j) {
  return ((t & ~(j - 1)) << 1) | (t & (j - 1));
}

__device__ __forceinline__ void compare_exchange(uint64_t& a, uint64_t& b, bool ascending) {
  if ((a > b) == ascending) {
    const uint64_t t = a;
    a = b;
    b = t;
  }
}

// Runs the stages (k, j) with j < tile inside shared memory; k_first..k_last are the merge
// sizes to run (the full local sort uses 2..tile, a later merge one k with all its j < tile).
__global__ void k_bitonic_tile(uint64_t* __restrict__ keys, int64_t tile, int64_t k_first,
                               int64_t k_last) {
  __shared__ uint64_t s[kSortTile];
  const int64_t base = blockIdx.x * tile;
  for (int64_t i = threadIdx.x; i < tile; i += blockDim.x) s[i] = keys[base + i];
  __syncthreads();
  for (int64_t k = k_first; k <= k_last; k <<= 1) {
    for (int64_t j = std::min(k, tile) >> 1; j > 0; j >>= 1) {
      for (int64_t t = threadIdx.x; t < tile / 2; t += blockDim.x) {
        const int64_t i = pair_low(t, j);
        compare_exchange(s[i], s[i + j], ((base + i) & k) == 0);
      }
      __syncthreads();
    }
  }
  for (int64_t i = threadIdx.x; i < tile; i += blockDim.x) keys[base + i] = s[i];
}

__global__ void k_bitonic_step(uint64_t* __restrict__ keys, int64_t n_pad, int64_t j, int64_t k) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n_pad / 2;
       t += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = pair_low(t, j);
    compare_exchange(keys[i], keys[i + j], (i & k) == 0);
  }
}

// starts[r] = first position of row r's run in the sorted keys; starts[rows] = n.
__global__ void k_row_starts(const uint64_t* __restrict__ keys, int64_t n, int64_t rows,
                             int64_t* __restrict__ starts) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r <= rows;
       r += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const uint64_t target = static_cast<uint64_t>(r) << 32;
    int64_t lo = 0, hi = n;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (keys[mid] < target) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    starts[r] = r == rows ? n : lo;
  }
}

// threadIdx.y picks an output row, threadIdx.x walks its columns; each sum runs in position
// order, so the bits are fixed.
__global__ void k_index_add_rows(const float* __restrict__ grad, const uint64_t* __restrict__ keys,
                                 const int64_t* __restrict__ starts, float* __restrict__ out,
                                 int64_t rows, int64_t inner) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int64_t lo = starts[r], hi = starts[r + 1];
    for (int64_t j = threadIdx.x; j < inner; j += blockDim.x) {
      float acc = 0.0f;
      for (int64_t p = lo; p < hi; ++p) {
        const int64_t src = static_cast<int64_t>(keys[p] & 0xffffffffu);
        acc = __fadd_rn(acc, grad[src * inner + j]);
      }
      out[r * inner + j] = acc;
    }
  }
}

void sort_keys(uint64_t* keys, int64_t n_pad, int dev) {
  cudaStream_t s = stream_of(dev);
  const int64_t tile = std::min(kSortTile, n_pad);
  const unsigned tiles = static_cast<unsigned>(n_pad / tile);
  const unsigned threads = static_cast<unsigned>(std::max<int64_t>(tile / 2, 1));
  k_bitonic_tile<<<tiles, threads, 0, s>>>(keys, tile, 2, tile);
  DAN_CUDA_CHECK_LAUNCH();
  for (int64_t k = 2 * tile; k <= n_pad; k <<= 1) {
    for (int64_t j = k >> 1; j >= tile; j >>= 1) {
      k_bitonic_step<<<grid_for(n_pad / 2, dev), kBlock, 0, s>>>(keys, n_pad, j, k);
      DAN_CUDA_CHECK_LAUNCH();
    }
    k_bitonic_tile<<<tiles, threads, 0, s>>>(keys, tile, k, k);
    DAN_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

Tensor index_select(const Tensor& x, const Tensor& index) {
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const int64_t rows = x.size(0);
  Shape out_shape = index.shape();
  out_shape.insert(out_shape.end(), x.shape().begin() + 1, x.shape().end());
  Tensor out = raw::empty(out_shape, x.dtype(), x.device());
  const int64_t inner = rows == 0 ? numel_of(Shape(x.shape().begin() + 1, x.shape().end()))
                                  : x.numel() / rows;
  const int64_t total = out.numel();
  if (total == 0) return out;
  Tensor xc = contiguous(x), ic = contiguous(index);
  ErrorFlag flag(dev);
  DAN_CUDA_DISPATCH_BYTES(x.dtype(), "index_select", [&]<typename U>() {
    DAN_DISPATCH_INDEX(index.dtype(), "index_select", [&]<typename I>() {
      k_index_select<U, I><<<grid_for(total, dev), kBlock, 0, stream_of(dev)>>>(
          static_cast<const U*>(xc.raw_data()), static_cast<const I*>(ic.raw_data()),
          static_cast<U*>(out.raw_data()), total, inner, rows, flag.data());
      DAN_CUDA_CHECK_LAUNCH();
    });
  });
  int64_t bad = 0;
  DAN_CHECK(!flag.raised(&bad), "index_select: index {} is out of range for input {} (dim 0 "
            "has size {})", bad, shape_str(x.shape()), rows);
  return out;
}

Tensor index_add(const Tensor& grad, const Tensor& index, int64_t num_rows) {
  require_f32(grad, "index_add", "grad");
  const int dev = grad.device().index;
  DeviceGuard guard(dev);
  const Shape rest(grad.shape().begin() + index.dim(), grad.shape().end());
  const int64_t inner = numel_of(rest);
  Shape out_shape{num_rows};
  out_shape.insert(out_shape.end(), rest.begin(), rest.end());
  Tensor out = raw::empty(out_shape, DType::f32, grad.device());
  const int64_t n = index.numel();
  if (n == 0) {
    fill_(out, 0.0);
    return out;
  }
  DAN_CHECK(n < (int64_t{1} << 32), "index_add: {} indices, at most 2^32 - 1 are supported", n);
  int64_t n_pad = 1;
  while (n_pad < n) n_pad <<= 1;
  Tensor keys = raw::empty({n_pad}, DType::i64, grad.device());
  uint64_t* kp = static_cast<uint64_t*>(keys.raw_data());
  Tensor ic = contiguous(index);
  ErrorFlag flag(dev);
  DAN_DISPATCH_INDEX(index.dtype(), "index_add", [&]<typename I>() {
    k_build_keys<I><<<grid_for(n_pad, dev), kBlock, 0, stream_of(dev)>>>(
        static_cast<const I*>(ic.raw_data()), n, n_pad, num_rows, kp, flag.data());
    DAN_CUDA_CHECK_LAUNCH();
  });
  int64_t bad = 0;
  DAN_CHECK(!flag.raised(&bad), "index_add: index {} is out of range for {} rows (grad {})", bad,
            num_rows, shape_str(grad.shape()));
  if (out.numel() == 0) return out;
  sort_keys(kp, n_pad, dev);
  Tensor starts = raw::empty({num_rows + 1}, DType::i64, grad.device());
  int64_t* sp = static_cast<int64_t*>(starts.raw_data());
  k_row_starts<<<grid_for(num_rows + 1, dev), kBlock, 0, stream_of(dev)>>>(kp, n, num_rows, sp);
  DAN_CUDA_CHECK_LAUNCH();
  Tensor gc = contiguous(grad);
  const int tx = static_cast<int>(std::min<int64_t>(kBlock, (inner + 31) / 32 * 32));
  const int ty = kBlock / tx;
  const int64_t blocks = std::min<int64_t>((num_rows + ty - 1) / ty,
                                           int64_t{32} * ::dan::cuda::device_props(dev).sm_count);
  k_index_add_rows<<<static_cast<unsigned>(std::max<int64_t>(blocks, 1)), dim3(tx, ty), 0,
                     stream_of(dev)>>>(static_cast<const float*>(gc.raw_data()), kp, sp,
                                       static_cast<float*>(out.raw_data()), num_rows, inner);
  DAN_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  const Tensor& a = xs[0];
  DAN_CHECK(a.dim() > 0, "cat: zero-dimensional tensors cannot be concatenated");
  DeviceGuard guard(a.device().index);
  dim = wrap_dim(dim, a.dim(), "cat");
  Shape shape = a.shape();
  shape[dim] = 0;
  for (const Tensor& x : xs) shape[dim] += x.size(dim);
  Tensor out = raw::empty(shape, a.dtype(), a.device());
  int64_t off = 0;
  for (const Tensor& x : xs) {
    const int64_t len = x.size(dim);
    if (x.numel() > 0) copy_into(raw::slice(out, dim, off, off + len, 1), x);
    off += len;
  }
  return out;
}

}  // namespace dan::kernels::cuda
