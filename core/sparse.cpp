// SparseCsr: validation, host-side construction (two stable counting sorts), transpose,
// symmetrize, remaining self-loops, and the lazily built caches.
#include "core/sparse.h"

#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

namespace dan {

struct SparseCsr::Pattern {
  int64_t rows = 0, cols = 0, nnz = 0;
  Tensor indptr, indices, edge_ids;
  // Lazily built under `mu` (several threads may run backward passes over one graph).
  std::mutex mu;
  Tensor row_ids;
  std::shared_ptr<Pattern> t;  // the transpose's pattern
  Tensor perm;                 // entry k of the transpose is entry perm[k] of this pattern
};

struct SparseCsr::ValueCache {
  std::mutex mu;
  Tensor values_t;  // values gathered by perm: the transpose's values
};

namespace {

// A contiguous CPU tensor with t's values (t itself when it already is one).
Tensor host(const Tensor& t) {
  if (t.device().is_cpu() && t.is_contiguous()) return t;
  return raw::contiguous_copy(t, Device::cpu());
}

// Any 1-D i32/i64 tensor as host int64 values.
std::vector<int64_t> index_values(const Tensor& t) {
  const Tensor h = host(t);
  std::vector<int64_t> v(static_cast<size_t>(h.numel()));
  DAN_DISPATCH_INDEX(h.dtype(), "SparseCsr", [&]<typename I>() {
    const I* p = static_cast<const I*>(h.raw_data());
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(p[i]);
  });
  return v;
}

Tensor index_tensor(const std::vector<int64_t>& v, DType dt, Device d) {
  Tensor h = raw::empty({static_cast<int64_t>(v.size())}, dt, Device::cpu());
  DAN_DISPATCH_INDEX(dt, "SparseCsr", [&]<typename I>() {
    I* p = static_cast<I*>(h.raw_data());
    for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<I>(v[i]);
  });
  return d.is_cpu() ? h : raw::contiguous_copy(h, d);
}

template <typename T>
Tensor value_tensor(const std::vector<T>& v, Device d) {
  return from_vector<T>(v, {static_cast<int64_t>(v.size())}, d);
}

template <typename T>
std::vector<T> float_values(const Tensor& t) {
  const Tensor h = host(t);
  const T* p = static_cast<const T*>(h.raw_data());
  return std::vector<T>(p, p + h.numel());
}

void check_index_dtype(DType dt, const char* op) {
  DAN_CHECK(dt == DType::i32 || dt == DType::i64, "{}: index dtype must be i32 or i64, got {}", op,
            dt);
}

void check_fits(DType dt, int64_t rows, int64_t cols, int64_t nnz, const char* op) {
  if (dt == DType::i64) return;
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  DAN_CHECK(rows <= kMax && cols <= kMax && nnz <= kMax,
            "{}: a {} x {} matrix with {} entries does not fit i32 indices; use index dtype i64",
            op, rows, cols, nnz);
}

void check_values(const Tensor& v, int64_t nnz, Device d, const char* op) {
  DAN_CHECK(v.defined(), "{}: values are an undefined tensor", op);
  DAN_CHECK(is_floating(v.dtype()), "{}: values must be f32 or f64, got {}", op, v.dtype());
  DAN_CHECK(v.dim() == 1 && v.size(0) == nnz, "{}: values have shape {}, expected [{}] (nnz)", op,
            shape_str(v.shape()), nnz);
  DAN_CHECK(v.device() == d, "{}: values are on {}, the pattern is on {}", op, v.device(), d);
  DAN_CHECK(v.dtype() == DType::f32 || d.is_cpu(), "{}: f64 values are supported on the CPU only",
            op);
}

// Host arrays of a CSR before it becomes tensors.
template <typename T>
struct HostCsr {
  std::vector<int64_t> indptr, indices, edge_ids;
  std::vector<T> values;
};

// Entries (r[e], c[e], v[e]) sorted by (row, col, e) with two stable counting sorts (by col,
// then by row), then merged when sum_duplicates: sums run in edge order, so the result does
// not depend on anything but the input.
template <typename T>
HostCsr<T> coo_to_csr(int64_t rows, int64_t cols, const std::vector<int64_t>& r,
                      const std::vector<int64_t>& c, const std::vector<T>& v, bool sum_duplicates,
                      bool keep_ids) {
  const int64_t n = static_cast<int64_t>(r.size());
  std::vector<int64_t> by_col(n), order(n);
  {
    std::vector<int64_t> start(cols + 1, 0);
    for (int64_t e = 0; e < n; ++e) ++start[c[e] + 1];
    for (int64_t j = 0; j < cols; ++j) start[j + 1] += start[j];
    for (int64_t e = 0; e < n; ++e) by_col[start[c[e]]++] = e;
  }
  HostCsr<T> out;
  out.indptr.assign(rows + 1, 0);
  {
    for (int64_t e = 0; e < n; ++e) ++out.indptr[r[e] + 1];
    std::vector<int64_t> start(rows + 1, 0);
    for (int64_t i = 0; i < rows; ++i) start[i + 1] = start[i] + out.indptr[i + 1];
    for (int64_t k = 0; k < n; ++k) {
      const int64_t e = by_col[k];
      order[start[r[e]]++] = e;
    }
  }
  out.indices.reserve(n);
  out.values.reserve(n);
  if (keep_ids) out.edge_ids.reserve(n);
  std::fill(out.indptr.begin(), out.indptr.end(), 0);
  int64_t prev_row = -1, prev_col = -1;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t e = order[k];
    if (sum_duplicates && r[e] == prev_row && c[e] == prev_col) {
      out.values.back() += v[e];
      continue;
    }
    out.indices.push_back(c[e]);
    out.values.push_back(v[e]);
    if (keep_ids) out.edge_ids.push_back(e);
    ++out.indptr[r[e] + 1];
    prev_row = r[e];
    prev_col = c[e];
  }
  for (int64_t i = 0; i < rows; ++i) out.indptr[i + 1] += out.indptr[i];
  return out;
}

std::vector<int64_t> rows_of(const std::vector<int64_t>& indptr) {
  std::vector<int64_t> r(static_cast<size_t>(indptr.back()));
  for (size_t i = 0; i + 1 < indptr.size(); ++i) {
    for (int64_t k = indptr[i]; k < indptr[i + 1]; ++k) r[k] = static_cast<int64_t>(i);
  }
  return r;
}

}  // namespace

