// Ranking metrics (definitions in recsys/EVALUATION.md). Every ranking query — a user over the
// candidate items, or an item over the evaluated users — is reduced, per relevant entry, to two
// counts: candidates scored strictly higher ("above") and candidates with the same score
// ("tied", itself included). Each metric is then a closed-form expectation over a uniformly
// random tie break, so no query is ever sorted: one pass over its candidates is enough.
#include "recsys/eval.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <span>

#include "core/error.h"
#include "core/philox.h"

namespace dan::recsys {

// ---- Metrics -------------------------------------------------------------------------------

bool Metrics::has(const std::string& name) const {
  return std::any_of(values.begin(), values.end(), [&](const auto& p) { return p.first == name; });
}

double Metrics::get(const std::string& name) const {
  for (const auto& [n, v] : values)
    if (n == name) return v;
  std::vector<std::string> names;
  for (const auto& p : values) names.push_back(p.first);
  fail("Metrics::get: no metric '{}' (have: {})", name, fmt::join(names, ", "));
}

void Metrics::set(const std::string& name, double v) {
  for (auto& p : values)
    if (p.first == name) {
      p.second = v;
      return;
    }
  values.emplace_back(name, v);
}

std::string Metrics::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [n, v] : values) j[n] = v;  // NaN/inf are written as null
  return j.dump();
}

// ---- building blocks -------------------------------------------------------------------------

double random_recall_capped(int64_t k, int64_t relevant, int64_t candidates) {
  DAN_CHECK(k >= 1 && relevant >= 1 && relevant <= candidates,
            "random_recall_capped: expected k >= 1 and 1 <= relevant <= candidates, got k={}, "
            "relevant={}, candidates={}",
            k, relevant, candidates);
  const int64_t ke = std::min(k, candidates);
  // Hypergeometric mean: ke draws from `candidates` of which `relevant` are relevant.
  const double hits =
      static_cast<double>(ke) * static_cast<double>(relevant) / static_cast<double>(candidates);
  return hits / static_cast<double>(std::min(ke, relevant));
}

double expected_inverse_first_rank(int64_t above, int64_t tied, int64_t m) {
  DAN_CHECK(above >= 0 && m >= 1 && m <= tied,
            "expected_inverse_first_rank: expected above >= 0 and 1 <= m <= tied, got above={}, "
            "tied={}, m={}",
            above, tied, m);
  // P(X = x) = C(tied - x, m - 1) / C(tied, m), by the recurrence
  // P(1) = m / tied, P(x + 1) = P(x) (tied - x - m + 1) / (tied - x): every factor is in [0, 1],
  // so there is no overflow and the terms shrink monotonically.
  double p = static_cast<double>(m) / static_cast<double>(tied);
  double e = 0;
  const int64_t last = tied - m + 1;
  for (int64_t x = 1; x <= last && p > 0; ++x) {
    e += p / static_cast<double>(above + x);
    if (x < last) p *= static_cast<double>(tied - x - m + 1) / static_cast<double>(tied - x);
  }
  return e;
}

std::vector<int32_t> philox_sample(int64_t n, int64_t count, uint64_t seed, uint64_t offset) {
  DAN_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max() && count >= 0,
            "philox_sample: expected 0 <= n < 2^31 and count >= 0, got n={}, count={}", n, count);
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  if (count >= n) return idx;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t left = n - i;
    const double u = philox::uniform_f64(seed, offset, static_cast<uint64_t>(i));
    const int64_t j = i + std::min(left - 1, static_cast<int64_t>(u * static_cast<double>(left)));
    std::swap(idx[i], idx[j]);
  }
  idx.resize(static_cast<size_t>(count));
  std::sort(idx.begin(), idx.end());
  return idx;
}

