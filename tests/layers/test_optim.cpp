// Tests for layers/optim: SGD/Adam/AdamW steps against the torch formulas evaluated here in
// double, parameter groups, schedulers' lr sequences against their closed forms, gradient
// clipping, and checkpoint round trips that must continue bit-identically.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "core/serialize.h"
#include "layers/mlp.h"
#include "layers/optim/adam.h"
#include "layers/optim/clip.h"
#include "layers/optim/scheduler.h"
#include "layers/optim/sgd.h"

namespace fs = std::filesystem;
using namespace dan;

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
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << p << " in: " << msg;
}

std::vector<double> seq(size_t n, double seed) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(seed * 12.9898 + static_cast<double>(i) * 78.233);
  return v;
}

Tensor leaf(const std::vector<double>& v, const Shape& s, DType t) {
  Tensor p = from_doubles(v, s, t);
  p.set_requires_grad(true);
  return p;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rtol,
                  double atol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], atol + rtol * std::abs(want[i])) << what << " element " << i;
  }
}

struct SgdRef {
  double lr, mu, damp, wd;
  bool nesterov;
  std::vector<double> buf;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    const bool first = buf.empty();
    if (first) buf.resize(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (mu != 0) {
        buf[i] = first ? d : mu * buf[i] + (1 - damp) * d;
        d = nesterov ? d + mu * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

struct AdamRef {
  AdamRef(double lr_, double b1_, double b2_, double eps_, double wd_, bool decoupled_)
      : lr(lr_), b1(b1_), b2(b2_), eps(eps_), wd(wd_), decoupled(decoupled_) {}
  double lr, b1, b2, eps, wd;
  bool decoupled;
  int64_t t = 0;
  std::vector<double> m, v;
  void step(std::vector<double>& p, const std::vector<double>& g_in) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(b1, static_cast<double>(t));
    const double bc2 = 1 - std::pow(b2, static_cast<double>(t));
    for (size_t i = 0; i < p.size(); ++i) {
      double g = g_in[i];
      if (decoupled) {
        p[i] *= 1 - lr * wd;
      } else {
        g += wd * p[i];
      }
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      p[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + eps);
    }
  }
};

class OptimFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("dan_optim_{}_{}", ::getpid(), info->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& n) const { return (dir_ / n).string(); }
  fs::path dir_;
};

}  // namespace

// ---- update formulas ---------------------------------------------------------------------------

TEST(OptimSGD, StepsMatchTorchFormula) {
  struct Case { double mu, damp, wd; bool nesterov; };
  for (const Case c : {Case{0, 0, 0, false}, Case{0, 0, 0.1, false}, Case{0.9, 0, 0, false},
                       Case{0.8, 0.3, 0.01, false}, Case{0.9, 0, 0.05, true}}) {
    for (DType dt : {DType::f64, DType::f32}) {
      SCOPED_TRACE(fmt::format("mu {} damp {} wd {} nesterov {} {}", c.mu, c.damp, c.wd, c.nesterov, dt));
      const Shape s = {7, 5};  // odd sizes: no vector-width multiple
      std::vector<double> ref_p = seq(35, 1.0);
      Tensor p = leaf(ref_p, s, dt);
      SGD opt({p}, {.lr = 0.1, .momentum = c.mu, .dampening = c.damp, .weight_decay = c.wd,
                    .nesterov = c.nesterov});
      SgdRef ref{0.1, c.mu, c.damp, c.wd, c.nesterov, {}};
      for (int step = 0; step < 4; ++step) {
        const std::vector<double> g = seq(35, 2.0 + step);
        p.set_grad(from_doubles(g, s, dt));
        if (dt == DType::f32) {  // the reference sees the grads the kernel sees
          ref.step(ref_p, from_doubles(g, s, dt).to_vector());
        } else {
          ref.step(ref_p, g);
        }
        opt.step();
        expect_close(p.to_vector(), ref_p, dt == DType::f64 ? 1e-13 : 2e-6, dt == DType::f64 ? 1e-14 : 1e-6,
                     fmt::format("step {}", step));
      }
      EXPECT_TRUE(p.is_leaf() && p.requires_grad());
    }
  }
}

