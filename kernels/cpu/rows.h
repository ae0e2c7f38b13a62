// Row-blocked OpenMP scheduling shared by the row-wise CPU kernels (softmax, layer/batch norm).
#pragma once

#include <algorithm>
#include <cstdint>

namespace dan::kernels::cpu {

// Work of at least kParallelMin elements is split across OpenMP threads; a block of rows is
// about kBlockElems elements so that small rows are not scheduled one by one.
inline constexpr int64_t kParallelMin = int64_t{1} << 15;
inline constexpr int64_t kBlockElems = int64_t{1} << 13;

// Calls f(r0, r1) for consecutive blocks of rows [r0, r1) of a rows x d matrix.
template <typename F>
void for_row_blocks(int64_t rows, int64_t d, const F& f) {
  const int64_t block = std::max<int64_t>(1, kBlockElems / std::max<int64_t>(d, 1));
  const int64_t nblocks = (rows + block - 1) / block;
  const bool par = rows * d >= kParallelMin && nblocks > 1;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t r0 = b * block;
    f(r0, std::min(rows, r0 + block));
  }
}

}  // namespace dan::kernels::cpu
