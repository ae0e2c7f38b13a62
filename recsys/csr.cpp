#include "recsys/csr.h"

#include <algorithm>
#include <numeric>

namespace dan::recsys {

void Csr::validate(const char* what) const {
  DAN_CHECK(rows >= 0 && cols >= 0, "{}: negative shape {}x{}", what, rows, cols);
  DAN_CHECK(static_cast<int64_t>(indptr.size()) == rows + 1, "{}: indptr has {} entries, expected {}",
            what, indptr.size(), rows + 1);
  DAN_CHECK(indptr[0] == 0 && indptr[rows] == nnz(), "{}: indptr must start at 0 and end at nnz={}",
            what, nnz());
  DAN_CHECK(values.size() == indices.size(), "{}: {} values for {} indices", what, values.size(),
            indices.size());
  for (int64_t r = 0; r < rows; ++r) {
    DAN_CHECK(indptr[r] <= indptr[r + 1], "{}: indptr decreases at row {}", what, r);
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      DAN_CHECK(indices[k] >= 0 && indices[k] < cols, "{}: row {} has column {} outside [0, {})",
                what, r, indices[k], cols);
      DAN_CHECK(k == indptr[r] || indices[k - 1] < indices[k],
                "{}: row {} columns not strictly increasing at entry {}", what, r, k);
    }
  }
}

Csr Csr::transpose() const {
  Csr t;
  t.rows = cols;
  t.cols = rows;
  t.indptr.assign(cols + 1, 0);
  for (int32_t c : indices) ++t.indptr[c + 1];
  std::partial_sum(t.indptr.begin(), t.indptr.end(), t.indptr.begin());
  t.indices.resize(indices.size());
  t.values.resize(values.size());
  std::vector<int64_t> next(t.indptr.begin(), t.indptr.end() - 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      const int64_t dst = next[indices[k]]++;
      t.indices[dst] = static_cast<int32_t>(r);
      t.values[dst] = values[k];
    }
  return t;
}

Csr Csr::from_triplets(int64_t rows, int64_t cols, const std::vector<int32_t>& r,
                       const std::vector<int32_t>& c, const std::vector<float>& v,
                       bool sum_duplicates) {
  DAN_CHECK(r.size() == c.size() && c.size() == v.size(),
            "Csr::from_triplets: {} rows, {} cols, {} values", r.size(), c.size(), v.size());
  std::vector<int64_t> order(r.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return r[a] != r[b] ? r[a] < r[b] : c[a] < c[b];
  });
  Csr m;
  m.rows = rows;
  m.cols = cols;
  m.indptr.assign(rows + 1, 0);
  m.indices.reserve(r.size());
  m.values.reserve(r.size());
  int32_t prev_r = -1, prev_c = -1;
  for (int64_t i : order) {
    DAN_CHECK(r[i] >= 0 && r[i] < rows && c[i] >= 0 && c[i] < cols,
              "Csr::from_triplets: entry ({}, {}) outside a {}x{} matrix", r[i], c[i], rows, cols);
    if (r[i] == prev_r && c[i] == prev_c) {
      DAN_CHECK(sum_duplicates, "Csr::from_triplets: duplicate entry ({}, {})", r[i], c[i]);
      m.values.back() += v[i];
      continue;
    }
    m.indices.push_back(c[i]);
    m.values.push_back(v[i]);
    ++m.indptr[r[i] + 1];
    prev_r = r[i];
    prev_c = c[i];
  }
  std::partial_sum(m.indptr.begin(), m.indptr.end(), m.indptr.begin());
  return m;
}

}  // namespace dan::recsys
