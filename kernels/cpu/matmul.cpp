// CPU matmul and linear on OpenBLAS. Row-major views with unit stride in one dim go to gemm
// as they are (a transposed view becomes CblasTrans), so only odd views pay for a copy.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

// A 2-D operand as BLAS sees it: a row-major matrix, possibly transposed, with leading dim ld.
template <typename T>
struct BlasMat {
  const T* p = nullptr;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int ld = 1;
  int64_t batch_stride = 0;  // 0 when the batch dim broadcasts
};

// Whether a [rows, cols] view with strides (s0, s1) can be handed to gemm without a copy.
// Strides of size-1 dims are meaningless, so they never force a copy.
bool blas_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1, CBLAS_TRANSPOSE* trans,
                 int64_t* ld) {
  if (s1 == 1 || cols <= 1) {
    const int64_t l = rows <= 1 ? std::max<int64_t>(cols, 1) : s0;
    if (l >= std::max<int64_t>(cols, 1) && l <= INT_MAX) {
      *trans = CblasNoTrans;
      *ld = l;
      return true;
    }
  }
  if (s0 == 1 || rows <= 1) {
    const int64_t l = cols <= 1 ? std::max<int64_t>(rows, 1) : s1;
    if (l >= std::max<int64_t>(rows, 1) && l <= INT_MAX) {
      *trans = CblasTrans;
      *ld = l;
      return true;
    }
  }
  return false;
}

// Describes the last two dims of `t` (batched when t is 3-D) for gemm, replacing `t` with a
// contiguous copy first when its layout is not one BLAS accepts.
template <typename T>
BlasMat<T> as_blas(Tensor& t) {
  const int64_t r = t.dim() - 2;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int64_t ld = 1;
  if (!blas_layout(t.size(r), t.size(r + 1), t.stride(r), t.stride(r + 1), &trans, &ld)) {
    t = raw::contiguous_copy(t, Device::cpu());
    const bool ok =
        blas_layout(t.size(r), t.size(r + 1), t.stride(r), t.stride(r + 1), &trans, &ld);
    DAN_CHECK(ok, "matmul: a contiguous {} matrix is not BLAS-compatible", shape_str(t.shape()));
  }
  BlasMat<T> m;
  m.p = static_cast<const T*>(t.raw_data());
  m.trans = trans;
  m.ld = static_cast<int>(ld);
  m.batch_stride = (r == 1 && t.size(0) != 1) ? t.stride(0) : 0;
  return m;
}

void check_blas_dims(int64_t m, int64_t n, int64_t k, const char* op) {
  DAN_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX,
            "{}: dims m={} n={} k={} exceed the BLAS int range", op, m, n, k);
}

// C[m,n] = A[m,k] @ B[k,n] + beta * C (row-major C with leading dim ldc).
template <typename T>
void gemm(const BlasMat<T>& a, const T* ap, const BlasMat<T>& b, const T* bp, int64_t m, int64_t n,
          int64_t k, T beta, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, a.trans, b.trans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, ap, a.ld, bp, b.ld, beta, c, static_cast<int>(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, a.trans, b.trans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0, ap, a.ld, bp, b.ld, beta, c, static_cast<int>(ldc));
  }
}

template <typename T>
Tensor matmul_impl(Tensor a, Tensor b) {
  const bool batched = a.dim() == 3;
  // Batch dims broadcast like NumPy: a 1 takes the other size, even 0.
  const int64_t batch = !batched ? 1 : (a.size(0) == 1 ? b.size(0) : a.size(0));
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Tensor out = batched ? raw::empty({batch, m, n}, a.dtype()) : raw::empty({m, n}, a.dtype());
  if (out.numel() == 0) return out;
  T* c = static_cast<T*>(out.raw_data());
  if (k == 0) {
    std::fill_n(c, out.numel(), T(0));
    return out;
  }
  // A batch dim expanded from 1 (stride 0) is the same matrix repeated: treat it as a
  // broadcast 1, so it is neither copied B times nor multiplied as B separate problems.
  if (batched && a.size(0) > 1 && a.stride(0) == 0) a = raw::slice(a, 0, 0, 1, 1);
  if (batched && b.size(0) > 1 && b.stride(0) == 0) b = raw::slice(b, 0, 0, 1, 1);
  const BlasMat<T> am = as_blas<T>(a);
  const BlasMat<T> bm = as_blas<T>(b);
  // A batch of row-major A's evenly spaced in memory times one shared B is a single tall gemm.
  const bool fold = batch > 1 && bm.batch_stride == 0 && am.trans == CblasNoTrans &&
                    am.batch_stride == m * am.ld && batch * m <= INT_MAX;
  if (batch == 1 || fold) {
    check_blas_dims(batch * m, n, k, "matmul");
    gemm<T>(am, am.p, bm, bm.p, batch * m, n, k, T(0), c, n);
    return out;
  }
  check_blas_dims(m, n, k, "matmul");
  // BLAS threads each call itself, so the batch loop stays serial (see core/threads.h).
  for (int64_t i = 0; i < batch; ++i) {
    gemm<T>(am, am.p + i * am.batch_stride, bm, bm.p + i * bm.batch_stride, m, n, k, T(0),
            c + i * m * n, n);
  }
  return out;
}

template <typename T>
Tensor linear_impl(Tensor x, const Tensor& w, const Tensor& bias) {
  const int64_t rows = x.size(0), in = x.size(1), outf = w.size(0);
  Tensor out = raw::empty({rows, outf}, x.dtype());
  if (out.numel() == 0) return out;
  T* c = static_cast<T*>(out.raw_data());
  // The bias is written into C first and gemm accumulates onto it (beta = 1): no second pass.
  if (bias.defined()) {
    // A unit-stride bias makes each row a plain copy (a strided one is gathered once first).
    std::vector<T> packed;
    const T* bp = static_cast<const T*>(bias.raw_data());
    if (const int64_t bs = bias.stride(0); bs != 1 && outf > 1) {
      packed.resize(static_cast<size_t>(outf));
      for (int64_t j = 0; j < outf; ++j) packed[j] = bp[j * bs];
      bp = packed.data();
    }
#pragma omp parallel for schedule(static) if (rows * outf >= (1 << 18))
    for (int64_t r = 0; r < rows; ++r) std::copy_n(bp, outf, c + r * outf);
  } else if (in == 0) {
    std::fill_n(c, out.numel(), T(0));
  }
  if (in == 0) return out;
  // w^T as a [in, out] view: for a contiguous w this is the Trans layout, no copy.
  Tensor wt = raw::transpose(w, 0, 1);
  const BlasMat<T> xm = as_blas<T>(x);
  const BlasMat<T> wm = as_blas<T>(wt);
  check_blas_dims(rows, outf, in, "linear");
  gemm<T>(xm, xm.p, wm, wm.p, rows, outf, in, bias.defined() ? T(1) : T(0), c, outf);
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  return DAN_DISPATCH_FLOAT(a.dtype(), "matmul",
                            [&]<typename T>() { return matmul_impl<T>(a, b); });
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  return DAN_DISPATCH_FLOAT(x.dtype(), "linear",
                            [&]<typename T>() { return linear_impl<T>(x, w, bias); });
}

}  // namespace dan::kernels::cpu
