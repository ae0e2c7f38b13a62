// Tests for the CPU elementwise kernels (unary + backward, binary, compare, where, masked_fill,
// fill_, copy_, cast) against naive double-precision loops written here, over broadcasting,
// transposed/sliced/expanded views, 0-d/empty/size-1 dims and sizes that go parallel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace {

using dan::DType;
using dan::Shape;
using dan::Tensor;
namespace raw = dan::raw;
namespace k = dan::kernels;
using k::BinaryOp;
using k::CompareOp;
using k::UnaryOp;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> random_values(int64_t n, double lo, double hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = u(rng);
  return v;
}

// Memory layouts under test for a tensor of a given logical shape.
enum class Layout { contiguous, transposed, strided };

// A tensor of logical shape s holding uniform values in [lo, hi) (rounded to dt), laid out as
// asked: `transposed` stores the dims in reverse order, `strided` takes every other element of
// the last dim of a bigger buffer, starting at offset 1.
Tensor make(const Shape& s, DType dt, Layout layout, double lo, double hi, uint32_t seed) {
  const int64_t n = dan::numel_of(s);
  if (layout == Layout::transposed && s.size() >= 2) {
    Shape rs(s.rbegin(), s.rend()), perm;
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) perm.push_back(d);
    return raw::permute(dan::from_doubles(random_values(n, lo, hi, seed), rs, dt), perm);
  }
  if (layout != Layout::contiguous && !s.empty()) {
    Shape big = s;
    big.back() = 2 * s.back() + 1;
    Tensor b = dan::from_doubles(random_values(dan::numel_of(big), lo, hi, seed), big, dt);
    return raw::slice(b, -1, 1, 2 * s.back() + 1, 2);
  }
  return dan::from_doubles(random_values(n, lo, hi, seed), s, dt);
}

// Values of t broadcast to `out` (NumPy rules), in row-major order of `out`.
std::vector<double> broadcast_values(const Tensor& t, const Shape& out) {
  const std::vector<double> v = t.to_vector();
  const int64_t n = dan::numel_of(out), nd = static_cast<int64_t>(out.size());
  const int64_t lead = nd - t.dim();
  std::vector<double> r(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, src = 0, mul = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      const int64_t id = rem % out[d];
      rem /= out[d];
      if (d >= lead) {
        const int64_t sz = t.shape()[d - lead];
        src += (sz == 1 ? 0 : id) * mul;
        mul *= sz;
      }
    }
    r[i] = v[src];
  }
  return r;
}

void expect_close(const Tensor& got, const Shape& shape, const std::vector<double>& want,
                  double rtol, double atol, const std::string& what) {
  ASSERT_EQ(got.shape(), shape) << what;
  // (Tensor::is_contiguous() is false for some empty shapes, so only ask when non-empty.)
  if (got.numel() > 0) {
    ASSERT_TRUE(got.is_contiguous()) << what;
  }
  const std::vector<double> g = got.to_vector();
  ASSERT_EQ(g.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    if (std::isnan(want[i]) && std::isnan(g[i])) continue;
    if (std::isinf(want[i]) && g[i] == want[i]) continue;
    if (!(std::fabs(g[i] - want[i]) <= atol + rtol * std::fabs(want[i]))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << want[i];
      ++bad;
    }
  }
}

double rtol_of(DType dt) { return dt == DType::f32 ? 2e-6 : 1e-13; }

const std::vector<Shape> kUnaryShapes = {{},     {0},        {1},       {7},
                                         {3, 5}, {2, 1, 37}, {4, 0, 3}, {257, 131}};
const std::vector<Layout> kLayouts = {Layout::contiguous, Layout::transposed, Layout::strided};

struct UnaryRef {
  UnaryOp op;
  double lo, hi;                     // input domain
  std::function<double(double)> f;   // forward
  std::function<double(double)> df;  // derivative
};

