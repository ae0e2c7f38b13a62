// Tests for the CPU softmax family, layer norm and batch norm kernels: naive double-precision
// references over many shapes and views, plus the PyTorch gold values in ops_gold.safetensors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "kernels/kernels.h"

namespace {

using dan::DType;
using dan::Shape;
using dan::Tensor;
namespace raw = dan::raw;
namespace k = dan::kernels;
using Vec = std::vector<double>;

Tensor random_tensor(const Shape& s, DType dt, uint32_t seed, double scale = 1.0,
                     double shift = 0.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  Vec v(static_cast<size_t>(dan::numel_of(s)));
  for (double& x : v) x = shift + scale * nd(rng);
  return dan::from_doubles(v, s, dt);
}

// |got - want| <= atol + rtol * |want| elementwise (NaN must match NaN); reports the first few.
void expect_close(const Tensor& got, const Vec& want, double rtol, double atol,
                  const std::string& what) {
  const Vec g = got.to_vector();
  ASSERT_EQ(g.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    const bool ok = std::isnan(want[i])
                        ? std::isnan(g[i])
                        : std::fabs(g[i] - want[i]) <= atol + rtol * std::fabs(want[i]);
    if (!ok) {
      ADD_FAILURE() << what << ": element " << i << " got " << g[i] << " want " << want[i];
      ++bad;
    }
  }
}

int64_t last_dim(const Tensor& t) { return t.dim() == 0 ? 1 : t.size(-1); }

// ---- naive references (double) --------------------------------------------------------------

Vec ref_softmax(const Vec& x, int64_t d, bool log) {
  Vec y(x.size());
  for (size_t r = 0; d > 0 && r < x.size() / d; ++r) {
    double m = -INFINITY;
    for (int64_t j = 0; j < d; ++j) m = std::max(m, x[r * d + j]);
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += std::exp(x[r * d + j] - m);
    for (int64_t j = 0; j < d; ++j) {
      y[r * d + j] = log ? x[r * d + j] - m - std::log(s) : std::exp(x[r * d + j] - m) / s;
    }
  }
  return y;
}

// dx for softmax (y = probabilities) or log_softmax (y = log-probabilities); also returns in
// `scale` a per-element magnitude for the tolerance (the terms that cancel).
Vec ref_softmax_bwd(const Vec& g, const Vec& y, int64_t d, bool log, Vec* scale) {
  Vec dx(g.size());
  scale->assign(g.size(), 0.0);
  for (size_t r = 0; d > 0 && r < g.size() / d; ++r) {
    double s = 0, sa = 0;
    for (int64_t j = 0; j < d; ++j) {
      const size_t i = r * d + j;
      s += log ? g[i] : g[i] * y[i];
      sa += log ? std::fabs(g[i]) : std::fabs(g[i] * y[i]);
    }
    for (int64_t j = 0; j < d; ++j) {
      const size_t i = r * d + j;
      if (log) {
        dx[i] = g[i] - std::exp(y[i]) * s;
        (*scale)[i] = std::fabs(g[i]) + std::exp(y[i]) * sa;
      } else {
        dx[i] = y[i] * (g[i] - s);
        (*scale)[i] = std::fabs(y[i]) * (std::fabs(g[i]) + sa);
      }
    }
  }
  return dx;
}

// ---- softmax -------------------------------------------------------------------------------

class CpuSoftmaxKernel : public ::testing::TestWithParam<DType> {};

std::vector<std::pair<std::string, Tensor>> softmax_inputs(DType dt) {
  std::vector<std::pair<std::string, Tensor>> v;
  uint32_t seed = 100;
  for (const Shape& s : std::vector<Shape>{{4, 7},
                                           {1, 1},
                                           {3, 1},
                                           {1, 33},
                                           {2, 3, 17},
                                           {5, 8},
                                           {0, 5},
                                           {5, 0},
                                           {7},
                                           {512, 300},
                                           {1, 100003},
                                           {4096, 3}}) {
    v.emplace_back(dan::shape_str(s), random_tensor(s, dt, seed++, 3.0));
  }
  v.emplace_back("transposed", raw::transpose(random_tensor({9, 5}, dt, seed++, 3.0), 0, 1));
  v.emplace_back("step-2 slice", raw::slice(random_tensor({6, 22}, dt, seed++, 3.0), 1, 1, 22, 2));
  v.emplace_back("expanded rows", raw::expand(random_tensor({1, 9}, dt, seed++, 3.0), {6, 9}));
  v.emplace_back("permuted 3-d",
                 raw::permute(random_tensor({5, 4, 3}, dt, seed++, 3.0), {2, 0, 1}));
  v.emplace_back("offset", raw::select(random_tensor({3, 4, 11}, dt, seed++, 3.0), 0, 1));
  v.emplace_back("wide range", random_tensor({8, 64}, dt, seed++, 30.0));
  return v;
}

TEST_P(CpuSoftmaxKernel, ForwardMatchesReference) {
  const DType dt = GetParam();
  const bool f32 = dt == DType::f32;
  for (const auto& [name, x] : softmax_inputs(dt)) {
    const Vec xv = x.to_vector();
    const Tensor y = k::softmax(x);
    ASSERT_EQ(y.shape(), x.shape()) << name;
    // f32: x - max rounds to half an ulp, which exp turns into a relative error; the absolute
    // slack covers elements far below the row maximum (see the kernel's exp).
    expect_close(y, ref_softmax(xv, last_dim(x), false), f32 ? 1e-6 : 1e-14, f32 ? 1e-8 : 1e-300,
                 "softmax " + name);
    const Tensor ly = k::log_softmax(x);
    const Vec lref = ref_softmax(xv, last_dim(x), true);
    const bool wide = name == "wide range";
    expect_close(ly, lref, f32 ? 1e-6 : 1e-14, f32 ? (wide ? 2e-5 : 2e-6) : 1e-13,
                 "log_softmax " + name);
  }
}

TEST_P(CpuSoftmaxKernel, BackwardMatchesReference) {
  const DType dt = GetParam();
  const double tol = dt == DType::f32 ? 2e-6 : 1e-14;
  uint32_t seed = 300;
  for (const auto& [name, x] : softmax_inputs(dt)) {
    for (bool log : {false, true}) {
      const Tensor y = log ? k::log_softmax(x) : k::softmax(x);
      const Tensor g = random_tensor(x.shape(), dt, seed++);
      Vec scale;
      const Vec want = ref_softmax_bwd(g.to_vector(), y.to_vector(), last_dim(x), log, &scale);
      const Tensor dx = log ? k::log_softmax_backward(g, y) : k::softmax_backward(g, y);
      ASSERT_EQ(dx.shape(), x.shape());
      const Vec got = dx.to_vector();
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], tol * scale[i] + 1e-300)
            << (log ? "log_softmax_backward " : "softmax_backward ") << name << " at " << i;
      }
    }
  }
  // Strided grad / output views.
  const Tensor y = k::softmax(random_tensor({7, 5}, dt, 400));
  const Tensor gt = raw::transpose(random_tensor({5, 7}, dt, 401), 0, 1);
  Vec scale;
  const Vec want = ref_softmax_bwd(gt.to_vector(), y.to_vector(), 5, false, &scale);
  const Vec got = k::softmax_backward(gt, y).to_vector();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol * scale[i]);
}

