// CPU <-> CUDA parity of the random, indexing, loss and optimizer kernels (dan::kernels::cpu vs
// dan::kernels::cuda). Random ops and index_add must match bit for bit; error flags raised on
// the device must become dan::Error. Skipped without a CUDA device.
#include "core/cuda/runtime.h"

#ifdef DAN_WITH_CUDA

#include <gmock/gmock.h>

#include "core/philox.h"
#include "tests/cuda/parity_util.h"

namespace dan::parity {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no dan::Error thrown)";
}

std::vector<Layout> random_layouts() {
  std::vector<Layout> out;
  for (const Layout& l : layouts()) {
    if (l.name != "expanded") out.push_back(l);  // writing through stride 0 is ill-defined
  }
  return out;
}

TEST(CudaParity, RandomMatchesCpuBitwise) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1000;
  for (const Layout& l : random_layouts()) {
    const Pair t = map(uniform_pair(l.base, seed++), l.view);
    K::cpu::uniform_(t.cpu, 42, 7, -1.0, 3.0);
    K::cuda::uniform_(t.gpu, 42, 7, -1.0, 3.0);
    expect_bitwise(t.cpu, t.gpu, "uniform_ " + l.name);
    for (DType dt : {DType::f32, DType::i32, DType::i64, DType::b8}) {
      const Pair b = map(int_pair(l.base, seed++, 0, 5, dt), l.view);
      K::cpu::bernoulli_(b.cpu, 9, 123, 0.3);
      K::cuda::bernoulli_(b.gpu, 9, 123, 0.3);
      expect_bitwise(b.cpu, b.gpu, "bernoulli_ " + std::string(dtype_name(dt)) + " " + l.name);
    }
    const Pair x = map(uniform_pair(l.base, seed++), l.view);
    const K::DropoutOut c = K::cpu::dropout(x.cpu, 0.25, 5, 99);
    const K::DropoutOut g = K::cuda::dropout(x.gpu, 0.25, 5, 99);
    expect_bitwise(c.y, g.y, "dropout y " + l.name);
    expect_bitwise(c.mask, g.mask, "dropout mask " + l.name);
    // Normals go through logf/sinf/cosf, whose last bits differ between libm and CUDA.
    const Pair n = map(uniform_pair(l.base, seed++), l.view);
    K::cpu::normal_(n.cpu, 3, 11, 0.5, 2.0);
    K::cuda::normal_(n.gpu, 3, 11, 0.5, 2.0);
    expect_close(n.cpu, n.gpu, 1e-5, 1e-5, "normal_ " + l.name);
  }
}

TEST(CudaParity, RandomIsReproducibleAndOffsetSensitive) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor a = raw::empty({4097}, DType::f32, Device::cuda());
  Tensor b = raw::empty({4097}, DType::f32, Device::cuda());
  K::cuda::uniform_(a, 1, 0, 0.0, 1.0);
  K::cuda::uniform_(b, 1, 0, 0.0, 1.0);
  expect_bitwise(a, b, "uniform_ twice");
  K::cuda::uniform_(b, 1, philox::blocks_for(4097, false), 0.0, 1.0);
  EXPECT_NE(a.to_vector(), b.to_vector()) << "a fresh offset must give fresh numbers";
}

TEST(CudaParity, IndexSelect) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1100;
  for (DType dt : {DType::f32, DType::i32, DType::i64, DType::b8}) {
    for (DType it : {DType::i32, DType::i64}) {
      const std::string what = std::string(dtype_name(dt)) + "/" + std::string(dtype_name(it));
      const Pair x = int_pair({10, 4}, seed++, -50, 50, dt);
      const Pair xt = map(int_pair({4, 10}, seed++, -50, 50, dt),
                          [](const Tensor& t) { return raw::transpose(t, 0, 1); });
      const Pair x1 = int_pair({10}, seed++, -50, 50, dt);
      for (const Shape& is : {Shape{7}, Shape{2, 3}, Shape{0}, Shape{}}) {
        const Pair idx = int_pair(is, seed++, 0, 9, it);
        expect_bitwise(K::cpu::index_select(x.cpu, idx.cpu), K::cuda::index_select(x.gpu, idx.gpu),
                       "index_select " + what + " index " + shape_str(is));
        expect_bitwise(K::cpu::index_select(xt.cpu, idx.cpu),
                       K::cuda::index_select(xt.gpu, idx.gpu), "index_select strided " + what);
        expect_bitwise(K::cpu::index_select(x1.cpu, idx.cpu),
                       K::cuda::index_select(x1.gpu, idx.gpu), "index_select 1-D " + what);
      }
    }
  }
  const Pair x = uniform_pair({10, 4}, seed++);
  const Pair bad = on_both(from_vector<int64_t>({1, 10, 2}, {3}));
  EXPECT_THAT(error_of([&] { K::index_select(x.gpu, bad.gpu); }),
              AllOf(HasSubstr("index_select"), HasSubstr("10")));
  const Pair neg = on_both(from_vector<int32_t>({-1}, {1}));
  EXPECT_THAT(error_of([&] { K::index_select(x.gpu, neg.gpu); }), HasSubstr("index_select"));
}