double phi(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }
double gelu_tanh_ref(double x) {
  const double b = std::sqrt(2 / M_PI);
  return 0.5 * x * (1 + std::tanh(b * (x + 0.044715 * x * x * x)));
}
double gelu_tanh_grad_ref(double x) {
  const double b = std::sqrt(2 / M_PI), t = std::tanh(b * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * b * (1 + 3 * 0.044715 * x * x);
}
double sigmoid_ref(double x) { return 1 / (1 + std::exp(-x)); }

const std::vector<UnaryRef>& unary_refs() {
  static const std::vector<UnaryRef> r = {
      {UnaryOp::neg, -3, 3, [](double x) { return -x; }, [](double) { return -1.0; }},
      {UnaryOp::exp, -3, 3, [](double x) { return std::exp(x); },
       [](double x) { return std::exp(x); }},
      {UnaryOp::log, 0.1, 3, [](double x) { return std::log(x); }, [](double x) { return 1 / x; }},
      {UnaryOp::sqrt, 0.1, 3, [](double x) { return std::sqrt(x); },
       [](double x) { return 0.5 / std::sqrt(x); }},
      {UnaryOp::rsqrt, 0.1, 3, [](double x) { return 1 / std::sqrt(x); },
       [](double x) { return -0.5 * std::pow(x, -1.5); }},
      {UnaryOp::abs, -3, 3, [](double x) { return std::fabs(x); },
       [](double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }},
      {UnaryOp::relu, -3, 3, [](double x) { return x > 0 ? x : 0.0; },
       [](double x) { return x > 0 ? 1.0 : 0.0; }},
      {UnaryOp::tanh, -3, 3, [](double x) { return std::tanh(x); },
       [](double x) { return 1 - std::tanh(x) * std::tanh(x); }},
      {UnaryOp::sigmoid, -6, 6, sigmoid_ref,
       [](double x) { return sigmoid_ref(x) * (1 - sigmoid_ref(x)); }},
      {UnaryOp::gelu_erf, -4, 4,
       [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); },
       [](double x) { return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * phi(x); }},
      {UnaryOp::gelu_tanh, -4, 4, gelu_tanh_ref, gelu_tanh_grad_ref},
      {UnaryOp::square, -3, 3, [](double x) { return x * x; }, [](double x) { return 2 * x; }},
      {UnaryOp::reciprocal, 0.2, 3, [](double x) { return 1 / x; },
       [](double x) { return -1 / (x * x); }},
      {UnaryOp::sin, -4, 4, [](double x) { return std::sin(x); },
       [](double x) { return std::cos(x); }},
      {UnaryOp::cos, -4, 4, [](double x) { return std::cos(x); },
       [](double x) { return -std::sin(x); }},
  };
  return r;
}

TEST(ElementwiseKernels, UnaryForwardMatchesReference) {
  uint32_t seed = 1;
  for (const UnaryRef& u : unary_refs()) {
    for (DType dt : {DType::f32, DType::f64}) {
      for (const Shape& s : kUnaryShapes) {
        for (Layout l : kLayouts) {
          const Tensor x = make(s, dt, l, u.lo, u.hi, seed++);
          std::vector<double> want = x.to_vector();
          for (double& v : want) v = u.f(v);
          expect_close(k::unary(u.op, x), s, want, rtol_of(dt), dt == DType::f32 ? 1e-6 : 1e-15,
                       std::string(k::name(u.op)) + " " + dan::shape_str(s));
        }
      }
    }
  }
}

TEST(ElementwiseKernels, UnaryBackwardMatchesReference) {
  uint32_t seed = 100;
  for (const UnaryRef& u : unary_refs()) {
    for (DType dt : {DType::f32, DType::f64}) {
      for (const Shape& s : kUnaryShapes) {
        for (Layout l : kLayouts) {
          const Tensor x = make(s, dt, l, u.lo, u.hi, seed++);
          // Grad: an independent tensor, or one value expanded over the shape (stride 0).
          const Tensor g = l == Layout::strided ? raw::expand(dan::full({}, 0.75, dt), s)
                                                : make(s, dt, Layout::contiguous, -2, 2, seed++);
          const std::vector<double> xv = x.to_vector(), gv = g.to_vector();
          std::vector<double> want(xv.size());
          for (size_t i = 0; i < xv.size(); ++i) want[i] = gv[i] * u.df(xv[i]);
          const std::string what = std::string(k::name(u.op)) + "_backward " + dan::shape_str(s);
          const double tol = dt == DType::f32 ? 1e-5 : 1e-12;
          expect_close(k::unary_backward(u.op, g, x, k::unary(u.op, x)), s, want, tol, tol,
                       what + " (with y)");
          expect_close(k::unary_backward(u.op, g, x, Tensor()), s, want, tol, tol,
                       what + " (y recomputed)");
        }
      }
    }
  }
}