TEST_P(CpuSoftmaxKernel, InfinitiesAndNaN) {
  const DType dt = GetParam();
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor x = dan::from_doubles(
      {-inf, 0.0, 1.0, -inf, 2.0, NAN, 0.0, 1.0, -1e30, 0.0, 1e30, 3.0}, {3, 4}, dt);
  const Vec y = k::softmax(x).to_vector();
  const Vec ly = k::log_softmax(x).to_vector();
  // Masked (-inf) entries get probability 0 and log-probability -inf.
  EXPECT_EQ(y[0], 0.0);
  EXPECT_EQ(y[3], 0.0);
  EXPECT_NEAR(y[1], 1.0 / (1.0 + std::exp(1.0)), 1e-6);
  EXPECT_EQ(ly[0], -inf);
  // A NaN poisons its row only.
  for (int j = 4; j < 8; ++j) EXPECT_TRUE(std::isnan(y[j])) << j;
  for (int j = 4; j < 8; ++j) EXPECT_TRUE(std::isnan(ly[j])) << j;
  // Huge magnitudes: the max is subtracted first.
  EXPECT_EQ(y[8], 0.0);
  EXPECT_EQ(y[10], 1.0);
  EXPECT_EQ(ly[10], 0.0);
  EXPECT_NEAR(ly[8], -2e30, 1e24);
}