namespace {

// ---- inputs ------------------------------------------------------------------------------------

struct HostScores {
  Tensor keep;  // owns the data when a copy was needed
  const float* p = nullptr;
  int64_t rows = 0, cols = 0;
  float at(int64_t r, int64_t c) const { return p[r * cols + c]; }
};

HostScores host_scores(const Tensor& s, const char* op) {
  DAN_CHECK(s.defined(), "{}: the scores tensor is undefined", op);
  DAN_CHECK(s.dim() == 2, "{}: scores must be 2-D (users x candidates), got shape {}", op,
            shape_str(s.shape()));
  DAN_CHECK(s.dtype() == DType::f32 || s.dtype() == DType::f64,
            "{}: scores must be f32 or f64, got {}", op, s.dtype());
  Tensor t = s;
  if (!t.device().is_cpu() || !t.is_contiguous()) t = raw::contiguous_copy(t, Device::cpu());
  if (t.dtype() != DType::f32) t = raw::cast(t, DType::f32);
  HostScores h;
  h.keep = t;
  h.p = t.data<float>();
  h.rows = t.size(0);
  h.cols = t.size(1);
  return h;
}

// Validates everything evaluate() and evaluate_seed() need; returns whether `exclude` is used.
bool check_inputs(const HostScores& s, const Csr& truth, const Csr& exclude, const EvalConfig& cfg,
                  const char* op) {
  truth.validate(fmt::format("{}: truth", op).c_str());
  DAN_CHECK(truth.rows == s.rows && truth.cols == s.cols,
            "{}: truth is {}x{} but scores are [{}, {}] (users x candidates)", op, truth.rows,
            truth.cols, s.rows, s.cols);
  const bool has_excl = exclude.rows != 0;
  if (has_excl) {
    exclude.validate(fmt::format("{}: exclude", op).c_str());
    DAN_CHECK(exclude.rows == s.rows && exclude.cols == s.cols,
              "{}: exclude is {}x{} but scores are [{}, {}] (pass an empty Csr for none)", op,
              exclude.rows, exclude.cols, s.rows, s.cols);
  }
  DAN_CHECK(truth.nnz() > 0, "{}: truth has no entries: nothing to evaluate", op);
  DAN_CHECK(!cfg.ks.empty(), "{}: cfg.ks is empty", op);
  for (size_t i = 0; i < cfg.ks.size(); ++i) {
    DAN_CHECK(cfg.ks[i] >= 1, "{}: cfg.ks[{}] = {}, expected >= 1", op, i, cfg.ks[i]);
    for (size_t j = 0; j < i; ++j)
      DAN_CHECK(cfg.ks[i] != cfg.ks[j], "{}: cfg.ks lists {} twice", op, cfg.ks[i]);
  }
  for (int64_t r = 0; r < truth.rows; ++r) {
    for (int64_t k = truth.indptr[r]; k < truth.indptr[r + 1]; ++k)
      DAN_CHECK(!std::isnan(truth.values[k]), "{}: truth value at row {}, column {} is NaN", op, r,
                truth.indices[k]);
    if (!has_excl) continue;
    // Both rows are sorted: a merge finds a common column.
    int64_t a = truth.indptr[r], b = exclude.indptr[r];
    while (a < truth.indptr[r + 1] && b < exclude.indptr[r + 1]) {
      DAN_CHECK(truth.indices[a] != exclude.indices[b],
                "{}: row {}, column {} is both a truth entry and excluded (truth must be disjoint "
                "from exclude)",
                op, r, truth.indices[a]);
      if (truth.indices[a] < exclude.indices[b])
        ++a;
      else
        ++b;
    }
  }
  if (s.p == nullptr) return has_excl;  // random_expectation: no scores
  // NaN scores: the first one in row-major order is reported, whatever the thread count.
  std::vector<int64_t> nan_col(static_cast<size_t>(s.rows), -1);
#pragma omp parallel for schedule(static) if (s.rows * s.cols >= (int64_t{1} << 16))
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* row = s.p + r * s.cols;
    for (int64_t c = 0; c < s.cols; ++c)
      if (std::isnan(row[c])) {
        nan_col[r] = c;
        break;
      }
  }
  for (int64_t r = 0; r < s.rows; ++r)
    DAN_CHECK(nan_col[r] < 0, "{}: score at row {}, column {} is NaN", op, r, nan_col[r]);
  return has_excl;
}

// The evaluated users (rows with >= 1 truth entry) and items (columns with >= 1 truth entry),
// and the transposes that give each item's truth and exclude entries as evaluated-user positions.
struct Layout {
  std::vector<int32_t> users;  // evaluated rows, ascending
  std::vector<int32_t> pos;    // row -> position in `users`, -1 when not evaluated
  std::vector<int32_t> items;  // evaluated columns, ascending
  Csr truth_t;                 // truth transposed, column indices = positions in `users`
  Csr excl_t;                  // exclude transposed, restricted to evaluated users (positions)
};