TEST(ElementwiseKernels, UnarySpecialValues) {
  const Tensor x = dan::from_doubles({kNaN, 0.0, -0.0, 2.0, -2.0}, {5}, DType::f32);
  const Tensor g = dan::full({5}, 3.0, DType::f32);
  const std::vector<double> relu = k::unary(UnaryOp::relu, x).to_vector();
  EXPECT_TRUE(std::isnan(relu[0]));  // relu propagates NaN, as torch.relu
  EXPECT_EQ(relu[3], 2.0);
  EXPECT_EQ(relu[4], 0.0);
  // Gradients at 0: abs -> sign(0) = 0, relu -> 0.
  const std::vector<double> dabs = k::unary_backward(UnaryOp::abs, g, x, Tensor()).to_vector();
  EXPECT_EQ(dabs[1], 0.0);
  EXPECT_EQ(dabs[2], 0.0);
  EXPECT_EQ(dabs[3], 3.0);
  EXPECT_EQ(dabs[4], -3.0);
  const std::vector<double> drelu = k::unary_backward(UnaryOp::relu, g, x, Tensor()).to_vector();
  EXPECT_EQ(drelu[1], 0.0);
  EXPECT_EQ(drelu[3], 3.0);
  EXPECT_EQ(drelu[4], 0.0);
  // sqrt/log of negatives are NaN, reciprocal of 0 is inf.
  EXPECT_TRUE(std::isnan(k::unary(UnaryOp::sqrt, x).to_vector()[4]));
  EXPECT_TRUE(std::isnan(k::unary(UnaryOp::log, x).to_vector()[4]));
  EXPECT_EQ(k::unary(UnaryOp::reciprocal, x).to_vector()[1], INFINITY);
  EXPECT_EQ(k::unary(UnaryOp::sigmoid, dan::full({3}, -200.0, DType::f32)).to_vector()[0], 0.0);
  EXPECT_EQ(k::unary(UnaryOp::sigmoid, dan::full({3}, 200.0, DType::f32)).to_vector()[0], 1.0);
}

// f32 exp/tanh/sigmoid/gelu over their whole useful range (overflow, underflow to denormals,
// saturation, inf and NaN), against double references: at most a few ulp.
TEST(ElementwiseKernels, Float32TranscendentalsWideRange) {
  std::vector<double> xs;
  for (double x = -110; x <= 95; x += 0.0173) xs.push_back(x);
  for (double x = -1; x <= 1; x += 0.000731) xs.push_back(x);
  for (double x : {0.0, -0.0, 1e-30, -1e-30, 88.72, 88.73, -87.3, -103.9, kInf, -kInf}) {
    xs.push_back(x);
  }
  xs.push_back(kNaN);
  const int64_t n = static_cast<int64_t>(xs.size());
  const Tensor x = dan::from_doubles(xs, {n}, DType::f32);
  const std::vector<double> xv = x.to_vector();
  struct Case {
    UnaryOp op;
    std::function<double(double)> f;
    // exp: its denormal results carry absolute precision only. sigmoid: 1/(1+exp(-x)) is 0
    // once exp(-x) overflows f32 (as in PyTorch), below the normal range. gelus: 1 + erf/tanh
    // cancels for negative x, leaving an absolute error of ~|x| * f32 epsilon.
    double atol;
  };
  const std::vector<Case> cases = {
      {UnaryOp::exp, [](double v) { return std::exp(v); }, 1e-44},
      {UnaryOp::tanh, [](double v) { return std::tanh(v); }, 0},
      {UnaryOp::sigmoid, sigmoid_ref, 1.2e-38},
      {UnaryOp::gelu_tanh, gelu_tanh_ref, 1e-6},
      {UnaryOp::gelu_erf, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); },
       1e-6},
  };
  for (const Case& c : cases) {
    std::vector<double> want(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) {
      // gelu(-inf) is -inf * 0: NaN in IEEE arithmetic, as in PyTorch's formula.
      want[i] = static_cast<float>(c.f(xv[i]));  // beyond the f32 range: +-inf
      if (std::isinf(xv[i]) && xv[i] < 0 && c.op != UnaryOp::exp && c.op != UnaryOp::tanh &&
          c.op != UnaryOp::sigmoid) {
        want[i] = kNaN;
      }
    }
    // The result is rounded to f32 once more than the reference: allow 4 ulp (+ the error of
    // erf/tanh inside gelu, scaled by x, for the gelus).
    const double rtol = c.op == UnaryOp::gelu_erf || c.op == UnaryOp::gelu_tanh ? 2e-6 : 5e-7;
    expect_close(k::unary(c.op, x), {n}, want, rtol, c.atol,
                 std::string("wide range ") + k::name(c.op));
  }
}

