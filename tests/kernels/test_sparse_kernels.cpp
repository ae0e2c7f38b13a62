// Sparse kernels and ops against naive double-precision loops written here (SpMM, Aᵀ·G,
// SDDMM, segment sums, GCN normalization, fused GINE aggregation), bitwise determinism (two
// runs; 1 vs 2 threads), f64 finite-difference gradchecks of the differentiable sparse ops,
// and the dispatcher's errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/ops_sparse.h"
#include "core/sparse.h"
#include "core/threads.h"
#include "kernels/sparse.h"

namespace {

using dan::DType;
using dan::Shape;
using dan::SparseCsr;
using dan::Tensor;
namespace k = dan::kernels;

// A random rows x cols matrix with about nnz entries, some rows empty, some heavy.
SparseCsr random_csr(int64_t rows, int64_t cols, int64_t nnz, uint32_t seed, DType idt = DType::i32,
                     DType vdt = DType::f32, bool sum_dup = true) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> r(0, rows - 1), c(0, cols - 1);
  std::uniform_real_distribution<double> v(-1.5, 1.5);
  std::vector<double> rr, cc, vv;
  for (int64_t e = 0; e < nnz; ++e) {
    // Skew: a third of the entries land in the first few rows (hubs).
    const int64_t row = e % 3 == 0 ? r(rng) % std::max<int64_t>(1, rows / 8) : r(rng);
    rr.push_back(static_cast<double>(row));
    cc.push_back(static_cast<double>(c(rng)));
    vv.push_back(v(rng));
  }
  const auto n = static_cast<int64_t>(rr.size());
  return SparseCsr::from_coo(
      dan::from_doubles(rr, {n}, DType::i64), dan::from_doubles(cc, {n}, DType::i64),
      dan::from_doubles(vv, {n}, vdt), rows, cols, {.sum_duplicates = sum_dup, .index_dtype = idt});
}

Tensor random_dense(const Shape& s, uint32_t seed, DType dt = DType::f32, double lo = -2,
                    double hi = 2) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(dan::numel_of(s)));
  for (double& x : v) x = u(rng);
  return dan::from_doubles(v, s, dt);
}

struct HostCsr {
  std::vector<int64_t> ptr, ind;
  std::vector<double> val;
};
HostCsr host_of(const SparseCsr& a) {
  return {a.indptr().to_vector_as<int64_t>(), a.indices().to_vector_as<int64_t>(),
          a.values().to_vector()};
}

void expect_close(const Tensor& got, const std::vector<double>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(got.numel()), want.size()) << what;
  const auto g = got.to_vector();
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    if (!(std::abs(g[i] - want[i]) <= tol * (1 + std::abs(want[i])))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << want[i];
      ++bad;
    }
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// ---- forward kernels vs references ----------------------------------------------------------

TEST(SparseKernels, SpmmMatchesReference) {
  uint32_t seed = 1;
  for (DType idt : {DType::i32, DType::i64}) {
    for (DType vdt : {DType::f32, DType::f64}) {
      // F covers every tiling: the runtime remainder (1, 7), the 64/32/16-wide f32 tiles
      // (32/16/8 for f64) alone and combined (100 = 64 + 32 + 4, 120 = 64 + 32 + 16 + 8).
      for (int64_t F : {1, 7, 16, 32, 64, 100, 120}) {
        const SparseCsr a = random_csr(37, 23, 150, seed++, idt, vdt);
        const Tensor x = random_dense({23, F}, seed++, vdt);
        const HostCsr h = host_of(a);
        const auto xv = x.to_vector();
        std::vector<double> want(37 * F, 0.0), want_t(23 * F, 0.0);
        const Tensor g = random_dense({37, F}, seed++, vdt);
        const auto gv = g.to_vector();
        for (int64_t i = 0; i < 37; ++i) {
          for (int64_t e = h.ptr[i]; e < h.ptr[i + 1]; ++e) {
            for (int64_t f = 0; f < F; ++f) {
              want[i * F + f] += h.val[e] * xv[h.ind[e] * F + f];
              want_t[h.ind[e] * F + f] += h.val[e] * gv[i * F + f];
            }
          }
        }
        const double tol = vdt == DType::f32 ? 1e-5 : 1e-12;
        const std::string what = fmt::format("{} {} F={}", idt, vdt, F);
        expect_close(k::spmm(a, x), want, tol, "spmm " + what);
        expect_close(k::spmm_transposed(a, g), want_t, tol, "spmm_transposed " + what);
      }
    }
  }
}