// ---- construction ------------------------------------------------------------------------

SparseCsr::SparseCsr(std::shared_ptr<Pattern> p, Tensor values)
    : p_(std::move(p)), values_(std::move(values)), vc_(std::make_shared<ValueCache>()) {}

SparseCsr::SparseCsr(int64_t rows, int64_t cols, Tensor indptr, Tensor indices, Tensor values) {
  const char* op = "SparseCsr";
  DAN_CHECK(rows >= 0 && cols >= 0, "{}: rows and cols must be >= 0, got {} x {}", op, rows, cols);
  DAN_CHECK(indptr.defined() && indices.defined(), "{}: indptr and indices must be defined", op);
  check_index_dtype(indptr.dtype(), op);
  DAN_CHECK(indices.dtype() == indptr.dtype(),
            "{}: indptr is {} but indices are {}; use one "
            "index dtype",
            op, indptr.dtype(), indices.dtype());
  DAN_CHECK(indptr.dim() == 1 && indptr.size(0) == rows + 1,
            "{}: indptr has shape {}, expected [{}] (rows + 1)", op, shape_str(indptr.shape()),
            rows + 1);
  DAN_CHECK(indices.dim() == 1, "{}: indices must be 1-D, got {}", op, shape_str(indices.shape()));
  const Device d = indptr.device();
  DAN_CHECK(indices.device() == d, "{}: indptr is on {}, indices on {}", op, d, indices.device());
  const int64_t nnz = indices.size(0);
  check_values(values, nnz, d, op);
  check_fits(indptr.dtype(), rows, cols, nnz, op);
  const std::vector<int64_t> ip = index_values(indptr), ix = index_values(indices);
  DAN_CHECK(ip[0] == 0, "{}: indptr[0] must be 0, got {}", op, ip[0]);
  for (int64_t i = 0; i < rows; ++i) {
    DAN_CHECK(ip[i + 1] >= ip[i],
              "{}: indptr decreases at row {}: indptr[{}] = {} > indptr[{}] "
              "= {}",
              op, i, i, ip[i], i + 1, ip[i + 1]);
  }
  DAN_CHECK(ip[rows] == nnz, "{}: indptr[{}] = {} but there are {} indices", op, rows, ip[rows],
            nnz);
  for (int64_t k = 0; k < nnz; ++k) {
    DAN_CHECK(ix[k] >= 0 && ix[k] < cols,
              "{}: column index {} at entry {} is out of range for "
              "{} columns",
              op, ix[k], k, cols);
  }
  auto p = std::make_shared<Pattern>();
  p->rows = rows;
  p->cols = cols;
  p->nnz = nnz;
  p->indptr = indptr.is_contiguous() ? indptr : raw::contiguous_copy(indptr, d);
  p->indices = indices.is_contiguous() ? indices : raw::contiguous_copy(indices, d);
  p_ = std::move(p);
  values_ = values.is_contiguous() ? values : raw::contiguous_copy(values, d);
  vc_ = std::make_shared<ValueCache>();
}

