// CPU <-> CUDA parity of the elementwise, reduction, matmul, softmax and normalization kernels:
// the same inputs (incl. broadcast and strided views) through dan::kernels::cpu and
// dan::kernels::cuda directly. Skipped without a CUDA device.
#include "core/cuda/runtime.h"

#ifdef DAN_WITH_CUDA

#include "tests/cuda/parity_util.h"

namespace dan::parity {
namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-6;      // elementwise
constexpr double kRedRtol = 1e-4, kRedAtol = 1e-5;  // reductions, matmul, norms

const K::UnaryOp kUnary[] = {K::UnaryOp::neg,     K::UnaryOp::exp,        K::UnaryOp::log,
                             K::UnaryOp::sqrt,    K::UnaryOp::rsqrt,      K::UnaryOp::abs,
                             K::UnaryOp::relu,    K::UnaryOp::tanh,       K::UnaryOp::sigmoid,
                             K::UnaryOp::gelu_erf, K::UnaryOp::gelu_tanh, K::UnaryOp::square,
                             K::UnaryOp::reciprocal, K::UnaryOp::sin,     K::UnaryOp::cos};
const K::BinaryOp kBinary[] = {K::BinaryOp::add, K::BinaryOp::sub,     K::BinaryOp::mul,
                               K::BinaryOp::div, K::BinaryOp::pow,     K::BinaryOp::maximum,
                               K::BinaryOp::minimum};
const K::CompareOp kCompare[] = {K::CompareOp::eq, K::CompareOp::ne, K::CompareOp::lt,
                                 K::CompareOp::le, K::CompareOp::gt, K::CompareOp::ge};

bool positive_domain(K::UnaryOp op) {
  return op == K::UnaryOp::log || op == K::UnaryOp::sqrt || op == K::UnaryOp::rsqrt ||
         op == K::UnaryOp::reciprocal;
}

TEST(CudaParity, Unary) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1;
  for (const Layout& l : layouts()) {
    for (K::UnaryOp op : kUnary) {
      const bool pos = positive_domain(op);
      const Pair x = map(uniform_pair(l.base, seed++, pos ? 0.1 : -3.0, 3.0), l.view);
      const std::string what = std::string(K::name(op)) + " " + l.name;
      expect_close(K::cpu::unary(op, x.cpu), K::cuda::unary(op, x.gpu), kRtol, kAtol, what);
    }
  }
}

TEST(CudaParity, UnaryBackward) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 100;
  for (const Layout& l : layouts()) {
    if (l.name == "large") continue;
    for (K::UnaryOp op : kUnary) {
      const bool pos = positive_domain(op);
      const Pair x = map(uniform_pair(l.base, seed++, pos ? 0.2 : -3.0, 3.0), l.view);
      const Pair g = uniform_pair(x.cpu.shape(), seed++);
      const Pair y{K::cpu::unary(op, x.cpu), K::cuda::unary(op, x.gpu)};
      const std::string what = std::string(K::name(op)) + "_backward " + l.name;
      expect_close(K::cpu::unary_backward(op, g.cpu, x.cpu, y.cpu),
                   K::cuda::unary_backward(op, g.gpu, x.gpu, y.gpu), 1e-5, 1e-5, what);
      // y may be left out; the kernel then recomputes it.
      expect_close(K::cpu::unary_backward(op, g.cpu, x.cpu, y.cpu),
                   K::cuda::unary_backward(op, g.gpu, x.gpu, Tensor()), 1e-5, 1e-5,
                   what + " (no y)");
    }
  }
}

// (a, b) shape pairs: broadcasting in every direction, plus strided operands.
struct BinCase {
  std::string name;
  Shape a, b;
  std::function<Tensor(const Tensor&)> va = [](const Tensor& t) { return t; };
};

std::vector<BinCase> binary_cases() {
  return {
      {"same[1001]", {1001}, {1001}},
      {"row-bcast", {7, 9}, {9}},
      {"both-bcast", {4, 1, 5}, {3, 1}},
      {"scalar-a", {}, {3, 4}},
      {"empty", {0, 3}, {3}},
      {"transposed-a", {9, 7}, {9, 7}, [](const Tensor& t) { return raw::transpose(t, 0, 1); }},
      {"large", {513, 1025}, {1025}},
  };
}

