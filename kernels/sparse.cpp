// Checked entry points of the sparse kernels: validate once here, make the dense operands
// contiguous, then route to the CPU or CUDA backend of the matrix's device.
#include "kernels/sparse.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/kernels.h"

namespace dan::kernels {

namespace {

#ifdef DAN_WITH_CUDA
#define DAN_SPARSE_ROUTE(dev, cpu_call, cuda_call) \
  ((dev).is_cuda() ? cuda::cuda_call : cpu::cpu_call)
#else
#define DAN_SPARSE_ROUTE(dev, cpu_call, cuda_call) cpu::cpu_call
#endif

void check_matrix(const SparseCsr& a, const char* op) {
  DAN_CHECK(a.defined(), "{}: the sparse matrix is undefined", op);
}

// t as a contiguous tensor on its own device (a copy only when it is a strided view).
Tensor contig(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = raw::empty(t.shape(), t.dtype(), t.device());
  copy_(c, t);
  return c;
}

// A dense operand of `a`: floating (f64 on the CPU only), on a's device, 2-D (matrix_only) or
// rank >= 1 with `rows` rows, of the values' dtype when the op multiplies by the values
// (uses_values; segment sums and the GINE kernels use only the pattern); returned contiguous
// and viewed as [rows, F].
Tensor dense_operand(const SparseCsr& a, const Tensor& t, int64_t rows, const char* op,
                     const char* what, const char* rows_name, bool matrix_only, bool uses_values) {
  DAN_CHECK(t.defined(), "{}: {} is an undefined tensor", op, what);
  DAN_CHECK(is_floating(t.dtype()), "{}: {} must be f32 or f64, got {} {}", op, what, t.dtype(),
            shape_str(t.shape()));
  DAN_CHECK(t.dtype() == DType::f32 || t.device().is_cpu(),
            "{}: f64 is supported on the CPU only; {} is on {}", op, what, t.device());
  if (uses_values) {
    DAN_CHECK(t.dtype() == a.dtype(), "{}: {} is {} but the matrix values are {}", op, what,
              t.dtype(), a.dtype());
  }
  DAN_CHECK(t.device() == a.device(), "{}: {} is on {}, the matrix on {}", op, what, t.device(),
            a.device());
  if (matrix_only) {
    DAN_CHECK(t.dim() == 2, "{}: {} must be 2-D [{} = {}, F], got {}", op, what, rows_name, rows,
              shape_str(t.shape()));
  } else {
    DAN_CHECK(t.dim() >= 1, "{}: {} must have a leading dim of {} = {}, got a 0-d tensor", op, what,
              rows_name, rows);
  }
  DAN_CHECK(t.size(0) == rows, "{}: {} has shape {}, expected {} = {} rows ({})", op, what,
            shape_str(t.shape()), rows_name, rows, a.str());
  return raw::view(contig(t), {rows, numel_of(Shape(t.shape().begin() + 1, t.shape().end()))});
}

Shape with_rows(const Tensor& t, int64_t rows) {
  Shape s = t.shape();
  s[0] = rows;
  return s;
}

SpmmAlgo algo_from_env() {
  const char* e = std::getenv("DAN_SPMM_ALGO");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "auto") == 0) return SpmmAlgo::automatic;
  if (std::strcmp(e, "cusparse") == 0) return SpmmAlgo::cusparse;
  if (std::strcmp(e, "rowsplit") == 0) return SpmmAlgo::row_split;
  fail("DAN_SPMM_ALGO: unknown value '{}' (expected auto, cusparse or rowsplit)", e);
}

std::atomic<int>& algo_setting() {
  static std::atomic<int> a{static_cast<int>(algo_from_env())};
  return a;
}

}  // namespace

void set_spmm_algo(SpmmAlgo algo) { algo_setting().store(static_cast<int>(algo)); }
SpmmAlgo spmm_algo() { return static_cast<SpmmAlgo>(algo_setting().load()); }
const char* name(SpmmAlgo algo) {
  switch (algo) {
    case SpmmAlgo::automatic:
      return "auto";
    case SpmmAlgo::cusparse:
      return "cusparse";
    case SpmmAlgo::row_split:
      return "rowsplit";
  }
  return "?";
}

Tensor spmm(const SparseCsr& a, const Tensor& x) {
  check_matrix(a, "spmm");
  const Tensor xc = dense_operand(a, x, a.cols(), "spmm", "x", "cols", true, true);
  return DAN_SPARSE_ROUTE(a.device(), csr_spmm(a.indptr(), a.indices(), a.values(), xc),
                          csr_spmm(a.indptr(), a.indices(), a.values(), xc, spmm_algo()));
}

