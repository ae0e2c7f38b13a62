// Tests for the CPU reductions (sum/mean/max/min, argmax, var, sum_to) against naive
// double-precision loops written here: every subset of dims, keepdim, strided/expanded inputs,
// empty and 0-d tensors, the row/column/general paths at parallel sizes, and bitwise
// reproducibility of the parallel sums across runs and thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/threads.h"
#include "kernels/kernels.h"

namespace {

using dan::DType;
using dan::Shape;
using dan::Tensor;
namespace raw = dan::raw;
namespace k = dan::kernels;
using k::ReduceOp;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor random_tensor(const Shape& s, DType dt, uint32_t seed, double lo = -1, double hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(dan::numel_of(s)));
  for (double& x : v) x = u(rng);
  return dan::from_doubles(v, s, dt);
}

enum class Layout { contiguous, transposed, strided, expanded };

// A tensor of logical shape s in the given memory layout: dims stored in reverse order,
// every other element of a wider buffer (offset 1), or dim 0 broadcast from size 1.
Tensor make(const Shape& s, DType dt, Layout l, uint32_t seed) {
  if (l == Layout::transposed && s.size() >= 2) {
    Shape rs(s.rbegin(), s.rend()), perm;
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) perm.push_back(d);
    return raw::permute(random_tensor(rs, dt, seed), perm);
  }
  if (l == Layout::expanded && !s.empty()) {
    Shape one = s;
    one[0] = 1;
    return raw::expand(random_tensor(one, dt, seed), s);
  }
  if (l != Layout::contiguous && !s.empty()) {
    Shape big = s;
    big.back() = 2 * s.back() + 1;
    return raw::slice(random_tensor(big, dt, seed), -1, 1, 2 * s.back() + 1, 2);
  }
  return random_tensor(s, dt, seed);
}

// Reference: groups the row-major elements of x by output index over `red` (a mask of
// reduced dims) and applies `fold` to each group's values.
struct Groups {
  Shape out_shape;
  std::vector<std::vector<double>> vals;
};

Groups group(const Tensor& x, const std::vector<bool>& red, bool keepdim) {
  const std::vector<double> v = x.to_vector();
  const int64_t nd = x.dim();
  Groups g;
  Shape kept;
  for (int64_t d = 0; d < nd; ++d) {
    if (!red[d]) kept.push_back(x.shape()[d]);
    if (!red[d] || keepdim) g.out_shape.push_back(red[d] ? 1 : x.shape()[d]);
  }
  g.vals.resize(static_cast<size_t>(dan::numel_of(kept)));
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t rem = i, o = 0, mul = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      const int64_t id = rem % x.shape()[d];
      rem /= x.shape()[d];
      if (!red[d]) {
        o += id * mul;
        mul *= x.shape()[d];
      }
    }
    g.vals[o].push_back(v[i]);
  }
  return g;
}

double ref_reduce(ReduceOp op, const std::vector<double>& v) {
  long double s = 0;
  double mx = -INFINITY, mn = INFINITY;
  bool nan = false;
  for (double x : v) {
    s += x;
    nan = nan || std::isnan(x);
    mx = std::max(mx, x);
    mn = std::min(mn, x);
  }
  switch (op) {
    case ReduceOp::sum:
      return static_cast<double>(s);
    case ReduceOp::mean:
      return v.empty() ? kNaN : static_cast<double>(s / v.size());
    case ReduceOp::max:
      return nan ? kNaN : mx;
    case ReduceOp::min:
      return nan ? kNaN : mn;
  }
  return 0;
}

double ref_var(const std::vector<double>& v, int64_t correction) {
  long double s = 0;
  for (double x : v) s += x;
  const long double mean = s / v.size();
  long double m2 = 0;
  for (double x : v) m2 += (x - mean) * (x - mean);
  return static_cast<double>(m2 /
                             std::max<int64_t>(0, static_cast<int64_t>(v.size()) - correction));
}

void expect_values(const Tensor& got, const Shape& shape, const std::vector<double>& want,
                   double rtol, const std::string& what) {
  ASSERT_EQ(got.shape(), shape) << what;
  const std::vector<double> g = got.to_vector();
  ASSERT_EQ(g.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    if (std::isnan(want[i]) && std::isnan(g[i])) continue;
    if (std::isinf(want[i]) && g[i] == want[i]) continue;
    if (!(std::fabs(g[i] - want[i]) <= rtol * (1 + std::fabs(want[i])))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << want[i];
      ++bad;
    }
  }
}

std::vector<int64_t> dims_of(const std::vector<bool>& mask) {
  std::vector<int64_t> d;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i]) d.push_back(static_cast<int64_t>(i));
  }
  return d;
}

