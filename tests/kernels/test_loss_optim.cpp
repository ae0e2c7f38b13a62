// Tests for the CPU loss kernels (MSE, cross entropy) and optimizer updates (Adam/AdamW, SGD)
// against naive double-precision references, plus cross_entropy's PyTorch gold values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
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

Vec random_values(int64_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, scale);
  Vec v(static_cast<size_t>(n));
  for (double& x : v) x = nd(rng);
  return v;
}

Tensor random_tensor(const Shape& s, DType dt, uint32_t seed, double scale = 1.0) {
  return dan::from_doubles(random_values(dan::numel_of(s), seed, scale), s, dt);
}

void expect_close(const Vec& got, const Vec& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    if (!(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]))) {
      ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " want " << want[i];
      ++bad;
    }
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dan::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "did not throw dan::Error";
  return "";
}

void expect_has(const std::string& msg, std::initializer_list<std::string> parts) {
  for (const std::string& p : parts) {
    EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
  }
}

class CpuLossKernel : public ::testing::TestWithParam<DType> {};

// ---- MSE -----------------------------------------------------------------------------------

TEST_P(CpuLossKernel, MseForwardBackward) {
  const DType dt = GetParam();
  const double rtol = dt == DType::f32 ? 1e-6 : 1e-14;
  uint32_t seed = 10;
  std::vector<std::pair<Tensor, Tensor>> cases;
  for (const Shape& s : std::vector<Shape>{{4, 7}, {1}, {}, {3, 5, 9}, {1000, 300}, {100003}}) {
    cases.emplace_back(random_tensor(s, dt, seed), random_tensor(s, dt, seed + 1));
    seed += 2;
  }
  cases.emplace_back(raw::transpose(random_tensor({9, 4}, dt, seed), 0, 1),
                     raw::expand(random_tensor({1, 9}, dt, seed + 1), {4, 9}));
  cases.emplace_back(raw::slice(random_tensor({30}, dt, seed + 2), 0, 1, 30, 3),
                     random_tensor({10}, dt, seed + 3));
  for (const auto& [pred, target] : cases) {
    const std::string what = dan::shape_str(pred.shape());
    const Vec p = pred.to_vector(), t = target.to_vector();
    double s = 0;
    for (size_t i = 0; i < p.size(); ++i) s += (p[i] - t[i]) * (p[i] - t[i]);
    const Tensor loss = k::mse_loss(pred, target);
    EXPECT_EQ(loss.dim(), 0) << what;
    // (Summation order differs from the reference: allow for sqrt(n)-ish rounding.)
    EXPECT_NEAR(loss.item(), s / p.size(), 10 * rtol * s / p.size()) << what;
    const Tensor g = dan::scalar_tensor(0.7, dt);
    const Tensor d = k::mse_loss_backward(g, pred, target);
    ASSERT_EQ(d.shape(), pred.shape()) << what;
    Vec want(p.size());
    for (size_t i = 0; i < p.size(); ++i) want[i] = 2.0 * (p[i] - t[i]) * 0.7 / p.size();
    expect_close(d.to_vector(), want, 4 * rtol, 1e-300, "mse backward " + what);
  }
  // The mean of nothing is NaN, as in PyTorch; its gradient is empty.
  const Tensor e = raw::empty({0, 3}, dt);
  EXPECT_TRUE(std::isnan(k::mse_loss(e, e).item()));
  EXPECT_EQ(k::mse_loss_backward(dan::scalar_tensor(1.0, dt), e, e).numel(), 0);
}

// ---- cross entropy -------------------------------------------------------------------------

struct CeRef {
  double loss;
  Vec log_probs, dlogits;
};

CeRef ref_cross_entropy(const Vec& x, const std::vector<int64_t>& t, int64_t n, int64_t c,
                        int64_t ignore, double g) {
  CeRef r{0.0, Vec(x.size()), Vec(x.size(), 0.0)};
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < c; ++j) m = std::max(m, x[i * c + j]);
    for (int64_t j = 0; j < c; ++j) s += std::exp(x[i * c + j] - m);
    for (int64_t j = 0; j < c; ++j) r.log_probs[i * c + j] = x[i * c + j] - m - std::log(s);
    if (t[i] == ignore) continue;
    r.loss -= r.log_probs[i * c + t[i]];
    ++count;
  }
  r.loss /= static_cast<double>(count);
  for (int64_t i = 0; i < n && count > 0; ++i) {
    if (t[i] == ignore) continue;
    for (int64_t j = 0; j < c; ++j) {
      r.dlogits[i * c + j] =
          (std::exp(r.log_probs[i * c + j]) - (j == t[i] ? 1.0 : 0.0)) * g / count;
    }
  }
  return r;
}

