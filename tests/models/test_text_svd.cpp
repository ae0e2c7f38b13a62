// Truncated SVD: singular values against numpy's exact SVD (tests/fixtures/tfidf_gold
// .safetensors), Eckart-Young reconstruction error, orthonormality, the building blocks
// (Jacobi eigen-solver, sparse x dense product, orthonormal basis) against hand/naive values,
// determinism, and standardization.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/threads.h"
#include "models/text/svd.h"
#include "models/text/tfidf.h"
#include "tests/models/test_text_fixture.h"

using namespace dan;
using namespace dan::text;

namespace {

recsys::Csr fixture_matrix() {
  const std::vector<double> shape = textfx::gold_tensor("svd.shape").to_vector();
  recsys::Csr a = textfx::gold_csr("svd", static_cast<int64_t>(shape[1]));
  EXPECT_EQ(a.rows, static_cast<int64_t>(shape[0]));
  a.validate("svd fixture");
  return a;
}

std::vector<double> dense(const recsys::Csr& a) {
  std::vector<double> d(static_cast<size_t>(a.rows * a.cols), 0.0);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t k = a.indptr[i]; k < a.indptr[i + 1]; ++k)
      d[i * a.cols + a.indices[k]] = a.values[k];
  return d;
}

// max |XᵀX - I| over the columns of a row-major [rows, cols] matrix.
double orthonormality_error(const std::vector<double>& x, int64_t rows, int64_t cols) {
  double err = 0;
  for (int64_t a = 0; a < cols; ++a)
    for (int64_t b = 0; b < cols; ++b) {
      double s = 0;
      for (int64_t i = 0; i < rows; ++i) s += x[i * cols + a] * x[i * cols + b];
      err = std::max(err, std::abs(s - (a == b ? 1.0 : 0.0)));
    }
  return err;
}

std::vector<double> transpose(const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> t(x.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = x[i * cols + j];
  return t;
}

}  // namespace

TEST(TextSvd, TopSingularValuesMatchNumpy) {
  const recsys::Csr a = fixture_matrix();
  const std::vector<double> want = textfx::gold_tensor("svd.s").to_vector();
  const int64_t k = 10;
  const TruncatedSvd s = randomized_svd(a, k, SvdConfig{}, true);
  ASSERT_EQ(s.singular_values.size(), static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i)
    EXPECT_NEAR(s.singular_values[i], want[i], 1e-3 * want[i]) << "sigma " << i;
  EXPECT_EQ(s.u.shape(), (Shape{a.rows, k}));
  EXPECT_EQ(s.vt.shape(), (Shape{k, a.cols}));
  EXPECT_LT(orthonormality_error(s.u.to_vector(), a.rows, k), 1e-5);
  EXPECT_LT(orthonormality_error(transpose(s.vt.to_vector(), k, a.cols), a.cols, k), 1e-5);
}

TEST(TextSvd, ReconstructionErrorIsTheTailEnergy) {
  // Eckart-Young: ||A - U_k S_k V_kᵀ||_F^2 = sum of the squared singular values beyond k.
  const recsys::Csr a = fixture_matrix();
  const std::vector<double> s = textfx::gold_tensor("svd.s").to_vector();
  const std::vector<double> d = dense(a);
  for (int64_t k : {5, 10}) {
    const TruncatedSvd r = randomized_svd(a, k, SvdConfig{}, true);
    const std::vector<double> u = r.u.to_vector(), vt = r.vt.to_vector();
    double err = 0;
    for (int64_t i = 0; i < a.rows; ++i)
      for (int64_t j = 0; j < a.cols; ++j) {
        double x = d[i * a.cols + j];
        for (int64_t c = 0; c < k; ++c)
          x -= u[i * k + c] * r.singular_values[c] * vt[c * a.cols + j];
        err += x * x;
      }
    double tail = 0;
    for (size_t i = k; i < s.size(); ++i) tail += s[i] * s[i];
    EXPECT_NEAR(err, tail, 1e-3 * tail) << "k = " << k;
  }
}

TEST(TextSvd, FullRankRequestIsExactAndPadsBeyondTheRank) {
  // The 50-document TF-IDF matrix of the fixture has rank 49 (one empty document): asking for
  // 60 components gives the exact spectrum, then zeros.
  const Corpus c = corpus_from_tokens(
      textfx::gold_meta("tokens.plain").get<std::vector<std::vector<std::string>>>());
  const Tfidf t = tfidf(c, TfidfConfig{});
  const std::vector<double> want = textfx::gold_tensor("tfidf_svd.s").to_vector();
  ASSERT_EQ(want.size(), 50u);
  const TruncatedSvd s = randomized_svd(t.matrix, 60, SvdConfig{}, true);
  ASSERT_EQ(s.singular_values.size(), 60u);
  for (size_t i = 0; i < 60; ++i)
    EXPECT_NEAR(s.singular_values[i], i < want.size() ? want[i] : 0.0, 1e-6 * want[0]) << i;
  EXPECT_EQ(s.u.shape(), (Shape{50, 60}));
  // transform() = U S = A V.
  const Tensor us = s.transform();
  const std::vector<double> a = dense(t.matrix), vt = s.vt.to_vector(), got = us.to_vector();
  for (int64_t i = 0; i < 50; ++i)
    for (int64_t j = 0; j < 60; ++j) {
      double x = 0;
      for (int64_t c = 0; c < t.matrix.cols; ++c)
        x += a[i * t.matrix.cols + c] * vt[j * t.matrix.cols + c];
      EXPECT_NEAR(got[i * 60 + j], x, 1e-5);
    }
}

