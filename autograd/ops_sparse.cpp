// Differentiable sparse ops: each forward is a kernel call (kernels/sparse.h), its backward
// the matching kernels over the same matrix or its cached transpose.
#include "autograd/ops_sparse.h"

#include "kernels/kernels.h"
#include "kernels/sparse.h"

namespace dan {

namespace k = kernels;
using autograd::record;
using autograd::saved;
using Needs = std::vector<bool>;
using Grads = std::vector<Tensor>;

namespace {

// The matrix a backward closure keeps: a itself when its values are constants (so the
// transpose cached on it is reused every step), else the same pattern over a data-only alias
// of the values (no link from the tape back into the values' own graph).
SparseCsr kept(const SparseCsr& a) {
  return autograd::needs_grad(a.values()) ? a.with_values(saved(a.values())) : a;
}

void check_defined(const SparseCsr& a, const char* op) {
  DAN_CHECK(a.defined(), "{}: the sparse matrix is undefined", op);
}

}  // namespace

Tensor spmm(const SparseCsr& a, const Tensor& x) {
  check_defined(a, "spmm");
  Tensor y = k::spmm(a, x);
  const bool values_grad = autograd::needs_grad(a.values());
  return record(
      "spmm", y, {x, a.values()},
      [a = kept(a), x = values_grad ? saved(x) : Tensor()](const Tensor& g, const Needs& n) {
        return Grads{n[0] ? k::spmm_transposed(a, g) : Tensor(),
                     n[1] ? k::sddmm(a, g, x) : Tensor()};
      });
}

Tensor gather_rows(const Tensor& x, const SparseCsr& a, CsrSide side) {
  check_defined(a, "gather_rows");
  DAN_CHECK(x.defined() && x.dim() >= 1, "gather_rows: x must have at least one dim");
  const bool by_col = side == CsrSide::col;
  const int64_t want = by_col ? a.cols() : a.rows();
  DAN_CHECK(x.size(0) == want,
            "gather_rows: x has shape {}, expected {} rows (the {} count of "
            "{})",
            shape_str(x.shape()), want, by_col ? "column" : "row", a.str());
  Tensor y = k::index_select(x, by_col ? a.indices() : a.row_ids());
  return record("gather_rows", y, {x}, [a, by_col](const Tensor& g, const Needs&) {
    return Grads{by_col ? k::segment_sum_cols(a, g) : k::segment_sum(a, g)};
  });
}

Tensor segment_sum(const Tensor& src, const SparseCsr& a) {
  check_defined(a, "segment_sum");
  Tensor y = k::segment_sum(a, src);
  return record("segment_sum", y, {src}, [a](const Tensor& g, const Needs&) {
    return Grads{k::index_select(g, a.row_ids())};
  });
}

Tensor scatter_add(const Tensor& src, const Tensor& index, int64_t dim_size) {
  DAN_CHECK(index.defined() && index.dim() == 1, "scatter_add: index must be 1-D, got {}",
            index.defined() ? shape_str(index.shape()) : std::string("undefined"));
  DAN_CHECK(src.defined() && src.dim() >= 1 && src.size(0) == index.size(0),
            "scatter_add: src must have index's length {} as its first dim, got {}", index.size(0),
            src.defined() ? shape_str(src.shape()) : std::string("undefined"));
  Tensor y = k::index_add(src, index, dim_size);
  return record("scatter_add", y, {src}, [index = saved(index)](const Tensor& g, const Needs&) {
    return Grads{k::index_select(g, index)};
  });
}

Tensor gine_aggregate(const Tensor& x, const Tensor& edge, const SparseCsr& a) {
  check_defined(a, "gine_aggregate");
  Tensor y = k::gine_aggregate(a, x, edge);
  return record("gine_aggregate", y, {x, edge},
                [a, x = saved(x), e = saved(edge)](const Tensor& g, const Needs& n) {
                  const Tensor gm = k::gine_aggregate_backward(a, g, x, e);
                  return Grads{n[0] ? k::segment_sum_cols(a, gm) : Tensor(), n[1] ? gm : Tensor()};
                });
}

}  // namespace dan