TEST_P(CpuSoftmaxKernel, ExpAccuracyOverFullRange) {
  // Two-element rows [0, t] give softmax = 1 / (1 + e^-t) resp. e^t / (1 + e^t): sweeps the
  // kernel's exp over its whole argument range, including the flush-to-zero end.
  const DType dt = GetParam();
  Vec v;
  for (double t = -120.0; t <= 0.0; t += 0.0371) {
    v.push_back(0.0);
    v.push_back(t);
  }
  const Tensor x = dan::from_doubles(v, {static_cast<int64_t>(v.size() / 2), 2}, dt);
  expect_close(k::softmax(x), ref_softmax(x.to_vector(), 2, false), dt == DType::f32 ? 5e-7 : 1e-15,
               dt == DType::f32 ? 1e-37 : 1e-300, "sweep");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuSoftmaxKernel, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dan::dtype_name(info.param)); });

// ---- layer norm ----------------------------------------------------------------------------

struct LnRef {
  Vec y, mean, rstd;
};

LnRef ref_layer_norm(const Vec& x, int64_t d, const Vec& w, const Vec& b, double eps) {
  LnRef r;
  const size_t rows = d == 0 ? 0 : x.size() / d;
  r.y.resize(x.size());
  for (size_t i = 0; i < rows; ++i) {
    double m = 0, v = 0;
    for (int64_t j = 0; j < d; ++j) m += x[i * d + j];
    m /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j) v += (x[i * d + j] - m) * (x[i * d + j] - m);
    v /= static_cast<double>(d);
    const double rs = 1.0 / std::sqrt(v + eps);
    r.mean.push_back(m);
    r.rstd.push_back(rs);
    for (int64_t j = 0; j < d; ++j) {
      r.y[i * d + j] =
          (x[i * d + j] - m) * rs * (w.empty() ? 1.0 : w[j]) + (b.empty() ? 0.0 : b[j]);
    }
  }
  return r;
}

struct Grads {
  Vec dx, dw, db;
};

Grads ref_layer_norm_bwd(const Vec& g, const Vec& x, const Vec& mean, const Vec& rstd, const Vec& w,
                         int64_t d) {
  Grads r;
  r.dx.resize(x.size());
  r.dw.assign(d, 0.0);
  r.db.assign(d, 0.0);
  for (size_t i = 0; i < mean.size(); ++i) {
    double s1 = 0, s2 = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double xh = (x[i * d + j] - mean[i]) * rstd[i];
      const double gw = g[i * d + j] * (w.empty() ? 1.0 : w[j]);
      s1 += gw;
      s2 += gw * xh;
      r.dw[j] += g[i * d + j] * xh;
      r.db[j] += g[i * d + j];
    }
    for (int64_t j = 0; j < d; ++j) {
      const double xh = (x[i * d + j] - mean[i]) * rstd[i];
      const double gw = g[i * d + j] * (w.empty() ? 1.0 : w[j]);
      r.dx[i * d + j] = rstd[i] * (gw - s1 / d - xh * s2 / d);
    }
  }
  return r;
}

