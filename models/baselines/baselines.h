// Baseline recommenders for recsys::evaluate. Each returns a dense score matrix, CPU f32,
// rows = the given users, columns = the given candidate items, to be ranked per row (higher =
// better). User and item indices are those of the train interaction matrix (a users x items
// Csr) unless stated. See models/baselines/README.md for which are warm-only.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "recsys/csr.h"

namespace dan::baselines {

// Uniform [0, 1) noise: element (i, j) is Philox(seed) f32 draw i * cols + j.
Tensor random_scores(int64_t rows, int64_t cols, uint64_t seed);

// Popularity by train interactions: score(u, j) = number of stored entries of column
// cands[j] in `train`, the same for every row. Items without train interactions (cold items)
// all score 0, so on a cold candidate set this is the constant scorer: warm-only.
Tensor popularity_scores(const recsys::Csr& train, int64_t rows, const std::vector<int32_t>& cands);

// Popularity by metadata: score(u, j) = item_value[cands[j]] for every row (e.g.
// log1p(members) from anime.csv). Works for cold items. NaN values are an error naming the
// item: fill missing metadata before calling.
Tensor metadata_scores(const std::vector<float>& item_value, int64_t rows,
                       const std::vector<int32_t>& cands);

// WMF: score(u, j) = U[rows[u]] . V[cands[j]] through kernels::matmul (on U's device; the
// result is copied to the CPU). U [users, r], V [train items, r], both f32: candidates must be
// items WMF was trained on (warm-only).
Tensor wmf_scores(const Tensor& U, const Tensor& V, const std::vector<int32_t>& rows,
                  const std::vector<int32_t>& cands);

// Item-based collaborative filtering ("top-K CF").
struct ItemKnnConfig {
  int64_t neighbours = 50;  // K: neighbours kept per candidate item (>= 1)
  bool binary = true;       // x_ui = 1 for every stored entry; false: x_ui = the stored value
};

// The top-K neighbours of one item: other items i with cosine similarity > 0, ordered by
// similarity descending, then item index ascending (the deterministic tie rule).
struct Neighbours {
  std::vector<int32_t> items;
  std::vector<float> sims;
};

// sim(i, j) = x_i . x_j / (|x_i| |x_j|) over the columns x of `train` (users x items); for each
// of `items`, its top-K neighbours (i != j). Sparse: only items sharing a user are visited.
std::vector<Neighbours> item_neighbours(const recsys::Csr& train, const std::vector<int32_t>& items,
                                        const ItemKnnConfig& cfg = {});

// score(u, j) = sum over u's train items i that are among j's top-K neighbours of
// sim(i, j) * x_ui. Items without train interactions have no neighbours (all 0): warm-only.
Tensor item_knn_scores(const recsys::Csr& train, const std::vector<int32_t>& rows,
                       const std::vector<int32_t>& cands, const ItemKnnConfig& cfg = {});

// Content kNN: features F [items, d] (f32, any device; rows indexed like train's columns).
// profile(u) = mean of F[i] over u's train items (weighted by the stored values when
// `weighted`); score(u, j) = cosine(profile(u), F[cands[j]]) (0 when either vector is zero,
// e.g. a user without train items). Works for cold candidates.
Tensor content_knn_scores(const Tensor& features, const recsys::Csr& train,
                          const std::vector<int32_t>& rows, const std::vector<int32_t>& cands,
                          bool weighted = false);

// Each row z-scored: (x - mean) / std with the population std; a row with std 0 becomes 0.
Tensor zscore_rows(const Tensor& scores);

// w * zscore_rows(a) + (1 - w) * zscore_rows(b); a and b 2-D of the same shape, finite values,
// 0 <= w <= 1.
Tensor blend(const Tensor& a, const Tensor& b, double w);

}  // namespace dan::baselines