TEST(TextSvd, DeterministicForASeedAndSignConvention) {
  const recsys::Csr a = fixture_matrix();
  const TruncatedSvd x = randomized_svd(a, 8), y = randomized_svd(a, 8);
  EXPECT_EQ(x.u.to_vector(), y.u.to_vector());
  EXPECT_EQ(x.singular_values, y.singular_values);
  // svd_flip: the largest |u| of every column is positive.
  const std::vector<double> u = x.u.to_vector();
  for (int64_t j = 0; j < 8; ++j) {
    int64_t best = 0;
    for (int64_t i = 1; i < a.rows; ++i)
      if (std::abs(u[i * 8 + j]) > std::abs(u[best * 8 + j])) best = i;
    EXPECT_GT(u[best * 8 + j], 0) << j;
  }
  // Another seed: same values (to tolerance), same subspace.
  SvdConfig other;
  other.seed = 99;
  const TruncatedSvd z = randomized_svd(a, 8, other);
  for (int64_t i = 0; i < 8; ++i)
    EXPECT_NEAR(z.singular_values[i], x.singular_values[i], 1e-4 * x.singular_values[i]);
}

TEST(TextSvd, OneAndTwoThreadsAgree) {
  // Large enough for the sparse products and the GEMMs to run in parallel. OpenBLAS rounds
  // differently at another thread count, so this is agreement to roundoff, not bit equality.
  const int64_t m = 1500, n = 1200;
  std::vector<int32_t> r, c;
  std::vector<float> v;
  uint64_t state = 3;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  for (int64_t i = 0; i < m; ++i)
    for (int k = 0; k < 40; ++k) {
      r.push_back(static_cast<int32_t>(i));
      c.push_back(static_cast<int32_t>(next() % n));
      v.push_back(static_cast<float>(next() % 1000) / 1000.0f);
    }
  const recsys::Csr a = recsys::Csr::from_triplets(m, n, r, c, v, true);
  const int saved = num_threads();
  set_num_threads(1);
  const TruncatedSvd one = randomized_svd(a, 40, SvdConfig{}, true);
  set_num_threads(2);
  const TruncatedSvd two = randomized_svd(a, 40, SvdConfig{}, true);
  set_num_threads(saved);
  for (int64_t j = 0; j < 40; ++j)
    EXPECT_NEAR(one.singular_values[j], two.singular_values[j], 1e-9 * one.singular_values[0]);
  const std::vector<double> u1 = one.u.to_vector(), u2 = two.u.to_vector();
  double err = 0;
  for (size_t i = 0; i < u1.size(); ++i) err = std::max(err, std::abs(u1[i] - u2[i]));
  EXPECT_LT(err, 1e-5);
}

TEST(TextSvd, EmptyAndDegenerateInputs) {
  recsys::Csr zero;
  zero.rows = 4;
  zero.cols = 3;
  zero.indptr.assign(5, 0);
  const TruncatedSvd s = randomized_svd(zero, 2, SvdConfig{}, true);
  EXPECT_EQ(s.singular_values, (std::vector<double>{0, 0}));
  EXPECT_EQ(s.u.shape(), (Shape{4, 2}));
  EXPECT_EQ(s.vt.shape(), (Shape{2, 3}));
  for (double v : s.u.to_vector()) EXPECT_EQ(v, 0);
  EXPECT_THROW(randomized_svd(zero, -1), Error);
}