std::string label(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool kd) {
  std::string s = std::string(op) + " " + dan::shape_str(x.shape()) + " dims [";
  for (int64_t d : dims) s += std::to_string(d) + " ";
  return s + "]" + (kd ? " keepdim" : "");
}

const std::vector<ReduceOp> kOps = {ReduceOp::sum, ReduceOp::mean, ReduceOp::max, ReduceOp::min};

// Checks reduce/var over every subset of dims (the empty subset is passed as {} = all).
void check_all_subsets(const Tensor& x, double rtol) {
  const int64_t nd = x.dim();
  for (int64_t bits = 0; bits < (int64_t{1} << nd); ++bits) {
    std::vector<bool> mask(nd);
    for (int64_t d = 0; d < nd; ++d) mask[d] = (bits >> d) & 1;
    const std::vector<int64_t> dims = dims_of(mask);
    const std::vector<bool> eff = dims.empty() ? std::vector<bool>(nd, true) : mask;
    for (bool kd : {false, true}) {
      const Groups g = group(x, eff, kd);
      for (ReduceOp op : kOps) {
        if ((op == ReduceOp::max || op == ReduceOp::min) && x.numel() == 0) continue;
        std::vector<double> want;
        for (const auto& v : g.vals) want.push_back(ref_reduce(op, v));
        expect_values(k::reduce(op, x, dims, kd), g.out_shape, want, rtol,
                      label(k::name(op), x, dims, kd));
      }
      for (int64_t corr : {0, 1}) {
        std::vector<double> want;
        for (const auto& v : g.vals) want.push_back(ref_var(v, corr));
        expect_values(k::var(x, dims, corr, kd), g.out_shape, want, rtol * 10,
                      label("var", x, dims, kd) + " correction " + std::to_string(corr));
      }
    }
  }
}

TEST(ReduceKernels, AllDimSubsetsSmallShapes) {
  uint32_t seed = 1;
  const std::vector<Shape> shapes = {{},     {1},    {5},       {0},       {3, 4},
                                     {0, 3}, {1, 7}, {2, 3, 4}, {3, 1, 5}, {2, 3, 2, 5}};
  for (DType dt : {DType::f32, DType::f64}) {
    const double rtol = dt == DType::f32 ? 1e-6 : 1e-13;
    for (const Shape& s : shapes) {
      for (Layout l : {Layout::contiguous, Layout::transposed, Layout::strided, Layout::expanded}) {
        check_all_subsets(make(s, dt, l, seed++), rtol);
      }
    }
  }
}

TEST(ReduceKernels, ParallelPathsRowsColumnsGeneral) {
  uint32_t seed = 100;
  // Rows (last dim), columns (leading dim, e.g. bias grads), long single rows split into
  // chunks, few wide columns, and a permuted 3-D input for the general path.
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{1000, 70}, {1}},   {{1000, 70}, {0}},    {{1000, 70}, {}},      {{3, 40000}, {1}},
      {{3, 40000}, {0}},   {{100000, 3}, {0}},   {{70001}, {0}},        {{40, 50, 30}, {0, 2}},
      {{40, 50, 30}, {1}}, {{2, 20000, 2}, {1}}, {{300, 7, 20}, {0, 1}}};
  for (DType dt : {DType::f32, DType::f64}) {
    const double rtol = dt == DType::f32 ? 1e-6 : 1e-12;
    for (const auto& [s, dims] : cases) {
      for (Layout l : {Layout::contiguous, Layout::transposed, Layout::strided}) {
        const Tensor x = make(s, dt, l, seed++);
        std::vector<bool> mask(x.dim(), dims.empty());
        for (int64_t d : dims) mask[d] = true;
        const Groups g = group(x, mask, false);
        for (ReduceOp op : kOps) {
          std::vector<double> want;
          for (const auto& v : g.vals) want.push_back(ref_reduce(op, v));
          expect_values(k::reduce(op, x, dims, false), g.out_shape, want, rtol,
                        label(k::name(op), x, dims, false));
        }
        std::vector<double> want;
        for (const auto& v : g.vals) want.push_back(ref_var(v, 1));
        expect_values(k::var(x, dims, 1, false), g.out_shape, want, rtol * 10,
                      label("var", x, dims, false));
      }
    }
  }
}