TEST(SparseKernels, SpmmTakesStridedInputAndEmptyShapes) {
  const SparseCsr a = random_csr(9, 12, 30, 5);
  const Tensor xt = random_dense({5, 12}, 6);
  const Tensor x = dan::raw::transpose(xt, 0, 1);  // [12, 5], strided
  const Tensor dense = dan::raw::contiguous_copy(x, dan::Device::cpu());
  EXPECT_TRUE(same_bits(k::spmm(a, x), k::spmm(a, dense)));
  EXPECT_EQ(k::spmm(a, dan::zeros({12, 0})).shape(), (Shape{9, 0}));
  const SparseCsr none =
      SparseCsr::from_coo(dan::zeros({0}, DType::i64), dan::zeros({0}, DType::i64), Tensor(), 4, 3);
  EXPECT_EQ(k::spmm(none, dan::ones({3, 2})).to_vector(), std::vector<double>(8, 0.0));
}

TEST(SparseKernels, SddmmAndSegmentSumsMatchReference) {
  for (DType idt : {DType::i32, DType::i64}) {
    const SparseCsr a = random_csr(31, 17, 120, 11, idt, DType::f64);
    const HostCsr h = host_of(a);
    const int64_t nnz = a.nnz(), F = 9;
    const Tensor g = random_dense({31, F}, 12, DType::f64),
                 x = random_dense({17, F}, 13, DType::f64);
    const auto gv = g.to_vector(), xv = x.to_vector();
    std::vector<double> dd(nnz, 0.0);
    for (int64_t i = 0; i < 31; ++i) {
      for (int64_t e = h.ptr[i]; e < h.ptr[i + 1]; ++e) {
        for (int64_t f = 0; f < F; ++f) dd[e] += gv[i * F + f] * xv[h.ind[e] * F + f];
      }
    }
    expect_close(k::sddmm(a, g, x), dd, 1e-12, "sddmm");

    // Segment sums over a 3-D src [nnz, 2, 3]: trailing dims are features.
    const Tensor src = random_dense({nnz, 2, 3}, 14, DType::f64);
    const auto sv = src.to_vector();
    std::vector<double> by_row(31 * 6, 0.0), by_col(17 * 6, 0.0);
    for (int64_t i = 0; i < 31; ++i) {
      for (int64_t e = h.ptr[i]; e < h.ptr[i + 1]; ++e) {
        for (int64_t f = 0; f < 6; ++f) {
          by_row[i * 6 + f] += sv[e * 6 + f];
          by_col[h.ind[e] * 6 + f] += sv[e * 6 + f];
        }
      }
    }
    const Tensor sr = k::segment_sum(a, src), sc = k::segment_sum_cols(a, src);
    EXPECT_EQ(sr.shape(), (Shape{31, 2, 3}));
    EXPECT_EQ(sc.shape(), (Shape{17, 2, 3}));
    expect_close(sr, by_row, 1e-12, "segment_sum");
    expect_close(sc, by_col, 1e-12, "segment_sum_cols");
    // 1-D src.
    const Tensor s1 = random_dense({nnz}, 15, DType::f64);
    EXPECT_EQ(k::segment_sum(a, s1).shape(), (Shape{31}));
  }
}

TEST(SparseKernels, GcnNormHandWorked) {
  // Edges 0->1 (w 1), 2->1 (w 3), 1->0 (w 2); plus self-loops fill 1; node 3 isolated without
  // loops below. Degrees (in, incl. loops): d0 = 2 + 1 = 3, d1 = 1 + 3 + 1 = 5, d2 = 1.
  Tensor ei = dan::from_doubles({0, 2, 1, 1, 1, 0}, {2, 3}, DType::i64);
  const SparseCsr a = SparseCsr::from_edge_index(ei, 3, dan::from_doubles({1, 3, 2}, {3}));
  const SparseCsr n = k::gcn_norm(a.add_remaining_self_loops(1.0));
  const std::vector<double> d = {3, 5, 1};
  auto w = [&](int i, int j, double v) { return v / std::sqrt(d[i]) / std::sqrt(d[j]); };
  // Dense [target, source].
  const std::vector<double> want = {w(0, 0, 1), w(0, 1, 2), 0, w(1, 0, 1), w(1, 1, 1),
                                    w(1, 2, 3), 0,          0, w(2, 2, 1)};
  expect_close(n.to_dense(), want, 1e-6, "gcn_norm");
  // Zero in-degree: d^-1/2 = inf -> 0, so the node's row and column vanish (no NaN).
  const SparseCsr b = k::gcn_norm(SparseCsr::from_edge_index(
      dan::from_doubles({0, 1}, {2, 1}, DType::i64), 3));  // 0->1 only: d0 = d2 = 0
  EXPECT_EQ(b.values().to_vector(), std::vector<double>{0.0});
}