TEST(TextSvd, JacobiEigenOfKnownMatrices) {
  // [[2, 1], [1, 2]]: eigenvalues 3 and 1, vectors (1, 1)/√2 and (1, -1)/√2.
  SymEigen e = jacobi_eigh({2, 1, 1, 2}, 2);
  EXPECT_NEAR(e.values[0], 3, 1e-14);
  EXPECT_NEAR(e.values[1], 1, 1e-14);
  EXPECT_NEAR(std::abs(e.vectors[0]), std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(e.vectors[0] * e.vectors[1], 0.5, 1e-14);
  EXPECT_NEAR(e.vectors[2] * e.vectors[3], -0.5, 1e-14);
  // A random symmetric 40x40: A v = λ v, orthonormal vectors, trace preserved.
  const int64_t n = 40;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> g;
  std::vector<double> a(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) a[i * n + j] = a[j * n + i] = g(rng);
  e = jacobi_eigh(a, n);
  double trace = 0, sum = 0;
  for (int64_t i = 0; i < n; ++i) trace += a[i * n + i], sum += e.values[i];
  EXPECT_NEAR(trace, sum, 1e-10);
  for (int64_t k = 0; k < n; ++k) {
    if (k > 0) {
      EXPECT_GE(e.values[k - 1], e.values[k]);
    }
    for (int64_t i = 0; i < n; ++i) {
      double av = 0;
      for (int64_t j = 0; j < n; ++j) av += a[i * n + j] * e.vectors[k * n + j];
      EXPECT_NEAR(av, e.values[k] * e.vectors[k * n + i], 1e-10);
    }
  }
  EXPECT_LT(orthonormality_error(transpose(e.vectors, n, n), n, n), 1e-12);
  EXPECT_THROW(jacobi_eigh({1, 2, 3, 4}, 2), Error);  // not symmetric
}

TEST(TextSvd, CsrMatmulMatchesDense) {
  const recsys::Csr a = fixture_matrix();
  const std::vector<double> d = dense(a);
  const int64_t l = 7;
  std::vector<double> b(a.cols * l);
  for (size_t i = 0; i < b.size(); ++i) b[i] = std::sin(0.37 * static_cast<double>(i));
  for (DType t : {DType::f32, DType::f64}) {
    const Tensor bt = from_doubles(b, {a.cols, l}, t);
    const std::vector<double> bq = bt.to_vector();
    const Tensor y = csr_matmul(a, bt);
    ASSERT_EQ(y.dtype(), t);
    const std::vector<double> got = y.to_vector();
    for (int64_t i = 0; i < a.rows; ++i)
      for (int64_t j = 0; j < l; ++j) {
        double x = 0;
        for (int64_t c = 0; c < a.cols; ++c) x += d[i * a.cols + c] * bq[c * l + j];
        EXPECT_NEAR(got[i * l + j], x, t == DType::f32 ? 1e-5 : 1e-12);
      }
  }
  EXPECT_THROW(csr_matmul(a, zeros({a.cols + 1, 2})), Error);
}

TEST(TextSvd, OrthonormalBasisDropsDependentColumns) {
  // Columns: x, 2x, y, x + y, z -> rank 3.
  const int64_t m = 30;
  std::vector<double> v(m * 5);
  for (int64_t i = 0; i < m; ++i) {
    const double x = std::cos(0.3 * i), y = std::sin(0.11 * i * i), z = 1e-3 * (i % 7);
    v[i * 5 + 0] = x, v[i * 5 + 1] = 2 * x, v[i * 5 + 2] = y, v[i * 5 + 3] = x + y,
              v[i * 5 + 4] = z;
  }
  const Tensor q = orthonormal_basis(from_doubles(v, {m, 5}, DType::f64));
  ASSERT_EQ(q.shape(), (Shape{m, 3}));
  const std::vector<double> qv = q.to_vector();
  EXPECT_LT(orthonormality_error(qv, m, 3), 1e-13);
  // Q Qᵀ Y = Y: the basis spans every column.
  for (int64_t c = 0; c < 5; ++c) {
    std::vector<double> proj(m, 0.0);
    for (int64_t j = 0; j < 3; ++j) {
      double dot = 0;
      for (int64_t i = 0; i < m; ++i) dot += qv[i * 3 + j] * v[i * 5 + c];
      for (int64_t i = 0; i < m; ++i) proj[i] += dot * qv[i * 3 + j];
    }
    for (int64_t i = 0; i < m; ++i) EXPECT_NEAR(proj[i], v[i * 5 + c], 1e-12);
  }
}

TEST(TextSvd, StandardizeColumns) {
  const Tensor x = from_doubles({1, 5, 2, 2, 5, 2, 3, 8, 2, 4, 1, 2}, {4, 3});
  const std::vector<double> s = standardize_columns(x).to_vector();
  // Column 0: 1,2,3,4 -> mean 2.5, population std sqrt(1.25); column 2 is constant -> 0.
  const double sd = std::sqrt(1.25);
  EXPECT_NEAR(s[0], -1.5 / sd, 1e-6);
  EXPECT_NEAR(s[9], 1.5 / sd, 1e-6);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(s[i * 3 + 2], 0.0);
  double mean = 0, var = 0;
  for (int64_t i = 0; i < 4; ++i) mean += s[i * 3 + 1];
  for (int64_t i = 0; i < 4; ++i) var += s[i * 3 + 1] * s[i * 3 + 1];
  EXPECT_NEAR(mean, 0, 1e-6);
  EXPECT_NEAR(var / 4, 1, 1e-6);
}