TEST(OptimAdam, AdamAndAdamWStepsMatchTorchFormula) {
  for (bool decoupled : {false, true}) {
    for (double wd : {0.0, 0.05}) {
      for (DType dt : {DType::f64, DType::f32}) {
        SCOPED_TRACE(fmt::format("decoupled {} wd {} {}", decoupled, wd, dt));
        const Shape s = {3, 11};
        std::vector<double> ref_p = seq(33, 3.0);
        Tensor p = leaf(ref_p, s, dt);
        const AdamOptions o{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = wd};
        std::unique_ptr<Optimizer> opt = decoupled ? std::unique_ptr<Optimizer>(new AdamW({p}, o))
                                                   : std::unique_ptr<Optimizer>(new Adam({p}, o));
        EXPECT_EQ(opt->type_name(), decoupled ? "AdamW" : "Adam");
        AdamRef ref{0.01, 0.8, 0.99, 1e-6, wd, decoupled};
        for (int step = 0; step < 5; ++step) {
          std::vector<double> g = seq(33, 5.0 + step);
          g[0] = 0.0;  // a zero gradient: the update comes from momentum alone
          p.set_grad(from_doubles(g, s, dt));
          ref.step(ref_p, from_doubles(g, s, dt).to_vector());
          opt->step();
          expect_close(p.to_vector(), ref_p, dt == DType::f64 ? 1e-12 : 2e-6,
                       dt == DType::f64 ? 1e-14 : 1e-6, fmt::format("step {}", step));
        }
      }
    }
  }
}

TEST(OptimAdam, AdamWDefaultsToTorchWeightDecay) {
  Tensor p = leaf({1.0}, {1}, DType::f64);
  AdamW opt({p});
  EXPECT_EQ(opt.param_groups()[0].weight_decay, 1e-2);
  EXPECT_EQ(opt.param_groups()[0].lr, 1e-3);
  Adam plain({leaf({1.0}, {1}, DType::f64)});
  EXPECT_EQ(plain.param_groups()[0].weight_decay, 0.0);
}

