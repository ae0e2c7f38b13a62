// Baseline recommenders: random, popularity (train counts, metadata), WMF dot products,
// item-based CF with sparse cosine similarities, content kNN, and a z-scored blend.
// Every loop that runs in parallel writes disjoint outputs in a fixed order, so the scores do
// not depend on the thread count.
#include "models/baselines/baselines.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/kernels.h"

namespace dan::baselines {

namespace {

constexpr int64_t kParallelMin = int64_t{1} << 14;

void check_indices(const std::vector<int32_t>& idx, int64_t bound, const char* op, const char* what,
                   const char* space) {
  for (size_t i = 0; i < idx.size(); ++i)
    DAN_CHECK(idx[i] >= 0 && idx[i] < bound, "{}: {}[{}] = {} is outside [0, {}) ({})", op, what, i,
              idx[i], bound, space);
}

// Host f32 contiguous copy (or the tensor itself when it already is one).
Tensor host_f32(const Tensor& t, const char* op, const char* what) {
  DAN_CHECK(t.defined(), "{}: {} is undefined", op, what);
  DAN_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, "{}: {} must be f32 or f64, got {}",
            op, what, t.dtype());
  Tensor h = t;
  if (!h.device().is_cpu() || !h.is_contiguous()) h = raw::contiguous_copy(h, Device::cpu());
  if (h.dtype() != DType::f32) h = raw::cast(h, DType::f32);
  return h;
}

// Broadcasts one value per candidate to every row.
Tensor broadcast_rows(const std::vector<float>& per_cand, int64_t rows) {
  const int64_t n = static_cast<int64_t>(per_cand.size());
  Tensor out = empty({rows, n});
  float* o = out.data<float>();
  for (int64_t r = 0; r < rows; ++r) std::copy(per_cand.begin(), per_cand.end(), o + r * n);
  return out;
}

float entry_weight(const recsys::Csr& m, int64_t k, bool binary) {
  return binary ? 1.0f : m.values[k];
}

}  // namespace

Tensor random_scores(int64_t rows, int64_t cols, uint64_t seed) {
  DAN_CHECK(rows >= 0 && cols >= 0, "random_scores: negative shape [{}, {}]", rows, cols);
  Tensor out = empty({rows, cols});
  kernels::uniform_(out, seed, 0, 0.0, 1.0);
  return out;
}

Tensor popularity_scores(const recsys::Csr& train, int64_t rows,
                         const std::vector<int32_t>& cands) {
  train.validate("popularity_scores: train");
  DAN_CHECK(rows >= 0, "popularity_scores: rows = {}, expected >= 0", rows);
  check_indices(cands, train.cols, "popularity_scores", "cands", "items of train");
  std::vector<int64_t> count(static_cast<size_t>(train.cols), 0);
  for (int32_t c : train.indices) ++count[c];
  std::vector<float> per(cands.size());
  for (size_t j = 0; j < cands.size(); ++j) per[j] = static_cast<float>(count[cands[j]]);
  return broadcast_rows(per, rows);
}

Tensor metadata_scores(const std::vector<float>& item_value, int64_t rows,
                       const std::vector<int32_t>& cands) {
  DAN_CHECK(rows >= 0, "metadata_scores: rows = {}, expected >= 0", rows);
  check_indices(cands, static_cast<int64_t>(item_value.size()), "metadata_scores", "cands",
                "items with a value");
  std::vector<float> per(cands.size());
  for (size_t j = 0; j < cands.size(); ++j) {
    per[j] = item_value[cands[j]];
    DAN_CHECK(!std::isnan(per[j]), "metadata_scores: the value of item {} (cands[{}]) is NaN",
              cands[j], j);
  }
  return broadcast_rows(per, rows);
}

Tensor wmf_scores(const Tensor& U, const Tensor& V, const std::vector<int32_t>& rows,
                  const std::vector<int32_t>& cands) {
  DAN_CHECK(U.defined() && V.defined(), "wmf_scores: U or V is undefined");
  DAN_CHECK(U.dim() == 2 && V.dim() == 2 && U.size(1) == V.size(1),
            "wmf_scores: expected U [users, r] and V [items, r], got U {} and V {}",
            shape_str(U.shape()), shape_str(V.shape()));
  DAN_CHECK(U.dtype() == DType::f32 && V.dtype() == DType::f32 && U.device() == V.device(),
            "wmf_scores: U and V must be f32 on one device, got U {} on {}, V {} on {}", U.dtype(),
            U.device(), V.dtype(), V.device());
  check_indices(rows, U.size(0), "wmf_scores", "rows", "rows of U");
  check_indices(cands, V.size(0), "wmf_scores", "cands", "rows of V: WMF scores warm items only");
  const Device dev = U.device();
  const Tensor ri = from_vector(rows, {static_cast<int64_t>(rows.size())}, dev);
  const Tensor ci = from_vector(cands, {static_cast<int64_t>(cands.size())}, dev);
  const Tensor Ur = kernels::index_select(U, ri);
  const Tensor Vc = kernels::index_select(V, ci);
  Tensor s = kernels::matmul(Ur, raw::transpose(Vc, 0, 1));
  if (!s.device().is_cpu()) s = raw::contiguous_copy(s, Device::cpu());
  return s;
}