SparseCsr SparseCsr::from_coo(const Tensor& row, const Tensor& col, const Tensor& values,
                              int64_t rows, int64_t cols, const CooOptions& opt) {
  const char* op = "SparseCsr::from_coo";
  DAN_CHECK(rows >= 0 && cols >= 0, "{}: rows and cols must be >= 0, got {} x {}", op, rows, cols);
  DAN_CHECK(row.defined() && col.defined(), "{}: row and col must be defined", op);
  check_index_dtype(row.dtype(), op);
  check_index_dtype(col.dtype(), op);
  check_index_dtype(opt.index_dtype, op);
  DAN_CHECK(row.dim() == 1 && col.dim() == 1 && row.size(0) == col.size(0),
            "{}: row and col must be 1-D of one length, got {} and {}", op, shape_str(row.shape()),
            shape_str(col.shape()));
  const int64_t n = row.size(0);
  const Device d = values.defined() ? values.device() : row.device();
  if (values.defined()) check_values(values, n, d, op);
  check_fits(opt.index_dtype, rows, cols, n, op);
  const std::vector<int64_t> r = index_values(row), c = index_values(col);
  for (int64_t e = 0; e < n; ++e) {
    DAN_CHECK(r[e] >= 0 && r[e] < rows,
              "{}: row index {} at position {} is out of range for {} "
              "rows",
              op, r[e], e, rows);
    DAN_CHECK(c[e] >= 0 && c[e] < cols,
              "{}: column index {} at position {} is out of range for "
              "{} columns",
              op, c[e], e, cols);
  }
  const DType vt = values.defined() ? values.dtype() : DType::f32;
  return DAN_DISPATCH_FLOAT(vt, op, [&]<typename T>() {
    const std::vector<T> v =
        values.defined() ? float_values<T>(values) : std::vector<T>(static_cast<size_t>(n), T(1));
    const HostCsr<T> h =
        coo_to_csr<T>(rows, cols, r, c, v, opt.sum_duplicates, !opt.sum_duplicates);
    auto p = std::make_shared<Pattern>();
    p->rows = rows;
    p->cols = cols;
    p->nnz = static_cast<int64_t>(h.indices.size());
    p->indptr = index_tensor(h.indptr, opt.index_dtype, d);
    p->indices = index_tensor(h.indices, opt.index_dtype, d);
    if (!opt.sum_duplicates) p->edge_ids = index_tensor(h.edge_ids, DType::i64, d);
    return SparseCsr(std::move(p), value_tensor(h.values, d));
  });
}

SparseCsr SparseCsr::from_edge_index(const Tensor& edge_index, int64_t num_nodes,
                                     const Tensor& edge_weight, const CooOptions& opt) {
  DAN_CHECK(edge_index.defined() && edge_index.dim() == 2 && edge_index.size(0) == 2,
            "SparseCsr::from_edge_index: edge_index must be [2, E] (sources, targets), got {}",
            edge_index.defined() ? shape_str(edge_index.shape()) : std::string("undefined"));
  // Row 1 (targets) are the CSR rows, row 0 (sources) the columns.
  return from_coo(raw::select(edge_index, 0, 1), raw::select(edge_index, 0, 0), edge_weight,
                  num_nodes, num_nodes, opt);
}

// ---- accessors -----------------------------------------------------------------------------

const SparseCsr::Pattern& SparseCsr::pattern() const {
  DAN_CHECK(p_ != nullptr, "SparseCsr: use of an undefined matrix");
  return *p_;
}
int64_t SparseCsr::rows() const { return pattern().rows; }
int64_t SparseCsr::cols() const { return pattern().cols; }
int64_t SparseCsr::nnz() const { return pattern().nnz; }
DType SparseCsr::index_dtype() const { return pattern().indptr.dtype(); }
Device SparseCsr::device() const { return pattern().indptr.device(); }
const Tensor& SparseCsr::indptr() const { return pattern().indptr; }
const Tensor& SparseCsr::indices() const { return pattern().indices; }
const Tensor& SparseCsr::values() const {
  pattern();
  return values_;
}
const Tensor& SparseCsr::edge_ids() const { return pattern().edge_ids; }

