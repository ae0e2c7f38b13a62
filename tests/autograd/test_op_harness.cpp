// Runs every case of op_cases.cpp: f64 gradcheck on the CPU, f32-vs-f64 agreement of forward
// and gradients, and CPU<->CUDA parity where a GPU exists; then prints a summary.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/cuda/runtime.h"
#include "kernels/kernels.h"
#include "op_harness.h"

namespace dan::harness {
namespace {

struct Counts {
  int cases = 0, gradchecks = 0, f32_checks = 0, cuda_parity = 0, cuda_skipped = 0;
};
Counts g_counts;

// Builds inputs of dtype `t` on `d` from one seed, so f32/f64/CPU/CUDA see the same values.
std::vector<Tensor> make_inputs(const Case& c, uint64_t seed, DType t, Device d) {
  std::vector<Tensor> out;
  Generator gen(seed);
  for (const Input& spec : c.inputs) {
    Shape s = spec.shape;
    if (spec.transposed) std::swap(s[s.size() - 2], s[s.size() - 1]);
    Tensor base;
    std::vector<double> v = rand(s, gen, DType::f64).to_vector();
    for (double& x : v) {
      switch (spec.init) {
        case Init::normal: x = 2 * x - 1; x *= 1.7; break;
        case Init::positive: x = 0.5 + 2 * x; break;
        case Init::away_from_zero: x = (x < 0.5 ? -1 : 1) * (0.2 + 2 * std::abs(x - 0.5)); break;
        case Init::index: x = std::floor(x * static_cast<double>(spec.bound)); break;
        case Init::mask: x = x < 0.5 ? 1 : 0; break;
      }
    }
    const DType dt = spec.init == Init::index ? spec.index_dtype : spec.init == Init::mask ? DType::b8 : t;
    base = from_doubles(v, s, dt, d);
    if (spec.transposed) base = raw::transpose(base, -1, -2);
    if (spec.grad && is_floating(dt)) base.set_requires_grad(true);
    out.push_back(base);
  }
  return out;
}

void expect_close(const Tensor& a, const Tensor& b, double rtol, double atol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double err = std::abs(x[i] - y[i]) - (atol + rtol * std::abs(y[i]));
    if (std::isnan(x[i]) != std::isnan(y[i]) || err > worst) {
      worst = std::isnan(err) ? 1e30 : err;
      at = i;
    }
  }
  EXPECT_LE(worst, 0.0) << what << ": element " << at << " is " << x[at] << ", expected " << y[at];
}

// forward + backward of sum(out * proj) with a fixed projection; returns {out, grads...}.
std::vector<Tensor> run_case(const Case& c, const std::vector<Tensor>& in) {
  Tensor out = c.fn(in);
  std::vector<Tensor> res = {out};
  if (autograd::needs_grad(out)) {
    Generator g(99);
    Tensor proj = randn(out.shape(), g, DType::f64).to(out.dtype()).to(out.device());
    sum(mul(out, proj)).backward();
  }
  for (const Tensor& t : in) res.push_back(t.requires_grad() ? t.grad() : Tensor());
  return res;
}

class OpHarness : public ::testing::TestWithParam<Case> {};

TEST_P(OpHarness, GradcheckAndParity) {
  const Case& c = GetParam();
  ++g_counts.cases;
  if (c.needs_gpu && !cuda::is_available()) {
    ++g_counts.cuda_skipped;
    GTEST_SKIP() << c.op << " (" << c.desc << "): needs a CUDA device";
  }
  // 1. The output records the op under its registered name.
  {
    std::vector<Tensor> in = make_inputs(c, 7, DType::f64, Device::cpu());
    Tensor out = c.fn(in);
    ASSERT_TRUE(out.grad_fn() != nullptr) << c.op << ": output has no grad_fn";
    EXPECT_EQ(std::string(out.grad_fn()->name), c.op) << c.desc;
  }
  // 2. Finite differences in f64.
  if (c.gradcheck) {
    std::vector<Tensor> in = make_inputs(c, 7, DType::f64, Device::cpu());
    autograd::GradcheckOptions opt;
    opt.rtol = c.rtol;
    opt.atol = 1e-6;
    const autograd::GradcheckResult r = autograd::gradcheck(c.fn, in, opt);
    EXPECT_TRUE(r.ok) << c.op << " (" << c.desc << "): " << r.message;
    ++g_counts.gradchecks;
  }
  // 3. f32 agrees with f64 (forward and every gradient).
  const std::vector<Tensor> ref = run_case(c, make_inputs(c, 7, DType::f64, Device::cpu()));
  if (!c.needs_gpu) {
    const std::vector<Tensor> f32 = run_case(c, make_inputs(c, 7, DType::f32, Device::cpu()));
    for (size_t i = 0; i < ref.size(); ++i) {
      if (!ref[i].defined()) continue;
      ASSERT_TRUE(f32[i].defined()) << c.op << ": f32 run lacks output/grad " << i;
      expect_close(f32[i], ref[i], 2e-4, 2e-5, c.op + " (" + c.desc + ") f32 vs f64 #" + std::to_string(i));
    }
    ++g_counts.f32_checks;
  }
  // 4. CUDA parity (f32) where a device exists.
  if (!cuda::is_available()) {
    ++g_counts.cuda_skipped;
    return;
  }
  const std::vector<Tensor> cpu = run_case(c, make_inputs(c, 7, DType::f32, Device::cpu()));
  const std::vector<Tensor> gpu = run_case(c, make_inputs(c, 7, DType::f32, Device::cuda()));
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (!cpu[i].defined()) continue;
    ASSERT_TRUE(gpu[i].defined()) << c.op << ": CUDA run lacks output/grad " << i;
    expect_close(gpu[i], cpu[i], 1e-4, 1e-5, c.op + " (" + c.desc + ") CUDA vs CPU #" + std::to_string(i));
  }
  ++g_counts.cuda_parity;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string n = info.param.op + "_" + std::to_string(info.index);
  for (char& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpHarness, ::testing::ValuesIn(all_cases()), case_name);

// Every op of autograd/ops.def has at least one case, and no case names an unknown op.
TEST(OpHarnessCoverage, EveryRegisteredOpHasCases) {
  std::set<std::string> registered;
#define DAN_OP(name, n) registered.insert(#name);
#include "autograd/ops.def"
#undef DAN_OP
  std::map<std::string, int> per_op;
  for (const Case& c : all_cases()) per_op[c.op]++;
  for (const std::string& op : registered) {
    EXPECT_GT(per_op[op], 0) << "op '" << op << "' is in autograd/ops.def but has no harness case";
  }
  for (const auto& [op, n] : per_op) {
    EXPECT_TRUE(registered.count(op)) << "harness case for '" << op << "' which is not in ops.def";
  }
}

class SummaryPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_counts.cases == 0) return;
    fmt::print("op harness: {} (op, shape) cases; {} gradchecks (f64), {} f32-vs-f64 checks, "
               "{} CUDA parity checks, {} skipped for lack of a GPU\n",
               g_counts.cases, g_counts.gradchecks, g_counts.f32_checks, g_counts.cuda_parity,
               g_counts.cuda_skipped);
  }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

}  // namespace
}  // namespace dan::harness