TEST(SparseKernels, GineAggregateMatchesReference) {
  for (DType vdt : {DType::f32, DType::f64}) {
    for (int64_t F : {5, 16, 64, 120}) {
      const SparseCsr a = random_csr(25, 25, 140, 21, DType::i32, vdt, false);
      const HostCsr h = host_of(a);
      const int64_t nnz = a.nnz();
      const Tensor x = random_dense({25, F}, 22, vdt), e = random_dense({nnz, F}, 23, vdt);
      const Tensor g = random_dense({25, F}, 24, vdt);
      const auto xv = x.to_vector(), ev = e.to_vector(), gv = g.to_vector();
      std::vector<double> out(25 * F, 0.0), gm(nnz * F, 0.0);
      for (int64_t i = 0; i < 25; ++i) {
        for (int64_t q = h.ptr[i]; q < h.ptr[i + 1]; ++q) {
          for (int64_t f = 0; f < F; ++f) {
            const double m = xv[h.ind[q] * F + f] + ev[q * F + f];
            out[i * F + f] += std::max(m, 0.0);
            gm[q * F + f] = m > 0 ? gv[i * F + f] : 0.0;
          }
        }
      }
      const double tol = vdt == DType::f32 ? 1e-5 : 1e-12;
      expect_close(k::gine_aggregate(a, x, e), out, tol, fmt::format("gine {} F={}", vdt, F));
      expect_close(k::gine_aggregate_backward(a, g, x, e), gm, 0.0,
                   fmt::format("gine backward {} F={}", vdt, F));
    }
  }
}

// ---- determinism ------------------------------------------------------------------------------

// Large enough for the parallel path (work >= 32768 element-entries), skewed degrees.
TEST(SparseKernels, BitwiseDeterministicAcrossRunsAndThreads) {
  const int saved = dan::num_threads();
  const SparseCsr a = random_csr(3000, 3000, 40000, 31);
  const int64_t F = 24;
  const Tensor x = random_dense({3000, F}, 32), g = random_dense({3000, F}, 33);
  const Tensor e = random_dense({a.nnz(), F}, 34);
  const Tensor idx = a.row_ids();
  auto run_all = [&] {
    dan::NoGradGuard ng;
    return std::vector<Tensor>{k::spmm(a, x),
                               k::spmm_transposed(a, g),
                               k::sddmm(a, g, x),
                               k::segment_sum(a, e),
                               k::segment_sum_cols(a, e),
                               k::gine_aggregate(a, x, e),
                               k::gine_aggregate_backward(a, g, x, e),
                               k::gcn_norm(a).values(),
                               dan::scatter_add(e, idx, 3000),
                               dan::gather_rows(x, a)};
  };
  dan::set_num_threads(2);
  const auto first = run_all(), second = run_all();
  dan::set_num_threads(1);
  const auto single = run_all();
  dan::set_num_threads(saved);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_TRUE(same_bits(first[i], second[i])) << "op " << i << ": two runs differ";
    EXPECT_TRUE(same_bits(first[i], single[i])) << "op " << i << ": 1 vs 2 threads differ";
  }
}

// ---- gradchecks (f64, finite differences) -------------------------------------------------------

void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                      const std::vector<Tensor>& inputs, const std::string& what) {
  dan::autograd::GradcheckOptions opt;
  opt.atol = 1e-6;
  opt.rtol = 1e-5;
  const auto r = dan::autograd::gradcheck(fn, inputs, opt);
  EXPECT_TRUE(r.ok) << what << ": " << r.message;
}

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

TEST(SparseOps, GradcheckSpmm) {
  for (DType idt : {DType::i32, DType::i64}) {
    const SparseCsr a = random_csr(7, 6, 20, 41, idt, DType::f64);
    const Tensor x = leaf(random_dense({6, 4}, 42, DType::f64));
    const Tensor v = leaf(a.values().to(DType::f64).detach());
    expect_gradcheck(
        [&](const std::vector<Tensor>& in) { return dan::spmm(a.with_values(in[1]), in[0]); },
        {x, v}, "spmm (x, values)");
    // Constant values: only x gets a gradient (the cached transpose path).
    expect_gradcheck([&](const std::vector<Tensor>& in) { return dan::spmm(a, in[0]); },
                     {leaf(random_dense({6, 3}, 43, DType::f64))}, "spmm (x)");
  }
}

