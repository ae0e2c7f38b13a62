// SparseCsr: a compressed-sparse-row matrix (indptr, indices, values as tensors on one device),
// the graph representation of the GNN layers, and its host-side construction: from an edge
// list (COO, duplicates summed), transpose, symmetrize, remaining self-loops.
//
// Graph convention: rows are destination nodes and columns source nodes, A[i, j] = the weight
// of the edge j -> i, so that A · X sums the messages each node receives (PyTorch Geometric's
// flow "source_to_target": edge_index[0] = source, edge_index[1] = target). Entries of a row
// are sorted by column when the matrix comes from from_coo / from_edge_index.
//
// A SparseCsr is an immutable value handle: copies share the arrays and the lazily built
// caches (row ids, the transpose), so the transpose that a backward pass needs is computed once
// per matrix. with_values() makes a matrix with the same pattern and new values (it shares the
// pattern's caches). The structural operations run on the host (the arrays of a CUDA matrix
// are copied down and the result copied back up): they are one-time graph preprocessing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace dan {

struct CooOptions {
  // true: entries with the same (row, col) are merged and their values summed (in edge
  // order, so the result is deterministic). false: every edge keeps its own entry, and
  // edge_ids() maps entries back to edge positions (GINEConv's per-edge features need this).
  bool sum_duplicates = true;
  // i32 or i64 for indptr and indices; i32 must hold nnz, rows and cols.
  DType index_dtype = DType::i32;
};

class SparseCsr {
 public:
  SparseCsr() = default;
  // From CSR arrays, all on one device: indptr [rows + 1] and indices [nnz] of one index dtype
  // (i32/i64), values [nnz] f32 or f64 (f64 on the CPU only). Validated: indptr starts at 0,
  // never decreases and ends at nnz; every column index is in [0, cols). Entries of a row need
  // not be sorted and may repeat (spmm sums them in storage order).
  SparseCsr(int64_t rows, int64_t cols, Tensor indptr, Tensor indices, Tensor values);

  // From coordinates: entry e is (row[e], col[e]) with value values[e] (f32/f64; undefined =
  // all ones, f32). row/col are 1-D i32/i64 tensors of one length on any device; the result is
  // on values' device (or row's, without values). Entries are sorted by (row, col, position).
  static SparseCsr from_coo(const Tensor& row, const Tensor& col, const Tensor& values,
                            int64_t rows, int64_t cols, const CooOptions& opt = {});
  // From a PyG edge_index [2, E] (row 0 = source, row 1 = target) over num_nodes nodes:
  // the num_nodes x num_nodes matrix A[target, source] = edge_weight (undefined = ones).
  static SparseCsr from_edge_index(const Tensor& edge_index, int64_t num_nodes,
                                   const Tensor& edge_weight = Tensor(),
                                   const CooOptions& opt = {});

  bool defined() const { return p_ != nullptr; }
  int64_t rows() const;
  int64_t cols() const;
  int64_t nnz() const;
  DType index_dtype() const;
  DType dtype() const { return values().dtype(); }  // of the values
  Device device() const;
  const Tensor& indptr() const;
  const Tensor& indices() const;
  const Tensor& values() const;
  // i64 [nnz]: the position in the source edge list of each entry, when built by from_coo /
  // from_edge_index with sum_duplicates = false; undefined otherwise (and after structural
  // operations that add or merge entries).
  const Tensor& edge_ids() const;
  bool has_edge_ids() const { return edge_ids().defined(); }

  // The row of each entry ([nnz], index dtype, on device()); built once and cached.
  Tensor row_ids() const;
  // Aᵀ as a CSR (entries of a row sorted by position in A, i.e. by column of A when A's rows
  // are sorted), built once per matrix by a stable counting sort and cached. Its values are
  // A's values gathered by transpose_perm() and never record a gradient.
  SparseCsr transposed() const;
  // [nnz], index dtype: entry k of transposed() is entry transpose_perm()[k] of this matrix.
  Tensor transpose_perm() const;
  // [cols + 1]: transposed().indptr() without gathering the values (segment sums by column
  // need only this and transpose_perm()).
  Tensor transpose_indptr() const;

  // Same pattern (and its cached row ids / transpose pattern), new values [nnz] on device().
  // The values may require grad: the differentiable ops (autograd/ops_sparse.h) take it.
  SparseCsr with_values(const Tensor& values) const;
  // Every array copied to `d` (caches are rebuilt there on demand).
  SparseCsr to(Device d) const;

  // A + Aᵀ for a square matrix: the pattern union, values added (a diagonal entry doubles),
  // as PyG's to_undirected(reduce="add"). Index and value dtypes are kept.
  SparseCsr symmetrize() const;
  // Square matrices: every node i gets exactly one diagonal entry. Rows that have diagonal
  // entries keep them (value and count) unchanged; the others get one with value `fill`, at
  // its sorted position. PyG's add_remaining_self_loops(fill_value) on a coalesced edge list.
  SparseCsr add_remaining_self_loops(double fill = 1.0) const;

  // Dense copy [rows, cols] on the CPU in the values' dtype (repeated entries summed); for
  // tests and small debugging.
  Tensor to_dense() const;
  std::string str() const;  // "SparseCsr(30 x 30, nnz 120, i32, f32, cpu)"

 private:
  struct Pattern;
  struct ValueCache;
  SparseCsr(std::shared_ptr<Pattern> p, Tensor values);
  const Pattern& pattern() const;
  // Builds the transpose pattern and perm into p_ (under its lock) if absent.
  void ensure_transpose() const;

  std::shared_ptr<Pattern> p_;
  Tensor values_;
  std::shared_ptr<ValueCache> vc_;  // transposed values, per (pattern, values)
};

}  // namespace dan
