// CPU indexing kernels: index_select (row gather), its deterministic backward index_add, and
// cat. Indices are validated here, before any thread starts.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "kernels/cpu/loops.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

// The index as contiguous int64, every entry checked against [0, rows).
std::vector<int64_t> checked_index(const Tensor& index, int64_t rows, const char* op,
                                   const Tensor& data) {
  std::vector<int64_t> idx(static_cast<size_t>(index.numel()));
  const Tensor c = index.is_contiguous() ? index : raw::contiguous_copy(index, Device::cpu());
  DAN_DISPATCH_INDEX(index.dtype(), op, [&]<typename I>() {
    const I* p = static_cast<const I*>(c.raw_data());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(p[i]);
  });
  for (size_t i = 0; i < idx.size(); ++i) {
    DAN_CHECK(idx[i] >= 0 && idx[i] < rows,
              "{}: index {} (at position {} of index {}) is out of range for {} rows (tensor {})",
              op, idx[i], i, shape_str(index.shape()), rows, shape_str(data.shape()));
  }
  return idx;
}

// Gathers rows whose elements are contiguous: typed by element size so short rows do not go
// through memcpy.
template <typename E>
void gather_rows(E* out, const E* x, int64_t row_stride, const std::vector<int64_t>& idx,
                 int64_t D) {
  const int64_t n = static_cast<int64_t>(idx.size());
#pragma omp parallel for schedule(static) if (n * D >= kParallelNumel)
  for (int64_t i = 0; i < n; ++i) {
    const E* src = x + idx[i] * row_stride;
    E* dst = out + i * D;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) dst[j] = src[j];
  }
}

// out[idx[i]] += g[i] for i in [i0, i1) over columns [c0, c1): index order, so deterministic.
template <typename T>
void scatter_add_cols(T* out, const T* g, const std::vector<int64_t>& idx, int64_t D, int64_t c0,
                      int64_t c1) {
  for (size_t i = 0; i < idx.size(); ++i) {
    T* dst = out + idx[i] * D;
    const T* src = g + static_cast<int64_t>(i) * D;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
  }
}

// out (zeroed, [num_rows, D]) += rows of g scattered by idx.
template <typename T>
void index_add_into(T* o, const T* pg, const std::vector<int64_t>& idx, int64_t D,
                    int64_t num_rows) {
  const int64_t n = static_cast<int64_t>(idx.size());
  const int64_t threads = omp_get_max_threads();
  // Every output element sums its contributions in index order starting from 0, whichever
  // branch runs, so the bits never depend on the branch or the thread count.
  if (n * D < kParallelNumel || threads == 1) {
    scatter_add_cols(o, pg, idx, D, 0, D);
  } else if (D >= 64 * threads) {
    // Wide rows: each thread owns a band of columns (whole cache lines) for all indices.
    const int64_t band = (D + threads - 1) / threads;
    const int64_t width = (band + 15) / 16 * 16;
    const int64_t nb = (D + width - 1) / width;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; ++b) {
      scatter_add_cols(o, pg, idx, D, b * width, std::min(D, (b + 1) * width));
    }
  } else {
    // Narrow rows: bucket the positions by target row (a stable counting sort keeps index
    // order within a bucket), then each thread owns whole output rows.
    std::vector<int64_t> start(num_rows + 1, 0), order(n);
    for (int64_t i = 0; i < n; ++i) ++start[idx[i] + 1];
    std::partial_sum(start.begin(), start.end(), start.begin());
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) order[fill[idx[i]]++] = i;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t r = 0; r < num_rows; ++r) {
      T* dst = o + r * D;
      for (int64_t k = start[r]; k < start[r + 1]; ++k) {
        const T* src = pg + order[k] * D;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) dst[c] += src[c];
      }
    }
  }
}

}  // namespace