TEST(ReduceKernels, SumAccumulatesInDouble) {
  // 100003 copies of f32(0.1): a float accumulator drifts by many ulps; a double one gives
  // the correctly rounded float of the exact sum.
  const int64_t n = 100003;
  const Tensor x = dan::full({n}, 0.1, DType::f32);
  const double exact = static_cast<double>(n) * static_cast<double>(0.1f);
  EXPECT_EQ(k::reduce(ReduceOp::sum, x, {}, false).item(), static_cast<float>(exact));
  EXPECT_EQ(k::reduce(ReduceOp::mean, x, {}, false).item(),
            static_cast<float>(exact / static_cast<double>(n)));
  // Column sums too.
  const Tensor c = dan::full({n, 2}, 0.1, DType::f32);
  const std::vector<double> cs = k::reduce(ReduceOp::sum, c, {0}, false).to_vector();
  EXPECT_EQ(cs[0], static_cast<float>(exact));
  EXPECT_EQ(cs[1], static_cast<float>(exact));
}

TEST(ReduceKernels, EmptyAndNaNSemantics) {
  const Tensor e = dan::zeros({0, 3});
  EXPECT_EQ(k::reduce(ReduceOp::sum, e, {}, false).item(), 0.0);
  EXPECT_TRUE(std::isnan(k::reduce(ReduceOp::mean, e, {}, false).item()));
  const Tensor m0 = k::reduce(ReduceOp::mean, e, {0}, false);
  EXPECT_EQ(m0.shape(), (Shape{3}));
  for (double v : m0.to_vector()) EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(k::reduce(ReduceOp::sum, e, {1}, true).shape(), (Shape{0, 1}));
  EXPECT_TRUE(std::isnan(k::var(dan::ones({1}), {}, 1, false).item()));  // 0/0
  // max/min propagate NaN along rows and columns; other outputs are unaffected.
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor x = dan::from_doubles({1, kNaN, 3, 4, 5, 6, -1, 8, kNaN, 2, 2, 2}, {3, 4}, dt);
    for (ReduceOp op : {ReduceOp::max, ReduceOp::min}) {
      const std::vector<double> r = k::reduce(op, x, {1}, false).to_vector();
      EXPECT_TRUE(std::isnan(r[0]) && std::isnan(r[2]));
      EXPECT_EQ(r[1], op == ReduceOp::max ? 8.0 : -1.0);
      const std::vector<double> c = k::reduce(op, x, {0}, false).to_vector();
      EXPECT_TRUE(std::isnan(c[0]) && std::isnan(c[1]));
      EXPECT_EQ(c[2], op == ReduceOp::max ? 3.0 : -1.0);
    }
  }
  // -inf and +inf are ordinary values for max/min.
  const Tensor inf = dan::from_doubles({-INFINITY, -INFINITY}, {2}, DType::f32);
  EXPECT_EQ(k::reduce(ReduceOp::max, inf, {}, false).item(), -INFINITY);
}

TEST(ReduceKernels, ArgmaxFirstMaxWins) {
  uint32_t seed = 200;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Shape& s :
         std::vector<Shape>{{}, {1}, {9}, {4, 6}, {3, 1, 5}, {2, 3, 4}, {500, 80}, {3, 20000}}) {
      for (Layout l : {Layout::contiguous, Layout::transposed, Layout::strided}) {
        // Values from a few levels so that ties are common, written into x's own layout.
        const Tensor xin = make(s, dt, l, seed++);
        std::vector<double> q = xin.to_vector();
        for (double& v : q) v = std::floor(3 * v);
        k::copy_(xin, dan::from_doubles(q, s, dt));
        for (int64_t d = -std::max<int64_t>(xin.dim(), 1); d < std::max<int64_t>(xin.dim(), 1);
             ++d) {
          for (bool kd : {false, true}) {
            const int64_t dd = xin.dim() == 0 ? -1 : (d < 0 ? d + xin.dim() : d);
            std::vector<bool> mask(xin.dim(), false);
            if (dd >= 0) mask[dd] = true;
            const Groups g = group(xin, mask, kd);
            std::vector<double> want;
            for (const auto& v : g.vals) {
              size_t best = 0;
              for (size_t i = 1; i < v.size(); ++i) {
                if (v[i] > v[best]) best = i;
              }
              want.push_back(static_cast<double>(best));
            }
            const Tensor r = k::argmax(xin, d, kd);
            EXPECT_EQ(r.dtype(), DType::i64);
            expect_values(r, g.out_shape, want, 0, label("argmax", xin, {d}, kd));
          }
        }
      }
    }
  }
  // NaN counts as the maximum; the first NaN wins.
  const Tensor n = dan::from_doubles({1, kNaN, 5, kNaN, 2, 7}, {2, 3}, DType::f32);
  EXPECT_EQ(k::argmax(n, 1, false).to_vector(), (std::vector<double>{1, 0}));
  EXPECT_EQ(k::argmax(n, 0, false).to_vector(), (std::vector<double>{1, 0, 1}));
}

