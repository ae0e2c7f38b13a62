// Tests for the CPU matmul / linear kernels against a naive double-precision reference, over
// contiguous, transposed, sliced, expanded and batched (broadcast) operands.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
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

Tensor random_tensor(const Shape& s, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(static_cast<size_t>(dan::numel_of(s)));
  for (double& x : v) x = u(rng);
  return dan::from_doubles(v, s, dt);
}

// Reference: out[b][i][j] = sum_p a[b][i][p] * b[b][p][j] in double, from the logical values
// of the (possibly strided) views; `absref` gets sum_p |a||b| for the error bound.
struct Ref {
  std::vector<double> val, absref;
};

Ref naive_bmm(const Tensor& a, const Tensor& b) {
  const bool batched = a.dim() == 3;
  const int64_t ba = batched ? a.size(0) : 1, bb = batched ? b.size(0) : 1;
  const int64_t nb = ba == 1 ? bb : ba;
  const int64_t m = a.size(-2), kk = a.size(-1), n = b.size(-1);
  const std::vector<double> av = a.to_vector(), bv = b.to_vector();
  Ref r;
  r.val.assign(static_cast<size_t>(nb * m * n), 0.0);
  r.absref.assign(r.val.size(), 0.0);
  for (int64_t q = 0; q < nb; ++q) {
    const int64_t qa = ba == 1 ? 0 : q, qb = bb == 1 ? 0 : q;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0, sa = 0;
        for (int64_t p = 0; p < kk; ++p) {
          const double x = av[(qa * m + i) * kk + p], y = bv[(qb * kk + p) * n + j];
          s += x * y;
          sa += std::fabs(x * y);
        }
        r.val[(q * m + i) * n + j] = s;
        r.absref[(q * m + i) * n + j] = sa;
      }
    }
  }
  return r;
}

double rel_tol(DType dt) { return dt == DType::f32 ? 2e-6 : 1e-14; }

void expect_matches(const Tensor& got, const Shape& shape, const Ref& ref, DType dt,
                    const std::string& what) {
  ASSERT_EQ(got.shape(), shape) << what;
  ASSERT_EQ(got.dtype(), dt) << what;
  // (core reports some empty tensors as non-contiguous, so only non-empty ones are checked)
  if (got.numel() > 0) {
    ASSERT_TRUE(got.is_contiguous()) << what;
  }
  const std::vector<double> g = got.to_vector();
  ASSERT_EQ(g.size(), ref.val.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    const double tol = rel_tol(dt) * (ref.absref[i] + 1e-30) * 8;
    if (!(std::fabs(g[i] - ref.val[i]) <= tol)) {
      ADD_FAILURE() << what << ": element " << i << " got " << g[i] << " want " << ref.val[i];
      ++bad;
    }
  }
}