double max_abs(const Vec& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

class CpuLayerNormKernel : public ::testing::TestWithParam<DType> {};

TEST_P(CpuLayerNormKernel, ForwardAndBackward) {
  const DType dt = GetParam();
  const bool f32 = dt == DType::f32;
  const double rtol = f32 ? 2e-6 : 1e-13;
  uint32_t seed = 500;
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (const Shape& s : std::vector<Shape>{
           {5, 16}, {3, 1}, {0, 8}, {3, 0}, {2, 3, 33}, {1, 1000}, {1024, 257}, {129, 64}, {6}}) {
    inputs.emplace_back(dan::shape_str(s), random_tensor(s, dt, seed++, 2.0, 0.5));
  }
  inputs.emplace_back("transposed", raw::transpose(random_tensor({24, 10}, dt, seed++), 0, 1));
  inputs.emplace_back("expanded", raw::expand(random_tensor({1, 12}, dt, seed++), {5, 12}));
  inputs.emplace_back("large mean", random_tensor({8, 40}, dt, seed++, 1.0, 1000.0));
  for (const auto& [name, x] : inputs) {
    const int64_t d = last_dim(x);
    for (int variant = 0; variant < 4; ++variant) {
      const bool has_w = variant & 1, has_b = variant & 2;
      const std::string what = name + (has_w ? " +w" : "") + (has_b ? " +b" : "");
      // Odd views for the affine parameters too: a step-2 slice of a longer vector.
      const Tensor w =
          has_w ? raw::slice(random_tensor({2 * d}, dt, seed++, 0.5, 1.0), 0, 0, 2 * d, 2)
                : Tensor();
      const Tensor b = has_b ? random_tensor({d}, dt, seed++, 0.5) : Tensor();
      const Vec wv = has_w ? w.to_vector() : Vec(), bv = has_b ? b.to_vector() : Vec();
      const Vec xv = x.to_vector();
      const double eps = 1e-5;
      const k::LayerNormOut out = k::layer_norm(x, w, b, eps);
      const LnRef ref = ref_layer_norm(xv, d, wv, bv, eps);
      ASSERT_EQ(out.y.shape(), x.shape()) << what;
      ASSERT_EQ(out.mean.numel(), static_cast<int64_t>(ref.mean.size())) << what;
      // Plus the double-precision rounding of the reference itself when the mean is large.
      const double ytol = rtol * (max_abs(ref.y) + 1.0) +
                          8e-16 * max_abs(ref.mean) * max_abs(ref.rstd) * (max_abs(wv) + 1.0);
      expect_close(out.y, ref.y, rtol, ytol, "layer_norm y " + what);
      expect_close(out.mean, ref.mean, rtol, rtol, "layer_norm mean " + what);
      expect_close(out.rstd, ref.rstd, rtol, 0.0, "layer_norm rstd " + what);

      const Tensor g = random_tensor(x.shape(), dt, seed++);
      for (bool affine : {false, true}) {
        const k::LayerNormGrads gr = k::layer_norm_backward(g, x, out.mean, out.rstd, w, affine);
        const Grads want = ref_layer_norm_bwd(g.to_vector(), xv, out.mean.to_vector(),
                                              out.rstd.to_vector(), wv, d);
        const double dxtol =
            rtol * 4 * (max_abs(want.dx) + max_abs(ref.rstd) * max_abs(wv.empty() ? Vec{1.0} : wv));
        expect_close(gr.dx, want.dx, rtol, dxtol, "layer_norm dx " + what);
        if (!affine) {
          EXPECT_FALSE(gr.dweight.defined()) << what;
          continue;
        }
        ASSERT_TRUE(gr.dweight.defined() && gr.dbias.defined()) << what;
        ASSERT_EQ(gr.dweight.shape(), (Shape{d})) << what;
        expect_close(gr.dweight, want.dw, rtol, rtol * (max_abs(want.dw) + 1), "dweight " + what);
        expect_close(gr.dbias, want.db, rtol, rtol * (max_abs(want.db) + 1), "dbias " + what);
      }
    }
  }
}

TEST(CpuLayerNormKernelDeterminism, SameBitsForAnyThreadCount) {
  const Tensor x = random_tensor({2000, 96}, DType::f32, 7);
  const Tensor g = random_tensor({2000, 96}, DType::f32, 8);
  const Tensor w = random_tensor({96}, DType::f32, 9);
  const int saved = omp_get_max_threads();
  std::vector<Vec> runs;
  for (int t : {1, 2, 3}) {
    omp_set_num_threads(t);
    const k::LayerNormOut o = k::layer_norm(x, w, Tensor(), 1e-5);
    const k::LayerNormGrads gr = k::layer_norm_backward(g, x, o.mean, o.rstd, w, true);
    Vec all = gr.dweight.to_vector();
    for (double v : gr.dbias.to_vector()) all.push_back(v);
    for (double v : gr.dx.to_vector()) all.push_back(v);
    runs.push_back(all);
  }
  omp_set_num_threads(saved);
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuLayerNormKernel, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dan::dtype_name(info.param)); });