TEST(OptimGroups, EachGroupUsesItsOwnLrAndWeightDecay) {
  Tensor a = leaf(seq(6, 1.0), {6}, DType::f64);
  Tensor b = leaf(seq(4, 2.0), {2, 2}, DType::f64);
  Tensor c = leaf(seq(3, 3.0), {3}, DType::f64);  // never gets a gradient
  Adam opt(std::vector<ParamGroup>{{{a}, 0.1, 0.0, {}}, {{b, c}, 0.001, 0.5, {}}},
           AdamOptions{.beta1 = 0.5});
  AdamRef ra{0.1, 0.5, 0.999, 1e-8, 0.0, false}, rb{0.001, 0.5, 0.999, 1e-8, 0.5, false};
  std::vector<double> pa = a.to_vector(), pb = b.to_vector();
  const std::vector<double> pc = c.to_vector();
  for (int step = 0; step < 3; ++step) {
    const auto ga = seq(6, 10.0 + step);
    a.set_grad(from_doubles(ga, {6}, DType::f64));
    ra.step(pa, ga);
    if (step >= 1) {  // b's first gradient arrives at step 1: its step count starts then
      const auto gb = seq(4, 20.0 + step);
      b.set_grad(from_doubles(gb, {2, 2}, DType::f64));
      rb.step(pb, gb);
    }
    opt.step();
    expect_close(a.to_vector(), pa, 1e-12, 1e-14, "a");
    expect_close(b.to_vector(), pb, 1e-12, 1e-14, "b");
    EXPECT_EQ(c.to_vector(), pc);
  }
  const auto sd = opt.state_dict();
  std::map<std::string, Tensor> m(sd.begin(), sd.end());
  EXPECT_EQ(m.at("state.0.step").item(), 3);
  EXPECT_EQ(m.at("state.1.step").item(), 2);
  EXPECT_EQ(m.count("state.2.step"), 0u);  // c has no state
  EXPECT_EQ(m.at("param_groups.1.lr").item(), 0.001);
  EXPECT_EQ(m.at("param_groups.1.num_params").item(), 2);
  opt.set_lr(0.25);
  for (const ParamGroup& g : opt.param_groups()) EXPECT_EQ(g.lr, 0.25);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(OptimGroups, ConstructionErrors) {
  Tensor a = leaf({1, 2}, {2}, DType::f32);
  expect_contains(error_of([&] { SGD({a, a}, {.lr = 0.1}); }), {"SGD", "more than once"});
  expect_contains(error_of([&] { SGD(std::vector<ParamGroup>{{{a}, 0.1, 0, {}}, {{a}, 0.2, 0, {}}}, {}); }),
                  {"more than once", "group 1"});
  expect_contains(error_of([&] { SGD({a * 2.0}, {.lr = 0.1}); }), {"SGD", "leaf"});
  expect_contains(error_of([&] { SGD({zeros({2}, DType::i64)}, {.lr = 0.1}); }), {"SGD", "i64"});
  expect_contains(error_of([&] { SGD({a}, {.lr = -1}); }), {"SGD", "lr"});
  expect_contains(error_of([&] { SGD({a}, {.lr = 0.1, .nesterov = true}); }), {"nesterov"});
  expect_contains(error_of([&] { Adam({a}, {.beta2 = 1.0}); }), {"Adam", "betas"});
  expect_contains(error_of([&] { AdamW({a}, {.weight_decay = -1}); }), {"AdamW", "weight_decay"});
}

// ---- schedulers --------------------------------------------------------------------------------

TEST(OptimScheduler, LrSequencesMatchClosedForms) {
  using Factor = std::function<double(int64_t)>;
  using Make = std::function<std::unique_ptr<LRScheduler>(Optimizer&)>;
  struct Case {
    const char* name;
    Make make;
    Factor want;
  };
  const std::vector<Case> cases = {
      {"constant", [](Optimizer& o) { return std::make_unique<ConstantLR>(o); },
       [](int64_t) { return 1.0; }},
      {"step", [](Optimizer& o) { return std::make_unique<StepLR>(o, 3, 0.5); },
       [](int64_t e) { return std::pow(0.5, static_cast<double>(e / 3)); }},
      {"exponential", [](Optimizer& o) { return std::make_unique<ExponentialLR>(o, 0.9); },
       [](int64_t e) { return std::pow(0.9, static_cast<double>(e)); }},
      {"linear_decay", [](Optimizer& o) { return std::make_unique<LinearDecay>(o, 8); },
       [](int64_t e) { return e >= 8 ? 0.0 : 1.0 - static_cast<double>(e) / 8.0; }},
      {"warmup", [](Optimizer& o) { return std::make_unique<LinearWarmup>(o, 4); },
       [](int64_t e) { return e < 4 ? static_cast<double>(e + 1) / 5.0 : 1.0; }},
      {"warmup_start0", [](Optimizer& o) { return std::make_unique<LinearWarmup>(o, 2, nullptr, 0.0); },
       [](int64_t e) { return e < 2 ? static_cast<double>(e) / 2.0 : 1.0; }},
      {"warmup_then_step",
       [](Optimizer& o) { return std::make_unique<LinearWarmup>(o, 3, std::make_unique<StepLR>(o, 2, 0.1)); },
       [](int64_t e) { return e < 3 ? static_cast<double>(e + 1) / 4.0 : std::pow(0.1, static_cast<double>((e - 3) / 2)); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor a = leaf({1}, {1}, DType::f32), b = leaf({1}, {1}, DType::f32);
    SGD opt(std::vector<ParamGroup>{{{a}, 0.2, 0, {}}, {{b}, 0.03, 0, {}}}, {});
    auto sched = c.make(opt);
    for (int64_t e = 0; e < 12; ++e) {
      EXPECT_EQ(sched->epoch(), e);
      const auto lrs = sched->last_lrs();
      EXPECT_NEAR(lrs[0], 0.2 * c.want(e), 1e-15) << "epoch " << e;
      EXPECT_NEAR(lrs[1], 0.03 * c.want(e), 1e-15) << "epoch " << e;
      EXPECT_EQ(opt.param_groups()[0].lr, lrs[0]);
      sched->step();
    }
    EXPECT_EQ(*opt.param_groups()[1].initial_lr, 0.03);
  }
}

TEST(OptimScheduler, StateDictResumesTheSchedule) {
  Tensor a = leaf({1}, {1}, DType::f32);
  SGD opt({a}, {.lr = 0.5});
  StepLR s(opt, 2, 0.5);
  for (int i = 0; i < 5; ++i) s.step();
  const auto sd = s.state_dict();
  ASSERT_EQ(sd.size(), 1u);
  EXPECT_EQ(sd[0].first, "scheduler.epoch");

  Tensor b = leaf({1}, {1}, DType::f32);
  SGD opt2({b}, {.lr = 0.5});
  StepLR s2(opt2, 2, 0.5);
  s2.load_state_dict(std::map<std::string, Tensor>(sd.begin(), sd.end()));
  EXPECT_EQ(s2.epoch(), 5);
  EXPECT_EQ(opt2.param_groups()[0].lr, opt.param_groups()[0].lr);
  s.step();
  s2.step();
  EXPECT_EQ(opt2.param_groups()[0].lr, 0.5 * 0.125);
  EXPECT_EQ(opt2.param_groups()[0].lr, opt.param_groups()[0].lr);
  expect_contains(error_of([&] { s2.load_state_dict({}); }), {"scheduler.epoch"});
  expect_contains(error_of([&] { StepLR(opt2, 0); }), {"StepLR", "step_size"});
}

// ---- clipping ---------------------------------------------------------------------------------

TEST(OptimClip, ClipGradNormMatchesTorch) {
  Tensor a = leaf(seq(10, 1.0), {2, 5}, DType::f32);
  Tensor b = leaf(seq(300, 2.0), {300}, DType::f32);
  Tensor c = leaf(seq(3, 3.0), {3}, DType::f32);  // no gradient: skipped
  Tensor d = leaf(seq(6, 4.0), {3, 2}, DType::f32);
  auto set_grads = [&](double scale) {
    a.set_grad(from_doubles(seq(10, 5.0), {2, 5}) * scale);
    b.set_grad(from_doubles(seq(300, 6.0), {300}) * scale);
    // A transposed (non-contiguous) gradient is read and scaled through its strides.
    d.set_grad(raw::transpose(from_doubles(seq(6, 7.0), {2, 3}) * scale, 0, 1));
  };
  auto ref_norm = [&]() {
    double sq = 0;
    for (const Tensor& p : {a, b, d}) {
      for (double v : p.grad().to_vector()) sq += v * v;
    }
    return std::sqrt(sq);
  };
  for (double scale : {1.0, 0.01}) {
    SCOPED_TRACE(scale);
    set_grads(scale);
    const double want = ref_norm();
    const std::vector<double> ga = a.grad().to_vector(), gb = b.grad().to_vector(),
                              gd = d.grad().to_vector();
    const double max_norm = 1.0;
    const double norm = clip_grad_norm_({a, b, c, d}, max_norm);
    EXPECT_NEAR(norm, want, 1e-6 * want);
    const double coef = want > max_norm ? max_norm / (want + 1e-6) : 1.0;
    for (const auto& [p, g0] : {std::pair{a, ga}, std::pair{b, gb}, std::pair{d, gd}}) {
      const auto g = p.grad().to_vector();
      for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], g0[i] * coef, 1e-6);
    }
    if (coef < 1) {
      EXPECT_NEAR(ref_norm(), max_norm, 1e-5);
    }
  }
  EXPECT_FALSE(c.grad().defined());
  EXPECT_EQ(clip_grad_norm_({c}, 1.0), 0.0);
  expect_contains(error_of([&] { clip_grad_norm_({a}, -1.0); }), {"clip_grad_norm_", "max_norm"});
}

// ---- checkpoint round trips ----------------------------------------------------------------------

namespace {

MLPConfig small_mlp() {
  MLPConfig c;
  c.in_dim = 6;
  c.hidden = {5};
  c.out_dim = 2;
  c.activation = Activation::tanh;
  c.batch_norm = true;
  return c;
}

std::vector<double> train_steps(MLP& m, Optimizer& opt, LRScheduler* sched, int n) {
  const Tensor x = from_doubles(seq(8 * 6, 11.0), {8, 6});
  const Tensor y = from_doubles(seq(8 * 2, 12.0), {8, 2});
  std::vector<double> losses;
  for (int i = 0; i < n; ++i) {
    opt.zero_grad();
    Tensor loss = mse_loss(m(x), y);
    loss.backward();
    clip_grad_norm_(m.parameters(), 0.5);
    opt.step();
    if (sched) sched->step();
    losses.push_back(loss.item());
  }
  return losses;
}

}  // namespace

TEST_F(OptimFile, OptimizerCheckpointContinuesIdentically) {
  for (const char* kind : {"adam", "adamw", "sgd"}) {
    SCOPED_TRACE(kind);
    auto make_opt = [&](MLP& m) -> std::unique_ptr<Optimizer> {
      const std::string k = kind;
      if (k == "adam") return std::make_unique<Adam>(m.parameters(), AdamOptions{.lr = 0.01});
      if (k == "adamw") return std::make_unique<AdamW>(m.parameters(), AdamOptions{.lr = 0.01, .weight_decay = 0.1});
      return std::make_unique<SGD>(m.parameters(), SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3});
    };
    Generator g1(5);
    MLP a(small_mlp(), g1);
    auto opt_a = make_opt(a);
    ExponentialLR sched_a(*opt_a, 0.7);
    train_steps(a, *opt_a, &sched_a, 3);

    NamedTensors ckpt = a.state_dict();
    for (auto& kv : opt_a->state_dict("optim.")) ckpt.push_back(kv);
    for (auto& kv : sched_a.state_dict()) ckpt.push_back(kv);
    save_safetensors(path("ckpt.safetensors"), ckpt);
    const double lr_at_ckpt = opt_a->param_groups()[0].lr;
    const std::vector<double> cont_a = train_steps(a, *opt_a, &sched_a, 3);

    Generator g2(99);  // a different init, overwritten by the load
    MLP b(small_mlp(), g2);
    auto opt_b = make_opt(b);
    ExponentialLR sched_b(*opt_b, 0.7);
    const auto loaded = load_safetensors(path("ckpt.safetensors"));
    b.load_state_dict(loaded, /*strict=*/false);  // optimizer/scheduler keys are not the model's
    opt_b->load_state_dict(loaded, "optim.");
    sched_b.load_state_dict(loaded);
    EXPECT_EQ(opt_b->param_groups()[0].lr, lr_at_ckpt);
    const std::vector<double> cont_b = train_steps(b, *opt_b, &sched_b, 3);
    EXPECT_EQ(cont_a, cont_b);  // bit-identical continuation
    const auto sa = a.state_dict(), sb = b.state_dict();
    for (size_t i = 0; i < sa.size(); ++i) {
      EXPECT_EQ(sa[i].second.to_vector(), sb[i].second.to_vector()) << sa[i].first;
    }
  }
}