Layout make_layout(const Csr& truth, const Csr& exclude, bool has_excl) {
  Layout L;
  L.pos.assign(static_cast<size_t>(truth.rows), -1);
  for (int64_t r = 0; r < truth.rows; ++r)
    if (truth.row_nnz(r) > 0) {
      L.pos[r] = static_cast<int32_t>(L.users.size());
      L.users.push_back(static_cast<int32_t>(r));
    }
  // Positions are increasing in the row index, so mapped rows stay sorted.
  auto to_positions = [&](const Csr& t) {
    Csr m;
    m.rows = t.rows;
    m.cols = static_cast<int64_t>(L.users.size());
    m.indptr.assign(static_cast<size_t>(t.rows + 1), 0);
    for (int64_t c = 0; c < t.rows; ++c) {
      for (int64_t k = t.indptr[c]; k < t.indptr[c + 1]; ++k)
        if (const int32_t p = L.pos[t.indices[k]]; p >= 0) {
          m.indices.push_back(p);
          m.values.push_back(t.values[k]);
        }
      m.indptr[c + 1] = m.nnz();
    }
    return m;
  };
  L.truth_t = to_positions(truth.transpose());
  if (has_excl) {
    L.excl_t = to_positions(exclude.transpose());
  } else {
    L.excl_t.rows = truth.cols;
    L.excl_t.cols = static_cast<int64_t>(L.users.size());
    L.excl_t.indptr.assign(static_cast<size_t>(truth.cols + 1), 0);
  }
  for (int64_t c = 0; c < truth.cols; ++c)
    if (L.truth_t.row_nnz(c) > 0) L.items.push_back(static_cast<int32_t>(c));
  return L;
}

std::span<const int32_t> row_indices(const Csr& m, int64_t r) {
  if (m.rows == 0) return {};
  return {m.indices.data() + m.indptr[r], static_cast<size_t>(m.row_nnz(r))};
}
std::span<const float> row_values(const Csr& m, int64_t r) {
  return {m.values.data() + m.indptr[r], static_cast<size_t>(m.row_nnz(r))};
}

// ---- one ranking query -----------------------------------------------------------------------

struct Rank {
  int64_t above = 0;  // candidates scored strictly higher
  int64_t tied = 0;   // candidates with the same score, itself included
};

// std::lower_bound's index in the sorted u[0, d), d >= 1, without data-dependent branches:
// candidate scores fall anywhere among the relevant ones, so a branchy search mispredicts.
inline int64_t lower_bound_index(const float* u, int64_t d, float x) {
  const float* base = u;
  int64_t n = d;
  while (n > 1) {
    const int64_t half = n / 2;
    base = base[half] < x ? base + half : base;
    n -= half;
  }
  return (base - u) + (*base < x);
}

// Per-thread workspace: for a query s[0, len) with excluded positions `excl` (sorted) and
// relevant positions `rel` (disjoint from excl), fills out[i] = Rank of rel[i]. One pass over
// the candidates, each placed by binary search among the distinct relevant scores.
class Ranker {
 public:
  void rank(const float* s, int64_t len, std::span<const int32_t> rel,
            std::span<const int32_t> excl, std::vector<Rank>& out) {
    u_.clear();
    for (int32_t p : rel) u_.push_back(s[p]);
    std::sort(u_.begin(), u_.end());
    u_.erase(std::unique(u_.begin(), u_.end()), u_.end());
    const int64_t d = static_cast<int64_t>(u_.size());
    out.resize(rel.size());
    if (d == 1) {  // the common case of one relevant entry (or all relevant tied): no search
      const float v = u_[0];
      int64_t gt = 0, eq = 0;
      for (int64_t q = 0; q < len; ++q) {
        gt += s[q] > v;
        eq += s[q] == v;
      }
      for (int32_t e : excl) {
        gt -= s[e] > v;
        eq -= s[e] == v;
      }
      for (Rank& r : out) r = {gt, eq};
      return;
    }
    // hist_[i]: candidates whose score is above exactly the i smallest distinct relevant scores.
    hist_.assign(static_cast<size_t>(d + 1), 0);
    eq_.assign(static_cast<size_t>(d), 0);
    const float* u = u_.data();
    auto add = [&](float x, int64_t w) {
      const int64_t i = lower_bound_index(u, d, x);
      hist_[i] += w;
      if (i < d && u[i] == x) eq_[i] += w;
    };
    for (int64_t q = 0; q < len; ++q) add(s[q], 1);
    for (int32_t e : excl) add(s[e], -1);
    above_.assign(static_cast<size_t>(d), 0);
    above_[d - 1] = hist_[d];
    for (int64_t i = d - 2; i >= 0; --i) above_[i] = above_[i + 1] + hist_[i + 1];
    for (size_t i = 0; i < rel.size(); ++i) {
      const int64_t j = lower_bound_index(u, d, s[rel[i]]);
      out[i] = {above_[j], eq_[j]};
    }
  }