Tensor target_tensor(const std::vector<int64_t>& t, DType dt) {
  return dan::from_doubles(Vec(t.begin(), t.end()), {static_cast<int64_t>(t.size())}, dt);
}

TEST_P(CpuLossKernel, CrossEntropyForwardBackward) {
  const DType dt = GetParam();
  const bool f32 = dt == DType::f32;
  struct Case {
    std::string name;
    Tensor logits;
    std::vector<int64_t> target;
    int64_t ignore;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"6x9 one ignored", random_tensor({6, 9}, dt, 1, 2.0), {1, 2, -100, 0, 4, 8}, -100});
  cases.push_back(
      {"transposed", raw::transpose(random_tensor({5, 4}, dt, 2, 2.0), 0, 1), {0, 4, 3, 1}, -100});
  cases.push_back({"ignore_index in range", random_tensor({5, 3}, dt, 3), {0, 1, 0, 2, 2}, 0});
  cases.push_back({"1x1", random_tensor({1, 1}, dt, 4), {0}, -100});
  std::vector<int64_t> big(2000);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = i % 7 == 3 ? -1 : static_cast<int64_t>(i * 13 % 50);
  cases.push_back({"2000x50", random_tensor({2000, 50}, dt, 5, 3.0), big, -1});
  for (const Case& cs : cases) {
    for (const DType tdt : {DType::i64, DType::i32}) {
      const std::string what = cs.name + " " + std::string(dan::dtype_name(tdt));
      const int64_t n = cs.logits.size(0), c = cs.logits.size(1);
      const CeRef ref = ref_cross_entropy(cs.logits.to_vector(), cs.target, n, c, cs.ignore, 1.5);
      const Tensor target = target_tensor(cs.target, tdt);
      const k::CrossEntropyOut out = k::cross_entropy(cs.logits, target, cs.ignore);
      EXPECT_EQ(out.loss.dim(), 0) << what;
      EXPECT_NEAR(out.loss.item(), ref.loss, (f32 ? 2e-6 : 1e-14) * (std::fabs(ref.loss) + 1))
          << what;
      expect_close(out.log_probs.to_vector(), ref.log_probs, f32 ? 1e-6 : 1e-14, f32 ? 2e-6 : 1e-14,
                   "log_probs " + what);
      const Tensor d =
          k::cross_entropy_backward(dan::scalar_tensor(1.5, dt), out.log_probs, target, cs.ignore);
      ASSERT_EQ(d.shape(), cs.logits.shape()) << what;
      expect_close(d.to_vector(), ref.dlogits, f32 ? 2e-6 : 1e-13, f32 ? 1e-8 : 1e-16,
                   "dlogits " + what);
    }
  }
}

TEST_P(CpuLossKernel, CrossEntropyAllIgnoredAndEmpty) {
  const DType dt = GetParam();
  const Tensor logits = random_tensor({3, 4}, dt, 9);
  const Tensor target = target_tensor({-100, -100, -100}, DType::i64);
  const k::CrossEntropyOut out = k::cross_entropy(logits, target, -100);
  EXPECT_TRUE(std::isnan(out.loss.item()));
  for (double v :
       k::cross_entropy_backward(dan::scalar_tensor(1.0, dt), out.log_probs, target, -100)
           .to_vector()) {
    EXPECT_EQ(v, 0.0);
  }
  const k::CrossEntropyOut e =
      k::cross_entropy(raw::empty({0, 5}, dt), raw::empty({0}, DType::i64), -100);
  EXPECT_TRUE(std::isnan(e.loss.item()));
  EXPECT_EQ(e.log_probs.shape(), (Shape{0, 5}));
}

TEST_P(CpuLossKernel, CrossEntropyBadTargetNamesRowAndValue) {
  const DType dt = GetParam();
  const Tensor logits = random_tensor({4, 9}, dt, 11);
  expect_has(error_of([&] {
               k::cross_entropy(logits, target_tensor({1, 2, 0, 9}, DType::i64), -100);
             }),
             {"cross_entropy", "target[3] = 9", "9 classes"});
  expect_has(error_of([&] {
               k::cross_entropy(logits, target_tensor({1, -1, 0, 2}, DType::i32), -100);
             }),
             {"cross_entropy", "target[1] = -1"});
  const Tensor lp = k::log_softmax(logits);
  expect_has(error_of([&] {
               k::cross_entropy_backward(dan::scalar_tensor(1.0, dt), lp,
                                         target_tensor({1, 2, 12, 0}, DType::i64), -100);
             }),
             {"cross_entropy_backward", "target[2] = 12"});
  expect_has(error_of([&] {
               k::cross_entropy(logits, target_tensor({1, 2, 0}, DType::i64), -100);
             }),
             {"cross_entropy", "[4, 9]", "[3]"});
  expect_has(error_of([&] { k::cross_entropy(logits, random_tensor({4}, dt, 1), -100); }),
             {"cross_entropy", "index"});
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuLossKernel, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dan::dtype_name(info.param)); });