std::string SparseCsr::str() const {
  if (!defined()) return "SparseCsr(undefined)";
  return fmt::format("SparseCsr({} x {}, nnz {}, {}, {}, {})", rows(), cols(), nnz(), index_dtype(),
                     dtype(), device());
}

// ---- caches --------------------------------------------------------------------------------

Tensor SparseCsr::row_ids() const {
  pattern();
  std::lock_guard<std::mutex> lock(p_->mu);
  if (!p_->row_ids.defined()) {
    p_->row_ids = index_tensor(rows_of(index_values(p_->indptr)), index_dtype(), device());
  }
  return p_->row_ids;
}

void SparseCsr::ensure_transpose() const {
  pattern();
  std::lock_guard<std::mutex> lock(p_->mu);
  if (p_->t) return;
  const std::vector<int64_t> ip = index_values(p_->indptr), ix = index_values(p_->indices);
  const int64_t rows = p_->rows, cols = p_->cols, nnz = p_->nnz;
  // Stable counting sort of the entries by column: within a column, entries stay in storage
  // order (by row), so the transpose's rows are sorted.
  std::vector<int64_t> tptr(cols + 1, 0), perm(nnz), tind(nnz);
  for (int64_t k = 0; k < nnz; ++k) ++tptr[ix[k] + 1];
  for (int64_t j = 0; j < cols; ++j) tptr[j + 1] += tptr[j];
  std::vector<int64_t> next(tptr.begin(), tptr.end() - 1);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t k = ip[i]; k < ip[i + 1]; ++k) {
      const int64_t pos = next[ix[k]]++;
      perm[pos] = k;
      tind[pos] = i;
    }
  }
  auto t = std::make_shared<Pattern>();
  t->rows = cols;
  t->cols = rows;
  t->nnz = nnz;
  t->indptr = index_tensor(tptr, index_dtype(), device());
  t->indices = index_tensor(tind, index_dtype(), device());
  p_->perm = index_tensor(perm, index_dtype(), device());
  p_->t = std::move(t);
}

Tensor SparseCsr::transpose_perm() const {
  ensure_transpose();
  std::lock_guard<std::mutex> lock(p_->mu);
  return p_->perm;
}

Tensor SparseCsr::transpose_indptr() const {
  ensure_transpose();
  std::lock_guard<std::mutex> lock(p_->mu);
  return p_->t->indptr;
}

SparseCsr SparseCsr::transposed() const {
  ensure_transpose();
  std::shared_ptr<Pattern> t;
  Tensor perm;
  {
    std::lock_guard<std::mutex> lock(p_->mu);
    t = p_->t;
    perm = p_->perm;
  }
  std::lock_guard<std::mutex> lock(vc_->mu);
  if (!vc_->values_t.defined()) {
    const std::vector<int64_t> pm = index_values(perm);
    const Tensor v = host(values_);
    Tensor vt = raw::empty({p_->nnz}, v.dtype(), Device::cpu());
    DAN_DISPATCH_FLOAT(v.dtype(), "SparseCsr::transposed", [&]<typename T>() {
      const T* src = static_cast<const T*>(v.raw_data());
      T* dst = static_cast<T*>(vt.raw_data());
      for (size_t k = 0; k < pm.size(); ++k) dst[k] = src[pm[k]];
    });
    vc_->values_t = device().is_cpu() ? vt : raw::contiguous_copy(vt, device());
  }
  return SparseCsr(t, vc_->values_t);
}

SparseCsr SparseCsr::with_values(const Tensor& values) const {
  check_values(values, nnz(), device(), "SparseCsr::with_values");
  return SparseCsr(p_, values.is_contiguous() ? values : raw::contiguous_copy(values, device()));
}