std::vector<Neighbours> item_neighbours(const recsys::Csr& train, const std::vector<int32_t>& items,
                                        const ItemKnnConfig& cfg) {
  train.validate("item_neighbours: train");
  DAN_CHECK(cfg.neighbours >= 1, "item_neighbours: neighbours = {}, expected >= 1", cfg.neighbours);
  check_indices(items, train.cols, "item_neighbours", "items", "items of train");
  const recsys::Csr cols = train.transpose();  // items x users
  std::vector<double> norm(static_cast<size_t>(train.cols), 0.0);
  for (int64_t i = 0; i < cols.rows; ++i) {
    double s = 0;
    for (int64_t k = cols.indptr[i]; k < cols.indptr[i + 1]; ++k) {
      const double x = entry_weight(cols, k, cfg.binary);
      s += x * x;
    }
    norm[i] = std::sqrt(s);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  std::vector<Neighbours> out(items.size());
#pragma omp parallel if (train.nnz() * n >= kParallelMin)
  {
    std::vector<double> dot(static_cast<size_t>(train.cols), 0.0);
    std::vector<int32_t> touched;
    std::vector<std::pair<float, int32_t>> cand;
#pragma omp for schedule(dynamic, 16)
    for (int64_t q = 0; q < n; ++q) {
      const int32_t j = items[q];
      if (norm[j] == 0) continue;
      // x_j . x_i for every item i sharing a user with j: sparse x sparse-transpose, one row.
      touched.clear();
      for (int64_t k = cols.indptr[j]; k < cols.indptr[j + 1]; ++k) {
        const int32_t u = cols.indices[k];
        const double xuj = entry_weight(cols, k, cfg.binary);
        for (int64_t l = train.indptr[u]; l < train.indptr[u + 1]; ++l) {
          const int32_t i = train.indices[l];
          if (dot[i] == 0) touched.push_back(i);
          dot[i] += xuj * entry_weight(train, l, cfg.binary);
        }
      }
      // A dot product may return to exactly 0 with signed values; `touched` may then hold an
      // item twice, so duplicates are dropped after sorting.
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      cand.clear();
      for (int32_t i : touched) {
        const double sim = dot[i] / (norm[i] * norm[j]);
        dot[i] = 0;
        if (i != j && sim > 0) cand.emplace_back(static_cast<float>(sim), i);
      }
      auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      };
      const size_t keep = std::min(cand.size(), static_cast<size_t>(cfg.neighbours));
      std::partial_sort(cand.begin(), cand.begin() + static_cast<int64_t>(keep), cand.end(),
                        better);
      Neighbours& nb = out[q];
      for (size_t t = 0; t < keep; ++t) {
        nb.items.push_back(cand[t].second);
        nb.sims.push_back(cand[t].first);
      }
    }
  }
  return out;
}

Tensor item_knn_scores(const recsys::Csr& train, const std::vector<int32_t>& rows,
                       const std::vector<int32_t>& cands, const ItemKnnConfig& cfg) {
  check_indices(rows, train.rows, "item_knn_scores", "rows", "users of train");
  const std::vector<Neighbours> nbs = item_neighbours(train, cands, cfg);
  // Each requested user gets a slot; a user listed twice shares one.
  std::vector<int32_t> slot(static_cast<size_t>(train.rows), -1);
  int32_t nslots = 0;
  for (int32_t r : rows)
    if (slot[r] < 0) slot[r] = nslots++;
  const recsys::Csr cols = train.transpose();
  const int64_t nc = static_cast<int64_t>(cands.size()), nr = static_cast<int64_t>(rows.size());
  // Per candidate (one thread each): scatter sim(i, j) x_ui over the users u of each
  // neighbour i, in neighbour order, into that candidate's own row of `acc`.
  std::vector<float> per_slot(static_cast<size_t>(nc) * nslots, 0.0f);
#pragma omp parallel if (nc * std::max <int64_t>(nslots, 1) >= kParallelMin)
  {
    std::vector<double> acc(static_cast<size_t>(nslots), 0.0);
#pragma omp for schedule(dynamic, 16)
    for (int64_t j = 0; j < nc; ++j) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const Neighbours& nb = nbs[j];
      for (size_t t = 0; t < nb.items.size(); ++t) {
        const int32_t i = nb.items[t];
        for (int64_t k = cols.indptr[i]; k < cols.indptr[i + 1]; ++k)
          if (const int32_t s = slot[cols.indices[k]]; s >= 0)
            acc[s] += static_cast<double>(nb.sims[t]) * entry_weight(cols, k, cfg.binary);
      }
      float* dst = per_slot.data() + j * nslots;
      for (int32_t s = 0; s < nslots; ++s) dst[s] = static_cast<float>(acc[s]);
    }
  }
  Tensor out = empty({nr, nc});
  float* o = out.data<float>();
  for (int64_t p = 0; p < nr; ++p) {
    const int32_t s = slot[rows[p]];
    for (int64_t j = 0; j < nc; ++j) o[p * nc + j] = per_slot[j * nslots + s];
  }
  return out;
}