TEST(CudaParity, IndexAddDeterministic) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  struct Case {
    Shape index, rest;
    int64_t rows;
    bool strided_grad;
  };
  const std::vector<Case> cases = {
      {{7}, {3}, 5, false},
      {{2, 3}, {4}, 9, false},        // rows beyond the largest index stay zero
      {{5000}, {2}, 100, true},       // long runs per row
      {{300000}, {}, 1000, false},    // more keys than one sort tile: global bitonic steps
      {{3000}, {64}, 7, false},
      {{0}, {3}, 4, false},
  };
  uint32_t seed = 1200;
  for (const Case& c : cases) {
    for (DType it : {DType::i32, DType::i64}) {
      const Pair idx = int_pair(c.index, seed++, 0, static_cast<int>(c.rows) - 1, it);
      Shape gs = c.index;
      gs.insert(gs.end(), c.rest.begin(), c.rest.end());
      Pair g = uniform_pair(gs, seed++);
      if (c.strided_grad && gs.size() == 2) {
        g = map(uniform_pair({gs[1], gs[0]}, seed++),
                [](const Tensor& t) { return raw::transpose(t, 0, 1); });
      }
      const std::string what = "index_add " + shape_str(c.index) + " rows " +
                               std::to_string(c.rows) + " " + std::string(dtype_name(it));
      // Both backends add each row's contributions in index order in f32: same bits.
      const Tensor first = K::cuda::index_add(g.gpu, idx.gpu, c.rows);
      expect_bitwise(K::cpu::index_add(g.cpu, idx.cpu, c.rows), first, what);
      expect_bitwise(first, K::cuda::index_add(g.gpu, idx.gpu, c.rows), what + " rerun");
    }
  }
  const Pair g = uniform_pair({3, 2}, seed++);
  const Pair bad = on_both(from_vector<int64_t>({0, 4, 1}, {3}));
  EXPECT_THAT(error_of([&] { K::index_add(g.gpu, bad.gpu, 4); }),
              AllOf(HasSubstr("index_add"), HasSubstr("4")));
}

TEST(CudaParity, Cat) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1300;
  for (DType dt : {DType::f32, DType::i64, DType::b8}) {
    const Pair a = int_pair({2, 3}, seed++, -9, 9, dt), b = int_pair({4, 3}, seed++, -9, 9, dt);
    const Pair e = int_pair({0, 3}, seed++, -9, 9, dt);
    const Pair t = map(int_pair({5, 2}, seed++, -9, 9, dt),
                       [](const Tensor& x) { return raw::transpose(x, 0, 1); });
    expect_bitwise(K::cpu::cat({a.cpu, b.cpu, e.cpu}, 0), K::cuda::cat({a.gpu, b.gpu, e.gpu}, 0),
                   "cat dim 0");
    expect_bitwise(K::cpu::cat({t.cpu, a.cpu}, 1), K::cuda::cat({t.gpu, a.gpu}, 1),
                   "cat dim 1 strided");
    expect_bitwise(K::cpu::cat({a.cpu, t.cpu}, -1), K::cuda::cat({a.gpu, t.gpu}, -1), "cat dim -1");
  }
}

TEST(CudaParity, MseLoss) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1400;
  const Pair grad = on_both(scalar_tensor(0.7));
  for (const Layout& l : layouts()) {
    if (l.name == "expanded" || l.name == "empty[0,5]") continue;
    const Pair p = map(uniform_pair(l.base, seed++), l.view);
    const Pair t = uniform_pair(p.cpu.shape(), seed++);
    expect_close(K::cpu::mse_loss(p.cpu, t.cpu), K::cuda::mse_loss(p.gpu, t.gpu), 1e-5, 1e-7,
                 "mse_loss " + l.name);
    expect_close(K::cpu::mse_loss_backward(grad.cpu, p.cpu, t.cpu),
                 K::cuda::mse_loss_backward(grad.gpu, p.gpu, t.gpu), 1e-5, 1e-7,
                 "mse_loss_backward " + l.name);
  }
}