struct BinaryRef {
  BinaryOp op;
  std::function<double(double, double)> f;
};

const std::vector<BinaryRef>& binary_refs() {
  static const std::vector<BinaryRef> r = {
      {BinaryOp::add, [](double a, double b) { return a + b; }},
      {BinaryOp::sub, [](double a, double b) { return a - b; }},
      {BinaryOp::mul, [](double a, double b) { return a * b; }},
      {BinaryOp::div, [](double a, double b) { return a / b; }},
      {BinaryOp::pow, [](double a, double b) { return std::pow(a, b); }},
      {BinaryOp::maximum, [](double a, double b) { return a > b ? a : b; }},
      {BinaryOp::minimum, [](double a, double b) { return a < b ? a : b; }},
  };
  return r;
}

// (a shape, b shape) pairs: equal, trailing broadcast, both sides broadcast, 0-d, empty,
// rank mismatch, and one big enough for the parallel path with a broadcast row.
const std::vector<std::pair<Shape, Shape>> kBinaryShapes = {
    {{3, 4}, {3, 4}},    {{3, 4}, {4}},       {{3, 1}, {1, 4}},
    {{}, {5}},           {{5}, {}},           {{}, {}},
    {{2, 1, 5}, {3, 1}}, {{0, 3}, {1, 3}},    {{2, 3, 4, 5}, {3, 1, 5}},
    {{1, 1}, {1}},       {{300, 121}, {121}}, {{131, 263}, {131, 263}},
    {{40000}, {1}},
};

TEST(ElementwiseKernels, BinaryBroadcastMatchesReference) {
  uint32_t seed = 1000;
  for (const BinaryRef& b : binary_refs()) {
    for (DType dt : {DType::f32, DType::f64}) {
      for (const auto& [sa, sb] : kBinaryShapes) {
        for (Layout la : kLayouts) {
          const Layout lb = la == Layout::transposed ? Layout::strided : Layout::transposed;
          // pow: positive bases; div: divisors away from 0.
          const double lo = b.op == BinaryOp::pow ? 0.5 : -2, hi = 2;
          const Tensor x = make(sa, dt, la, lo, hi, seed++);
          Tensor y = make(sb, dt, lb, b.op == BinaryOp::div ? 0.5 : -2, 2, seed++);
          const Shape out = k::broadcast_shapes(sa, sb, "test");
          const std::vector<double> xv = broadcast_values(x, out), yv = broadcast_values(y, out);
          std::vector<double> want(xv.size());
          for (size_t i = 0; i < want.size(); ++i) want[i] = b.f(xv[i], yv[i]);
          expect_close(
              k::binary(b.op, x, y), out, want, rtol_of(dt), 0,
              std::string(k::name(b.op)) + " " + dan::shape_str(sa) + " " + dan::shape_str(sb));
        }
      }
    }
  }
}

TEST(ElementwiseKernels, MaximumMinimumPropagateNaN) {
  const Tensor a = dan::from_doubles({kNaN, 1.0, 2.0, kNaN}, {4}, DType::f32);
  const Tensor b = dan::from_doubles({1.0, kNaN, 3.0, kNaN}, {4}, DType::f32);
  for (BinaryOp op : {BinaryOp::maximum, BinaryOp::minimum}) {
    const std::vector<double> r = k::binary(op, a, b).to_vector();
    EXPECT_TRUE(std::isnan(r[0]) && std::isnan(r[1]) && std::isnan(r[3])) << k::name(op);
    EXPECT_EQ(r[2], op == BinaryOp::maximum ? 3.0 : 2.0);
  }
}