Tensor content_knn_scores(const Tensor& features, const recsys::Csr& train,
                          const std::vector<int32_t>& rows, const std::vector<int32_t>& cands,
                          bool weighted) {
  const char* op = "content_knn_scores";
  train.validate("content_knn_scores: train");
  const Tensor F = host_f32(features, op, "features");
  DAN_CHECK(F.dim() == 2 && F.size(0) == train.cols,
            "{}: features must be [items, d] with items = train columns ({}), got {}", op,
            train.cols, shape_str(F.shape()));
  check_indices(rows, train.rows, op, "rows", "users of train");
  check_indices(cands, train.cols, op, "cands", "rows of features");
  const int64_t d = F.size(1), nr = static_cast<int64_t>(rows.size());
  const int64_t nc = static_cast<int64_t>(cands.size());
  const float* f = F.data<float>();
  for (int64_t i = 0; i < F.numel(); ++i)
    DAN_CHECK(std::isfinite(f[i]), "{}: features[{}, {}] is not finite", op, i / d, i % d);

  // Rows L2-normalized (zero rows stay zero), so the product below is the cosine.
  auto normalize = [d](double* v) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += v[c] * v[c];
    const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
    for (int64_t c = 0; c < d; ++c) v[c] *= inv;
  };
  Tensor P = empty({nr, d});
  float* pp = P.data<float>();
#pragma omp parallel if (nr * d >= kParallelMin)
  {
    std::vector<double> v(static_cast<size_t>(d));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < nr; ++p) {
      std::fill(v.begin(), v.end(), 0.0);
      const int64_t u = rows[p];
      double wsum = 0;
      for (int64_t k = train.indptr[u]; k < train.indptr[u + 1]; ++k) {
        const double w = weighted ? train.values[k] : 1.0;
        const float* fi = f + static_cast<int64_t>(train.indices[k]) * d;
        for (int64_t c = 0; c < d; ++c) v[c] += w * fi[c];
        wsum += w;
      }
      // The mean's scale does not change the cosine; dividing keeps the profile meaningful.
      if (wsum != 0)
        for (double& x : v) x /= wsum;
      normalize(v.data());
      for (int64_t c = 0; c < d; ++c) pp[p * d + c] = static_cast<float>(v[c]);
    }
  }
  Tensor Fc = empty({nc, d});
  float* fc = Fc.data<float>();
  {
    std::vector<double> v(static_cast<size_t>(d));
    for (int64_t j = 0; j < nc; ++j) {
      const float* fi = f + static_cast<int64_t>(cands[j]) * d;
      for (int64_t c = 0; c < d; ++c) v[c] = fi[c];
      normalize(v.data());
      for (int64_t c = 0; c < d; ++c) fc[j * d + c] = static_cast<float>(v[c]);
    }
  }
  if (nr == 0 || nc == 0 || d == 0) return zeros({nr, nc});
  return kernels::matmul(P, raw::transpose(Fc, 0, 1));
}

Tensor zscore_rows(const Tensor& scores) {
  const Tensor h = host_f32(scores, "zscore_rows", "scores");
  DAN_CHECK(h.dim() == 2, "zscore_rows: expected a 2-D score matrix, got {}", shape_str(h.shape()));
  const int64_t rows = h.size(0), cols = h.size(1);
  const float* x = h.data<float>();
  for (int64_t i = 0; i < h.numel(); ++i)
    DAN_CHECK(std::isfinite(x[i]), "zscore_rows: score at row {}, column {} is not finite",
              i / cols, i % cols);
  Tensor out = empty({rows, cols});
  float* o = out.data<float>();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double mean = 0;
    for (int64_t c = 0; c < cols; ++c) mean += xr[c];
    mean /= static_cast<double>(std::max<int64_t>(cols, 1));
    double var = 0;
    for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= static_cast<double>(std::max<int64_t>(cols, 1));
    const double inv = var > 0 ? 1.0 / std::sqrt(var) : 0.0;
    for (int64_t c = 0; c < cols; ++c) o[r * cols + c] = static_cast<float>((xr[c] - mean) * inv);
  }
  return out;
}

Tensor blend(const Tensor& a, const Tensor& b, double w) {
  DAN_CHECK(a.defined() && b.defined(), "blend: a or b is undefined");
  DAN_CHECK(a.shape() == b.shape() && a.dim() == 2,
            "blend: a and b must be 2-D of the same shape, got a {} and b {}", shape_str(a.shape()),
            shape_str(b.shape()));
  DAN_CHECK(w >= 0 && w <= 1, "blend: weight w = {}, expected 0 <= w <= 1", w);
  const Tensor za = zscore_rows(a), zb = zscore_rows(b);
  Tensor out = empty(za.shape());
  const float* pa = za.data<float>();
  const float* pb = zb.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i)
    o[i] = static_cast<float>(w * pa[i] + (1.0 - w) * pb[i]);
  return out;
}

}  // namespace dan::baselines