void check_matmul(const Tensor& a, const Tensor& b, const std::string& what) {
  const Tensor c = k::matmul(a, b);
  Shape shape = {a.size(-2), b.size(-1)};
  if (a.dim() == 3) shape.insert(shape.begin(), a.size(0) == 1 ? b.size(0) : a.size(0));
  expect_matches(c, shape, naive_bmm(a, b), a.dtype(), what);
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

class CpuMatmulKernel : public ::testing::TestWithParam<DType> {};

TEST_P(CpuMatmulKernel, ContiguousShapes) {
  const DType dt = GetParam();
  const int64_t shapes[][3] = {{1, 1, 1},   {37, 53, 29},  {2, 3, 4}, {1, 17, 1},
                               {17, 1, 17}, {64, 128, 96}, {5, 1, 7}, {1, 300, 257}};
  uint32_t seed = 1;
  for (const auto& s : shapes) {
    const Tensor a = random_tensor({s[0], s[1]}, dt, seed++);
    const Tensor b = random_tensor({s[1], s[2]}, dt, seed++);
    check_matmul(a, b, fmt::format("{}x{}x{}", s[0], s[1], s[2]));
  }
}

TEST_P(CpuMatmulKernel, EmptyDims) {
  const DType dt = GetParam();
  // m = 0 and n = 0 give empty results; k = 0 gives zeros.
  check_matmul(random_tensor({0, 5}, dt, 1), random_tensor({5, 3}, dt, 2), "m=0");
  check_matmul(random_tensor({4, 5}, dt, 1), random_tensor({5, 0}, dt, 2), "n=0");
  const Tensor z = k::matmul(random_tensor({4, 0}, dt, 1), random_tensor({0, 3}, dt, 2));
  ASSERT_EQ(z.shape(), (Shape{4, 3}));
  for (double v : z.to_vector()) EXPECT_EQ(v, 0.0);
  check_matmul(random_tensor({0, 4, 5}, dt, 1), random_tensor({1, 5, 3}, dt, 2), "batch 0 x 1");
  check_matmul(random_tensor({1, 4, 5}, dt, 1), random_tensor({0, 5, 3}, dt, 2), "batch 1 x 0");
  const Tensor zb = k::matmul(random_tensor({3, 2, 0}, dt, 1), random_tensor({3, 0, 4}, dt, 2));
  ASSERT_EQ(zb.shape(), (Shape{3, 2, 4}));
  for (double v : zb.to_vector()) EXPECT_EQ(v, 0.0);
}

TEST_P(CpuMatmulKernel, TransposedAndStridedViews) {
  const DType dt = GetParam();
  const int64_t m = 37, kk = 53, n = 29;
  // Transposes of contiguous matrices (the no-copy BLAS path).
  const Tensor at = raw::transpose(random_tensor({kk, m}, dt, 3), 0, 1);
  const Tensor bt = raw::transpose(random_tensor({n, kk}, dt, 4), 0, 1);
  const Tensor a = random_tensor({m, kk}, dt, 5), b = random_tensor({kk, n}, dt, 6);
  check_matmul(at, b, "a^T");
  check_matmul(a, bt, "b^T");
  check_matmul(at, bt, "a^T b^T");
  // Row-sliced matrices (leading dim larger than the row) and column-sliced transposes.
  const Tensor wide = random_tensor({m, kk + 11}, dt, 7);
  check_matmul(raw::slice(wide, 1, 5, 5 + kk, 1), b, "column slice of a");
  const Tensor tall = random_tensor({n + 3, kk}, dt, 8);
  check_matmul(a, raw::transpose(raw::slice(tall, 0, 2, 2 + n, 1), 0, 1), "slice then transpose");
  // Layouts BLAS cannot take: stepped slices, expanded (stride-0) dims, offsets.
  const Tensor stepped = raw::slice(random_tensor({m, 2 * kk}, dt, 9), 1, 1, 2 * kk, 2);
  ASSERT_EQ(stepped.size(1), kk);
  check_matmul(stepped, b, "step-2 columns");
  check_matmul(raw::slice(random_tensor({2 * m, kk}, dt, 10), 0, 0, 2 * m, 2), b, "step-2 rows");
  check_matmul(a, raw::expand(random_tensor({1, n}, dt, 11), {kk, n}), "expanded rows of b");
  check_matmul(raw::expand(random_tensor({m, 1}, dt, 12), {m, kk}), b, "expanded cols of a");
  const Tensor sel = raw::select(random_tensor({3, m, kk}, dt, 13), 0, 2);
  check_matmul(sel, b, "storage offset");
  // Degenerate 1-wide views whose unused stride is arbitrary.
  check_matmul(raw::transpose(random_tensor({kk, 1}, dt, 14), 0, 1), b, "1 x k transposed");
  check_matmul(a, raw::slice(random_tensor({kk, 5}, dt, 15), 1, 2, 3, 1), "k x 1 slice");
}

TEST_P(CpuMatmulKernel, Batched) {
  const DType dt = GetParam();
  const int64_t nb = 5, m = 7, kk = 9, n = 6;
  const Tensor a = random_tensor({nb, m, kk}, dt, 20), b = random_tensor({nb, kk, n}, dt, 21);
  check_matmul(a, b, "batched");
  check_matmul(random_tensor({1, m, kk}, dt, 22), b, "a batch broadcast");
  check_matmul(a, random_tensor({1, kk, n}, dt, 23), "b batch broadcast (one tall gemm)");
  check_matmul(random_tensor({1, m, kk}, dt, 24), random_tensor({1, kk, n}, dt, 25), "B=1");
  // Transposed inner matrices, batch dims from permute, expanded batch dims.
  const Tensor at = raw::transpose(random_tensor({nb, kk, m}, dt, 26), 1, 2);
  const Tensor bt = raw::transpose(random_tensor({nb, n, kk}, dt, 27), 1, 2);
  check_matmul(at, bt, "batched transposes");
  check_matmul(at, random_tensor({1, kk, n}, dt, 28), "transposed a, broadcast b");
  const Tensor ap = raw::permute(random_tensor({m, nb, kk}, dt, 29), {1, 0, 2});
  check_matmul(ap, b, "permuted batch dim");
  const Tensor ae = raw::expand(random_tensor({1, m, kk}, dt, 30), {nb, m, kk});
  check_matmul(ae, b, "expanded batch of a");
  const Tensor be = raw::expand(random_tensor({1, kk, n}, dt, 31), {nb, kk, n});
  check_matmul(a, be, "expanded batch of b");
  check_matmul(ae, be, "both batches expanded");
  check_matmul(ae,
               raw::transpose(raw::expand(random_tensor({1, n, kk}, dt, 38), {nb, n, kk}), 1, 2),
               "expanded batch of a transposed b");
  // A batch of row-sliced matrices cannot be folded into one gemm.
  const Tensor as = raw::slice(random_tensor({nb, m, kk + 4}, dt, 32), 2, 0, kk, 1);
  check_matmul(as, random_tensor({1, kk, n}, dt, 33), "row-sliced batch, broadcast b");
  check_matmul(random_tensor({3, 1, 1}, dt, 34), random_tensor({3, 1, 1}, dt, 35), "3x1x1x1");
  check_matmul(random_tensor({4, 37, 53}, dt, 36), random_tensor({4, 53, 29}, dt, 37),
               "4x37x53x29");
}

// x [N, in] @ w[out, in]^T + bias, reference in double.
Ref naive_linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t rows = x.size(0), in = x.size(1), outf = w.size(0);
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  const std::vector<double> bv = bias.defined() ? bias.to_vector() : std::vector<double>();
  Ref r;
  r.val.assign(static_cast<size_t>(rows * outf), 0.0);
  r.absref.assign(r.val.size(), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t o = 0; o < outf; ++o) {
      double s = bv.empty() ? 0.0 : bv[o], sa = std::fabs(s);
      for (int64_t p = 0; p < in; ++p) {
        s += xv[i * in + p] * wv[o * in + p];
        sa += std::fabs(xv[i * in + p] * wv[o * in + p]);
      }
      r.val[i * outf + o] = s;
      r.absref[i * outf + o] = sa;
    }
  }
  return r;
}

