// Host-side compressed sparse row matrix for interaction data (users x items). Rating and
// confidence matrices live here; the ALS kernels take the same three arrays as tensors.
#pragma once
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace dan::recsys {

struct Csr {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> indptr;   // rows + 1 entries, indptr[0] = 0
  std::vector<int32_t> indices;  // column of each stored entry, sorted within a row
  std::vector<float> values;     // one value per stored entry

  int64_t nnz() const { return static_cast<int64_t>(indices.size()); }
  int64_t row_nnz(int64_t r) const { return indptr[r + 1] - indptr[r]; }

  // Checks the invariants above; throws dan::Error naming `what` and the first violation.
  void validate(const char* what) const;
  // The transpose (cols x rows), rows of the result sorted by column. O(nnz).
  Csr transpose() const;
  // Builds from (row, col, value) triplets; duplicates are an error unless sum_duplicates.
  static Csr from_triplets(int64_t rows, int64_t cols, const std::vector<int32_t>& r,
                           const std::vector<int32_t>& c, const std::vector<float>& v,
                           bool sum_duplicates = false);
};

}  // namespace dan::recsys