TEST(CudaParity, Binary) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 200;
  for (const BinCase& c : binary_cases()) {
    for (K::BinaryOp op : kBinary) {
      const bool pw = op == K::BinaryOp::pow;
      Pair a = map(uniform_pair(c.a, seed++, pw ? 0.5 : -2.0, 2.0), c.va);
      Shape bs = c.b;
      if (c.name == "transposed-a") bs = a.cpu.shape();
      const Pair b = uniform_pair(bs, seed++, pw ? -2.0 : 0.5, 2.0);
      const std::string what = std::string(K::name(op)) + " " + c.name;
      expect_close(K::cpu::binary(op, a.cpu, b.cpu), K::cuda::binary(op, a.gpu, b.gpu), kRtol,
                   kAtol, what);
      for (bool first : {false, true}) {
        expect_close(K::cpu::binary_scalar(op, a.cpu, 1.5, first),
                     K::cuda::binary_scalar(op, a.gpu, 1.5, first), kRtol, kAtol,
                     what + (first ? " scalar-first" : " scalar"));
      }
    }
  }
}

TEST(CudaParity, CompareWhereMaskedFill) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 300;
  for (DType dt : {DType::f32, DType::i32, DType::i64, DType::b8}) {
    for (const BinCase& c : binary_cases()) {
      if (c.name == "transposed-a") continue;
      const Pair a = int_pair(c.a, seed++, -2, 2, dt), b = int_pair(c.b, seed++, -2, 2, dt);
      const std::string what = std::string(dtype_name(dt)) + " " + c.name;
      for (K::CompareOp op : kCompare) {
        expect_bitwise(K::cpu::compare(op, a.cpu, b.cpu), K::cuda::compare(op, a.gpu, b.gpu),
                       std::string(K::name(op)) + " " + what);
        expect_bitwise(K::cpu::compare_scalar(op, a.cpu, 1.0),
                       K::cuda::compare_scalar(op, a.gpu, 1.0),
                       std::string(K::name(op)) + " scalar " + what);
      }
      const Pair cond = int_pair(c.b, seed++, 0, 1, DType::b8);
      expect_bitwise(K::cpu::where(cond.cpu, a.cpu, b.cpu), K::cuda::where(cond.gpu, a.gpu, b.gpu),
                     "where " + what);
      const Shape out = K::broadcast_shapes(c.a, c.b, "test");
      const Pair x = int_pair(out, seed++, -5, 5, dt);
      expect_bitwise(K::cpu::masked_fill(x.cpu, cond.cpu, -1.0),
                     K::cuda::masked_fill(x.gpu, cond.gpu, -1.0), "masked_fill " + what);
    }
  }
}

TEST(CudaParity, FillCopyCast) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const DType dts[] = {DType::f32, DType::i32, DType::i64, DType::b8};
  uint32_t seed = 400;
  for (DType dt : dts) {
    // fill_ and copy_ into a strided view: compare the whole base afterwards.
    Pair base = int_pair({6, 10}, seed++, -9, 9, dt);
    K::cpu::fill_(raw::slice(base.cpu, 1, 1, 10, 2), 3.0);
    K::cuda::fill_(raw::slice(base.gpu, 1, 1, 10, 2), 3.0);
    expect_bitwise(base.cpu, base.gpu, std::string("fill_ ") + std::string(dtype_name(dt)));
    const Pair src = int_pair({1, 6}, seed++, -9, 9, dt);
    K::cpu::copy_(raw::slice(raw::transpose(base.cpu, 0, 1), 0, 2, 10, 3),
                  raw::expand(src.cpu, {3, 6}));
    K::cuda::copy_(raw::slice(raw::transpose(base.gpu, 0, 1), 0, 2, 10, 3),
                   raw::expand(src.gpu, {3, 6}));
    expect_bitwise(base.cpu, base.gpu, std::string("copy_ ") + std::string(dtype_name(dt)));
    // cast from fractional/negative values (truncation toward zero, nonzero -> true).
    const Pair xf = map(uniform_pair({13, 7}, seed++, -4.0, 4.0), [](const Tensor& t) {
      return raw::transpose(t, 0, 1);
    });
    for (DType to : dts) {
      const Pair x{K::cpu::cast(xf.cpu, dt), K::cuda::cast(xf.gpu, dt)};
      expect_bitwise(x.cpu, x.gpu, "cast f32 -> " + std::string(dtype_name(dt)));
      expect_bitwise(K::cpu::cast(x.cpu, to), K::cuda::cast(x.gpu, to),
                     "cast " + std::string(dtype_name(dt)) + " -> " + std::string(dtype_name(to)));
    }
  }
}

