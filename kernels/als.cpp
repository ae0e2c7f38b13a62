// Checked entry points of the implicit-ALS kernels (kernels/als.h): validate dtypes, shapes,
// devices, contiguity and (for host arrays) the CSR structure once here, then route on the
// device of X. Backends may assume everything checked here.
#include "kernels/als.h"

#include <cmath>
#include <string>

#include "kernels/kernels.h"

namespace dan::kernels {

namespace {

void check_tensor(const Tensor& t, const char* op, const char* what, DType want, int64_t ndim) {
  DAN_CHECK(t.defined(), "{}: {} is an undefined tensor", op, what);
  DAN_CHECK(t.dtype() == want, "{}: {} must be {}, got {} (shape {})", op, what, want, t.dtype(),
            shape_str(t.shape()));
  DAN_CHECK(t.dim() == ndim, "{}: {} must be {}-D, got shape {}", op, what, ndim,
            shape_str(t.shape()));
  DAN_CHECK(t.is_contiguous(), "{}: {} must be contiguous (shape {}, strides {})", op, what,
            shape_str(t.shape()), shape_str(t.strides()));
}

void check_device(const Tensor& t, Device d, const char* op, const char* what) {
  DAN_CHECK(t.device() == d, "{}: {} is on {}, X is on {}: all arguments must share X's device",
            op, what, t.device(), d);
}

// The CSR structure (host arrays only: a device-side check would cost a copy per half-step;
// fit_als validates its host matrix before uploading it).
void check_csr_values(const CsrTensors& C, const char* op) {
  const int64_t* indptr = C.indptr.data<int64_t>();
  const int32_t* indices = C.indices.data<int32_t>();
  const float* values = C.values.data<float>();
  const int64_t nnz = C.indices.numel();
  DAN_CHECK(indptr[0] == 0 && indptr[C.rows] == nnz,
            "{}: C.indptr must start at 0 and end at nnz = {}, got {} ... {}", op, nnz, indptr[0],
            indptr[C.rows]);
  for (int64_t r = 0; r < C.rows; ++r) {
    DAN_CHECK(indptr[r] <= indptr[r + 1], "{}: C.indptr decreases at row {} ({} > {})", op, r,
              indptr[r], indptr[r + 1]);
  }
  for (int64_t k = 0; k < nnz; ++k) {
    DAN_CHECK(indices[k] >= 0 && indices[k] < C.cols,
              "{}: C.indices[{}] = {} is outside [0, {}) (C has {} columns)", op, k, indices[k],
              C.cols, C.cols);
    DAN_CHECK(std::isfinite(values[k]) && values[k] > 0,
              "{}: C.values[{}] = {}: confidences must be finite and > 0", op, k, values[k]);
  }
}

// Everything the three entry points share. Returns f.
int64_t check_args(const Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C,
                   const char* op) {
  check_tensor(X, op, "X", DType::f32, 2);
  const Device d = X.device();
  check_tensor(Y, op, "Y", DType::f32, 2);
  check_tensor(YtY, op, "YtY", DType::f32, 2);
  check_device(Y, d, op, "Y");
  check_device(YtY, d, op, "YtY");
  check_tensor(C.indptr, op, "C.indptr", DType::i64, 1);
  check_tensor(C.indices, op, "C.indices", DType::i32, 1);
  check_tensor(C.values, op, "C.values", DType::f32, 1);
  check_device(C.indptr, d, op, "C.indptr");
  check_device(C.indices, d, op, "C.indices");
  check_device(C.values, d, op, "C.values");
  DAN_CHECK(C.rows >= 0 && C.cols >= 0, "{}: C has a negative shape {}x{}", op, C.rows, C.cols);
  DAN_CHECK(C.cols <= (int64_t{1} << 31) - 1, "{}: C has {} columns, more than i32 indices hold",
            op, C.cols);
  const int64_t f = X.size(1);
  DAN_CHECK(f >= 1, "{}: X has shape {}: need at least one factor", op, shape_str(X.shape()));
  DAN_CHECK(X.size(0) == C.rows, "{}: X has shape {} but C has {} rows (expected [{}, {}])", op,
            shape_str(X.shape()), C.rows, C.rows, f);
  DAN_CHECK(Y.size(0) == C.cols && Y.size(1) == f,
            "{}: Y has shape {}, expected [{}, {}] (C's columns x X's factors)", op,
            shape_str(Y.shape()), C.cols, f);
  DAN_CHECK(YtY.size(0) == f && YtY.size(1) == f, "{}: YtY has shape {}, expected [{}, {}]", op,
            shape_str(YtY.shape()), f, f);
  DAN_CHECK(C.indptr.numel() == C.rows + 1, "{}: C.indptr has {} entries, expected rows + 1 = {}",
            op, C.indptr.numel(), C.rows + 1);
  DAN_CHECK(C.values.numel() == C.indices.numel(),
            "{}: C has {} values for {} indices", op, C.values.numel(), C.indices.numel());
  if (d.is_cpu()) check_csr_values(C, op);
  return f;
}

#ifndef DAN_WITH_CUDA
[[noreturn]] void no_cuda(const char* op, Device d) {
  fail("{}: X is on {} but this build has no CUDA backend (built without CUDA)", op, d);
}
#endif

}  // namespace

void als_update_cg(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C, float reg,
                   int cg_steps) {
  constexpr const char* op = "als_update_cg";
  check_args(X, Y, YtY, C, op);
  DAN_CHECK(std::isfinite(reg) && reg >= 0, "{}: reg must be finite and >= 0, got {}", op, reg);
  DAN_CHECK(cg_steps >= 1, "{}: cg_steps must be >= 1, got {}", op, cg_steps);
  if (X.device().is_cuda()) {
#ifdef DAN_WITH_CUDA
    return cuda::als_update_cg(X, Y, YtY, C, reg, cg_steps);
#else
    no_cuda(op, X.device());
#endif
  }
  cpu::als_update_cg(X, Y, YtY, C, reg, cg_steps);
}

void als_update_cholesky(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C,
                         float reg) {
  constexpr const char* op = "als_update_cholesky";
  check_args(X, Y, YtY, C, op);
  DAN_CHECK(std::isfinite(reg) && reg >= 0, "{}: reg must be finite and >= 0, got {}", op, reg);
  if (X.device().is_cuda()) {
#ifdef DAN_WITH_CUDA
    return cuda::als_update_cholesky(X, Y, YtY, C, reg);
#else
    no_cuda(op, X.device());
#endif
  }
  cpu::als_update_cholesky(X, Y, YtY, C, reg);
}

Tensor als_gram(const Tensor& Y) {
  check_tensor(Y, "als_gram", "Y", DType::f32, 2);
  DAN_CHECK(Y.size(1) >= 1, "als_gram: Y has shape {}: need at least one column",
            shape_str(Y.shape()));
  // cuBLAS's GEMM is deterministic for a given device and shape, so CUDA needs no kernel here.
  if (Y.device().is_cuda()) return matmul(raw::transpose(Y, 0, 1), Y);
  return cpu::als_gram(Y);
}

AlsLossParts als_loss_parts(const Tensor& X, const Tensor& Y, const Tensor& YtY,
                            const CsrTensors& C) {
  constexpr const char* op = "als_loss_parts";
  check_args(X, Y, YtY, C, op);
  if (X.device().is_cuda()) {
#ifdef DAN_WITH_CUDA
    return cuda::als_loss_parts(X, Y, YtY, C);
#else
    no_cuda(op, X.device());
#endif
  }
  return cpu::als_loss_parts(X, Y, YtY, C);
}

}  // namespace dan::kernels