 private:
  std::vector<float> u_;
  std::vector<int64_t> hist_, eq_, above_;
};

// Cumulative discounts D[r] = sum_{i=1}^{r} 1 / log2(i + 1), D[0] = 0.
std::vector<double> discounts(int64_t kmax) {
  std::vector<double> D(static_cast<size_t>(kmax + 1), 0.0);
  for (int64_t i = 1; i <= kmax; ++i) D[i] = D[i - 1] + 1.0 / std::log2(static_cast<double>(i + 1));
  return D;
}

// Probability that an entry with rank `r` lands in the top k under a random tie break: its
// position is uniform on [above + 1, above + tied].
double hit_prob(int64_t k, const Rank& r) {
  if (r.above >= k) return 0.0;
  return std::min(1.0, static_cast<double>(k - r.above) / static_cast<double>(r.tied));
}

// Expected discounted gain of one relevant entry within the top k.
double expected_gain(int64_t k, const Rank& r, const std::vector<double>& D) {
  if (r.above >= k) return 0.0;
  const int64_t hi = std::min(r.above + r.tied, k);
  return (D[hi] - D[r.above]) / static_cast<double>(r.tied);
}

// Expected reciprocal rank of the best-ranked entry among those selected by `use`.
template <typename Use>
double first_rank_mrr(const std::vector<Rank>& ranks, const Use& use) {
  int64_t best = std::numeric_limits<int64_t>::max(), tied = 0, m = 0;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (!use(i)) continue;
    if (ranks[i].above < best) {
      best = ranks[i].above;
      tied = ranks[i].tied;
      m = 0;
    }
    if (ranks[i].above == best) ++m;  // same `above` means the same score
  }
  return expected_inverse_first_rank(best, tied, m);
}

double mrr_all(const std::vector<Rank>& ranks) {
  return first_rank_mrr(ranks, [](size_t) { return true; });
}

// MRR of the most relevant entries: those whose truth value is the maximum.
double mrr_best(const std::vector<Rank>& ranks, std::span<const float> truth_values) {
  const float top = *std::max_element(truth_values.begin(), truth_values.end());
  return first_rank_mrr(ranks, [&](size_t i) { return truth_values[i] == top; });
}

int64_t max_k(const EvalConfig& cfg) { return *std::max_element(cfg.ks.begin(), cfg.ks.end()); }

// Gathers columns `cols[j0, j1)` of the evaluated users into buf (one contiguous run of
// users.size() scores per column).
void gather_columns(const HostScores& s, const std::vector<int32_t>& users,
                    std::span<const int32_t> cols, std::vector<float>& buf) {
  const int64_t ne = static_cast<int64_t>(users.size());
  const int64_t nc = static_cast<int64_t>(cols.size());
  buf.resize(static_cast<size_t>(nc * ne));
  // Each user row is read along the block's columns (sequential, prefetched); the writes of a
  // tile of 16 users x the block stay within 16 floats of each column's run (in L1).
  constexpr int64_t kTile = 16;
  for (int64_t e0 = 0; e0 < ne; e0 += kTile) {
    const int64_t e1 = std::min(ne, e0 + kTile);
    for (int64_t e = e0; e < e1; ++e) {
      const float* row = s.p + static_cast<int64_t>(users[e]) * s.cols;
      for (int64_t j = 0; j < nc; ++j) buf[j * ne + e] = row[cols[j]];
    }
  }
}

// Means of per-query rows vals[q * width + m] over q, summed in query order (thread-independent).
std::vector<double> column_means(const std::vector<double>& vals, int64_t width) {
  std::vector<double> sum(static_cast<size_t>(width), 0.0);
  const int64_t n = static_cast<int64_t>(vals.size()) / width;
  for (int64_t q = 0; q < n; ++q)
    for (int64_t m = 0; m < width; ++m) sum[m] += vals[q * width + m];
  for (double& v : sum) v /= static_cast<double>(n);
  return sum;
}