// ---- reductions ---------------------------------------------------------------------------------
struct RedCase {
  std::string name;
  Shape base;
  std::function<Tensor(const Tensor&)> view;
  std::vector<std::vector<int64_t>> dims;
};

std::vector<RedCase> reduce_cases() {
  auto id = [](const Tensor& t) { return t; };
  return {
      {"[6,7,8]", {6, 7, 8}, id, {{}, {0}, {1}, {2}, {0, 2}, {-1}, {0, 1}}},
      {"permuted", {8, 7, 6}, [](const Tensor& t) { return raw::permute(t, {2, 0, 1}); },
       {{}, {0}, {2}, {1, 2}}},
      {"long rows", {3, 100003}, id, {{1}, {}}},
      {"columns", {5000, 64}, id, {{0}}},
      {"scalar", {}, id, {{}}},
      {"empty", {0, 4}, id, {{1}}},
  };
}

TEST(CudaParity, Reduce) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 500;
  for (const RedCase& c : reduce_cases()) {
    const Pair x = map(uniform_pair(c.base, seed++), c.view);
    for (const auto& dims : c.dims) {
      for (bool keep : {false, true}) {
        for (K::ReduceOp op : {K::ReduceOp::sum, K::ReduceOp::mean, K::ReduceOp::max,
                               K::ReduceOp::min}) {
          if (x.cpu.numel() == 0 && (op == K::ReduceOp::max || op == K::ReduceOp::min)) continue;
          const std::string what = std::string(K::name(op)) + " " + c.name + " dims " +
                                   testing::PrintToString(dims) + (keep ? " keepdim" : "");
          expect_close(K::cpu::reduce(op, x.cpu, dims, keep), K::cuda::reduce(op, x.gpu, dims, keep),
                       kRedRtol, kRedAtol, what);
        }
        for (int64_t corr : {0, 1}) {
          expect_close(K::cpu::var(x.cpu, dims, corr, keep), K::cuda::var(x.gpu, dims, corr, keep),
                       kRedRtol, kRedAtol, "var " + c.name);
        }
      }
    }
  }
}

TEST(CudaParity, ArgmaxAndSumTo) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  // Small integers make ties; the first maximum must win on both devices.
  for (const Shape& s : {Shape{6, 7, 8}, Shape{4, 3000}, Shape{}}) {
    const Pair x = int_pair(s, 7, -3, 3, DType::f32);
    for (int64_t d = 0; d < std::max<int64_t>(x.cpu.dim(), 1); ++d) {
      for (bool keep : {false, true}) {
        expect_bitwise(K::cpu::argmax(x.cpu, d, keep), K::cuda::argmax(x.gpu, d, keep),
                       "argmax " + shape_str(s) + " dim " + std::to_string(d));
      }
    }
  }
  const Pair g = uniform_pair({4, 5, 6}, 8);
  for (const Shape& to : {Shape{5, 1}, Shape{1, 6}, Shape{4, 1, 1}, Shape{6}, Shape{1, 5, 6},
                          Shape{}}) {
    expect_close(K::cpu::sum_to(g.cpu, to), K::cuda::sum_to(g.gpu, to), kRedRtol, kRedAtol,
                 "sum_to " + shape_str(to));
  }
}

