// Differentiable sparse ops for message passing over a SparseCsr (core/sparse.h; rows =
// destination nodes, columns = source nodes). Every forward and backward is deterministic
// (no atomics; kernels/sparse.h). Names recorded on the tape: spmm, gather_rows, segment_sum,
// scatter_add, gine_aggregate.
#pragma once

#include <cstdint>

#include "autograd/ops.h"
#include "core/sparse.h"

namespace dan {

// y [rows, F] = A · x, x [cols, F]. Gradients: dx = Aᵀ · dy through the matrix's cached
// transpose; when A.values() requires grad, dvalues[e] = dy[row(e)] · x[col(e)] (an SDDMM).
Tensor spmm(const SparseCsr& a, const Tensor& x);

// Which endpoint of each entry gather_rows reads: the column (source node) or the row
// (destination node).
enum class CsrSide : uint8_t { col, row };

// Per-entry rows of x: out [nnz, ...] with out[e] = x[col(e)] (side col, x [cols, ...]) or
// x[row(e)] (side row, x [rows, ...]). The backward is a segment sum by column (a scatter-add
// over the sources through the transpose permutation) or by row.
Tensor gather_rows(const Tensor& x, const SparseCsr& a, CsrSide side = CsrSide::col);

// Aggregation at the destinations: out [rows, ...] with out[i] = Σ_{e in row i} src[e],
// src [nnz, ...] in A's storage order. The backward gathers dy by row.
Tensor segment_sum(const Tensor& src, const SparseCsr& a);

// General scatter-add: out [dim_size, ...] = 0, out[index[i]] += src[i] for an unsorted
// index (i32/i64, 1-D, entries in [0, dim_size)); deterministic (kernels::index_add sums
// each row in index order). The backward gathers dy by index.
Tensor scatter_add(const Tensor& src, const Tensor& index, int64_t dim_size);

// GINE's message passing, fused: out [rows, F] with out[i] = Σ_{e in row i}
// relu(x[col(e)] + edge[e]), x [cols, F], edge [nnz, F] (per entry, storage order). Neither
// the messages nor the ReLU mask is kept: the backward recomputes the mask from x and edge.
Tensor gine_aggregate(const Tensor& x, const Tensor& edge, const SparseCsr& a);

}  // namespace dan