TEST(ElementwiseKernels, BinaryScalarMatchesReference) {
  uint32_t seed = 2000;
  const std::vector<double> scalars = {2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 1.7, -0.3};
  for (const BinaryRef& b : binary_refs()) {
    for (DType dt : {DType::f32, DType::f64}) {
      for (const Shape& s : std::vector<Shape>{{}, {7}, {3, 0}, {5, 9}, {190, 177}}) {
        for (bool first : {false, true}) {
          for (double c : scalars) {
            const bool pow_base = b.op == BinaryOp::pow && !first;
            const double lo = (pow_base || b.op == BinaryOp::div) ? 0.5 : -2;
            const Tensor x = make(s, dt, Layout::transposed, lo, 2, seed++);
            const double cs = dt == DType::f32 ? static_cast<double>(static_cast<float>(c)) : c;
            std::vector<double> want = x.to_vector();
            for (double& v : want) v = first ? b.f(cs, v) : b.f(v, cs);
            expect_close(k::binary_scalar(b.op, x, c, first), s, want, 4 * rtol_of(dt), 0,
                         std::string(k::name(b.op)) + " scalar " + std::to_string(c) +
                             (first ? " first" : ""));
          }
        }
      }
    }
  }
}

double compare_ref(CompareOp op, double a, double b) {
  switch (op) {
    case CompareOp::eq:
      return a == b;
    case CompareOp::ne:
      return a != b;
    case CompareOp::lt:
      return a < b;
    case CompareOp::le:
      return a <= b;
    case CompareOp::gt:
      return a > b;
    case CompareOp::ge:
      return a >= b;
  }
  return -1;
}

const std::vector<CompareOp> kCompareOps = {CompareOp::eq, CompareOp::ne, CompareOp::lt,
                                            CompareOp::le, CompareOp::gt, CompareOp::ge};
const std::vector<DType> kAllDtypes = {DType::f32, DType::f64, DType::i32, DType::i64, DType::b8};

// Small integer values so that equal pairs occur often (bool: 0/1).
Tensor make_small_ints(const Shape& s, DType dt, Layout l, uint32_t seed) {
  Tensor t = make(s, DType::f64, l, 0, dt == DType::b8 ? 2 : 4, seed);
  std::vector<double> v = t.to_vector();
  for (double& x : v) x = std::floor(x) - (dt == DType::b8 ? 0 : 1);
  Tensor c = dan::from_doubles(v, s, dt);
  if (l == Layout::contiguous || s.empty()) return c;
  Tensor out = make(s, dt, l, 0, 1, seed);  // same layout, then overwrite the values
  k::copy_(out, c);
  return out;
}

TEST(ElementwiseKernels, CompareAllDtypesBroadcast) {
  uint32_t seed = 3000;
  for (CompareOp op : kCompareOps) {
    for (DType dt : kAllDtypes) {
      for (const auto& [sa, sb] : kBinaryShapes) {
        const Tensor a = make_small_ints(sa, dt, Layout::transposed, seed++);
        const Tensor b = make_small_ints(sb, dt, Layout::strided, seed++);
        const Shape out = k::broadcast_shapes(sa, sb, "test");
        const std::vector<double> av = broadcast_values(a, out), bv = broadcast_values(b, out);
        std::vector<double> want(av.size());
        for (size_t i = 0; i < want.size(); ++i) want[i] = compare_ref(op, av[i], bv[i]);
        const Tensor r = k::compare(op, a, b);
        EXPECT_EQ(r.dtype(), DType::b8);
        expect_close(r, out, want, 0, 0, std::string(k::name(op)) + " " + dan::shape_str(sa));
      }
    }
  }
}

TEST(ElementwiseKernels, CompareScalar) {
  uint32_t seed = 4000;
  for (CompareOp op : kCompareOps) {
    for (DType dt : kAllDtypes) {
      for (double c : {0.0, 1.0, -1.0, 0.5}) {
        const Tensor a = make_small_ints({37, 29}, dt, Layout::transposed, seed++);
        std::vector<double> want = a.to_vector();
        for (double& v : want) v = compare_ref(op, v, c);
        expect_close(k::compare_scalar(op, a, c), {37, 29}, want, 0, 0,
                     std::string(k::name(op)) + " scalar");
      }
    }
  }
  // The scalar takes a float tensor's dtype: f32(0.1) == 0.1 holds, as in PyTorch.
  const Tensor f = dan::full({2}, 0.1, DType::f32);
  EXPECT_EQ(k::compare_scalar(CompareOp::eq, f, 0.1).to_vector()[0], 1.0);
  // i64 compares exactly beyond 2^53.
  const Tensor big = dan::from_vector<int64_t>({(int64_t{1} << 53) + 1}, {1});
  EXPECT_EQ(k::compare_scalar(CompareOp::gt, big, 9007199254740992.0).to_vector()[0], 1.0);
  EXPECT_EQ(k::compare_scalar(CompareOp::eq, big, 9007199254740992.0).to_vector()[0], 0.0);
  // Integers against a fractional scalar.
  const Tensor i = dan::from_vector<int32_t>({1, 2}, {2});
  EXPECT_EQ(k::compare_scalar(CompareOp::lt, i, 1.5).to_vector(), (std::vector<double>{1, 0}));
}