// ---- matmul / linear ----------------------------------------------------------------------------
TEST(CudaParity, Matmul) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 600;
  auto tr = [](const Tensor& t) { return raw::transpose(t, -1, -2); };
  auto id = [](const Tensor& t) { return t; };
  auto step = [](const Tensor& t) { return raw::slice(t, -1, 0, t.size(-1), 2); };
  struct Case {
    Shape a, b;
    std::function<Tensor(const Tensor&)> va, vb;
  };
  const std::vector<Case> cases = {
      {{1, 1}, {1, 1}, id, id},
      {{17, 33}, {33, 9}, id, id},
      {{128, 64}, {64, 256}, id, id},
      {{33, 17}, {33, 9}, tr, id},        // a is a transpose view: op T, no copy
      {{17, 33}, {9, 33}, id, tr},
      {{33, 17}, {9, 33}, tr, tr},
      {{17, 66}, {33, 9}, step, id},      // step slice: copied first
      {{5, 0}, {0, 4}, id, id},           // k = 0 gives zeros
      {{3, 7, 5}, {3, 5, 4}, id, id},
      {{1, 7, 5}, {4, 5, 4}, id, id},     // broadcast batch
      {{4, 5, 7}, {4, 4, 5}, tr, tr},
  };
  for (const Case& c : cases) {
    const Pair a = map(uniform_pair(c.a, seed++), c.va), b = map(uniform_pair(c.b, seed++), c.vb);
    expect_close(K::cpu::matmul(a.cpu, b.cpu), K::cuda::matmul(a.gpu, b.gpu), kRedRtol, 1e-4,
                 "matmul " + shape_str(a.cpu.shape()) + " @ " + shape_str(b.cpu.shape()));
  }
  // Expanded batch dim (stride 0).
  const Pair e = map(uniform_pair({1, 6, 5}, seed++), [](const Tensor& t) {
    return raw::expand(t, {3, 6, 5});
  });
  const Pair f = uniform_pair({3, 5, 2}, seed++);
  expect_close(K::cpu::matmul(e.cpu, f.cpu), K::cuda::matmul(e.gpu, f.gpu), kRedRtol, 1e-4,
               "matmul expanded batch");
  for (bool with_bias : {false, true}) {
    for (bool x_t : {false, true}) {
      const Pair x = x_t ? map(uniform_pair({20, 31}, seed++), tr) : uniform_pair({31, 20}, seed++);
      const Pair w = uniform_pair({12, 20}, seed++);
      const Pair bias = with_bias ? uniform_pair({12}, seed++) : Pair{};
      expect_close(K::cpu::linear(x.cpu, w.cpu, bias.cpu), K::cuda::linear(x.gpu, w.gpu, bias.gpu),
                   kRedRtol, 1e-4, std::string("linear") + (with_bias ? " +bias" : "") +
                                       (x_t ? " x^T" : ""));
    }
  }
}

// ---- softmax ------------------------------------------------------------------------------------
TEST(CudaParity, Softmax) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 700;
  auto id = [](const Tensor& t) { return t; };
  const std::vector<Layout> cases = {
      {"[5,10]", {5, 10}, id},
      {"[3,1024]", {3, 1024}, id},
      {"[2,1025] block path", {2, 1025}, id},
      {"[2,50000]", {2, 50000}, id},
      {"[2,3,7]", {2, 3, 7}, id},
      {"[1]", {1}, id},
      {"transposed", {9, 6}, [](const Tensor& t) { return raw::transpose(t, 0, 1); }},
      {"many rows", {4099, 3}, id},
  };
  for (const Layout& c : cases) {
    const Pair x = map(uniform_pair(c.base, seed++, -8.0, 8.0), c.view);
    const Pair g = uniform_pair(x.cpu.shape(), seed++);
    const Pair y{K::cpu::softmax(x.cpu), K::cuda::softmax(x.gpu)};
    const Pair ly{K::cpu::log_softmax(x.cpu), K::cuda::log_softmax(x.gpu)};
    expect_close(y.cpu, y.gpu, kRtol, kAtol, "softmax " + c.name);
    expect_close(ly.cpu, ly.gpu, kRtol, 1e-5, "log_softmax " + c.name);
    expect_close(K::cpu::softmax_backward(g.cpu, y.cpu), K::cuda::softmax_backward(g.gpu, y.gpu),
                 kRedRtol, kRedAtol, "softmax_backward " + c.name);
    expect_close(K::cpu::log_softmax_backward(g.cpu, ly.cpu),
                 K::cuda::log_softmax_backward(g.gpu, ly.gpu), kRedRtol, kRedAtol,
                 "log_softmax_backward " + c.name);
  }
  // Masked (-inf) entries, as attention masks produce them.
  std::vector<double> v = {-INFINITY, 1.0, 2.0, -INFINITY, 0.5, -INFINITY, -INFINITY, 3.0};
  const Pair m = on_both(from_doubles(v, {2, 4}));
  expect_close(K::cpu::softmax(m.cpu), K::cuda::softmax(m.gpu), kRtol, kAtol, "softmax -inf");
  expect_close(K::cpu::log_softmax(m.cpu), K::cuda::log_softmax(m.gpu), kRtol, kAtol,
               "log_softmax -inf");
}