constexpr int64_t kColumnBlock = 64;

// Writes the metrics in their documented order from per-user and per-item means.
Metrics assemble(const EvalConfig& cfg, int64_t users, int64_t items, const std::vector<double>& u,
                 const std::vector<double>& it) {
  const size_t nk = cfg.ks.size();
  Metrics out;
  out.set("users", static_cast<double>(users));
  out.set("items", static_cast<double>(items));
  const char* names[] = {"recall", "recall_capped", "precision", "ndcg"};
  for (size_t f = 0; f < 4; ++f)
    for (size_t k = 0; k < nk; ++k)
      out.set(fmt::format("{}@{}", names[f], cfg.ks[k]), u[f * nk + k]);
  out.set("mrr", u[4 * nk]);
  for (size_t k = 0; k < nk; ++k) out.set(fmt::format("user_recall@{}", cfg.ks[k]), it[k]);
  out.set("user_mrr", it[nk]);
  return out;
}

}  // namespace

// ---- the standard protocol ---------------------------------------------------------------------

Metrics evaluate(const Tensor& scores, const Csr& truth, const Csr& exclude,
                 const EvalConfig& cfg) {
  const HostScores s = host_scores(scores, "evaluate");
  const bool has_excl = check_inputs(s, truth, exclude, cfg, "evaluate");
  const Layout L = make_layout(truth, exclude, has_excl);
  const std::vector<double> D = discounts(max_k(cfg));
  const int64_t nk = static_cast<int64_t>(cfg.ks.size());
  const int64_t nu = static_cast<int64_t>(L.users.size());
  const int64_t ni = static_cast<int64_t>(L.items.size());
  const bool par = s.rows * s.cols >= (int64_t{1} << 15);

  // Per user: recall, recall_capped, precision, ndcg for each K, then mrr.
  const int64_t uw = 4 * nk + 1;
  std::vector<double> uvals(static_cast<size_t>(nu * uw));
  // Per item: user_recall for each K, then user_mrr.
  const int64_t iw = nk + 1;
  std::vector<double> ivals(static_cast<size_t>(ni * iw));
  const int64_t nblocks = (ni + kColumnBlock - 1) / kColumnBlock;

#pragma omp parallel if (par)
  {
    Ranker ranker;
    std::vector<Rank> ranks;
    std::vector<float> buf;
#pragma omp for schedule(dynamic, 8)
    for (int64_t e = 0; e < nu; ++e) {
      const int64_t r = L.users[e];
      const auto rel = row_indices(truth, r);
      const auto excl = has_excl ? row_indices(exclude, r) : std::span<const int32_t>{};
      ranker.rank(s.p + r * s.cols, s.cols, rel, excl, ranks);
      const int64_t n = s.cols - static_cast<int64_t>(excl.size());
      const int64_t t = static_cast<int64_t>(rel.size());
      double* out = &uvals[e * uw];
      for (int64_t k = 0; k < nk; ++k) {
        const int64_t ke = std::min<int64_t>(cfg.ks[k], n);
        double hits = 0, dcg = 0;
        for (const Rank& rk : ranks) {
          hits += hit_prob(ke, rk);
          dcg += expected_gain(ke, rk, D);
        }
        out[k] = hits / static_cast<double>(t);
        out[nk + k] = hits / static_cast<double>(std::min(ke, t));
        out[2 * nk + k] = hits / static_cast<double>(ke);
        out[3 * nk + k] = dcg / D[std::min(ke, t)];
      }
      out[4 * nk] = mrr_all(ranks);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t j0 = b * kColumnBlock, j1 = std::min(ni, j0 + kColumnBlock);
      const std::span<const int32_t> cols(L.items.data() + j0, static_cast<size_t>(j1 - j0));
      gather_columns(s, L.users, cols, buf);
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t c = L.items[j];
        const auto rel = row_indices(L.truth_t, c);
        const auto excl = row_indices(L.excl_t, c);
        ranker.rank(buf.data() + (j - j0) * nu, nu, rel, excl, ranks);
        const int64_t n = nu - static_cast<int64_t>(excl.size());
        const int64_t t = static_cast<int64_t>(rel.size());
        double* out = &ivals[j * iw];
        for (int64_t k = 0; k < nk; ++k) {
          const int64_t ke = std::min<int64_t>(cfg.ks[k], n);
          double hits = 0;
          for (const Rank& rk : ranks) hits += hit_prob(ke, rk);
          out[k] = hits / static_cast<double>(t);
        }
        out[nk] = mrr_all(ranks);
      }
    }
  }
  return assemble(cfg, nu, ni, column_means(uvals, uw), column_means(ivals, iw));
}

