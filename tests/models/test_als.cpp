// WMF by implicit ALS (models/wmf/als.h, kernels/als.h): one iteration against NumPy's exact
// and CG solutions, 15 iterations against the `implicit` package's losses
// (tests/fixtures/als_gold.safetensors, see tests/fixtures/README.md), both CPU paths,
// determinism across runs and thread counts, a planted low-rank problem, CG vs Cholesky,
// bad inputs, and the factor file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/serialize.h"
#include "core/threads.h"
#include "kernels/als.h"
#include "kernels/kernels.h"
#include "models/wmf/als.h"

using namespace dan;

namespace {

using Fixture = std::map<std::string, Tensor>;

const Fixture& gold() {
  static const Fixture f =
      load_safetensors(std::string(DAN_FIXTURES_DIR) + "/als_gold.safetensors");
  return f;
}

const Tensor& at(const Fixture& f, const std::string& k) {
  const auto it = f.find(k);
  if (it == f.end()) fail("als_gold.safetensors has no key '{}'", k);
  return it->second;
}

constexpr double kReg = 0.05;  // the fixture's (metadata "reg")
constexpr int kIters = 15, kCgSteps = 3;

recsys::Csr gold_matrix() {
  const Fixture& g = gold();
  recsys::Csr C;
  C.rows = at(g, "U0").size(0);
  C.cols = at(g, "V0").size(0);
  C.indptr = at(g, "indptr").to_vector_as<int64_t>();
  C.indices = at(g, "indices").to_vector_as<int32_t>();
  C.values = at(g, "values").to_vector_as<float>();
  return C;
}

kernels::CsrTensors tensors_of(const recsys::Csr& C) {
  kernels::CsrTensors t;
  t.indptr = from_vector<int64_t>(C.indptr, {C.rows + 1});
  t.indices = from_vector<int32_t>(C.indices, {C.nnz()});
  t.values = from_vector<float>(C.values, {C.nnz()});
  t.rows = C.rows;
  t.cols = C.cols;
  return t;
}

Tensor gram(const Tensor& Y) { return kernels::als_gram(Y); }

// |got - want| <= atol + rtol |want| everywhere; reports the worst error.
void expect_close(const Tensor& got, const Tensor& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto g = got.to_vector(), w = want.to_vector();
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double err = std::abs(g[i] - w[i]);
    worst = std::max(worst, err);
    if (!(err <= atol + rtol * std::abs(w[i])) && ++bad <= 5) {
      ADD_FAILURE() << what << " element " << i << ": got " << g[i] << ", want " << w[i];
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": worst |err| " << worst;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// Runs `body` with the portable CPU path forced on or off, restoring the default after.
template <typename F>
void with_path(bool portable, const F& body) {
  kernels::cpu::als_force_portable(portable);
  try {
    body();
  } catch (...) {
    kernels::cpu::als_force_portable(false);
    throw;
  }
  kernels::cpu::als_force_portable(false);
}

// Expects `f` to throw dan::Error whose message contains `needle`.
template <typename F>
void expect_error(const F& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << needle;
  }
}

// A small deterministic generator (splitmix64) for the synthetic problems below.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// rows x cols with each entry present with probability `density`, confidence 1 + k/2 for
// k in 1..10; some rows are left empty on purpose when `empty_rows`.
recsys::Csr random_matrix(int64_t rows, int64_t cols, double density, uint64_t seed,
                          bool empty_rows = false) {
  Rng rng{seed};
  std::vector<int32_t> r, c;
  std::vector<float> v;
  for (int64_t i = 0; i < rows; ++i) {
    if (empty_rows && i % 7 == 3) continue;
    for (int64_t j = 0; j < cols; ++j) {
      if (rng.uniform() < density) {
        r.push_back(static_cast<int32_t>(i));
        c.push_back(static_cast<int32_t>(j));
        v.push_back(1.0f + 0.5f * static_cast<float>(1 + rng.next() % 10));
      }
    }
  }
  return recsys::Csr::from_triplets(rows, cols, r, c, v);
}

Tensor random_factors(int64_t n, int64_t f, double scale, uint64_t seed) {
  Rng rng{seed};
  std::vector<double> v(static_cast<size_t>(n * f));
  for (double& x : v) x = scale * rng.normal();
  return from_doubles(v, {n, f});
}

// The exact solution of every row's system in double precision, by Gaussian elimination on the
// explicitly formed matrix: an independent reference for the kernels.
Tensor exact_half_step(const recsys::Csr& C, const Tensor& Y, double reg) {
  const int64_t f = Y.size(1);
  const std::vector<double> y = Y.to_vector();
  std::vector<double> out(static_cast<size_t>(C.rows * f), 0.0);
  for (int64_t u = 0; u < C.rows; ++u) {
    if (C.row_nnz(u) == 0) continue;
    std::vector<double> A(static_cast<size_t>(f * f), 0.0), b(static_cast<size_t>(f), 0.0);
    for (int64_t j = 0; j < f; ++j) A[j * f + j] = reg;
    for (int64_t i = 0; i < C.cols; ++i) {  // Y^T Y
      for (int64_t j = 0; j < f; ++j)
        for (int64_t k = 0; k < f; ++k) A[j * f + k] += y[i * f + j] * y[i * f + k];
    }
    for (int64_t e = C.indptr[u]; e < C.indptr[u + 1]; ++e) {
      const int64_t i = C.indices[e];
      const double c = C.values[e];
      for (int64_t j = 0; j < f; ++j) {
        b[j] += c * y[i * f + j];
        for (int64_t k = 0; k < f; ++k) A[j * f + k] += (c - 1) * y[i * f + j] * y[i * f + k];
      }
    }
    for (int64_t p = 0; p < f; ++p) {  // no pivoting needed: A is SPD
      for (int64_t r = p + 1; r < f; ++r) {
        const double m = A[r * f + p] / A[p * f + p];
        for (int64_t k = p; k < f; ++k) A[r * f + k] -= m * A[p * f + k];
        b[r] -= m * b[p];
      }
    }
    for (int64_t p = f - 1; p >= 0; --p) {
      double s = b[p];
      for (int64_t k = p + 1; k < f; ++k) s -= A[p * f + k] * out[u * f + k];
      out[u * f + p] = s / A[p * f + p];
    }
  }
  return from_doubles(out, {C.rows, f});
}

// One iteration (user then item half-step) through the kernels, from copies of U0, V0.
std::pair<Tensor, Tensor> one_iteration(const recsys::Csr& C, const Tensor& U0, const Tensor& V0,
                                        wmf::Solver solver, int cg_steps, double reg) {
  Tensor U = U0.clone(), V = V0.clone();
  const kernels::CsrTensors Cu = tensors_of(C), Ci = tensors_of(C.transpose());
  const float r = static_cast<float>(reg);
  if (solver == wmf::Solver::cg) {
    kernels::als_update_cg(U, V, gram(V), Cu, r, cg_steps);
    kernels::als_update_cg(V, U, gram(U), Ci, r, cg_steps);
  } else {
    kernels::als_update_cholesky(U, V, gram(V), Cu, r);
    kernels::als_update_cholesky(V, U, gram(U), Ci, r);
  }
  return {U, V};
}

}  // namespace

// ---- gold: one iteration vs NumPy (exact solve and 3-step CG), loss -----------------------

TEST(AlsGold, HalfStepsMatchNumpy) {
  // Each half-step on its own, from the fixture's inputs: the user half-step from (U0, V0), the
  // item half-step from (V0, U1) with the fixture's U1. Only this half-step's rounding
  // separates us from NumPy's float64 (the Cholesky path works in f64, CG in f32).
  const Fixture& g = gold();
  const recsys::Csr C = gold_matrix();
  const kernels::CsrTensors Cu = tensors_of(C), Ci = tensors_of(C.transpose());
  const float reg = static_cast<float>(kReg);
  for (const bool portable : {false, true}) {
    with_path(portable, [&] {
      SCOPED_TRACE(portable ? "portable path" : "default path");
      for (const std::string s : {"chol", "cg"}) {
        const Tensor& U1 = at(g, "step." + s + ".U1");
        Tensor U = at(g, "U0").clone(), V = at(g, "V0").clone();
        if (s == "cg") {
          kernels::als_update_cg(U, at(g, "V0"), gram(at(g, "V0")), Cu, reg, kCgSteps);
          kernels::als_update_cg(V, U1, gram(U1), Ci, reg, kCgSteps);
        } else {
          kernels::als_update_cholesky(U, at(g, "V0"), gram(at(g, "V0")), Cu, reg);
          kernels::als_update_cholesky(V, U1, gram(U1), Ci, reg);
        }
        expect_close(U, U1, 1e-5, 1e-5, s + " user half-step");
        // The item systems are worse conditioned (cond ~ 400): three f32 CG steps land 5e-5
        // from the float64 ones, and implicit's native f32 CG does too (5.2e-5 on this step).
        const double tol = s == "cg" ? 1e-4 : 1e-5;
        expect_close(V, at(g, "step." + s + ".V1"), tol, tol, s + " item half-step");
      }
    });
  }
}

TEST(AlsGold, OneIterationAndLossMatchNumpy) {
  // Both half-steps chained through our own U1 (CG's bound as in HalfStepsMatchNumpy;
  // implicit's own f32 CG is 2.7e-5 off NumPy over this iteration).
  const Fixture& g = gold();
  const recsys::Csr C = gold_matrix();
  for (const auto& [name, solver, tol] : {std::tuple{"chol", wmf::Solver::cholesky, 1e-5},
                                          std::tuple{"cg", wmf::Solver::cg, 1e-4}}) {
    const auto [U, V] = one_iteration(C, at(g, "U0"), at(g, "V0"), solver, kCgSteps, kReg);
    const std::string s = name;
    expect_close(U, at(g, "step." + s + ".U1"), tol, tol, s + " U1");
    expect_close(V, at(g, "step." + s + ".V1"), tol, tol, s + " V1");
    const double want = at(g, "step." + s + ".loss1").item();
    EXPECT_NEAR(wmf::als_loss(C, U, V, kReg), want, 1e-5 * want) << s;
  }
  const double want0 = at(g, "step.loss0").item();
  EXPECT_NEAR(wmf::als_loss(C, at(g, "U0"), at(g, "V0"), kReg), want0, 1e-6 * want0);
}

TEST(AlsGold, FifteenIterationsMatchImplicitLoss) {
  const Fixture& g = gold();
  const recsys::Csr C = gold_matrix();
  for (const auto& [name, solver] :
       {std::pair{"cg", wmf::Solver::cg}, std::pair{"chol", wmf::Solver::cholesky}}) {
    wmf::AlsConfig cfg;
    cfg.factors = at(g, "U0").size(1);
    cfg.iterations = kIters;
    cfg.reg = kReg;
    cfg.solver = solver;
    cfg.cg_steps = kCgSteps;
    const wmf::AlsResult r = wmf::fit_als(C, cfg, at(g, "U0"), at(g, "V0"));
    const std::vector<double> want = at(g, std::string("implicit.") + name + ".loss").to_vector();
    ASSERT_EQ(r.history.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(r.history[i].loss, want[i], 0.01 * want[i]) << name << " iteration " << i + 1;
    }
    // The loss the fit reports is the one als_loss computes for its factors.
    EXPECT_NEAR(wmf::als_loss(C, r.U, r.V, kReg), r.history.back().loss,
                1e-5 * r.history.back().loss);
  }
}

// ---- both solvers against an independent double-precision reference, any f ---------------

TEST(AlsKernels, CholeskyAndLongCgMatchExactSolution) {
  // f = 5 and 13 exercise the zero padding to 8 lanes, 64 the register-resident sparse sums,
  // 72 the general ones; every 7th row is empty (its solution is 0).
  for (const int64_t f : {5, 13, 64, 72}) {
    const recsys::Csr C = random_matrix(24, 90, 0.3, 100 + f, true);
    const Tensor Y = random_factors(C.cols, f, 0.3, 200 + f);
    const Tensor X0 = random_factors(C.rows, f, 0.1, 300 + f);
    const double reg = 0.5;
    const Tensor want = exact_half_step(C, Y, reg);
    const kernels::CsrTensors Ct = tensors_of(C);
    for (const bool portable : {false, true}) {
      with_path(portable, [&] {
        SCOPED_TRACE(fmt::format("f = {}, {} path", f, portable ? "portable" : "default"));
        Tensor X = X0.clone();
        kernels::als_update_cholesky(X, Y, gram(Y), Ct, static_cast<float>(reg));
        expect_close(X, want, 1e-4, 1e-5, "cholesky");
        // CG with as many steps as unknowns (plus margin) converges to the same solution.
        Tensor Xc = X0.clone();
        kernels::als_update_cg(Xc, Y, gram(Y), Ct, static_cast<float>(reg), static_cast<int>(f) + 20);
        expect_close(Xc, want, 2e-3, 2e-4, "cg");
      });
    }
  }
}

TEST(AlsKernels, PathsAgreeOnCgSteps) {
  // The AVX2 and portable paths run the same algorithm in f32: after 3 steps from the same
  // start they agree to rounding, for f with and without padding.
  for (const int64_t f : {7, 16, 40, 100}) {
    const recsys::Csr C = random_matrix(30, 50, 0.25, 500 + f, true);
    const Tensor Y = random_factors(C.cols, f, 0.2, 600 + f);
    const Tensor X0 = random_factors(C.rows, f, 0.1, 700 + f);
    const kernels::CsrTensors Ct = tensors_of(C);
    Tensor a = X0.clone(), b = X0.clone();
    with_path(false, [&] { kernels::als_update_cg(a, Y, gram(Y), Ct, 0.1f, 3); });
    with_path(true, [&] { kernels::als_update_cg(b, Y, gram(Y), Ct, 0.1f, 3); });
    expect_close(a, b, 1e-4, 1e-5, fmt::format("f = {}", f));
    const auto pa = kernels::als_loss_parts(a, Y, gram(Y), Ct);
    kernels::AlsLossParts pb;
    with_path(true, [&] { pb = kernels::als_loss_parts(a, Y, gram(Y), Ct); });
    EXPECT_NEAR(pa.observed, pb.observed, 1e-5 * std::abs(pb.observed) + 1e-6);
    EXPECT_NEAR(pa.dense, pb.dense, 1e-5 * std::abs(pb.dense) + 1e-6);
  }
}

TEST(AlsKernels, GramIsExactlySymmetricAndThreadCountFree) {
  const int threads_before = num_threads();
  for (const int64_t f : {3, 16, 37}) {
    for (const int64_t n : {5, 700, 9000}) {
      const Tensor Y = random_factors(n, f, 1.0, 800 + n + f);
      const std::vector<double> y = Y.to_vector();
      for (const bool portable : {false, true}) {
        with_path(portable, [&] {
          SCOPED_TRACE(fmt::format("n = {}, f = {}, {} path", n, f, portable ? "portable" : "default"));
          set_num_threads(1);
          const Tensor a = kernels::als_gram(Y);
          set_num_threads(2);
          const Tensor b = kernels::als_gram(Y);
          set_num_threads(threads_before);
          EXPECT_TRUE(bitwise_equal(a, b));
          double worst = 0;
          for (int64_t j = 0; j < f; ++j) {
            for (int64_t k = 0; k < f; ++k) {
              double want = 0;
              for (int64_t r = 0; r < n; ++r) want += y[r * f + j] * y[r * f + k];
              worst = std::max(worst, std::abs(a.at({j, k}) - want) / (std::abs(want) + n * 1e-3));
              ASSERT_EQ(a.at({j, k}), a.at({k, j}));
            }
          }
          EXPECT_LT(worst, 5e-5);  // f32 sums of 128 rows, then f64
        });
      }
    }
  }
}

// ---- determinism ----------------------------------------------------------------------------

TEST(AlsDeterminism, SameSeedSameFactorsAnyThreadCount) {
  // Large enough (rows * f >= the kernels' parallel threshold) that two threads really split it.
  const recsys::Csr C = random_matrix(900, 300, 0.04, 7);
  const int threads_before = num_threads();
  for (const wmf::Solver solver : {wmf::Solver::cg, wmf::Solver::cholesky}) {
    wmf::AlsConfig cfg;
    cfg.factors = 40;
    cfg.iterations = 2;
    cfg.solver = solver;
    cfg.seed = 1234;
    cfg.reg = 0.1;
    set_num_threads(1);
    const wmf::AlsResult a = wmf::fit_als(C, cfg);
    const wmf::AlsResult b = wmf::fit_als(C, cfg);
    set_num_threads(2);
    const wmf::AlsResult c = wmf::fit_als(C, cfg);
    set_num_threads(threads_before);
    EXPECT_TRUE(bitwise_equal(a.U, b.U) && bitwise_equal(a.V, b.V)) << "same seed, two runs";
    EXPECT_TRUE(bitwise_equal(a.U, c.U) && bitwise_equal(a.V, c.V)) << "1 vs 2 threads";
    EXPECT_EQ(a.history.back().loss, c.history.back().loss);
  }
}

TEST(AlsDeterminism, InitIsUniformFromSeed) {
  const recsys::Csr C = random_matrix(50, 30, 0.2, 9);
  wmf::AlsConfig cfg;
  cfg.factors = 6;
  cfg.iterations = 0;
  cfg.init_scale = 0.01;
  cfg.seed = 5;
  const wmf::AlsResult a = wmf::fit_als(C, cfg), b = wmf::fit_als(C, cfg);
  cfg.seed = 6;
  const wmf::AlsResult c = wmf::fit_als(C, cfg);
  EXPECT_TRUE(bitwise_equal(a.U, b.U) && bitwise_equal(a.V, b.V));
  EXPECT_FALSE(bitwise_equal(a.U, c.U));
  double mean = 0;
  for (const Tensor& t : {a.U, a.V}) {
    for (const double x : t.to_vector()) {
      EXPECT_GE(x, 0.0);
      EXPECT_LT(x, 0.01);
      mean += x;
    }
  }
  mean /= static_cast<double>(a.U.numel() + a.V.numel());
  EXPECT_NEAR(mean, 0.005, 0.0008);  // 480 draws: sd of the mean ~ 0.00013
  // V continues the Philox stream after U: its first row is not U's first row.
  EXPECT_NE(a.U.at({0, 0}), a.V.at({0, 0}));
}

// ---- a planted low-rank problem ---------------------------------------------------------------

TEST(AlsPlanted, LossDecreasesAndRankingBeatsPopularity) {
  const int64_t users = 300, items = 200, rank = 4;
  const Tensor Ut = random_factors(users, rank, 1.0, 11);
  const Tensor Vt = random_factors(items, rank, 1.0, 12);
  const std::vector<double> ut = Ut.to_vector(), vt = Vt.to_vector();
  Rng rng{13};
  // Each user likes the 20 items of highest planted score (+ small noise); 5 of them are held
  // out, the other 15 observed with confidence 1 + 4 = 5.
  std::vector<int32_t> r, c;
  std::vector<float> v;
  std::vector<std::set<int32_t>> held(users), train(users);
  for (int64_t u = 0; u < users; ++u) {
    std::vector<std::pair<double, int32_t>> s(items);
    for (int64_t i = 0; i < items; ++i) {
      double d = 0.1 * rng.normal();
      for (int64_t k = 0; k < rank; ++k) d += ut[u * rank + k] * vt[i * rank + k];
      s[i] = {-d, static_cast<int32_t>(i)};
    }
    std::sort(s.begin(), s.end());
    for (int k = 0; k < 20; ++k) {
      const int32_t i = s[k].second;
      if (k % 4 == 1) {
        held[u].insert(i);
      } else {
        train[u].insert(i);
        r.push_back(static_cast<int32_t>(u));
        c.push_back(i);
        v.push_back(5.0f);
      }
    }
  }
  const recsys::Csr C = recsys::Csr::from_triplets(users, items, r, c, v);
  wmf::AlsConfig cfg;
  cfg.factors = 8;
  cfg.iterations = 8;
  cfg.reg = 0.1;
  cfg.solver = wmf::Solver::cholesky;
  cfg.seed = 3;
  const wmf::AlsResult res = wmf::fit_als(C, cfg);
  // Exact block coordinate descent never increases the objective.
  for (size_t i = 1; i < res.history.size(); ++i) {
    EXPECT_LE(res.history[i].loss, res.history[i - 1].loss * (1 + 1e-6)) << "iteration " << i + 1;
  }
  EXPECT_LT(res.history.back().loss, 0.6 * res.history.front().loss);

  // recall@10 of held-out items, training items excluded, vs ranking by training popularity.
  std::vector<double> pop(items, 0);
  for (int32_t i : c) pop[i] += 1;
  const std::vector<double> U = res.U.to_vector(), V = res.V.to_vector();
  auto recall_at_10 = [&](const std::function<double(int64_t, int64_t)>& score) {
    double total = 0;
    for (int64_t u = 0; u < users; ++u) {
      std::vector<std::pair<double, int64_t>> s;
      for (int64_t i = 0; i < items; ++i) {
        if (!train[u].count(static_cast<int32_t>(i))) s.push_back({-score(u, i), i});
      }
      std::partial_sort(s.begin(), s.begin() + 10, s.end());
      int hits = 0;
      for (int k = 0; k < 10; ++k) hits += held[u].count(static_cast<int32_t>(s[k].second)) ? 1 : 0;
      total += hits / static_cast<double>(std::min<size_t>(10, held[u].size()));
    }
    return total / static_cast<double>(users);
  };
  const double als = recall_at_10([&](int64_t u, int64_t i) {
    double d = 0;
    for (int64_t k = 0; k < cfg.factors; ++k) d += U[u * cfg.factors + k] * V[i * cfg.factors + k];
    return d;
  });
  const double popularity = recall_at_10([&](int64_t, int64_t i) { return pop[i] - 1e-6 * i; });
  EXPECT_GT(als, 0.6) << "popularity " << popularity;
  EXPECT_GT(als, popularity + 0.2) << "ALS " << als << " vs popularity " << popularity;
}

// ---- bad inputs -------------------------------------------------------------------------------

TEST(AlsErrors, KernelArgumentsAreChecked) {
  const recsys::Csr C = random_matrix(10, 8, 0.4, 21);
  const kernels::CsrTensors Ct = tensors_of(C);
  const Tensor Y = random_factors(8, 4, 0.1, 22);
  const Tensor G = gram(Y);
  Tensor X = random_factors(10, 4, 0.1, 23);

  Tensor Xbad = random_factors(9, 4, 0.1, 24);
  expect_error([&] { kernels::als_update_cg(Xbad, Y, G, Ct, 0.1f, 3); },
               "X has shape [9, 4] but C has 10 rows");
  expect_error([&] { kernels::als_update_cg(X, random_factors(8, 5, 0.1, 1), G, Ct, 0.1f, 3); },
               "Y has shape [8, 5], expected [8, 4]");
  expect_error([&] { kernels::als_update_cholesky(X, Y, gram(random_factors(8, 3, 1, 1)), Ct, 0.1f); },
               "YtY has shape [3, 3], expected [4, 4]");
  Tensor Xt = raw::transpose(random_factors(4, 10, 0.1, 25), 0, 1);  // [10, 4], not contiguous
  expect_error([&] { kernels::als_update_cg(Xt, Y, G, Ct, 0.1f, 3); }, "X must be contiguous");
  Tensor X64 = raw::cast(X, DType::f64);
  expect_error([&] { kernels::als_update_cholesky(X64, Y, G, Ct, 0.1f); }, "X must be f32, got f64");
  expect_error([&] { kernels::als_update_cg(X, Y, G, Ct, 0.1f, 0); }, "cg_steps must be >= 1");
  expect_error([&] { kernels::als_update_cg(X, Y, G, Ct, -1.0f, 3); }, "reg must be finite and >= 0");

  kernels::CsrTensors bad = Ct;
  bad.indices = from_vector<int64_t>(std::vector<int64_t>(C.nnz(), 0), {C.nnz()});
  expect_error([&] { kernels::als_loss_parts(X, Y, G, bad); }, "C.indices must be i32, got i64");
  bad = Ct;
  std::vector<int32_t> idx = C.indices;
  idx[2] = 8;
  bad.indices = from_vector<int32_t>(idx, {C.nnz()});
  expect_error([&] { kernels::als_update_cg(X, Y, G, bad, 0.1f, 3); },
               "C.indices[2] = 8 is outside [0, 8)");
  bad = Ct;
  std::vector<float> val = C.values;
  val[1] = -2.0f;
  bad.values = from_vector<float>(val, {C.nnz()});
  expect_error([&] { kernels::als_update_cholesky(X, Y, G, bad, 0.1f); },
               "C.values[1] = -2: confidences must be finite and > 0");
  bad = Ct;
  bad.indptr = from_vector<int64_t>(std::vector<int64_t>(C.indptr.begin(), C.indptr.end() - 1), {C.rows});
  expect_error([&] { kernels::als_update_cg(X, Y, G, bad, 0.1f, 3); },
               "C.indptr has 10 entries, expected rows + 1 = 11");
}

TEST(AlsErrors, ModelArgumentsAreChecked) {
  const recsys::Csr C = random_matrix(10, 8, 0.4, 31);
  wmf::AlsConfig cfg;
  cfg.factors = 4;
  cfg.iterations = 1;
  expect_error([&] { wmf::fit_als(C, cfg, random_factors(10, 3, 0.1, 1), random_factors(8, 4, 0.1, 2)); },
               "U0 has shape [10, 3], expected [10, 4]");
  cfg.factors = 0;
  expect_error([&] { wmf::fit_als(C, cfg); }, "factors must be >= 1, got 0");
  cfg.factors = 4;
  recsys::Csr neg = C;
  neg.values[0] = 0.0f;
  expect_error([&] { wmf::fit_als(neg, cfg); }, "is not a confidence");
  expect_error([&] { wmf::als_loss(C, random_factors(10, 4, 0.1, 1), random_factors(7, 4, 0.1, 2), 0.1); },
               "V has shape [7, 4], expected [8, 4]");
  expect_error([] { wmf::parse_solver("lu"); }, "unknown solver 'lu'");
}

// ---- the factor file ----------------------------------------------------------------------------

TEST(AlsSerialize, SaveLoadRoundTripAndBadFiles) {
  const recsys::Csr C = random_matrix(12, 9, 0.4, 41);
  wmf::AlsConfig cfg;
  cfg.factors = 3;
  cfg.iterations = 2;
  cfg.reg = 0.25;
  cfg.seed = 77;
  cfg.solver = wmf::Solver::cholesky;
  const wmf::AlsResult r = wmf::fit_als(C, cfg);
  std::vector<int32_t> users(12), items(9);
  std::iota(users.begin(), users.end(), 100);
  std::iota(items.begin(), items.end(), 500);
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/als_factors_test.safetensors";
  wmf::save_factors(path, r, users, items);
  const wmf::Factors f = wmf::load_factors(path);
  EXPECT_TRUE(bitwise_equal(f.U, r.U));
  EXPECT_TRUE(bitwise_equal(f.V, r.V));
  EXPECT_EQ(f.users, users);
  EXPECT_EQ(f.items, items);
  EXPECT_EQ(f.metadata.at("factors"), "3");
  EXPECT_EQ(f.metadata.at("reg"), "0.25");
  EXPECT_EQ(f.metadata.at("iterations"), "2");
  EXPECT_EQ(f.metadata.at("solver"), "cholesky");
  EXPECT_EQ(f.metadata.at("seed"), "77");
  EXPECT_EQ(std::stod(f.metadata.at("final_loss")), r.history.back().loss);

  expect_error([&] { wmf::save_factors(path, r, users, {1, 2}); }, "2 item ids for 9 rows of V");
  const std::string bad = dir + "/als_factors_bad.safetensors";
  save_safetensors(bad, {{"U", r.U}, {"V", r.V}, {"users", from_vector<int32_t>(users, {12})}});
  expect_error([&] { wmf::load_factors(bad); }, "has no tensor 'items'");
  save_safetensors(bad, {{"U", r.U},
                         {"V", r.V},
                         {"users", from_vector<int32_t>({1, 2, 3}, {3})},
                         {"items", from_vector<int32_t>(items, {9})}});
  expect_error([&] { wmf::load_factors(bad); }, "'users' has 3 ids for 12 rows of U");
  save_safetensors(bad, {{"U", r.U},
                         {"V", raw::cast(r.V, DType::f64)},
                         {"users", from_vector<int32_t>(users, {12})},
                         {"items", from_vector<int32_t>(items, {9})}});
  expect_error([&] { wmf::load_factors(bad); }, "'V' is f64 [9, 3], expected a 2-D f32 tensor");
  std::filesystem::remove(path);
  std::filesystem::remove(bad);
}

// ---- CUDA (skipped without a device) --------------------------------------------------------------

TEST(AlsCuda, FitMatchesCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const recsys::Csr C = gold_matrix();
  for (const wmf::Solver solver : {wmf::Solver::cg, wmf::Solver::cholesky}) {
    wmf::AlsConfig cfg;
    cfg.factors = 8;
    cfg.iterations = 5;
    cfg.reg = kReg;
    cfg.solver = solver;
    cfg.seed = 3;
    const wmf::AlsResult cpu = wmf::fit_als(C, cfg);
    cfg.device = Device::cuda();
    const wmf::AlsResult gpu = wmf::fit_als(C, cfg);
    for (size_t i = 0; i < cpu.history.size(); ++i) {
      EXPECT_NEAR(gpu.history[i].loss, cpu.history[i].loss, 1e-4 * cpu.history[i].loss);
    }
    expect_close(gpu.U, cpu.U, 1e-3, 1e-4, "U");
    expect_close(gpu.V, cpu.V, 1e-3, 1e-4, "V");
  }
}