TEST(OptimStateDict, LoadErrorsListEveryProblem) {
  Tensor a = leaf(seq(4, 1.0), {4}, DType::f32), b = leaf(seq(6, 2.0), {2, 3}, DType::f32);
  Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(ones({4}));
  b.set_grad(ones({2, 3}));
  opt.step();
  auto sd_list = opt.state_dict("opt.");
  std::map<std::string, Tensor> sd(sd_list.begin(), sd_list.end());
  sd["opt.state.1.exp_avg"] = zeros({3, 2});
  sd.erase("opt.state.0.exp_avg_sq");
  sd["opt.state.7.bogus"] = zeros({1});
  sd["model.weight"] = zeros({1});  // another prefix: ignored

  Tensor a2 = leaf(seq(4, 1.0), {4}, DType::f32), b2 = leaf(seq(6, 2.0), {2, 3}, DType::f32);
  Adam fresh({a2, b2}, {.lr = 0.5});
  const std::string msg = error_of([&] { fresh.load_state_dict(sd, "opt."); });
  expect_contains(msg, {"Adam", "opt.state.1.exp_avg", "[3, 2]", "[2, 3]", "missing",
                        "opt.state.0.exp_avg_sq", "unexpected", "opt.state.7.bogus"});
  EXPECT_EQ(msg.find("model.weight"), std::string::npos) << msg;
  EXPECT_EQ(fresh.param_groups()[0].lr, 0.5);  // unchanged by the failed load

  Adam one({a2}, {.lr = 0.5});
  const auto good = opt.state_dict();
  expect_contains(error_of([&] { one.load_state_dict(std::map<std::string, Tensor>(good.begin(), good.end())); }),
                  {"group 0 has 2 parameters in the checkpoint, 1 here"});
}