Metrics random_expectation(const Csr& truth, const Csr& exclude, const EvalConfig& cfg) {
  // Validation without a score matrix: an empty one of the right shape has no NaN to find.
  HostScores none;
  none.rows = truth.rows;
  none.cols = truth.cols;
  const bool has_excl = check_inputs(none, truth, exclude, cfg, "random_expectation");
  const Layout L = make_layout(truth, exclude, has_excl);
  const std::vector<double> D = discounts(max_k(cfg));
  const int64_t nk = static_cast<int64_t>(cfg.ks.size());
  const int64_t nu = static_cast<int64_t>(L.users.size());
  const int64_t ni = static_cast<int64_t>(L.items.size());
  const int64_t uw = 4 * nk + 1, iw = nk + 1;
  std::vector<double> uvals(static_cast<size_t>(nu * uw)), ivals(static_cast<size_t>(ni * iw));
  // Under a uniformly random ranking of n candidates with t relevant, each relevant entry is
  // at a uniform position: E[hits@K] = K t / n and E[DCG@K] = t D[K] / n.
  for (int64_t e = 0; e < nu; ++e) {
    const int64_t r = L.users[e];
    const int64_t n = truth.cols - (has_excl ? exclude.row_nnz(r) : 0);
    const int64_t t = truth.row_nnz(r);
    double* out = &uvals[e * uw];
    for (int64_t k = 0; k < nk; ++k) {
      const int64_t ke = std::min<int64_t>(cfg.ks[k], n);
      const double hits = static_cast<double>(ke) * static_cast<double>(t) / static_cast<double>(n);
      out[k] = hits / static_cast<double>(t);
      out[nk + k] = hits / static_cast<double>(std::min(ke, t));
      out[2 * nk + k] = hits / static_cast<double>(ke);
      out[3 * nk + k] =
          static_cast<double>(t) * D[ke] / static_cast<double>(n) / D[std::min(ke, t)];
    }
    out[4 * nk] = expected_inverse_first_rank(0, n, t);
  }
  for (int64_t j = 0; j < ni; ++j) {
    const int64_t c = L.items[j];
    const int64_t n = nu - L.excl_t.row_nnz(c);
    const int64_t t = L.truth_t.row_nnz(c);
    double* out = &ivals[j * iw];
    for (int64_t k = 0; k < nk; ++k)
      out[k] = static_cast<double>(std::min<int64_t>(cfg.ks[k], n)) / static_cast<double>(n);
    out[nk] = expected_inverse_first_rank(0, n, t);
  }
  return assemble(cfg, nu, ni, column_means(uvals, uw), column_means(ivals, iw));
}

// ---- the seed paper's metrics ------------------------------------------------------------------