TEST(SparseOps, GradcheckGatherSegmentScatter) {
  const SparseCsr a = random_csr(6, 8, 22, 51, DType::i32, DType::f64, false);
  const Tensor xc = leaf(random_dense({8, 3}, 52, DType::f64));
  const Tensor xr = leaf(random_dense({6, 3}, 53, DType::f64));
  const Tensor src = leaf(random_dense({a.nnz(), 2}, 54, DType::f64));
  expect_gradcheck([&](const std::vector<Tensor>& in) { return dan::gather_rows(in[0], a); }, {xc},
                   "gather_rows col");
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) { return dan::gather_rows(in[0], a, dan::CsrSide::row); },
      {xr}, "gather_rows row");
  expect_gradcheck([&](const std::vector<Tensor>& in) { return dan::segment_sum(in[0], a); }, {src},
                   "segment_sum");
  const Tensor index = dan::from_doubles({3, 0, 3, 1, 4, 3, 0}, {7}, DType::i64);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return dan::scatter_add(in[0], index, 6); },
                   {leaf(random_dense({7, 2}, 55, DType::f64))}, "scatter_add");
  // Names on the tape (what the op registry lists).
  EXPECT_STREQ(dan::gather_rows(xc, a).grad_fn()->name, "gather_rows");
  EXPECT_STREQ(dan::segment_sum(src, a).grad_fn()->name, "segment_sum");
  EXPECT_STREQ(dan::spmm(a, xc).grad_fn()->name, "spmm");
}

// Segment sums, gathers and the GINE op use only the pattern: an f32-valued graph (the default
// of from_coo) takes f64 features, as in these gradchecks; spmm needs matching dtypes.
TEST(SparseOps, PatternOpsIgnoreTheValueDtype) {
  const SparseCsr a = random_csr(6, 6, 15, 56, DType::i32, DType::f32, false);
  const Tensor x = leaf(random_dense({6, 3}, 57, DType::f64));
  const Tensor e = leaf(random_dense({a.nnz(), 3}, 58, DType::f64));
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return dan::segment_sum(dan::gather_rows(in[0], a), a) +
               dan::gine_aggregate(in[0], in[1], a);
      },
      {x, e}, "pattern ops on an f32 graph");
  EXPECT_THROW(dan::spmm(a, x), dan::Error);
}

TEST(SparseOps, GradcheckGineAggregate) {
  const SparseCsr a = random_csr(6, 6, 18, 61, DType::i64, DType::f64, false);
  // Entries of x + e stay >= 0.2 away from the ReLU kink: x in ±[0.6, 1.2], e in [-0.3, 0.3]
  // cannot sum to anything in (-0.3, 0.3).
  std::mt19937 rng(62);
  std::uniform_real_distribution<double> mag(0.6, 1.2), small(-0.3, 0.3);
  std::vector<double> xv(6 * 4), ev(a.nnz() * 4);
  for (double& v : xv) v = (rng() % 2 ? 1 : -1) * mag(rng);
  for (double& v : ev) v = small(rng);
  const Tensor x = leaf(dan::from_doubles(xv, {6, 4}, DType::f64));
  const Tensor e = leaf(dan::from_doubles(ev, {a.nnz(), 4}, DType::f64));
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) { return dan::gine_aggregate(in[0], in[1], a); }, {x, e},
      "gine_aggregate");
}

// ---- errors --------------------------------------------------------------------------------

TEST(SparseKernels, ErrorsNameOpAndShapes) {
  const SparseCsr a = random_csr(5, 4, 10, 71);
  auto msg = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const dan::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(msg([&] {
              k::spmm(a, dan::zeros({5, 3}));
            }).find("spmm: x has shape [5, 3], expected cols = 4"),
            std::string::npos);
  EXPECT_NE(msg([&] {
              k::spmm(a, dan::zeros({4, 3}, DType::f64));
            }).find("x is f64 but the matrix values are f32"),
            std::string::npos);
  EXPECT_NE(msg([&] { k::spmm(a, dan::zeros({4})); }).find("must be 2-D"), std::string::npos);
  EXPECT_NE(msg([&] {
              k::segment_sum(a, dan::zeros({a.nnz() + 1, 2}));
            }).find("nnz"),
            std::string::npos);
  EXPECT_NE(msg([&] { k::gcn_norm(random_csr(3, 4, 5, 72)); }).find("must be square"),
            std::string::npos);
  EXPECT_NE(msg([&] {
              k::sddmm(a, dan::zeros({5, 2}), dan::zeros({4, 3}));
            }).find("differ in the feature dim"),
            std::string::npos);
  EXPECT_NE(msg([&] {
              dan::gather_rows(dan::zeros({5, 2}), a);
            }).find("expected 4 rows"),
            std::string::npos);
}

TEST(SparseKernels, SpmmAlgoSetting) {
  const k::SpmmAlgo before = k::spmm_algo();
  k::set_spmm_algo(k::SpmmAlgo::row_split);
  EXPECT_EQ(k::spmm_algo(), k::SpmmAlgo::row_split);
  EXPECT_STREQ(k::name(k::SpmmAlgo::cusparse), "cusparse");
  k::set_spmm_algo(before);
}

}  // namespace