// PerGroupLR: each group follows its own closed form (the fine-tuning setting: DropoutNet fixed,
// BERT decaying); groups past the list keep their lr; a reload re-applies every group's lr.
TEST(OptimScheduler, PerGroupSchedules) {
  Tensor a = leaf({1}, {1}, DType::f32), b = leaf({1}, {1}, DType::f32), c = leaf({1}, {1}, DType::f32);
  SGD opt(std::vector<ParamGroup>{{{a}, 1e-4, 0, {}}, {{b}, 1e-3, 0, {}}, {{c}, 0.5, 0, {}}}, {});
  PerGroupLR s(opt, {[](int64_t) { return 1.0; },
                     [](int64_t e) { return std::pow(0.9, static_cast<double>(e)); }});
  for (int64_t e = 0; e < 6; ++e) {
    const auto lrs = s.last_lrs();
    EXPECT_EQ(lrs[0], 1e-4) << e;
    EXPECT_NEAR(lrs[1], 1e-3 * std::pow(0.9, static_cast<double>(e)), 1e-18) << e;
    EXPECT_EQ(lrs[2], 0.5) << e;
    s.step();
  }
  const auto sd = s.state_dict();
  SGD opt2(std::vector<ParamGroup>{{{a}, 1e-4, 0, {}}, {{b}, 1e-3, 0, {}}, {{c}, 0.5, 0, {}}}, {});
  PerGroupLR s2(opt2, {[](int64_t) { return 1.0; },
                       [](int64_t e) { return std::pow(0.9, static_cast<double>(e)); }});
  s2.load_state_dict({sd.begin(), sd.end()});
  EXPECT_EQ(s2.epoch(), 6);
  EXPECT_EQ(opt2.param_groups()[1].lr, opt.param_groups()[1].lr);
  EXPECT_THROW(PerGroupLR(opt2, {PerGroupLR::Factor()}), Error);
}