void check_linear(const Tensor& x, const Tensor& w, const Tensor& bias, const std::string& what) {
  const Tensor y = k::linear(x, w, bias);
  expect_matches(y, {x.size(0), w.size(0)}, naive_linear(x, w, bias), x.dtype(), what);
}

TEST_P(CpuMatmulKernel, Linear) {
  const DType dt = GetParam();
  const Tensor x = random_tensor({37, 53}, dt, 40), w = random_tensor({29, 53}, dt, 41);
  const Tensor bias = random_tensor({29}, dt, 42);
  check_linear(x, w, bias, "with bias");
  check_linear(x, w, Tensor(), "no bias");
  check_linear(random_tensor({1, 1}, dt, 43), random_tensor({1, 1}, dt, 44),
               random_tensor({1}, dt, 45), "1x1x1");
  check_linear(random_tensor({256, 300}, dt, 46), random_tensor({200, 300}, dt, 47),
               random_tensor({200}, dt, 48), "256x300 -> 200");
  check_linear(random_tensor({600, 64}, dt, 60), random_tensor({500, 64}, dt, 61),
               random_tensor({500}, dt, 62), "600x64 -> 500 (parallel bias fill)");
  // Views: transposed weight (stored [in, out]), strided input, stepped bias.
  const Tensor wt = raw::transpose(random_tensor({53, 29}, dt, 49), 0, 1);
  check_linear(x, wt, bias, "transposed weight");
  check_linear(raw::transpose(random_tensor({53, 37}, dt, 50), 0, 1), w, bias, "transposed x");
  check_linear(raw::slice(random_tensor({74, 53}, dt, 51), 0, 0, 74, 2), w, bias, "step-2 rows");
  check_linear(x, w, raw::slice(random_tensor({58}, dt, 52), 0, 0, 58, 2), "step-2 bias");
  check_linear(x, w, raw::expand(random_tensor({1}, dt, 53), {29}), "expanded bias");
  // Empty dims: no rows, no outputs, no inputs (bias only).
  check_linear(random_tensor({0, 53}, dt, 54), w, bias, "N=0");
  check_linear(x, random_tensor({0, 53}, dt, 55), random_tensor({0}, dt, 56), "out=0");
  check_linear(random_tensor({4, 0}, dt, 57), random_tensor({3, 0}, dt, 58),
               random_tensor({3}, dt, 59), "in=0 with bias");
  check_linear(random_tensor({4, 0}, dt, 57), random_tensor({3, 0}, dt, 58), Tensor(),
               "in=0 without bias");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuMatmulKernel, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dan::dtype_name(info.param)); });

TEST(CpuMatmulKernelErrors, MessagesNameOpAndShapes) {
  const Tensor a = random_tensor({32, 384}, DType::f32, 1);
  const Tensor b = random_tensor({256, 10}, DType::f32, 2);
  expect_has(error_of([&] { k::matmul(a, b); }), {"matmul", "[32, 384]", "[256, 10]"});
  expect_has(error_of([&] {
               k::matmul(a, random_tensor({2, 384, 3}, DType::f32, 3));
             }),
             {"matmul", "[32, 384]", "[2, 384, 3]"});
  expect_has(
      error_of([&] {
        k::matmul(random_tensor({2, 3, 4}, DType::f32, 4), random_tensor({3, 4, 5}, DType::f32, 5));
      }),
      {"matmul", "batch", "[2, 3, 4]", "[3, 4, 5]"});
  expect_has(error_of([&] {
               k::matmul(a, random_tensor({384, 3}, DType::f64, 6));
             }),
             {"matmul", "dtype"});
  expect_has(
      error_of([&] {
        k::matmul(random_tensor({2, 3}, DType::i64, 7), random_tensor({3, 2}, DType::i64, 8));
      }),
      {"matmul", "i64"});
  const Tensor x = random_tensor({4, 5}, DType::f32, 9);
  expect_has(error_of([&] {
               k::linear(x, random_tensor({3, 6}, DType::f32, 10), Tensor());
             }),
             {"linear", "[4, 5]", "[3, 6]"});
  expect_has(
      error_of([&] {
        k::linear(x, random_tensor({3, 5}, DType::f32, 11), random_tensor({4}, DType::f32, 12));
      }),
      {"linear", "bias", "[4]", "[3]"});
}

}  // namespace