TEST(CpuLossKernelGold, CrossEntropyMatchesPyTorch) {
  const dan::st::Reader r =
      dan::st::Reader::open(std::string(DAN_FIXTURES_DIR) + "/ops_gold.safetensors");
  auto get = [&](const std::string& key, DType dt) {
    const dan::st::TensorInfo& info = r.info(key);
    Tensor t = raw::empty(info.shape, dt);
    std::memcpy(t.raw_data(), r.data(info), info.nbytes());
    return t;
  };
  const Tensor logits = get("cross_entropy.logits", DType::f32);
  const Tensor target = get("cross_entropy.target", DType::i64);
  const k::CrossEntropyOut out = k::cross_entropy(logits, target, -100);
  EXPECT_NEAR(out.loss.item(), get("cross_entropy.loss", DType::f32).item(), 1e-6);
  const Tensor d = k::cross_entropy_backward(dan::scalar_tensor(1.0), out.log_probs, target, -100);
  expect_close(d.to_vector(), get("cross_entropy.dlogits", DType::f32).to_vector(), 0, 1e-7,
               "gold");
}

// ---- optimizers ----------------------------------------------------------------------------

struct AdamCfg {
  double lr, b1, b2, eps, wd;
  bool decoupled;
};

// Several steps of torch.optim.Adam/AdamW on double copies, checked after every step.
void check_adam(DType dt, int64_t n, const AdamCfg& c, const std::string& what) {
  const double rtol = dt == DType::f32 ? 2e-6 : 1e-13;
  // ms: the same recurrence on |terms|, the scale for m's tolerance (m itself may cancel).
  Vec p = random_values(n, 1), m(n, 0.0), v(n, 0.0), ms(n, 0.0);
  const Tensor param = dan::from_doubles(p, {n}, dt);
  p = param.to_vector();  // the values actually stored
  const Tensor exp_avg = dan::zeros({n}, dt), exp_avg_sq = dan::zeros({n}, dt);
  for (int64_t step = 1; step <= 6; ++step) {
    // |g| >= 0.5 > |wd * p| keeps g + wd*p away from 0, where the update is ill-conditioned
    // (it divides by sqrt(v) + eps) and f32 rounding of g + wd*p would dominate the error.
    Vec gv = random_values(n, static_cast<uint32_t>(100 + step), 0.1 * step);
    for (double& x : gv) x = std::copysign(0.5 + std::fabs(x), x);
    const Tensor grad = dan::from_doubles(gv, {n}, dt);
    const Vec g = grad.to_vector();
    k::adam_step(param, grad, exp_avg, exp_avg_sq, c.lr, c.b1, c.b2, c.eps, c.wd, step,
                 c.decoupled);
    const double bc1 = 1 - std::pow(c.b1, step), bc2 = 1 - std::pow(c.b2, step);
    for (int64_t i = 0; i < n; ++i) {
      double gi = g[i];
      if (c.decoupled)
        p[i] *= 1 - c.lr * c.wd;
      else
        gi += c.wd * p[i];
      m[i] = c.b1 * m[i] + (1 - c.b1) * gi;
      ms[i] = c.b1 * ms[i] + (1 - c.b1) * (std::fabs(g[i]) + std::fabs(c.wd * p[i]));
      v[i] = c.b2 * v[i] + (1 - c.b2) * gi * gi;
      p[i] -= c.lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + c.eps);
    }
    const std::string at = what + " step " + std::to_string(step);
    const Vec got_m = exp_avg.to_vector();
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(got_m[i], m[i], 2 * rtol * ms[i] + 1e-300) << "exp_avg " << at << " i=" << i;
    }
    expect_close(exp_avg_sq.to_vector(), v, 4 * rtol, 1e-300, "exp_avg_sq " + at);
    expect_close(param.to_vector(), p, 2 * rtol, 20 * rtol * c.lr, "param " + at);
  }
}

class CpuOptimKernel : public ::testing::TestWithParam<DType> {};

TEST_P(CpuOptimKernel, AdamMatchesReference) {
  const DType dt = GetParam();
  for (const int64_t n : {int64_t{1}, int64_t{37}, int64_t{100003}}) {
    const std::string sz = " n=" + std::to_string(n);
    check_adam(dt, n, {1e-3, 0.9, 0.999, 1e-8, 0.0, false}, "adam" + sz);
    check_adam(dt, n, {1e-2, 0.8, 0.99, 1e-6, 0.1, false}, "adam l2" + sz);
    check_adam(dt, n, {1e-2, 0.8, 0.99, 1e-6, 0.1, true}, "adamw" + sz);
  }
}

