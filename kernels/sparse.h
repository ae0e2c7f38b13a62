// Sparse kernels over a SparseCsr (core/sparse.h): SpMM, its backward pieces (Aᵀ·G through the
// cached transpose, SDDMM for the values' gradient), segment sums over rows or columns, GCN
// degree normalization and the fused GINE message aggregation. None of them uses atomics:
// every output element is summed by one thread in CSR storage order, so results are bitwise
// identical run to run and for any thread count.
//
// dan::kernels::<op> validates and routes by device; dan::kernels::cpu::csr_* (kernels/cpu/
// sparse.cpp, OpenMP over row blocks of balanced work, vectorized over features) and
// dan::kernels::cuda::csr_* (kernels/cuda/sparse.cu) take raw arrays that the dispatcher has
// checked (contiguous, one device, matching sizes). f32 and f64 on the CPU, f32 on CUDA.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sparse.h"
#include "core/tensor.h"

namespace dan::kernels {

// ---- checked entry points ------------------------------------------------------------------
// out [rows, F] = A · x, x [cols, F]. Row i sums its entries in storage order.
Tensor spmm(const SparseCsr& a, const Tensor& x);
// out [cols, F] = Aᵀ · g, g [rows, F], through a.transposed() (built once per matrix).
Tensor spmm_transposed(const SparseCsr& a, const Tensor& g);
// SDDMM on A's pattern: out[e] = g[row(e)] · x[col(e)], [nnz] — the gradient of sum(G ⊙ A·X)
// w.r.t. A's values, g [rows, F], x [cols, F].
Tensor sddmm(const SparseCsr& a, const Tensor& g, const Tensor& x);
// Segment sum by row (the destination): out [rows, ...] with out[i] = Σ_{e in row i} src[e],
// src [nnz, ...] in storage order. Message aggregation without atomics.
Tensor segment_sum(const SparseCsr& a, const Tensor& src);
// Segment sum by column (the source): out [cols, ...] with out[j] = Σ_{e: col(e) = j} src[e],
// through the transpose permutation: a deterministic scatter-add over the source index (the
// backward of gathering x[col(e)]).
Tensor segment_sum_cols(const SparseCsr& a, const Tensor& src);
// GCN normalization of a square A: values d_i^-1/2 · a_ij · d_j^-1/2 with d = row sums of A
// (in-degrees), d^-1/2 = 0 where d = 0 (PyG's inf -> 0). Same pattern, new values.
SparseCsr gcn_norm(const SparseCsr& a);
// Fused GINE aggregation: out [rows, F] with out[i] = Σ_{e in row i} relu(x[col(e)] + edge[e]),
// x [cols, F], edge [nnz, F]; the messages are never materialized.
Tensor gine_aggregate(const SparseCsr& a, const Tensor& x, const Tensor& edge);
// Its backward's per-edge part: out [nnz, F] = g[row(e)] · 1[x[col(e)] + edge[e] > 0]. This is
// the gradient of `edge`; the gradient of x is segment_sum_cols(a, out).
Tensor gine_aggregate_backward(const SparseCsr& a, const Tensor& g, const Tensor& x,
                               const Tensor& edge);

// ---- CUDA SpMM algorithm choice ------------------------------------------------------------
// cusparse: cusparseSpMM (CSR, row-major dense operands, CUSPARSE_SPMM_CSR_ALG2; descriptors
// and work buffers cached per shape). row_split: our kernel, a group of threads per row with
// float4 loads over the features. automatic: the first call of each (device, rows, cols, nnz,
// F, index dtype) times both and caches the faster. The environment variable DAN_SPMM_ALGO
// (auto | cusparse | rowsplit) sets the default; set_spmm_algo overrides it. Both are
// deterministic for a non-transposed A. The CPU ignores the setting.
enum class SpmmAlgo : uint8_t { automatic, cusparse, row_split };
void set_spmm_algo(SpmmAlgo algo);
SpmmAlgo spmm_algo();  // the current setting (DAN_SPMM_ALGO until set_spmm_algo is called)
const char* name(SpmmAlgo algo);

// ---- backends (inputs checked and contiguous; values / index may be undefined) ---------------
// csr_spmm: out [indptr.numel() - 1, F] with out[r] = Σ_{k in row r} v(k) · src[j(k)], where
// j(k) = index[k] (or k when index is undefined) and v(k) = values[k] (or 1).
namespace cpu {
Tensor csr_spmm(const Tensor& indptr, const Tensor& index, const Tensor& values, const Tensor& src);
Tensor csr_sddmm(const Tensor& indptr, const Tensor& indices, const Tensor& g, const Tensor& x);
Tensor csr_gcn_norm(const Tensor& indptr, const Tensor& indices, const Tensor& values);
Tensor csr_gine_aggregate(const Tensor& indptr, const Tensor& indices, const Tensor& x,
                          const Tensor& edge);
Tensor csr_gine_aggregate_backward(const Tensor& indptr, const Tensor& indices, const Tensor& g,
                                   const Tensor& x, const Tensor& edge);
}  // namespace cpu

namespace cuda {
// algo is honoured when index and values are both given (a real SpMM); segment sums always
// run the row-split kernel.
Tensor csr_spmm(const Tensor& indptr, const Tensor& index, const Tensor& values, const Tensor& src,
                SpmmAlgo algo);
Tensor csr_sddmm(const Tensor& indptr, const Tensor& indices, const Tensor& g, const Tensor& x);
Tensor csr_gcn_norm(const Tensor& indptr, const Tensor& indices, const Tensor& values);
Tensor csr_gine_aggregate(const Tensor& indptr, const Tensor& indices, const Tensor& x,
                          const Tensor& edge);
Tensor csr_gine_aggregate_backward(const Tensor& indptr, const Tensor& indices, const Tensor& g,
                                   const Tensor& x, const Tensor& edge);
// One line per cached automatic decision: shape, winner and both timings (for benchmarks).
std::vector<std::string> spmm_decisions();
}  // namespace cuda

}  // namespace dan::kernels