Tensor index_select(const Tensor& x, const Tensor& index) {
  const int64_t R = x.shape()[0];
  const std::vector<int64_t> idx = checked_index(index, R, "index_select", x);
  const Shape rest(x.shape().begin() + 1, x.shape().end());
  Shape out_shape = index.shape();
  out_shape.insert(out_shape.end(), rest.begin(), rest.end());
  Tensor out = raw::empty(out_shape, x.dtype());
  const int64_t n = static_cast<int64_t>(idx.size()), D = numel_of(rest);
  if (n == 0 || D == 0) return out;
  const size_t es = dtype_size(x.dtype());
  const Shape rest_strides(x.strides().begin() + 1, x.strides().end());
  const Tensor row0 = raw::make_view(x, rest, rest_strides, x.offset());
  const int64_t row_stride = x.strides()[0];
  if (row0.is_contiguous()) {
    switch (es) {
      case 1:
        gather_rows(static_cast<uint8_t*>(out.raw_data()),
                    static_cast<const uint8_t*>(x.raw_data()), row_stride, idx, D);
        return out;
      case 4:
        gather_rows(static_cast<uint32_t*>(out.raw_data()),
                    static_cast<const uint32_t*>(x.raw_data()), row_stride, idx, D);
        return out;
      case 8:
        gather_rows(static_cast<uint64_t*>(out.raw_data()),
                    static_cast<const uint64_t*>(x.raw_data()), row_stride, idx, D);
        return out;
      default:
        fail("index_select: unsupported dtype {}", x.dtype());
    }
  }
  // Strided rows (e.g. a transposed table): one plan for a row, applied at each selected row.
  char* const out_base = static_cast<char*>(out.raw_data());
  char* const x_base = static_cast<char*>(x.raw_data());
  const Plan<2> plan =
      make_plan<2>(rest, {out_base, x_base}, {contiguous_strides(rest), rest_strides}, {es, es});
  auto gather = [&]<typename E>() {
#pragma omp parallel for schedule(static) if (n * D >= kParallelNumel)
    for (int64_t i = 0; i < n; ++i) {
      const std::array<char*, 2> data{out_base + i * D * static_cast<int64_t>(es),
                                      x_base + idx[i] * row_stride * static_cast<int64_t>(es)};
      for_each_run(plan, data, 0, plan.numel,
                   [](const std::array<char*, 2>& p, const std::array<int64_t, 2>& st, int64_t m) {
                     for (int64_t j = 0; j < m; ++j) {
                       *reinterpret_cast<E*>(p[0] + j * st[0]) =
                           *reinterpret_cast<const E*>(p[1] + j * st[1]);
                     }
                   });
    }
  };
  switch (es) {
    case 1:
      gather.template operator()<uint8_t>();
      break;
    case 4:
      gather.template operator()<uint32_t>();
      break;
    case 8:
      gather.template operator()<uint64_t>();
      break;
    default:
      fail("index_select: unsupported dtype {}", x.dtype());
  }
  return out;
}

Tensor index_add(const Tensor& grad, const Tensor& index, int64_t num_rows) {
  const std::vector<int64_t> idx = checked_index(index, num_rows, "index_add", grad);
  const Shape rest(grad.shape().begin() + index.dim(), grad.shape().end());
  Shape out_shape{num_rows};
  out_shape.insert(out_shape.end(), rest.begin(), rest.end());
  Tensor out = raw::empty(out_shape, grad.dtype());
  std::memset(out.raw_data(), 0, out.nbytes());
  const int64_t n = static_cast<int64_t>(idx.size()), D = numel_of(rest);
  if (n == 0 || D == 0) return out;
  const Tensor g = grad.is_contiguous() ? grad : raw::contiguous_copy(grad, Device::cpu());
  DAN_DISPATCH_FLOAT(grad.dtype(), "index_add", [&]<typename T>() {
    index_add_into<T>(static_cast<T*>(out.raw_data()), static_cast<const T*>(g.raw_data()), idx, D,
                      num_rows);
  });
  return out;
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  DAN_CHECK(xs[0].dim() > 0, "cat: zero-dimensional tensors cannot be concatenated");
  dim = wrap_dim(dim, xs[0].dim(), "cat");
  Shape shape = xs[0].shape();
  shape[dim] = 0;
  for (const Tensor& x : xs) shape[dim] += x.shape()[dim];
  Tensor out = raw::empty(shape, xs[0].dtype());
  // Each input lands in a slice of the output; copy_ handles strided inputs and runs in
  // parallel over large ones.
  int64_t off = 0;
  for (const Tensor& x : xs) {
    const int64_t len = x.shape()[dim];
    if (len > 0 && x.numel() > 0) copy_(raw::slice(out, dim, off, off + len, 1), x);
    off += len;
  }
  return out;
}

}  // namespace dan::kernels::cpu