struct SgdCfg {
  double lr, mu, damp, wd;
  bool nesterov;
};

void check_sgd(DType dt, int64_t n, const SgdCfg& c, const std::string& what) {
  const double rtol = dt == DType::f32 ? 2e-6 : 1e-13;
  Vec p = random_values(n, 2), buf(n, 0.0);
  const Tensor param = dan::from_doubles(p, {n}, dt);
  p = param.to_vector();
  // The buffer starts as garbage: the first step must overwrite it, not scale it.
  const Tensor momentum_buf = c.mu != 0 ? dan::full({n}, 1e6, dt) : Tensor();
  for (int64_t step = 0; step < 5; ++step) {
    const Tensor grad = random_tensor({n}, dt, static_cast<uint32_t>(200 + step));
    const Vec g = grad.to_vector();
    k::sgd_step(param, grad, momentum_buf, c.lr, c.mu, c.damp, c.wd, c.nesterov, step == 0);
    for (int64_t i = 0; i < n; ++i) {
      double d = g[i] + c.wd * p[i];
      if (c.mu != 0) {
        buf[i] = step == 0 ? d : c.mu * buf[i] + (1 - c.damp) * d;
        d = c.nesterov ? d + c.mu * buf[i] : buf[i];
      }
      p[i] -= c.lr * d;
    }
    const std::string at = what + " step " + std::to_string(step);
    if (c.mu != 0) expect_close(momentum_buf.to_vector(), buf, 4 * rtol, rtol, "buf " + at);
    expect_close(param.to_vector(), p, 4 * rtol, rtol * c.lr, "param " + at);
  }
}

TEST_P(CpuOptimKernel, SgdMatchesReference) {
  const DType dt = GetParam();
  for (const int64_t n : {int64_t{1}, int64_t{37}, int64_t{100003}}) {
    const std::string sz = " n=" + std::to_string(n);
    check_sgd(dt, n, {0.1, 0.0, 0.0, 0.0, false}, "plain" + sz);
    check_sgd(dt, n, {0.1, 0.0, 0.0, 1e-2, false}, "plain wd" + sz);
    check_sgd(dt, n, {0.05, 0.9, 0.0, 1e-4, false}, "momentum" + sz);
    check_sgd(dt, n, {0.05, 0.9, 0.1, 0.0, false}, "dampening" + sz);
    check_sgd(dt, n, {0.05, 0.9, 0.0, 1e-3, true}, "nesterov" + sz);
  }
}

TEST_P(CpuOptimKernel, ZeroWeightDecayKeepsInfiniteParams) {
  // weight_decay = 0 must not multiply it in (0 * inf = NaN); matches torch, which skips it.
  const DType dt = GetParam();
  const Tensor p = dan::from_doubles({INFINITY, 1.0}, {2}, dt);
  const Tensor g = dan::from_doubles({0.5, 0.5}, {2}, dt);
  k::sgd_step(p, g, Tensor(), 0.1, 0.0, 0.0, 0.0, false, true);
  EXPECT_TRUE(std::isinf(p.to_vector()[0]));
  k::adam_step(p, g, dan::zeros({2}, dt), dan::zeros({2}, dt), 0.1, 0.9, 0.999, 1e-8, 0.0, 1,
               false);
  EXPECT_TRUE(std::isinf(p.to_vector()[0]));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuOptimKernel, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dan::dtype_name(info.param)); });

TEST(CpuOptimKernelErrors, MessagesNameOp) {
  const Tensor p = dan::zeros({4, 3});
  const Tensor gt = raw::transpose(dan::zeros({3, 4}), 0, 1);
  expect_has(error_of([&] {
               k::adam_step(p, gt, dan::zeros({4, 3}), dan::zeros({4, 3}), 1e-3, 0.9, 0.999, 1e-8,
                            0, 1, false);
             }),
             {"adam_step", "grad", "contiguous"});
  expect_has(error_of([&] {
               k::adam_step(p, p, p, dan::zeros({4}), 1e-3, 0.9, 0.999, 1e-8, 0, 1, false);
             }),
             {"adam_step", "exp_avg_sq", "[4]"});
  expect_has(error_of([&] { k::adam_step(p, p, p, p, 1e-3, 0.9, 0.999, 1e-8, 0, 0, false); }),
             {"adam_step", "step"});
  expect_has(error_of([&] { k::sgd_step(p, p, Tensor(), 0.1, 0.9, 0, 0, false, true); }),
             {"sgd_step", "momentum_buf"});
}

}  // namespace