Tensor spmm_transposed(const SparseCsr& a, const Tensor& g) {
  check_matrix(a, "spmm_transposed");
  const Tensor gc = dense_operand(a, g, a.rows(), "spmm_transposed", "g", "rows", true, true);
  const SparseCsr t = a.transposed();
  return DAN_SPARSE_ROUTE(a.device(), csr_spmm(t.indptr(), t.indices(), t.values(), gc),
                          csr_spmm(t.indptr(), t.indices(), t.values(), gc, spmm_algo()));
}

Tensor sddmm(const SparseCsr& a, const Tensor& g, const Tensor& x) {
  check_matrix(a, "sddmm");
  const Tensor gc = dense_operand(a, g, a.rows(), "sddmm", "g", "rows", true, true);
  const Tensor xc = dense_operand(a, x, a.cols(), "sddmm", "x", "cols", true, true);
  DAN_CHECK(gc.size(1) == xc.size(1), "sddmm: g {} and x {} differ in the feature dim",
            shape_str(g.shape()), shape_str(x.shape()));
  return DAN_SPARSE_ROUTE(a.device(), csr_sddmm(a.indptr(), a.indices(), gc, xc),
                          csr_sddmm(a.indptr(), a.indices(), gc, xc));
}

Tensor segment_sum(const SparseCsr& a, const Tensor& src) {
  check_matrix(a, "segment_sum");
  const Tensor s = dense_operand(a, src, a.nnz(), "segment_sum", "src", "nnz", false, false);
  const Tensor out =
      DAN_SPARSE_ROUTE(a.device(), csr_spmm(a.indptr(), Tensor(), Tensor(), s),
                       csr_spmm(a.indptr(), Tensor(), Tensor(), s, SpmmAlgo::row_split));
  return raw::view(out, with_rows(src, a.rows()));
}

Tensor segment_sum_cols(const SparseCsr& a, const Tensor& src) {
  check_matrix(a, "segment_sum_cols");
  const Tensor s = dense_operand(a, src, a.nnz(), "segment_sum_cols", "src", "nnz", false, false);
  const Tensor tptr = a.transpose_indptr(), perm = a.transpose_perm();
  const Tensor out = DAN_SPARSE_ROUTE(a.device(), csr_spmm(tptr, perm, Tensor(), s),
                                      csr_spmm(tptr, perm, Tensor(), s, SpmmAlgo::row_split));
  return raw::view(out, with_rows(src, a.cols()));
}

SparseCsr gcn_norm(const SparseCsr& a) {
  check_matrix(a, "gcn_norm");
  DAN_CHECK(a.rows() == a.cols(), "gcn_norm: the matrix must be square, got {}", a.str());
  return a.with_values(DAN_SPARSE_ROUTE(a.device(),
                                        csr_gcn_norm(a.indptr(), a.indices(), a.values()),
                                        csr_gcn_norm(a.indptr(), a.indices(), a.values())));
}

Tensor gine_aggregate(const SparseCsr& a, const Tensor& x, const Tensor& edge) {
  check_matrix(a, "gine_aggregate");
  const Tensor xc = dense_operand(a, x, a.cols(), "gine_aggregate", "x", "cols", true, false);
  const Tensor ec = dense_operand(a, edge, a.nnz(), "gine_aggregate", "edge", "nnz", true, false);
  DAN_CHECK(xc.size(1) == ec.size(1) && x.dtype() == edge.dtype(),
            "gine_aggregate: x {} {} and edge {} {} differ in the feature dim or dtype", x.dtype(),
            shape_str(x.shape()), edge.dtype(), shape_str(edge.shape()));
  return DAN_SPARSE_ROUTE(a.device(), csr_gine_aggregate(a.indptr(), a.indices(), xc, ec),
                          csr_gine_aggregate(a.indptr(), a.indices(), xc, ec));
}

Tensor gine_aggregate_backward(const SparseCsr& a, const Tensor& g, const Tensor& x,
                               const Tensor& edge) {
  const char* op = "gine_aggregate_backward";
  check_matrix(a, op);
  const Tensor gc = dense_operand(a, g, a.rows(), op, "g", "rows", true, false);
  const Tensor xc = dense_operand(a, x, a.cols(), op, "x", "cols", true, false);
  const Tensor ec = dense_operand(a, edge, a.nnz(), op, "edge", "nnz", true, false);
  DAN_CHECK(gc.size(1) == xc.size(1) && xc.size(1) == ec.size(1) && g.dtype() == x.dtype() &&
                x.dtype() == edge.dtype(),
            "{}: g {} {}, x {} {} and edge {} {} differ in the feature dim or dtype", op, g.dtype(),
            shape_str(g.shape()), x.dtype(), shape_str(x.shape()), edge.dtype(),
            shape_str(edge.shape()));
  return DAN_SPARSE_ROUTE(a.device(),
                          csr_gine_aggregate_backward(a.indptr(), a.indices(), gc, xc, ec),
                          csr_gine_aggregate_backward(a.indptr(), a.indices(), gc, xc, ec));
}

}  // namespace dan::kernels