Metrics evaluate_seed(const Tensor& scores, const Csr& truth, const Csr& exclude,
                      const EvalConfig& cfg) {
  const HostScores s = host_scores(scores, "evaluate_seed");
  const bool has_excl = check_inputs(s, truth, exclude, cfg, "evaluate_seed");
  DAN_CHECK(cfg.seed_k >= 1, "evaluate_seed: cfg.seed_k = {}, expected >= 1", cfg.seed_k);
  DAN_CHECK(cfg.sample_users >= 1 && cfg.sample_items >= 1,
            "evaluate_seed: cfg.sample_users = {} and cfg.sample_items = {}, expected >= 1",
            cfg.sample_users, cfg.sample_items);
  const Layout L = make_layout(truth, exclude, has_excl);
  const int64_t nu = static_cast<int64_t>(L.users.size());
  const int64_t K = cfg.seed_k;
  // Two disjoint Philox streams: items from counter 0, users from counter 2^32.
  const std::vector<int32_t> item_pick =
      philox_sample(static_cast<int64_t>(L.items.size()), cfg.sample_items, cfg.seed, 0);
  const std::vector<int32_t> user_pick =
      philox_sample(nu, cfg.sample_users, cfg.seed, uint64_t{1} << 32);
  const int64_t si = static_cast<int64_t>(item_pick.size());
  const int64_t su = static_cast<int64_t>(user_pick.size());

  // Per query: recall, its random expectation, mrr of the most relevant, its random expectation.
  std::vector<double> uv(static_cast<size_t>(su * 4)), iv(static_cast<size_t>(si * 4));
  const bool par = (su + si) * std::max(s.cols, nu) >= (int64_t{1} << 15);
#pragma omp parallel if (par)
  {
    Ranker ranker;
    std::vector<Rank> ranks;
    std::vector<float> buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t q = 0; q < su; ++q) {
      const int64_t r = L.users[user_pick[q]];
      const auto rel = row_indices(truth, r);
      const auto excl = has_excl ? row_indices(exclude, r) : std::span<const int32_t>{};
      ranker.rank(s.p + r * s.cols, s.cols, rel, excl, ranks);
      const int64_t n = s.cols - static_cast<int64_t>(excl.size());
      const int64_t t = static_cast<int64_t>(rel.size());
      const int64_t ke = std::min(K, n);
      double hits = 0;
      for (const Rank& rk : ranks) hits += hit_prob(ke, rk);
      const auto vals = row_values(truth, r);
      const float top = *std::max_element(vals.begin(), vals.end());
      const int64_t m = std::count(vals.begin(), vals.end(), top);
      double* out = &uv[q * 4];
      out[0] = hits / static_cast<double>(std::min(ke, t));
      out[1] = random_recall_capped(K, t, n);
      out[2] = mrr_best(ranks, vals);
      out[3] = expected_inverse_first_rank(0, n, m);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t q = 0; q < si; ++q) {
      const int32_t c = L.items[item_pick[q]];
      gather_columns(s, L.users, std::span<const int32_t>(&c, 1), buf);
      const auto rel = row_indices(L.truth_t, c);
      const auto excl = row_indices(L.excl_t, c);
      ranker.rank(buf.data(), nu, rel, excl, ranks);
      const int64_t n = nu - static_cast<int64_t>(excl.size());
      const int64_t t = static_cast<int64_t>(rel.size());
      const int64_t ke = std::min(K, n);
      double hits = 0;
      for (const Rank& rk : ranks) hits += hit_prob(ke, rk);
      const auto vals = row_values(L.truth_t, c);
      const float top = *std::max_element(vals.begin(), vals.end());
      const int64_t m = std::count(vals.begin(), vals.end(), top);
      double* out = &iv[q * 4];
      out[0] = hits / static_cast<double>(std::min(ke, t));
      out[1] = random_recall_capped(K, t, n);
      out[2] = mrr_best(ranks, vals);
      out[3] = expected_inverse_first_rank(0, n, m);
    }
  }
  const std::vector<double> um = column_means(uv, 4), im = column_means(iv, 4);
  Metrics out;
  out.set("seed_users", static_cast<double>(su));
  out.set("seed_items", static_cast<double>(si));
  out.set(fmt::format("seed_user_recall@{}", K), im[0]);
  out.set(fmt::format("seed_user_recall@{}.random", K), im[1]);
  out.set(fmt::format("seed_item_recall@{}", K), um[0]);
  out.set(fmt::format("seed_item_recall@{}.random", K), um[1]);
  out.set("seed_mrr_items_per_user", um[2]);
  out.set("seed_mrr_items_per_user.random", um[3]);
  out.set("seed_mrr_users_per_item", im[2]);
  out.set("seed_mrr_users_per_item.random", im[3]);
  return out;
}

// ---- table
// ---------------------------------------------------------------------------------------

namespace {
std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
  return fmt::format("{:.4g}", v);
}
}  // namespace

std::string format_table(const std::vector<std::pair<std::string, Metrics>>& columns) {
  DAN_CHECK(!columns.empty(), "format_table: no columns");
  std::string out = "| metric |";
  std::string rule = "|---|";
  for (const auto& [name, m] : columns) {
    out += fmt::format(" {} |", name);
    rule += "---:|";
  }
  out += "\n" + rule + "\n";
  for (const auto& [metric, v0] : columns.front().second.values) {
    out += fmt::format("| {} |", metric);
    for (const auto& [name, m] : columns)
      out += fmt::format(" {} |", m.has(metric) ? format_value(m.get(metric)) : "-");
    out += "\n";
  }
  return out;
}

}  // namespace dan::recsys