TEST(ReduceKernels, SumToBroadcastShapes) {
  uint32_t seed = 300;
  const Shape gs = {4, 3, 5};
  const std::vector<Shape> targets = {{3, 1},    {1, 5}, {5}, {},        {4, 1, 1},
                                      {1, 1, 5}, {3, 5}, {1}, {4, 3, 1}, {1, 3, 5}};
  for (DType dt : {DType::f32, DType::f64}) {
    for (Layout l : {Layout::contiguous, Layout::transposed, Layout::expanded}) {
      const Tensor g = make(gs, dt, l, seed++);
      const std::vector<double> gv = g.to_vector();
      for (const Shape& t : targets) {
        std::vector<double> want(static_cast<size_t>(dan::numel_of(t)), 0.0);
        const int64_t lead = 3 - static_cast<int64_t>(t.size());
        for (int64_t i = 0; i < 60; ++i) {
          const int64_t id[3] = {i / 15, (i / 5) % 3, i % 5};
          int64_t o = 0;
          for (int64_t d = lead; d < 3; ++d) o = o * t[d - lead] + (t[d - lead] == 1 ? 0 : id[d]);
          want[o] += gv[i];
        }
        expect_values(k::sum_to(g, t), t, want, dt == DType::f32 ? 1e-6 : 1e-13,
                      "sum_to " + dan::shape_str(t));
      }
    }
  }
  // A bias gradient at a parallel size: [N, C] -> [C].
  const Tensor big = make({20000, 9}, DType::f32, Layout::contiguous, seed++);
  const Groups gr = group(big, {true, false}, false);
  std::vector<double> want;
  for (const auto& v : gr.vals) want.push_back(ref_reduce(ReduceOp::sum, v));
  expect_values(k::sum_to(big, {9}), {9}, want, 1e-6, "sum_to bias");
}

// Bits of a tensor, for reproducibility checks.
std::vector<unsigned char> bits(const Tensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  return std::vector<unsigned char>(p, p + t.nbytes());
}

TEST(ReduceKernels, ParallelSumsAreBitwiseReproducible) {
  const int saved = dan::num_threads();
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{3000000}, {}}, {{200000, 3}, {0}}, {{3, 200000}, {1}}, {{700, 900}, {}}, {{900, 700}, {0}}};
  uint32_t seed = 400;
  for (const auto& [s, dims] : cases) {
    // Values of mixed magnitude so that the summation order shows in the low bits.
    const Tensor base = random_tensor(s, DType::f32, seed++, -1e4, 1e4);
    const Tensor x = k::binary(k::BinaryOp::mul, base, random_tensor(s, DType::f32, seed++));
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::mean}) {
      dan::set_num_threads(2);
      const auto a = bits(k::reduce(op, x, dims, false));
      const auto b = bits(k::reduce(op, x, dims, false));
      dan::set_num_threads(1);
      const auto c = bits(k::reduce(op, x, dims, false));
      EXPECT_EQ(a, b) << k::name(op) << " " << dan::shape_str(s) << ": run to run";
      EXPECT_EQ(a, c) << k::name(op) << " " << dan::shape_str(s) << ": 2 threads vs 1";
    }
    dan::set_num_threads(2);
    const auto va = bits(k::var(x, dims, 1, false));
    dan::set_num_threads(1);
    EXPECT_EQ(va, bits(k::var(x, dims, 1, false))) << "var " << dan::shape_str(s);
  }
  dan::set_num_threads(saved);
}

TEST(ReduceKernels, ErrorsNameOp) {
  try {
    k::reduce(ReduceOp::sum, dan::zeros({2, 3}, DType::i32), {}, false);
    FAIL() << "expected dan::Error";
  } catch (const dan::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sum"), std::string::npos) << e.what();
  }
  EXPECT_THROW(k::reduce(ReduceOp::sum, dan::zeros({2, 3}), {1, -1}, false), dan::Error);
  EXPECT_THROW(k::reduce(ReduceOp::mean, dan::zeros({2, 3}), {2}, false), dan::Error);
  EXPECT_THROW(k::reduce(ReduceOp::max, dan::zeros({0, 3}), {}, false), dan::Error);
  EXPECT_THROW(k::argmax(dan::zeros({0}), 0, false), dan::Error);
  EXPECT_THROW(k::var(dan::zeros({3}), {}, -1, false), dan::Error);
  EXPECT_THROW(k::sum_to(dan::zeros({2, 3}), {2}), dan::Error);
}

}  // namespace