// ---- normalization ------------------------------------------------------------------------------
TEST(CudaParity, LayerNorm) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 800;
  for (const Shape& s : {Shape{8, 16}, Shape{4, 2000}, Shape{2, 3, 33}, Shape{1, 1}}) {
    for (bool affine : {false, true}) {
      const Pair x = uniform_pair(s, seed++, -3.0, 5.0);
      const Shape d = {s.back()};
      const Pair w = affine ? uniform_pair(d, seed++, 0.5, 1.5) : Pair{};
      const Pair b = affine ? uniform_pair(d, seed++) : Pair{};
      const K::LayerNormOut c = K::cpu::layer_norm(x.cpu, w.cpu, b.cpu, 1e-5);
      const K::LayerNormOut g = K::cuda::layer_norm(x.gpu, w.gpu, b.gpu, 1e-5);
      const std::string what = "layer_norm " + shape_str(s) + (affine ? " affine" : "");
      expect_close(c.y, g.y, kRedRtol, kRedAtol, what + " y");
      expect_close(c.mean, g.mean, kRedRtol, kRedAtol, what + " mean");
      expect_close(c.rstd, g.rstd, kRedRtol, kRedAtol, what + " rstd");
      const Pair gy = uniform_pair(s, seed++);
      for (bool need_affine : {false, true}) {
        const K::LayerNormGrads cg =
            K::cpu::layer_norm_backward(gy.cpu, x.cpu, c.mean, c.rstd, w.cpu, need_affine);
        const K::LayerNormGrads gg =
            K::cuda::layer_norm_backward(gy.gpu, x.gpu, g.mean, g.rstd, w.gpu, need_affine);
        expect_close(cg.dx, gg.dx, kRedRtol, kRedAtol, what + " dx");
        if (need_affine) {
          expect_close(cg.dweight, gg.dweight, kRedRtol, kRedAtol, what + " dweight");
          expect_close(cg.dbias, gg.dbias, kRedRtol, kRedAtol, what + " dbias");
        }
      }
    }
  }
}

TEST(CudaParity, BatchNorm) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 900;
  for (const Shape& s : {Shape{32, 7}, Shape{3000, 5}, Shape{2, 40}}) {
    for (bool affine : {false, true}) {
      for (bool training : {true, false}) {
        const Pair x = uniform_pair(s, seed++, -2.0, 4.0);
        const Shape c = {s[1]};
        const Pair w = affine ? uniform_pair(c, seed++, 0.5, 1.5) : Pair{};
        const Pair b = affine ? uniform_pair(c, seed++) : Pair{};
        Pair rm = uniform_pair(c, seed++), rv = uniform_pair(c, seed++, 0.5, 2.0);
        const std::string what = "batch_norm " + shape_str(s) + (affine ? " affine" : "") +
                                 (training ? " train" : " eval");
        const K::BatchNormOut co =
            K::cpu::batch_norm(x.cpu, w.cpu, b.cpu, rm.cpu, rv.cpu, training, 0.1, 1e-5);
        const K::BatchNormOut go =
            K::cuda::batch_norm(x.gpu, w.gpu, b.gpu, rm.gpu, rv.gpu, training, 0.1, 1e-5);
        expect_close(co.y, go.y, kRedRtol, kRedAtol, what + " y");
        expect_close(rm.cpu, rm.gpu, kRedRtol, kRedAtol, what + " running_mean");
        expect_close(rv.cpu, rv.gpu, kRedRtol, kRedAtol, what + " running_var");
        // In eval mode save_* are the running mean and 1/sqrt(running_var + eps) on both sides.
        expect_close(co.save_mean, go.save_mean, kRedRtol, kRedAtol, what + " save_mean");
        expect_close(co.save_invstd, go.save_invstd, kRedRtol, kRedAtol, what + " save_invstd");
        const Pair gy = uniform_pair(s, seed++);
        for (bool need_affine : {false, true}) {
          const K::BatchNormGrads cg = K::cpu::batch_norm_backward(
              gy.cpu, x.cpu, w.cpu, co.save_mean, co.save_invstd, training, need_affine);
          const K::BatchNormGrads gg = K::cuda::batch_norm_backward(
              gy.gpu, x.gpu, w.gpu, go.save_mean, go.save_invstd, training, need_affine);
          expect_close(cg.dx, gg.dx, kRedRtol, kRedAtol, what + " dx");
          if (need_affine) {
            expect_close(cg.dweight, gg.dweight, kRedRtol, kRedAtol, what + " dweight");
            expect_close(cg.dbias, gg.dbias, kRedRtol, kRedAtol, what + " dbias");
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace dan::parity

#endif  // DAN_WITH_CUDA