TEST(ElementwiseKernels, WhereAndMaskedFill) {
  uint32_t seed = 5000;
  const std::vector<std::tuple<Shape, Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}, {3, 4}},    {{3, 1}, {1, 4}, {4}}, {{}, {2, 3}, {}},
      {{5, 1, 7}, {6, 1}, {1, 7}}, {{0, 2}, {2}, {1}},    {{211, 163}, {163}, {211, 1}}};
  for (DType dt : kAllDtypes) {
    for (const auto& [sc, sa, sb] : shapes) {
      const Tensor c = make_small_ints(sc, DType::b8, Layout::transposed, seed++);
      const Tensor a = make_small_ints(sa, dt, Layout::strided, seed++);
      const Tensor b = make_small_ints(sb, dt, Layout::contiguous, seed++);
      const Shape out = k::broadcast_shapes(sc, k::broadcast_shapes(sa, sb, "t"), "t");
      const std::vector<double> cv = broadcast_values(c, out), av = broadcast_values(a, out),
                                bv = broadcast_values(b, out);
      std::vector<double> want(cv.size());
      for (size_t i = 0; i < want.size(); ++i) want[i] = cv[i] != 0 ? av[i] : bv[i];
      const Tensor r = k::where(c, a, b);
      EXPECT_EQ(r.dtype(), dt);
      expect_close(r, out, want, 0, 0, "where " + dan::shape_str(sc));

      // masked_fill: the mask broadcasts to the input's shape.
      const Tensor x = make_small_ints(out, dt, Layout::transposed, seed++);
      const std::vector<double> xv = x.to_vector();
      const Tensor m = make_small_ints(sb, DType::b8, Layout::strided, seed++);
      const std::vector<double> mv = broadcast_values(m, out);
      const double fill = dt == DType::b8 ? 1.0 : -7.0;
      for (size_t i = 0; i < want.size(); ++i) want[i] = mv[i] != 0 ? fill : xv[i];
      expect_close(k::masked_fill(x, m, fill), out, want, 0, 0,
                   "masked_fill " + dan::shape_str(out));
    }
  }
}

TEST(ElementwiseKernels, FillInPlaceOnViews) {
  for (DType dt : kAllDtypes) {
    // A step-2 slice of the transposed base: only the selected elements change.
    const Tensor base = dan::zeros({6, 301}, dt);
    const Tensor view = raw::slice(raw::transpose(base, 0, 1), 0, 1, 301, 2);  // [150, 6]
    k::fill_(view, 1.0);
    const std::vector<double> v = base.to_vector();
    for (int64_t i = 0; i < 6; ++i) {
      for (int64_t j = 0; j < 301; ++j) {
        ASSERT_EQ(v[i * 301 + j], j % 2 == 1 ? 1.0 : 0.0) << dan::dtype_name(dt);
      }
    }
    // An expanded (stride-0) view writes its one underlying row.
    const Tensor row = dan::zeros({1, 5}, dt);
    k::fill_(raw::expand(row, {4, 5}), 1.0);
    EXPECT_EQ(row.to_vector(), std::vector<double>(5, 1.0));
  }
  // Large enough to go parallel.
  const Tensor big = dan::zeros({70001}, DType::f32);
  k::fill_(big, 2.5);
  for (double x : big.to_vector()) ASSERT_EQ(x, 2.5);
}