// ---- batch norm ----------------------------------------------------------------------------

struct BnRef {
  Vec y, mean, invstd, rm, rv;
};

// Column statistics of x [n, c]; `mean`/`var` are the running stats in eval mode.
BnRef ref_batch_norm(const Vec& x, int64_t n, int64_t c, const Vec& w, const Vec& b, Vec rm, Vec rv,
                     bool training, double momentum, double eps) {
  BnRef r;
  for (int64_t j = 0; j < c; ++j) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; ++i) m += x[i * c + j];
    m /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) v += (x[i * c + j] - m) * (x[i * c + j] - m);
    const double var_b = v / static_cast<double>(n);
    if (training) {
      if (!rm.empty()) rm[j] = (1 - momentum) * rm[j] + momentum * m;
      if (!rv.empty()) rv[j] = (1 - momentum) * rv[j] + momentum * v / static_cast<double>(n - 1);
      r.mean.push_back(m);
      r.invstd.push_back(1.0 / std::sqrt(var_b + eps));
    } else {
      r.mean.push_back(rm[j]);
      r.invstd.push_back(1.0 / std::sqrt(rv[j] + eps));
    }
  }
  r.y.resize(x.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < c; ++j) {
      r.y[i * c + j] = (x[i * c + j] - r.mean[j]) * r.invstd[j] * (w.empty() ? 1.0 : w[j]) +
                       (b.empty() ? 0.0 : b[j]);
    }
  }
  r.rm = rm;
  r.rv = rv;
  return r;
}

Grads ref_batch_norm_bwd(const Vec& g, const Vec& x, int64_t n, int64_t c, const Vec& w,
                         const Vec& mean, const Vec& invstd, bool training) {
  Grads r;
  r.dx.resize(x.size());
  r.dw.assign(c, 0.0);
  r.db.assign(c, 0.0);
  for (int64_t j = 0; j < c; ++j) {
    for (int64_t i = 0; i < n; ++i) {
      r.dw[j] += g[i * c + j] * (x[i * c + j] - mean[j]) * invstd[j];
      r.db[j] += g[i * c + j];
    }
    const double wj = w.empty() ? 1.0 : w[j];
    for (int64_t i = 0; i < n; ++i) {
      const double xh = (x[i * c + j] - mean[j]) * invstd[j];
      r.dx[i * c + j] = training ? wj * invstd[j] * (g[i * c + j] - r.db[j] / n - xh * r.dw[j] / n)
                                 : g[i * c + j] * wj * invstd[j];
    }
  }
  return r;
}

class CpuBatchNormKernel : public ::testing::TestWithParam<DType> {};