SparseCsr SparseCsr::to(Device d) const {
  pattern();
  if (d == device()) return *this;
  auto p = std::make_shared<Pattern>();
  p->rows = p_->rows;
  p->cols = p_->cols;
  p->nnz = p_->nnz;
  p->indptr = raw::contiguous_copy(p_->indptr, d);
  p->indices = raw::contiguous_copy(p_->indices, d);
  if (p_->edge_ids.defined()) p->edge_ids = raw::contiguous_copy(p_->edge_ids, d);
  const Tensor v = raw::contiguous_copy(values_, d);
  check_values(v, p->nnz, d, "SparseCsr::to");
  return SparseCsr(std::move(p), v);
}

// ---- structural operations -----------------------------------------------------------------

SparseCsr SparseCsr::symmetrize() const {
  const char* op = "SparseCsr::symmetrize";
  DAN_CHECK(rows() == cols(), "{}: the matrix must be square, got {} x {}", op, rows(), cols());
  const std::vector<int64_t> r = rows_of(index_values(indptr())), c = index_values(indices());
  std::vector<int64_t> rr(r), cc(c);
  rr.insert(rr.end(), c.begin(), c.end());
  cc.insert(cc.end(), r.begin(), r.end());
  return DAN_DISPATCH_FLOAT(dtype(), op, [&]<typename T>() {
    std::vector<T> v = float_values<T>(values_);
    v.reserve(2 * v.size());
    v.insert(v.end(), v.begin(), v.end());
    const HostCsr<T> h = coo_to_csr<T>(rows(), cols(), rr, cc, v, true, false);
    check_fits(index_dtype(), rows(), cols(), static_cast<int64_t>(h.indices.size()), op);
    auto p = std::make_shared<Pattern>();
    p->rows = rows();
    p->cols = cols();
    p->nnz = static_cast<int64_t>(h.indices.size());
    p->indptr = index_tensor(h.indptr, index_dtype(), device());
    p->indices = index_tensor(h.indices, index_dtype(), device());
    return SparseCsr(std::move(p), value_tensor(h.values, device()));
  });
}

SparseCsr SparseCsr::add_remaining_self_loops(double fill) const {
  const char* op = "SparseCsr::add_remaining_self_loops";
  DAN_CHECK(rows() == cols(), "{}: the matrix must be square, got {} x {}", op, rows(), cols());
  const std::vector<int64_t> ip = index_values(indptr()), ix = index_values(indices());
  return DAN_DISPATCH_FLOAT(dtype(), op, [&]<typename T>() {
    const std::vector<T> v = float_values<T>(values_);
    HostCsr<T> h;
    h.indptr.assign(rows() + 1, 0);
    h.indices.reserve(ix.size() + static_cast<size_t>(rows()));
    h.values.reserve(ix.size() + static_cast<size_t>(rows()));
    for (int64_t i = 0; i < rows(); ++i) {
      bool has_loop = false;
      for (int64_t k = ip[i]; k < ip[i + 1]; ++k) has_loop = has_loop || ix[k] == i;
      bool inserted = has_loop;
      for (int64_t k = ip[i]; k < ip[i + 1]; ++k) {
        if (!inserted && ix[k] > i) {
          h.indices.push_back(i);
          h.values.push_back(static_cast<T>(fill));
          inserted = true;
        }
        h.indices.push_back(ix[k]);
        h.values.push_back(v[k]);
      }
      if (!inserted) {
        h.indices.push_back(i);
        h.values.push_back(static_cast<T>(fill));
      }
      h.indptr[i + 1] = static_cast<int64_t>(h.indices.size());
    }
    check_fits(index_dtype(), rows(), cols(), static_cast<int64_t>(h.indices.size()), op);
    auto p = std::make_shared<Pattern>();
    p->rows = rows();
    p->cols = cols();
    p->nnz = static_cast<int64_t>(h.indices.size());
    p->indptr = index_tensor(h.indptr, index_dtype(), device());
    p->indices = index_tensor(h.indices, index_dtype(), device());
    return SparseCsr(std::move(p), value_tensor(h.values, device()));
  });
}

Tensor SparseCsr::to_dense() const {
  const std::vector<int64_t> ip = index_values(indptr()), ix = index_values(indices());
  Tensor out = zeros({rows(), cols()}, dtype());
  DAN_DISPATCH_FLOAT(dtype(), "SparseCsr::to_dense", [&]<typename T>() {
    const std::vector<T> v = float_values<T>(values_);
    T* o = out.data<T>();
    for (int64_t i = 0; i < rows(); ++i) {
      for (int64_t k = ip[i]; k < ip[i + 1]; ++k) o[i * cols() + ix[k]] += v[k];
    }
  });
  return out;
}

}  // namespace dan