TEST(ElementwiseKernels, CopyStridedAndBroadcastSources) {
  uint32_t seed = 6000;
  for (DType dt : kAllDtypes) {
    for (const Shape& s : std::vector<Shape>{{}, {0, 4}, {7}, {3, 5}, {4, 3, 5}, {203, 179}}) {
      for (Layout ld : kLayouts) {
        for (Layout ls : kLayouts) {
          const Tensor dst = make_small_ints(s, dt, ld, seed++);
          const Tensor src = make_small_ints(s, dt, ls, seed++);
          const std::vector<double> want = src.to_vector();
          k::copy_(dst, src);
          expect_close(raw::contiguous_copy(dst, dan::Device::cpu()), s, want, 0, 0,
                       "copy_ " + dan::shape_str(s));
        }
      }
      // Broadcast source: one row expanded over the destination.
      if (s.size() >= 2) {
        const Tensor dst = make_small_ints(s, dt, Layout::transposed, seed++);
        const Tensor row = make_small_ints({s.back()}, dt, Layout::strided, seed++);
        k::copy_(dst, raw::expand(row, s));
        expect_close(raw::contiguous_copy(dst, dan::Device::cpu()), s, broadcast_values(row, s), 0,
                     0, "copy_ expanded " + dan::shape_str(s));
      }
    }
  }
  // Padding around a strided destination stays untouched.
  const Tensor base = dan::full({4, 9}, -1.0, DType::f64);
  k::copy_(raw::slice(base, 1, 1, 9, 2), dan::ones({4, 4}, DType::f64));
  const std::vector<double> v = base.to_vector();
  for (int64_t j = 0; j < 9; ++j) EXPECT_EQ(v[j], j % 2 == 1 ? 1.0 : -1.0);
}

TEST(ElementwiseKernels, CastAllPairs) {
  const std::vector<double> vals = {0.0, 1.0, -2.7, 2.7, 100.0, -0.5, 3.0, 0.25};
  for (DType from : kAllDtypes) {
    for (DType to : kAllDtypes) {
      // Values as stored in `from`: integers truncate toward zero, bool is x != 0.
      std::vector<double> src(vals);
      for (double& v : src) {
        if (dan::is_integral(from)) v = std::trunc(v);
        if (from == DType::b8) v = v != 0;
      }
      const Tensor x = raw::transpose(dan::from_doubles(src, {2, 4}, from), 0, 1);  // [4, 2]
      std::vector<double> want = x.to_vector();
      for (double& v : want) {
        if (dan::is_integral(to)) v = std::trunc(v);
        if (to == DType::f32) v = static_cast<float>(v);
        if (to == DType::b8) v = v != 0;
      }
      const Tensor r = k::cast(x, to);
      EXPECT_EQ(r.dtype(), to);
      expect_close(r, {4, 2}, want, 0, 0,
                   std::string("cast ") + std::string(dan::dtype_name(from)) + "->" +
                       std::string(dan::dtype_name(to)));
    }
  }
  // f64 -> f32 rounds to nearest; a large parallel cast.
  const Tensor big = make({300, 200}, DType::f64, Layout::transposed, -1, 1, 7);
  std::vector<double> want = big.to_vector();
  for (double& v : want) v = static_cast<float>(v);
  expect_close(k::cast(big, DType::f32), {300, 200}, want, 0, 0, "cast big");
}

TEST(ElementwiseKernels, ErrorsNameOpAndShapes) {
  const Tensor a = dan::zeros({2, 3}), b = dan::zeros({4});
  try {
    k::binary(BinaryOp::add, a, b);
    FAIL() << "expected dan::Error";
  } catch (const dan::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("add"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4]"), std::string::npos) << m;
  }
  try {
    k::unary(UnaryOp::exp, dan::zeros({2}, DType::i32));
    FAIL() << "expected dan::Error";
  } catch (const dan::Error& e) {
    EXPECT_NE(std::string(e.what()).find("exp"), std::string::npos) << e.what();
  }
  EXPECT_THROW(k::compare(CompareOp::lt, a, dan::zeros({2, 3}, DType::f64)), dan::Error);
  EXPECT_THROW(k::where(dan::zeros({2, 3}), a, a), dan::Error);  // cond must be bool
  EXPECT_THROW(k::masked_fill(a, dan::zeros({3, 3}, DType::b8), 1.0), dan::Error);
  EXPECT_THROW(k::copy_(a, dan::zeros({3, 2})), dan::Error);
}

}  // namespace