TEST_P(CpuBatchNormKernel, ForwardBackwardAndRunningStats) {
  const DType dt = GetParam();
  const double rtol = dt == DType::f32 ? 2e-6 : 1e-13;
  uint32_t seed = 700;
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (const Shape& s : std::vector<Shape>{{8, 5}, {2, 1}, {300, 200}, {1000, 3}, {3, 67}}) {
    inputs.emplace_back(dan::shape_str(s), random_tensor(s, dt, seed++, 2.0, 1.0));
  }
  inputs.emplace_back("transposed", raw::transpose(random_tensor({6, 40}, dt, seed++), 0, 1));
  inputs.emplace_back("large mean", random_tensor({50, 4}, dt, seed++, 1.0, 500.0));
  for (const auto& [name, x] : inputs) {
    const int64_t n = x.size(0), c = x.size(1);
    const Vec xv = x.to_vector();
    for (int variant = 0; variant < 8; ++variant) {
      const bool training = variant & 1, affine = variant & 2,
                 stats = training ? (variant & 4) : true;
      const std::string what = name + (training ? " train" : " eval") + (affine ? " affine" : "") +
                               (stats ? " stats" : "");
      const Tensor w = affine ? random_tensor({c}, dt, seed++, 0.5, 1.0) : Tensor();
      const Tensor b = affine ? random_tensor({c}, dt, seed++, 0.5) : Tensor();
      // Running stats as step-2 views into longer buffers: updated in place through the view.
      const Tensor rm_buf = random_tensor({2 * c}, dt, seed++, 0.1);
      const Tensor rv_buf = dan::from_doubles(Vec(2 * c, 0.75), {2 * c}, dt);
      const Tensor rm = stats ? raw::slice(rm_buf, 0, 0, 2 * c, 2) : Tensor();
      const Tensor rv = stats ? raw::slice(rv_buf, 0, 1, 2 * c, 2) : Tensor();
      const Vec wv = affine ? w.to_vector() : Vec(), bv = affine ? b.to_vector() : Vec();
      const BnRef ref = ref_batch_norm(xv, n, c, wv, bv, stats ? rm.to_vector() : Vec(),
                                       stats ? rv.to_vector() : Vec(), training, 0.1, 1e-5);
      const Vec rv_buf_before = rv_buf.to_vector();
      const k::BatchNormOut out = k::batch_norm(x, w, b, rm, rv, training, 0.1, 1e-5);
      expect_close(out.y, ref.y, rtol, rtol * (max_abs(ref.y) + 1), "batch_norm y " + what);
      expect_close(out.save_mean, ref.mean, rtol, rtol * (max_abs(ref.mean) + 1),
                   "save_mean " + what);
      expect_close(out.save_invstd, ref.invstd, rtol, 0.0, "save_invstd " + what);
      if (stats) {
        expect_close(rm, ref.rm, rtol, rtol, "running_mean " + what);
        expect_close(rv, ref.rv, rtol, rtol, "running_var " + what);
        // The untouched half of the buffer stays as it was.
        const Vec after = rv_buf.to_vector();
        for (int64_t j = 0; j < 2 * c; j += 2) EXPECT_EQ(after[j], rv_buf_before[j]) << what;
      }
      const Tensor g = random_tensor(x.shape(), dt, seed++);
      for (bool need_affine : {false, true}) {
        const k::BatchNormGrads gr =
            k::batch_norm_backward(g, x, w, out.save_mean, out.save_invstd, training, need_affine);
        const Grads want =
            ref_batch_norm_bwd(g.to_vector(), xv, n, c, wv, out.save_mean.to_vector(),
                               out.save_invstd.to_vector(), training);
        const double scale = max_abs(out.save_invstd.to_vector()) * (max_abs(wv) + 1) * 4;
        expect_close(gr.dx, want.dx, rtol, rtol * scale * (max_abs(g.to_vector()) + 1),
                     "dx " + what);
        EXPECT_EQ(gr.dweight.defined(), need_affine) << what;
        if (!need_affine) continue;
        expect_close(gr.dweight, want.dw, rtol, rtol * (max_abs(want.dw) + n), "dweight " + what);
        expect_close(gr.dbias, want.db, rtol, rtol * (max_abs(want.db) + n), "dbias " + what);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuBatchNormKernel, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dan::dtype_name(info.param)); });

TEST(CpuNormKernelErrors, MessagesNameOpAndShapes) {
  auto error_of = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const dan::Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "did not throw";
    return "";
  };
  const Tensor x = random_tensor({4, 6}, DType::f32, 1);
  std::string m =
      error_of([&] { k::layer_norm(x, random_tensor({5}, DType::f32, 2), Tensor(), 1e-5); });
  EXPECT_NE(m.find("layer_norm"), std::string::npos) << m;
  EXPECT_NE(m.find("[5]"), std::string::npos) << m;
  m = error_of([&] {
    k::batch_norm(random_tensor({1, 6}, DType::f32, 3), Tensor(), Tensor(), Tensor(), Tensor(),
                  true, 0.1, 1e-5);
  });
  EXPECT_NE(m.find("batch_norm"), std::string::npos) << m;
  m = error_of([&] { k::softmax_backward(x, random_tensor({4, 5}, DType::f32, 4)); });
  EXPECT_NE(m.find("softmax_backward"), std::string::npos) << m;
  m = error_of([&] {
    k::layer_norm_backward(x, x, random_tensor({3}, DType::f32, 5),
                           random_tensor({4}, DType::f32, 6), Tensor(), false);
  });
  EXPECT_NE(m.find("layer_norm_backward"), std::string::npos) << m;
}