TEST(CudaParity, CrossEntropy) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1500;
  const Pair grad = on_both(scalar_tensor(1.3));
  for (const Shape& s : {Shape{64, 10}, Shape{5, 3000}, Shape{1, 1}}) {
    for (DType it : {DType::i32, DType::i64}) {
      for (int64_t ignore : {int64_t{-100}, int64_t{0}}) {
        const Pair logits = uniform_pair(s, seed++, -5.0, 5.0);
        const Pair target = int_pair({s[0]}, seed++, 0, static_cast<int>(s[1]) - 1, it);
        const std::string what = "cross_entropy " + shape_str(s) + " ignore " +
                                 std::to_string(ignore);
        const K::CrossEntropyOut c = K::cpu::cross_entropy(logits.cpu, target.cpu, ignore);
        const K::CrossEntropyOut g = K::cuda::cross_entropy(logits.gpu, target.gpu, ignore);
        expect_close(c.loss, g.loss, 1e-5, 1e-6, what + " loss");  // NaN when all ignored
        expect_close(c.log_probs, g.log_probs, 1e-5, 1e-5, what + " log_probs");
        expect_close(K::cpu::cross_entropy_backward(grad.cpu, c.log_probs, target.cpu, ignore),
                     K::cuda::cross_entropy_backward(grad.gpu, g.log_probs, target.gpu, ignore),
                     1e-5, 1e-6, what + " backward");
      }
    }
  }
  const Pair logits = uniform_pair({3, 4}, seed++);
  const Pair bad = on_both(from_vector<int64_t>({0, 4, 1}, {3}));
  EXPECT_THAT(error_of([&] { K::cross_entropy(logits.gpu, bad.gpu, -100); }),
              AllOf(HasSubstr("cross_entropy"), HasSubstr("out of range")));
}

TEST(CudaParity, OptimizerSteps) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1600;
  for (bool decoupled : {false, true}) {
    for (double wd : {0.0, 0.01}) {
      for (int64_t step : {1, 10}) {
        const Shape s = {1027};
        const Pair p = uniform_pair(s, seed++), g = uniform_pair(s, seed++);
        const Pair m = uniform_pair(s, seed++, -0.1, 0.1), v = uniform_pair(s, seed++, 0.0, 0.1);
        K::cpu::adam_step(p.cpu, g.cpu, m.cpu, v.cpu, 1e-3, 0.9, 0.999, 1e-8, wd, step, decoupled);
        K::cuda::adam_step(p.gpu, g.gpu, m.gpu, v.gpu, 1e-3, 0.9, 0.999, 1e-8, wd, step, decoupled);
        const std::string what = std::string("adam") + (decoupled ? "w" : "") + " wd " +
                                 std::to_string(wd) + " step " + std::to_string(step);
        expect_close(p.cpu, p.gpu, 1e-5, 1e-6, what + " param");
        expect_close(m.cpu, m.gpu, 1e-5, 1e-7, what + " exp_avg");
        expect_close(v.cpu, v.gpu, 1e-5, 1e-8, what + " exp_avg_sq");
      }
    }
  }
  for (double mu : {0.0, 0.9}) {
    for (bool nesterov : {false, true}) {
      for (bool first : {true, false}) {
        const Shape s = {515};
        const Pair p = uniform_pair(s, seed++), g = uniform_pair(s, seed++);
        const Pair buf = mu != 0.0 ? uniform_pair(s, seed++) : Pair{};
        K::cpu::sgd_step(p.cpu, g.cpu, buf.cpu, 0.05, mu, 0.1, 0.01, nesterov, first);
        K::cuda::sgd_step(p.gpu, g.gpu, buf.gpu, 0.05, mu, 0.1, 0.01, nesterov, first);
        const std::string what = "sgd mu " + std::to_string(mu) + (nesterov ? " nesterov" : "") +
                                 (first ? " first" : "");
        expect_close(p.cpu, p.gpu, 1e-5, 1e-6, what + " param");
        if (mu != 0.0) expect_close(buf.cpu, buf.gpu, 1e-5, 1e-6, what + " momentum_buf");
      }
    }
  }
}

}  // namespace
}  // namespace dan::parity

#endif  // DAN_WITH_CUDA
