// Tests for recsys/eval: hand-computed metrics on small score matrices (ties, exclusion,
// K beyond the candidate count, the item side, skipped rows), the seed paper's metrics, the
// random-guessing expectations against Monte-Carlo estimates, input errors, thread-count
// independence, and the JSON / table output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/threads.h"
#include "recsys/eval.h"

using namespace dan;
using namespace dan::recsys;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected dan::Error";
  return "";
}

void expect_contains(const std::string& msg, const std::vector<std::string>& parts) {
  for (const std::string& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' in: " << msg;
}

Tensor mat(const std::vector<std::vector<float>>& rows) {
  std::vector<float> v;
  for (const auto& r : rows) v.insert(v.end(), r.begin(), r.end());
  return from_vector(v, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

// A CSR from per-row lists of (column, value).
Csr csr(int64_t cols, const std::vector<std::vector<std::pair<int32_t, float>>>& rows) {
  std::vector<int32_t> r, c;
  std::vector<float> v;
  for (size_t i = 0; i < rows.size(); ++i)
    for (const auto& [col, val] : rows[i]) {
      r.push_back(static_cast<int32_t>(i));
      c.push_back(col);
      v.push_back(val);
    }
  return Csr::from_triplets(static_cast<int64_t>(rows.size()), cols, r, c, v);
}

EvalConfig ks(std::vector<int> k) {
  EvalConfig cfg;
  cfg.ks = std::move(k);
  return cfg;
}

const double kInvLog3 = 1.0 / std::log2(3.0);  // discount of rank 2: 0.6309298
constexpr double kTol = 1e-12;

TEST(EvalMetrics, HandComputedUserAndItemSide) {
  // row 0: item order 0 > 1 > 2 > 3 > 4; relevant {1, 3} at ranks 2 and 4.
  // row 1: item order 4 > 3 > 2 > 1 > 0; relevant {4} at rank 1.
  // row 2: no truth: not evaluated, and not a candidate user on the item side (its scores are
  //        the highest of every column, so including it would change user_recall/user_mrr).
  const Tensor s = mat({{0.9f, 0.8f, 0.7f, 0.6f, 0.5f},
                        {0.1f, 0.2f, 0.3f, 0.4f, 0.5f},
                        {1.0f, 1.0f, 1.0f, 1.0f, 1.0f}});
  const Csr truth = csr(5, {{{1, 5.f}, {3, 8.f}}, {{4, 7.f}}, {}});
  const Metrics m = evaluate(s, truth, Csr{}, ks({1, 2, 3, 5}));
  EXPECT_EQ(m.get("users"), 2);
  EXPECT_EQ(m.get("items"), 3);  // columns 1, 3, 4
  // recall@K: row 0: 0, 1/2, 1/2, 1; row 1: 1, 1, 1, 1.
  EXPECT_NEAR(m.get("recall@1"), 0.5, kTol);
  EXPECT_NEAR(m.get("recall@2"), 0.75, kTol);
  EXPECT_NEAR(m.get("recall@3"), 0.75, kTol);
  EXPECT_NEAR(m.get("recall@5"), 1.0, kTol);
  // recall_capped@K = hits / min(K, |truth|): row 0: 0/1, 1/2, 1/2, 2/2; row 1: 1, 1, 1, 1.
  EXPECT_NEAR(m.get("recall_capped@1"), 0.5, kTol);
  EXPECT_NEAR(m.get("recall_capped@2"), 0.75, kTol);
  EXPECT_NEAR(m.get("recall_capped@5"), 1.0, kTol);
  // precision@K: row 0: 0, 1/2, 1/3, 2/5; row 1: 1, 1/2, 1/3, 1/5.
  EXPECT_NEAR(m.get("precision@1"), 0.5, kTol);
  EXPECT_NEAR(m.get("precision@2"), 0.5, kTol);
  EXPECT_NEAR(m.get("precision@3"), 1.0 / 3, kTol);
  EXPECT_NEAR(m.get("precision@5"), 0.3, kTol);
  // ndcg: row 0 @2 and @3: DCG = 1/log2(3), IDCG = 1 + 1/log2(3) -> 0.3868528;
  //       row 0 @5: DCG = 1/log2(3) + 1/log2(5), IDCG = 1 + 1/log2(3); row 1: 1 everywhere.
  const double r0 = kInvLog3 / (1 + kInvLog3);
  EXPECT_NEAR(m.get("ndcg@1"), 0.5, kTol);
  EXPECT_NEAR(m.get("ndcg@2"), (r0 + 1) / 2, kTol);
  EXPECT_NEAR(m.get("ndcg@3"), (r0 + 1) / 2, kTol);
  EXPECT_NEAR(m.get("ndcg@5"), ((kInvLog3 + 1 / std::log2(5.0)) / (1 + kInvLog3) + 1) / 2, kTol);
  EXPECT_NEAR(m.get("ndcg@2"), 0.6934264, 1e-7);
  // mrr: row 0: 1/2, row 1: 1.
  EXPECT_NEAR(m.get("mrr"), 0.75, kTol);
  // Item side over users {0, 1}: item 1: row 0 (0.8) vs row 1 (0.2): rank 1;
  // item 3: row 0 (0.6) vs row 1 (0.4): rank 1; item 4: row 1 relevant, tied with row 0 at 0.5:
  // hit@1 = 1/2, hit@2 = 1, E[1/rank] = (1 + 1/2) / 2 = 3/4.
  EXPECT_NEAR(m.get("user_recall@1"), (1 + 1 + 0.5) / 3, kTol);
  EXPECT_NEAR(m.get("user_recall@2"), 1.0, kTol);
  EXPECT_NEAR(m.get("user_recall@5"), 1.0, kTol);  // K beyond the 2 candidate users
  EXPECT_NEAR(m.get("user_mrr"), (1 + 1 + 0.75) / 3, kTol);
  // Documented order: counts, then each family over ks, mrr, the item side.
  std::vector<std::string> names;
  for (const auto& p : m.values) names.push_back(p.first);
  const std::vector<std::string> expect = {"users",
                                           "items",
                                           "recall@1",
                                           "recall@2",
                                           "recall@3",
                                           "recall@5",
                                           "recall_capped@1",
                                           "recall_capped@2",
                                           "recall_capped@3",
                                           "recall_capped@5",
                                           "precision@1",
                                           "precision@2",
                                           "precision@3",
                                           "precision@5",
                                           "ndcg@1",
                                           "ndcg@2",
                                           "ndcg@3",
                                           "ndcg@5",
                                           "mrr",
                                           "user_recall@1",
                                           "user_recall@2",
                                           "user_recall@3",
                                           "user_recall@5",
                                           "user_mrr"};
  EXPECT_EQ(names, expect);
}

TEST(EvalMetrics, TiesCountByTheirExpectation) {
  // One relevant item (0) tied with two others at the top: its rank is uniform on {1, 2, 3}.
  {
    const Tensor s = mat({{0.5f, 0.5f, 0.5f, 0.1f}});
    const Metrics m = evaluate(s, csr(4, {{{0, 1.f}}}), Csr{}, ks({1, 2, 3}));
    EXPECT_NEAR(m.get("recall@1"), 1.0 / 3, kTol);
    EXPECT_NEAR(m.get("recall@2"), 2.0 / 3, kTol);
    EXPECT_NEAR(m.get("recall@3"), 1.0, kTol);
    EXPECT_NEAR(m.get("precision@2"), 1.0 / 3, kTol);  // (2/3 hits) / 2
    EXPECT_NEAR(m.get("ndcg@1"), 1.0 / 3, kTol);       // (1/3 * 1) / 1
    EXPECT_NEAR(m.get("ndcg@2"), (1 + kInvLog3) / 3, kTol);
    EXPECT_NEAR(m.get("mrr"), (1 + 0.5 + 1.0 / 3) / 3, kTol);  // 0.6111
  }
  // Item 2 tied with items 1 and 3 below item 0: rank uniform on {2, 3, 4}; item 4 rank 5.
  {
    const Tensor s = mat({{0.9f, 0.5f, 0.5f, 0.5f, 0.1f}});
    const Metrics m = evaluate(s, csr(5, {{{2, 1.f}, {4, 1.f}}}), Csr{}, ks({1, 2, 3, 5}));
    EXPECT_NEAR(m.get("recall@1"), 0.0, kTol);
    EXPECT_NEAR(m.get("recall@2"), (1.0 / 3) / 2, kTol);
    EXPECT_NEAR(m.get("recall@3"), (2.0 / 3) / 2, kTol);
    EXPECT_NEAR(m.get("recall@5"), 1.0, kTol);
    // E[1/rank of item 2] = (1/2 + 1/3 + 1/4) / 3 = 13/36.
    EXPECT_NEAR(m.get("mrr"), 13.0 / 36, kTol);
    // ndcg@3: item 2 gains 1/log2(3) w.p. 1/3 (rank 2) and 1/2 w.p. 1/3 (rank 3);
    // IDCG over min(3, 2) = 2 ranks: 1 + 1/log2(3).
    EXPECT_NEAR(m.get("ndcg@3"), ((kInvLog3 + 0.5) / 3) / (1 + kInvLog3), kTol);
  }
  // Two relevant items in a tie of four: E[1/first rank] = 1/2 * 1 + 1/3 * 1/2 + 1/6 * 1/3
  // = 13/18; each has hit@1 probability 1/4.
  {
    const Tensor s = mat({{0.5f, 0.5f, 0.5f, 0.5f}});
    const Metrics m = evaluate(s, csr(4, {{{1, 1.f}, {2, 1.f}}}), Csr{}, ks({1, 2}));
    EXPECT_NEAR(m.get("mrr"), 13.0 / 18, kTol);
    EXPECT_NEAR(m.get("recall@1"), 0.25, kTol);
    EXPECT_NEAR(m.get("recall_capped@1"), 0.5, kTol);  // 1/2 hit / min(1, 2)
    EXPECT_NEAR(m.get("recall@2"), 0.5, kTol);
  }
}

TEST(EvalMetrics, ConstantScoresGiveExactlyTheRandomExpectation) {
  // Hand values: one user, 5 candidates, 2 relevant, K = 2: recall = 2/5, precision = 2/5,
  // E[DCG@2] = 2 (1 + 1/log2(3)) / 5 over IDCG = 1 + 1/log2(3) -> 2/5;
  // mrr = P(first = 1) 1 + P(2) 1/2 + P(3) 1/3 + P(4) 1/4 = 4/10 + 3/10/2 + 2/10/3 + 1/10/4.
  const Tensor s = mat({{0.f, 0.f, 0.f, 0.f, 0.f}});
  const Csr t1 = csr(5, {{{0, 1.f}, {3, 1.f}}});
  const Metrics m = evaluate(s, t1, Csr{}, ks({2}));
  EXPECT_NEAR(m.get("recall@2"), 0.4, kTol);
  EXPECT_NEAR(m.get("precision@2"), 0.4, kTol);
  EXPECT_NEAR(m.get("ndcg@2"), 0.4, kTol);
  EXPECT_NEAR(m.get("mrr"), 0.4 + 0.15 + 2.0 / 30 + 0.025, kTol);
  const Metrics r1 = random_expectation(t1, Csr{}, ks({2}));
  for (const auto& [name, v] : m.values) EXPECT_NEAR(r1.get(name), v, kTol) << name;

  // A random sparse truth and exclude: every metric of a constant scorer equals the
  // closed-form expectation computed independently by random_expectation.
  std::mt19937 rng(7);
  const int64_t R = 30, C = 40;
  std::vector<std::vector<std::pair<int32_t, float>>> tr(R), ex(R);
  for (int64_t r = 0; r < R; ++r)
    for (int32_t c = 0; c < C; ++c) {
      const uint32_t x = rng() % 10;
      if (x == 0)
        tr[r].emplace_back(c, static_cast<float>(rng() % 5 + 1));
      else if (x == 1)
        ex[r].emplace_back(c, 1.f);
    }
  const Csr truth = csr(C, tr), excl = csr(C, ex);
  const EvalConfig cfg = ks({1, 3, 10, 50});
  const Metrics mc = evaluate(zeros({R, C}), truth, excl, cfg);
  const Metrics rc = random_expectation(truth, excl, cfg);
  ASSERT_EQ(mc.values.size(), rc.values.size());
  for (size_t i = 0; i < mc.values.size(); ++i) {
    EXPECT_EQ(mc.values[i].first, rc.values[i].first);
    EXPECT_NEAR(mc.values[i].second, rc.values[i].second, 1e-12) << mc.values[i].first;
  }
}

TEST(EvalMetrics, ExcludeMaskingAndKBeyondCandidates) {
  // row 0: items 0 and 1 excluded: candidates {2, 3}, relevant item 2 ranks first.
  // row 1: item 2 excluded (its 0.99 would beat the relevant item 1): item 1 ranks first.
  // Item side: item 1 ranks users {1} (row 0 excludes it): rank 1; item 2 ranks users {0}
  // (row 1 excludes it): rank 1.
  const Tensor s = mat({{0.9f, 0.8f, 0.7f, 0.6f}, {0.1f, 0.95f, 0.99f, 0.2f}});
  const Csr truth = csr(4, {{{2, 1.f}}, {{1, 1.f}}});
  const Csr excl = csr(4, {{{0, 1.f}, {1, 1.f}}, {{2, 1.f}}});
  const Metrics m = evaluate(s, truth, excl, ks({1, 5}));
  EXPECT_NEAR(m.get("recall@1"), 1.0, kTol);
  EXPECT_NEAR(m.get("mrr"), 1.0, kTol);
  EXPECT_NEAR(m.get("user_mrr"), 1.0, kTol);
  EXPECT_NEAR(m.get("user_recall@1"), 1.0, kTol);
  // K = 5 beyond the candidates (2 for row 0, 3 for row 1): the whole list; precision divides
  // by the list length: row 0: 1/2, row 1: 1/3.
  EXPECT_NEAR(m.get("recall@5"), 1.0, kTol);
  EXPECT_NEAR(m.get("precision@5"), (0.5 + 1.0 / 3) / 2, kTol);
  EXPECT_NEAR(m.get("ndcg@5"), 1.0, kTol);
  // Without the mask: row 0's item 2 ranks 3rd, row 1's item 1 ranks 2nd.
  const Metrics u = evaluate(s, truth, Csr{}, ks({1, 5}));
  EXPECT_NEAR(u.get("mrr"), (1.0 / 3 + 0.5) / 2, kTol);
  EXPECT_NEAR(u.get("recall@1"), 0.0, kTol);
  // Item side unmasked: item 1: row 1 (0.95) over row 0 (0.8): rank 1; item 2: row 0 (0.7)
  // under row 1 (0.99): rank 2.
  EXPECT_NEAR(u.get("user_mrr"), (1 + 0.5) / 2, kTol);
  EXPECT_NEAR(u.get("user_recall@1"), 0.5, kTol);
}

// Direct binomial coefficient in double (exact for the small arguments used here).
double binom(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0;
  double c = 1;
  for (int64_t i = 1; i <= k; ++i) c = c * static_cast<double>(n - k + i) / static_cast<double>(i);
  return c;
}

// The metrics of one ranking query computed the slow way, straight from the definitions:
// every relevant entry's rank is uniform on [above + 1, above + tied] with above/tied counted
// by brute force; the first relevant rank's distribution by binomials.
struct NaiveQuery {
  std::vector<double> recall, capped, precision, ndcg;
  double mrr = 0;
};
NaiveQuery naive_query(const std::vector<float>& cand_scores, const std::vector<float>& rel_scores,
                       const std::vector<int>& ks) {
  const int64_t n = static_cast<int64_t>(cand_scores.size());
  const int64_t t = static_cast<int64_t>(rel_scores.size());
  NaiveQuery q;
  std::vector<int64_t> above(rel_scores.size()), tied(rel_scores.size());
  for (size_t i = 0; i < rel_scores.size(); ++i)
    for (float x : cand_scores) {
      above[i] += x > rel_scores[i];
      tied[i] += x == rel_scores[i];
    }
  for (int k : ks) {
    const int64_t ke = std::min<int64_t>(k, n);
    double hits = 0, dcg = 0, idcg = 0;
    for (size_t i = 0; i < rel_scores.size(); ++i)
      for (int64_t r = above[i] + 1; r <= above[i] + tied[i]; ++r)
        if (r <= ke) {
          hits += 1.0 / static_cast<double>(tied[i]);
          dcg += 1.0 / static_cast<double>(tied[i]) / std::log2(static_cast<double>(r + 1));
        }
    for (int64_t r = 1; r <= std::min(ke, t); ++r)
      idcg += 1.0 / std::log2(static_cast<double>(r + 1));
    q.recall.push_back(hits / static_cast<double>(t));
    q.capped.push_back(hits / static_cast<double>(std::min(ke, t)));
    q.precision.push_back(hits / static_cast<double>(ke));
    q.ndcg.push_back(dcg / idcg);
  }
  const float top = *std::max_element(rel_scores.begin(), rel_scores.end());
  int64_t a = 0, tt = 0, m = 0;
  for (float x : cand_scores) {
    a += x > top;
    tt += x == top;
  }
  for (float x : rel_scores) m += x == top;
  for (int64_t x = 1; x <= tt - m + 1; ++x)
    q.mrr += binom(tt - x, m - 1) / binom(tt, m) / static_cast<double>(a + x);
  return q;
}

TEST(EvalMetrics, MatchesNaiveReferenceWithManyTies) {
  // Scores on 6 levels: many ties, several distinct relevant scores per row and column.
  const int64_t R = 25, C = 30;
  std::mt19937 rng(11);
  std::vector<float> v(static_cast<size_t>(R * C));
  for (float& x : v) x = static_cast<float>(rng() % 6) * 0.25f;
  std::vector<std::vector<std::pair<int32_t, float>>> tr(R), ex(R);
  for (int64_t r = 0; r < R; ++r)
    for (int32_t c = 0; c < C; ++c) {
      const uint32_t x = rng() % 10;
      if (x < 2 && r % 7 != 3)
        tr[r].emplace_back(c, 1.f);  // rows 3, 10, 17, 24: no truth
      else if (x == 2)
        ex[r].emplace_back(c, 1.f);
    }
  const Csr truth = csr(C, tr), excl = csr(C, ex);
  const std::vector<int> kk = {1, 3, 8, 40};
  const Metrics m = evaluate(from_vector(v, {R, C}), truth, excl, ks(kk));
  const size_t nk = kk.size();
  std::vector<double> sum(4 * nk + 1, 0.0);
  std::vector<int64_t> users;
  for (int64_t r = 0; r < R; ++r) {
    if (tr[r].empty()) continue;
    users.push_back(r);
    std::vector<float> cand, rel;
    for (int32_t c = 0; c < C; ++c) {
      const bool is_ex =
          std::any_of(ex[r].begin(), ex[r].end(), [&](auto& p) { return p.first == c; });
      const bool is_tr =
          std::any_of(tr[r].begin(), tr[r].end(), [&](auto& p) { return p.first == c; });
      if (!is_ex) cand.push_back(v[r * C + c]);
      if (is_tr) rel.push_back(v[r * C + c]);
    }
    const NaiveQuery q = naive_query(cand, rel, kk);
    for (size_t k = 0; k < nk; ++k) {
      sum[k] += q.recall[k];
      sum[nk + k] += q.capped[k];
      sum[2 * nk + k] += q.precision[k];
      sum[3 * nk + k] += q.ndcg[k];
    }
    sum[4 * nk] += q.mrr;
  }
  const double nu = static_cast<double>(users.size());
  EXPECT_EQ(m.get("users"), nu);
  for (size_t k = 0; k < nk; ++k) {
    EXPECT_NEAR(m.get(fmt::format("recall@{}", kk[k])), sum[k] / nu, 1e-12);
    EXPECT_NEAR(m.get(fmt::format("recall_capped@{}", kk[k])), sum[nk + k] / nu, 1e-12);
    EXPECT_NEAR(m.get(fmt::format("precision@{}", kk[k])), sum[2 * nk + k] / nu, 1e-12);
    EXPECT_NEAR(m.get(fmt::format("ndcg@{}", kk[k])), sum[3 * nk + k] / nu, 1e-12);
  }
  EXPECT_NEAR(m.get("mrr"), sum[4 * nk] / nu, 1e-12);
  // Item side: each column with truth ranks the evaluated users that do not exclude it.
  std::vector<double> isum(nk + 1, 0.0);
  int items = 0;
  for (int32_t c = 0; c < C; ++c) {
    std::vector<float> cand, rel;
    for (int64_t r : users) {
      const bool is_ex =
          std::any_of(ex[r].begin(), ex[r].end(), [&](auto& p) { return p.first == c; });
      const bool is_tr =
          std::any_of(tr[r].begin(), tr[r].end(), [&](auto& p) { return p.first == c; });
      if (!is_ex) cand.push_back(v[r * C + c]);
      if (is_tr) rel.push_back(v[r * C + c]);
    }
    if (rel.empty()) continue;
    ++items;
    const NaiveQuery q = naive_query(cand, rel, kk);
    for (size_t k = 0; k < nk; ++k) isum[k] += q.recall[k];
    isum[nk] += q.mrr;
  }
  EXPECT_EQ(m.get("items"), items);
  for (size_t k = 0; k < nk; ++k)
    EXPECT_NEAR(m.get(fmt::format("user_recall@{}", kk[k])), isum[k] / items, 1e-12);
  EXPECT_NEAR(m.get("user_mrr"), isum[nk] / items, 1e-12);
}

TEST(EvalMetrics, InputErrors) {
  const Tensor s = mat({{0.1f, 0.2f, 0.3f}, {0.3f, 0.2f, 0.1f}});
  const Csr truth = csr(3, {{{0, 1.f}}, {{2, 1.f}}});
  const EvalConfig cfg = ks({1});
  // NaN named by row and column.
  const Tensor bad = mat({{0.1f, 0.2f, 0.3f}, {0.3f, 0.2f, std::nanf("")}});
  expect_contains(error_of([&] { evaluate(bad, truth, Csr{}, cfg); }),
                  {"evaluate", "row 1, column 2", "NaN"});
  expect_contains(error_of([&] { evaluate_seed(bad, truth, Csr{}, cfg); }),
                  {"evaluate_seed", "row 1, column 2", "NaN"});
  // Shapes: truth vs scores, exclude vs scores, non-2-D scores.
  expect_contains(error_of([&] {
                    evaluate(s, csr(4, {{{0, 1.f}}, {}}), Csr{}, cfg);
                  }),
                  {"truth is 2x4", "scores are [2, 3]"});
  expect_contains(error_of([&] {
                    evaluate(s, csr(3, {{{0, 1.f}}}), Csr{}, cfg);
                  }),
                  {"truth is 1x3"});
  expect_contains(error_of([&] {
                    evaluate(s, truth, csr(2, {{}, {}}), cfg);
                  }),
                  {"exclude is 2x2", "scores are [2, 3]"});
  expect_contains(error_of([&] { evaluate(zeros({6}), truth, Csr{}, cfg); }), {"2-D", "[6]"});
  // Truth and exclude overlapping, NaN truth, empty truth, bad ks.
  expect_contains(error_of([&] {
                    evaluate(s, truth, csr(3, {{}, {{2, 1.f}}}), cfg);
                  }),
                  {"row 1, column 2", "both a truth entry and excluded"});
  expect_contains(error_of([&] {
                    evaluate(s, csr(3, {{{1, std::nanf("")}}, {}}), Csr{}, cfg);
                  }),
                  {"truth value at row 0, column 1 is NaN"});
  expect_contains(error_of([&] { evaluate(s, csr(3, {{}, {}}), Csr{}, cfg); }), {"no entries"});
  expect_contains(error_of([&] { evaluate(s, truth, Csr{}, ks({5, 0})); }), {"cfg.ks[1] = 0"});
  expect_contains(error_of([&] { evaluate(s, truth, Csr{}, ks({5, 5})); }), {"5 twice"});
  expect_contains(error_of([&] { evaluate(s, truth, Csr{}, ks({})); }), {"cfg.ks is empty"});
  EvalConfig seed0 = cfg;
  seed0.sample_users = 0;
  expect_contains(error_of([&] { evaluate_seed(s, truth, Csr{}, seed0); }), {"sample_users = 0"});
}

TEST(EvalMetrics, AcceptsF64AndStridedScores) {
  const Tensor s = mat({{0.9f, 0.1f, 0.5f}, {0.2f, 0.8f, 0.4f}});
  const Csr truth = csr(3, {{{2, 1.f}}, {{0, 1.f}}});
  const Metrics ref = evaluate(s, truth, Csr{}, ks({1, 2}));
  const Metrics f64 = evaluate(raw::cast(s, DType::f64), truth, Csr{}, ks({1, 2}));
  // The transpose of a contiguous [3, 2] is a strided view of the same scores.
  const Tensor st =
      raw::transpose(raw::contiguous_copy(raw::transpose(s, 0, 1), Device::cpu()), 0, 1);
  ASSERT_FALSE(st.is_contiguous());
  const Metrics strided = evaluate(st, truth, Csr{}, ks({1, 2}));
  for (const auto& [name, v] : ref.values) {
    EXPECT_EQ(f64.get(name), v) << name;
    EXPECT_EQ(strided.get(name), v) << name;
  }
  EXPECT_NEAR(ref.get("mrr"), (0.5 + 1.0 / 3) / 2, kTol);  // ranks 2 and 3
}

TEST(EvalRandom, ClosedFormsByHand) {
  EXPECT_NEAR(expected_inverse_first_rank(0, 4, 2), 13.0 / 18, kTol);
  EXPECT_NEAR(expected_inverse_first_rank(0, 4, 1), (1 + 0.5 + 1.0 / 3 + 0.25) / 4, kTol);  // H4/4
  EXPECT_NEAR(expected_inverse_first_rank(2, 3, 1), (1.0 / 3 + 0.25 + 0.2) / 3, kTol);
  EXPECT_NEAR(expected_inverse_first_rank(0, 5, 5), 1.0, kTol);
  EXPECT_NEAR(expected_inverse_first_rank(3, 1, 1), 0.25, kTol);
  // H_N / N for N = 1000.
  double h = 0;
  for (int r = 1; r <= 1000; ++r) h += 1.0 / r;
  EXPECT_NEAR(expected_inverse_first_rank(0, 1000, 1), h / 1000, 1e-14);
  EXPECT_NEAR(random_recall_capped(5, 3, 20), 5.0 * 3 / 20 / 3, kTol);
  EXPECT_NEAR(random_recall_capped(5, 10, 20), 5.0 * 10 / 20 / 5, kTol);
  EXPECT_NEAR(random_recall_capped(10, 2, 8), 1.0, kTol);  // K beyond N: everything is found
  expect_contains(error_of([] { expected_inverse_first_rank(0, 3, 4); }), {"m <= tied"});
  expect_contains(error_of([] { random_recall_capped(5, 0, 3); }), {"relevant=0"});
}

TEST(EvalRandom, ExpectationsMatchMonteCarlo) {
  // 20k uniformly random permutations; each estimate within 3 standard errors.
  std::mt19937_64 rng(12345);
  const int trials = 20000;
  struct Case {
    int64_t n, m, k;
  };
  for (const Case c : {Case{10, 1, 5}, Case{10, 3, 5}, Case{50, 5, 5}, Case{7, 7, 3},
                       Case{40, 12, 20}, Case{6, 2, 9}}) {
    std::vector<int64_t> perm(static_cast<size_t>(c.n));
    double s_rr = 0, s_rr2 = 0, s_rc = 0, s_rc2 = 0;
    for (int t = 0; t < trials; ++t) {
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      // Items 0 .. m-1 are relevant; perm[p] is the item at rank p + 1.
      int64_t first = 0, hits = 0;
      for (int64_t p = 0; p < c.n; ++p)
        if (perm[p] < c.m) {
          if (first == 0) first = p + 1;
          if (p < c.k) ++hits;
        }
      const double rr = 1.0 / static_cast<double>(first);
      const double rc = static_cast<double>(hits) / static_cast<double>(std::min({c.k, c.n, c.m}));
      s_rr += rr;
      s_rr2 += rr * rr;
      s_rc += rc;
      s_rc2 += rc * rc;
    }
    auto check = [&](double sum, double sum2, double exact, const char* what) {
      const double mean = sum / trials;
      const double sd = std::sqrt(std::max(0.0, sum2 / trials - mean * mean));
      EXPECT_LE(std::fabs(mean - exact), 3 * sd / std::sqrt(double(trials)) + 1e-12)
          << what << " n=" << c.n << " m=" << c.m << " k=" << c.k << ": MC " << mean << " vs exact "
          << exact;
    };
    check(s_rr, s_rr2, expected_inverse_first_rank(0, c.n, c.m), "mrr");
    check(s_rc, s_rc2, random_recall_capped(c.k, c.m, c.n), "recall");
  }
}

TEST(EvalSeed, HandComputed) {
  // 3 users x 4 items, all sampled (sample sizes >= population), seed_k = 1.
  const Tensor s =
      mat({{0.9f, 0.1f, 0.5f, 0.3f}, {0.2f, 0.8f, 0.4f, 0.6f}, {0.7f, 0.6f, 0.5f, 0.4f}});
  const Csr truth = csr(4, {{{0, 10.f}, {2, 6.f}}, {{1, 7.f}, {3, 9.f}}, {{3, 8.f}}});
  EvalConfig cfg;
  cfg.seed_k = 1;
  const Metrics m = evaluate_seed(s, truth, Csr{}, cfg);
  EXPECT_EQ(m.get("seed_users"), 3);
  EXPECT_EQ(m.get("seed_items"), 4);
  // Per user over items (K = 1): row 0 top item 0 relevant -> 1; row 1 top item 1 -> 1;
  // row 2 top item 0 not relevant -> 0. Random: K t / n / min(K, t): 2/4, 2/4, 1/4.
  EXPECT_NEAR(m.get("seed_item_recall@1"), 2.0 / 3, kTol);
  EXPECT_NEAR(m.get("seed_item_recall@1.random"), (0.5 + 0.5 + 0.25) / 3, kTol);
  // Most relevant item: row 0 item 0 (10) rank 1; row 1 item 3 (9) rank 2; row 2 item 3 rank 4.
  // Random: H4/4 = 25/48 for each.
  EXPECT_NEAR(m.get("seed_mrr_items_per_user"), (1 + 0.5 + 0.25) / 3, kTol);
  EXPECT_NEAR(m.get("seed_mrr_items_per_user.random"), 25.0 / 48, kTol);
  // Per item over users {0, 1, 2}: item 0: row 0 top -> 1; item 1: row 1 top -> 1;
  // item 2: row 0 relevant tied with row 2 at 0.5 -> 1/2; item 3: relevant {1, 2}, top row 1
  // -> 1 / min(1, 2) = 1. Random: 1/3, 1/3, 1/3, 2/3.
  EXPECT_NEAR(m.get("seed_user_recall@1"), (1 + 1 + 0.5 + 1) / 4, kTol);
  EXPECT_NEAR(m.get("seed_user_recall@1.random"), (1.0 / 3 * 3 + 2.0 / 3) / 4, kTol);
  // Most relevant user: item 0 row 0 rank 1; item 1 row 1 rank 1; item 2 row 0 tied for
  // rank 1-2 -> 3/4; item 3 row 1 (9 > 8) rank 1. Random: H3/3 = 11/18.
  EXPECT_NEAR(m.get("seed_mrr_users_per_item"), (1 + 1 + 0.75 + 1) / 4, kTol);
  EXPECT_NEAR(m.get("seed_mrr_users_per_item.random"), 11.0 / 18, kTol);
  std::vector<std::string> names;
  for (const auto& p : m.values) names.push_back(p.first);
  EXPECT_EQ(names,
            (std::vector<std::string>{"seed_users", "seed_items", "seed_user_recall@1",
                                      "seed_user_recall@1.random", "seed_item_recall@1",
                                      "seed_item_recall@1.random", "seed_mrr_items_per_user",
                                      "seed_mrr_items_per_user.random", "seed_mrr_users_per_item",
                                      "seed_mrr_users_per_item.random"}));

  // Sampling one user: the metric is that user's value (per-user values listed above).
  cfg.sample_users = 1;
  cfg.sample_items = 1;
  for (uint64_t seed : {0ull, 1ull, 2ull, 3ull}) {
    cfg.seed = seed;
    const Metrics one = evaluate_seed(s, truth, Csr{}, cfg);
    const int32_t u = philox_sample(3, 1, seed, uint64_t{1} << 32)[0];
    const int32_t it = philox_sample(4, 1, seed, 0)[0];
    const double user_recall[] = {1, 1, 0}, user_mrr[] = {1, 0.5, 0.25};
    const double item_recall[] = {1, 1, 0.5, 1}, item_mrr[] = {1, 1, 0.75, 1};
    EXPECT_EQ(one.get("seed_users"), 1);
    EXPECT_NEAR(one.get("seed_item_recall@1"), user_recall[u], kTol);
    EXPECT_NEAR(one.get("seed_mrr_items_per_user"), user_mrr[u], kTol);
    EXPECT_NEAR(one.get("seed_user_recall@1"), item_recall[it], kTol);
    EXPECT_NEAR(one.get("seed_mrr_users_per_item"), item_mrr[it], kTol);
  }
}

TEST(EvalSeed, MostRelevantTiesAndExclude) {
  // Items 0 and 2 share the best truth value 9: the better ranked of them (item 2, rank 2)
  // counts; random: 2 best among 4 candidates -> 13/18. Item 1 is excluded from ranking
  // (it would be first otherwise): then item 2 ranks first.
  const Tensor s = mat({{0.1f, 0.95f, 0.9f, 0.5f, 0.3f}});
  const Csr truth = csr(5, {{{0, 9.f}, {2, 9.f}, {3, 4.f}}});
  EvalConfig cfg;
  cfg.seed_k = 1;
  const Metrics plain = evaluate_seed(s, truth, Csr{}, cfg);
  EXPECT_NEAR(plain.get("seed_mrr_items_per_user"), 0.5, kTol);
  // Random with 5 candidates and 2 tied-best: sum_r (1/r) C(5-r, 1)/C(5, 2)
  // = (4/10) + (3/10)/2 + (2/10)/3 + (1/10)/4.
  EXPECT_NEAR(plain.get("seed_mrr_items_per_user.random"), 0.4 + 0.15 + 2.0 / 30 + 0.025, kTol);
  EXPECT_NEAR(plain.get("seed_item_recall@1"), 0.0, kTol);
  const Metrics ex = evaluate_seed(s, truth, csr(5, {{{1, 1.f}}}), cfg);
  EXPECT_NEAR(ex.get("seed_mrr_items_per_user"), 1.0, kTol);
  EXPECT_NEAR(ex.get("seed_mrr_items_per_user.random"), 13.0 / 18, kTol);
  EXPECT_NEAR(ex.get("seed_item_recall@1"), 1.0, kTol);
  EXPECT_NEAR(ex.get("seed_item_recall@1.random"), 3.0 / 4, kTol);  // 1 * 3 / 4 / min(1, 3)
}

TEST(EvalSeed, PhiloxSampleIsDeterministicAndUniformish) {
  const std::vector<int32_t> a = philox_sample(1000, 100, 42, 0);
  EXPECT_EQ(a, philox_sample(1000, 100, 42, 0));
  EXPECT_NE(a, philox_sample(1000, 100, 43, 0));
  EXPECT_NE(a, philox_sample(1000, 100, 42, uint64_t{1} << 32));
  ASSERT_EQ(a.size(), 100u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end());  // distinct
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 1000);
  EXPECT_EQ(philox_sample(5, 9, 0, 0), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  // Every index of [0, 10) is picked about 3/10 of the time over 2000 seeds (binomial sd ~ 0.01).
  std::vector<int> count(10, 0);
  for (uint64_t seed = 0; seed < 2000; ++seed)
    for (int32_t i : philox_sample(10, 3, seed, 0)) ++count[i];
  for (int c : count) EXPECT_NEAR(c / 2000.0, 0.3, 0.05);
}

TEST(EvalMetrics, SameResultWithOneAndTwoThreads) {
  // Large enough for the parallel paths; scores on a 0.05 grid so ties are common.
  const int64_t R = 300, C = 500;
  std::mt19937 rng(3);
  std::vector<float> v(static_cast<size_t>(R * C));
  for (float& x : v) x = static_cast<float>(rng() % 20) * 0.05f;
  const Tensor s = from_vector(v, {R, C});
  std::vector<std::vector<std::pair<int32_t, float>>> tr(R), ex(R);
  for (int64_t r = 0; r < R; ++r)
    for (int32_t c = 0; c < C; ++c) {
      const uint32_t x = rng() % 50;
      if (x == 0)
        tr[r].emplace_back(c, static_cast<float>(rng() % 10 + 1));
      else if (x < 3)
        ex[r].emplace_back(c, 1.f);
    }
  const Csr truth = csr(C, tr), excl = csr(C, ex);
  EvalConfig cfg;
  cfg.sample_users = 50;
  cfg.sample_items = 50;
  cfg.seed = 9;
  const int before = num_threads();
  set_num_threads(1);
  const Metrics a = evaluate(s, truth, excl, cfg), sa = evaluate_seed(s, truth, excl, cfg);
  set_num_threads(2);
  const Metrics b = evaluate(s, truth, excl, cfg), sb = evaluate_seed(s, truth, excl, cfg);
  set_num_threads(before);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) EXPECT_EQ(a.values[i], b.values[i]);
  for (size_t i = 0; i < sa.values.size(); ++i) EXPECT_EQ(sa.values[i], sb.values[i]);
  EXPECT_EQ(sa.get("seed_users"), 50);
}

TEST(EvalOutput, JsonTableAndLookup) {
  Metrics a;
  a.set("users", 1900);
  a.set("recall@5", 0.123456);
  a.set("mrr", 2.2e-4);
  a.set("recall@5", 0.5);  // replaces, keeps the position
  EXPECT_EQ(a.to_json(), R"({"users":1900.0,"recall@5":0.5,"mrr":0.00022})");
  EXPECT_TRUE(a.has("mrr"));
  EXPECT_FALSE(a.has("ndcg@5"));
  expect_contains(error_of([&] { a.get("ndcg@5"); }), {"no metric 'ndcg@5'", "recall@5"});
  Metrics b;
  b.set("users", 1900);
  b.set("recall@5", 0.0123456);
  b.set("extra", 1);
  const std::string table = format_table({{"wmf", a}, {"knn", b}});
  EXPECT_EQ(table,
            "| metric | wmf | knn |\n"
            "|---|---:|---:|\n"
            "| users | 1900 | 1900 |\n"
            "| recall@5 | 0.5 | 0.01235 |\n"
            "| mrr | 0.00022 | - |\n");
  Metrics n;
  n.set("x", std::nan(""));
  EXPECT_EQ(n.to_json(), R"({"x":null})");
  expect_contains(error_of([] { format_table({}); }), {"no columns"});
}

}  // namespace