// ---- PyTorch gold values (tests/fixtures/ops_gold.safetensors, see its README) -------------

class Gold {
 public:
  Gold() : r_(dan::st::Reader::open(std::string(DAN_FIXTURES_DIR) + "/ops_gold.safetensors")) {}
  Tensor get(const std::string& key) const {
    const dan::st::TensorInfo& info = r_.info(key);
    const DType dt = info.dtype == "F64"   ? DType::f64
                     : info.dtype == "I64" ? DType::i64
                                           : DType::f32;
    Tensor t = raw::empty(info.shape, dt);
    std::memcpy(t.raw_data(), r_.data(info), info.nbytes());
    return t;
  }
  Vec vec(const std::string& key) const { return get(key).to_vector(); }

 private:
  dan::st::Reader r_;
};

TEST(CpuSoftmaxNormGold, MatchesPyTorch) {
  const Gold gold;
  for (const std::string p : {"softmax", "softmax_f64"}) {
    const double tol = p == "softmax" ? 1e-6 : 1e-13;
    const Tensor y = k::softmax(gold.get(p + ".x"));
    expect_close(y, gold.vec(p + ".out"), 0, tol, p);
    expect_close(k::softmax_backward(gold.get(p + ".g"), y), gold.vec(p + ".dx"), 0, tol,
                 p + " dx");
  }
  const Tensor ly = k::log_softmax(gold.get("log_softmax.x"));
  expect_close(ly, gold.vec("log_softmax.out"), 0, 2e-6, "log_softmax");
  expect_close(k::log_softmax_backward(gold.get("log_softmax.g"), ly), gold.vec("log_softmax.dx"),
               0, 2e-6, "log_softmax dx");
  for (const std::string p : {"layer_norm", "layer_norm_f64"}) {
    const double tol = p == "layer_norm" ? 1e-5 : 1e-12;
    const Tensor x = gold.get(p + ".x"), w = gold.get(p + ".weight");
    const k::LayerNormOut o = k::layer_norm(x, w, gold.get(p + ".bias"), 1e-5);
    expect_close(o.y, gold.vec(p + ".out"), 0, tol, p);
    const k::LayerNormGrads gr =
        k::layer_norm_backward(gold.get(p + ".g"), x, o.mean, o.rstd, w, true);
    expect_close(gr.dx, gold.vec(p + ".dx"), 0, tol, p + " dx");
    expect_close(gr.dweight, gold.vec(p + ".dweight"), 0, tol, p + " dweight");
    expect_close(gr.dbias, gold.vec(p + ".dbias"), 0, tol, p + " dbias");
  }
  const Tensor x = gold.get("batch_norm.x"), w = gold.get("batch_norm.weight");
  const Tensor rm = gold.get("batch_norm.running_mean_before");
  const Tensor rv = gold.get("batch_norm.running_var_before");
  const k::BatchNormOut o =
      k::batch_norm(x, w, gold.get("batch_norm.bias"), rm, rv, true, 0.1, 1e-5);
  expect_close(o.y, gold.vec("batch_norm.out"), 0, 1e-5, "batch_norm");
  expect_close(rm, gold.vec("batch_norm.running_mean_after"), 0, 1e-6, "running_mean");
  expect_close(rv, gold.vec("batch_norm.running_var_after"), 0, 1e-6, "running_var");
  const k::BatchNormGrads gr = k::batch_norm_backward(gold.get("batch_norm.g"), x, w, o.save_mean,
                                                      o.save_invstd, true, true);
  expect_close(gr.dx, gold.vec("batch_norm.dx"), 0, 1e-5, "batch_norm dx");
  expect_close(gr.dweight, gold.vec("batch_norm.dweight"), 0, 1e-5, "batch_norm dweight");
  expect_close(gr.dbias, gold.vec("batch_norm.dbias"), 0, 1e-5, "batch_norm dbias");
}

}  // namespace
