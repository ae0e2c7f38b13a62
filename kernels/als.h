// Implicit-ALS building blocks (Hu, Koren, Volinsky 2008), CPU and CUDA, dispatched on the
// device of X. One half-step solves, for every row u of the confidence matrix C (CSR, values =
// confidence c_ui > 0, normally >= 1; preference p_ui = 1 on stored entries):
//   (YtY + Y^T (C_u - I) Y + reg I) x_u = Y^T C_u p_u
// given YtY = Y^T Y (f x f, from als_gram below). Rows with no entries get 0. The checked
// entry points validate dtypes, shapes, devices and contiguity, and on the CPU also the CSR
// structure (indptr monotone from 0 to nnz, column indices in range, values finite and > 0).
#pragma once
#include "core/tensor.h"

namespace dan::kernels {

// CSR arrays as tensors on the same device as X: indptr i64 [rows+1], indices i32 [nnz],
// values f32 [nnz].
struct CsrTensors {
  Tensor indptr, indices, values;
  int64_t rows = 0, cols = 0;
};

// Conjugate gradient, `cg_steps` iterations per row, warm-started from the current X (as in
// implicit's CG solver). X [rows x f] is updated in place; Y [cols x f]; YtY [f x f]; all f32,
// contiguous, same device. Any f (1024 factors included).
void als_update_cg(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C, float reg,
                   int cg_steps);

// Exact solve by Cholesky of the f x f system per row. Same arguments.
void als_update_cholesky(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C,
                         float reg);

// The data part of the weighted loss over observed entries,
//   sum_{(u,i) in C} [ c_ui (1 - x_u.y_i)^2 - (x_u.y_i)^2 ],
// and sum_u x_u^T YtY x_u (the dense part, computed without forming X Y^T). Returned in f64.
struct AlsLossParts {
  double observed = 0;  // first sum
  double dense = 0;     // second sum
};
AlsLossParts als_loss_parts(const Tensor& X, const Tensor& Y, const Tensor& YtY,
                            const CsrTensors& C);

// Y^T Y (f x f) for Y [n x f] (f32, contiguous), on Y's device: the Gram matrix a half-step
// needs. CPU: rows are summed in fixed blocks combined in a fixed order (f32 within a block,
// f64 across blocks), so the bits do not depend on the thread count (OpenBLAS's sgemm for this
// tall-skinny product does), and the result is exactly symmetric. CUDA: kernels::matmul.
Tensor als_gram(const Tensor& Y);

// Backends behind the dispatcher (kernels/als.cpp checks arguments, then routes on X's device).
namespace cpu {
void als_update_cg(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C, float reg,
                   int cg_steps);
void als_update_cholesky(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C,
                         float reg);
AlsLossParts als_loss_parts(const Tensor& X, const Tensor& Y, const Tensor& YtY,
                            const CsrTensors& C);
Tensor als_gram(const Tensor& Y);
// The CPU kernels have an AVX2+FMA path (x86-64, picked at run time) and a portable one.
// als_force_portable(true) makes the portable path run even where AVX2 exists, so that tests
// check both on one machine (process-wide; do not flip it while a kernel runs).
void als_force_portable(bool on);
bool als_uses_simd();  // whether the AVX2 path is the one running now
}  // namespace cpu
namespace cuda {  // defined in kernels/cuda/als.cu (CUDA builds only)
void als_update_cg(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C, float reg,
                   int cg_steps);
void als_update_cholesky(Tensor& X, const Tensor& Y, const Tensor& YtY, const CsrTensors& C,
                         float reg);
AlsLossParts als_loss_parts(const Tensor& X, const Tensor& Y, const Tensor& YtY,
                            const CsrTensors& C);
}  // namespace cuda

}  // namespace dan::kernels
