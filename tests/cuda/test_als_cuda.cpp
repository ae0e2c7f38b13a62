// The CUDA implicit-ALS kernels (kernels/cuda/als.cu) against the CPU backend and against
// independent double-precision values computed here: CG (fused and SGEMM-batched paths),
// Cholesky and the loss sums, for factors 1 .. 1024 (powers of two and not), rows without
// entries, rows longer than one staged chunk, bitwise repeatability, and bad CSR input.
// Skipped without a CUDA device.
#include "core/cuda/runtime.h"

#ifdef DAN_WITH_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/als.h"

namespace dan::kernels::cuda {
// Test hook defined in kernels/cuda/als.cu: 0 = automatic, 1 = fused CG kernel, 2 = batched.
void set_als_cg_path(int path);
}  // namespace dan::kernels::cuda

namespace dan {
namespace {

namespace K = ::dan::kernels;

// A random confidence matrix and factors, on the host; rows % 7 == 1 are empty, row 2 has
// `heavy` entries (several 64-entry chunks), row 3 exactly 64, the rest 1..20. Confidences are
// in [1, 10], some exactly 1 (zero weight). Y is scaled by 1/sqrt(f) so that the systems stay
// well conditioned at every f (the CPU solves Cholesky in f64, the GPU in f32).
struct HostProblem {
  int64_t rows = 0, cols = 0, f = 0;
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> values, X, Y, YtY;
};

HostProblem make_problem(int64_t rows, int64_t cols, int64_t f, int64_t heavy, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f), conf(1.0f, 10.0f);
  HostProblem p;
  p.rows = rows;
  p.cols = cols;
  p.f = f;
  p.indptr.push_back(0);
  std::vector<int32_t> all(static_cast<size_t>(cols));
  std::iota(all.begin(), all.end(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t n = 1 + static_cast<int64_t>(rng() % 20);
    if (r % 7 == 1) n = 0;
    if (r == 2) n = heavy;
    if (r == 3) n = 64;
    n = std::min(n, cols);
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t k = 0; k < n; ++k) {
      p.indices.push_back(all[static_cast<size_t>(k)]);
      p.values.push_back(k % 9 == 4 ? 1.0f : conf(rng));
    }
    p.indptr.push_back(static_cast<int64_t>(p.indices.size()));
  }
  const float ys = 0.8f / std::sqrt(static_cast<float>(f));
  p.X.resize(static_cast<size_t>(rows * f));
  p.Y.resize(static_cast<size_t>(cols * f));
  for (float& v : p.X) v = 0.5f * unit(rng);
  for (float& v : p.Y) v = ys * unit(rng);
  // YtY in double, rounded once, exactly symmetric: both backends get the same bits.
  p.YtY.assign(static_cast<size_t>(f * f), 0.0f);
  for (int64_t j = 0; j < f; ++j) {
    for (int64_t k = j; k < f; ++k) {
      double s = 0;
      for (int64_t i = 0; i < cols; ++i) {
        s += static_cast<double>(p.Y[i * f + j]) * p.Y[i * f + k];
      }
      p.YtY[j * f + k] = p.YtY[k * f + j] = static_cast<float>(s);
    }
  }
  return p;
}

struct DeviceProblem {
  Tensor X, Y, YtY;
  K::CsrTensors C;
};

DeviceProblem upload(const HostProblem& p, Device d) {
  DeviceProblem o;
  o.X = from_vector(p.X, {p.rows, p.f}, d);
  o.Y = from_vector(p.Y, {p.cols, p.f}, d);
  o.YtY = from_vector(p.YtY, {p.f, p.f}, d);
  o.C.indptr = from_vector(p.indptr, {p.rows + 1}, d);
  o.C.indices = from_vector(p.indices, {static_cast<int64_t>(p.indices.size())}, d);
  o.C.values = from_vector(p.values, {static_cast<int64_t>(p.values.size())}, d);
  o.C.rows = p.rows;
  o.C.cols = p.cols;
  return o;
}

std::vector<float> host_floats(const Tensor& t) { return t.to_vector_as<float>(); }

// A_u v = YtY v + reg v + sum_i (c_i - 1)(y_i . v) y_i, and b_u = sum_i c_i y_i, in double.
std::vector<double> apply_a(const HostProblem& p, int64_t u, float reg,
                            const std::vector<double>& v) {
  const int64_t f = p.f;
  std::vector<double> out(static_cast<size_t>(f), 0.0);
  for (int64_t j = 0; j < f; ++j) {
    double s = reg * v[j];
    for (int64_t k = 0; k < f; ++k) s += static_cast<double>(p.YtY[j * f + k]) * v[k];
    out[j] = s;
  }
  for (int64_t e = p.indptr[u]; e < p.indptr[u + 1]; ++e) {
    const float* y = &p.Y[static_cast<size_t>(p.indices[e] * f)];
    double d = 0;
    for (int64_t j = 0; j < f; ++j) d += y[j] * v[j];
    const double w = (p.values[e] - 1.0) * d;
    for (int64_t j = 0; j < f; ++j) out[j] += w * y[j];
  }
  return out;
}

std::vector<double> rhs(const HostProblem& p, int64_t u) {
  std::vector<double> b(static_cast<size_t>(p.f), 0.0);
  for (int64_t e = p.indptr[u]; e < p.indptr[u + 1]; ++e) {
    for (int64_t j = 0; j < p.f; ++j) b[j] += p.values[e] * p.Y[p.indices[e] * p.f + j];
  }
  return b;
}

// The exact solution of every row's system by a double-precision Cholesky.
std::vector<double> exact_solution(const HostProblem& p, float reg) {
  const int64_t f = p.f;
  std::vector<double> x(static_cast<size_t>(p.rows * f), 0.0);
  std::vector<double> A(static_cast<size_t>(f * f));
  for (int64_t u = 0; u < p.rows; ++u) {
    if (p.indptr[u] == p.indptr[u + 1]) continue;
    for (int64_t k = 0; k < f; ++k) {  // column k of A = A e_k
      std::vector<double> e(static_cast<size_t>(f), 0.0);
      e[k] = 1.0;
      const std::vector<double> col = apply_a(p, u, reg, e);
      for (int64_t j = 0; j < f; ++j) A[j * f + k] = col[j];
    }
    for (int64_t k = 0; k < f; ++k) {
      double d = A[k * f + k];
      for (int64_t l = 0; l < k; ++l) d -= A[k * f + l] * A[k * f + l];
      d = std::sqrt(d);
      A[k * f + k] = d;
      for (int64_t j = k + 1; j < f; ++j) {
        double s = A[j * f + k];
        for (int64_t l = 0; l < k; ++l) s -= A[j * f + l] * A[k * f + l];
        A[j * f + k] = s / d;
      }
    }
    std::vector<double> z = rhs(p, u);
    for (int64_t k = 0; k < f; ++k) {
      for (int64_t l = 0; l < k; ++l) z[k] -= A[k * f + l] * z[l];
      z[k] /= A[k * f + k];
    }
    for (int64_t k = f - 1; k >= 0; --k) {
      for (int64_t j = k + 1; j < f; ++j) z[k] -= A[j * f + k] * z[j];
      z[k] /= A[k * f + k];
    }
    std::copy(z.begin(), z.end(), x.begin() + u * f);
  }
  return x;
}

// |a - b| <= tol * (|a| + max|a|) elementwise, a the reference.
template <typename T>
void expect_near_all(const std::vector<T>& ref, const std::vector<float>& got, double tol,
                     const std::string& what) {
  ASSERT_EQ(ref.size(), got.size()) << what;
  double scale = 0;
  for (const T& v : ref) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  int bad = 0;
  for (size_t i = 0; i < ref.size() && bad < 5; ++i) {
    const double r = static_cast<double>(ref[i]);
    const double lim = tol * (std::fabs(r) + scale);
    if (!(std::fabs(r - got[i]) <= lim)) {
      ADD_FAILURE() << what << ": element " << i << " reference " << r << " cuda " << got[i]
                    << " (tolerance " << lim << ")";
      ++bad;
    }
  }
}

void expect_empty_rows_zero(const HostProblem& p, const std::vector<float>& x,
                            const std::string& what) {
  for (int64_t u = 0; u < p.rows; ++u) {
    if (p.indptr[u] != p.indptr[u + 1]) continue;
    for (int64_t j = 0; j < p.f; ++j) {
      ASSERT_EQ(x[u * p.f + j], 0.0f) << what << ": row " << u << " has no entries";
    }
  }
}

// Restores the automatic CG path however a test ends.
struct PathGuard {
  explicit PathGuard(int path) { K::cuda::set_als_cg_path(path); }
  ~PathGuard() { K::cuda::set_als_cg_path(0); }
  PathGuard(const PathGuard&) = delete;
  PathGuard& operator=(const PathGuard&) = delete;
};

struct Size {
  int64_t f, rows, cols, heavy;
};

// Small enough that the CPU references stay fast at 1024 factors.
const Size kCgSizes[] = {{1, 40, 50, 45},   {7, 40, 60, 60},    {32, 40, 120, 150},
                         {64, 40, 200, 200}, {100, 36, 200, 150}, {256, 30, 300, 200},
                         {1024, 16, 400, 300}};
const Size kCholSizes[] = {{1, 30, 50, 45},    {7, 30, 60, 60},     {32, 30, 120, 150},
                           {64, 24, 200, 200},  {100, 24, 200, 150}, {256, 12, 300, 200},
                           {300, 10, 300, 130}, {1024, 5, 400, 100}};

constexpr float kReg = 0.5f;
constexpr double kTol = 1e-4;
const char* const kPathName[] = {"auto", "fused", "batched"};

TEST(AlsCudaKernels, CgMatchesCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const Size& s : kCgSizes) {
    const HostProblem p = make_problem(s.rows, s.cols, s.f, s.heavy, 11 + static_cast<uint32_t>(s.f));
    DeviceProblem c = upload(p, Device::cpu());
    K::als_update_cg(c.X, c.Y, c.YtY, c.C, kReg, 3);
    const std::vector<float> ref = host_floats(c.X);
    for (int path = 0; path < 3; ++path) {
      const std::string what = "cg f=" + std::to_string(s.f) + " " + kPathName[path];
      PathGuard guard(path);
      DeviceProblem g = upload(p, Device::cuda());
      K::als_update_cg(g.X, g.Y, g.YtY, g.C, kReg, 3);
      const std::vector<float> got = host_floats(g.X);
      expect_near_all(ref, got, kTol, what);
      expect_empty_rows_zero(p, got, what);
    }
  }
}

// Enough CG steps reach the exact solution (computed here in double, independently of the
// CPU backend); rows with a tiny initial residual stop early instead of dividing by zero.
TEST(AlsCudaKernels, CgConvergesToExactSolution) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (int64_t f : {7, 32}) {
    const HostProblem p = make_problem(20, 80, f, 70, 101 + static_cast<uint32_t>(f));
    const std::vector<double> exact = exact_solution(p, kReg);
    for (int path = 1; path < 3; ++path) {
      const std::string what = "cg converged f=" + std::to_string(f) + " " + kPathName[path];
      PathGuard guard(path);
      DeviceProblem g = upload(p, Device::cuda());
      K::als_update_cg(g.X, g.Y, g.YtY, g.C, kReg, 2 * static_cast<int>(f) + 10);
      expect_near_all(exact, host_floats(g.X), 1e-3, what);
      // Warm-started at the solution, further steps keep x there.
      const std::vector<float> once = host_floats(g.X);
      K::als_update_cg(g.X, g.Y, g.YtY, g.C, kReg, 3);
      expect_near_all(once, host_floats(g.X), 1e-3, what + " (restart)");
    }
  }
}

TEST(AlsCudaKernels, CholeskyMatchesCpuAndSolvesTheSystem) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const Size& s : kCholSizes) {
    const std::string what = "cholesky f=" + std::to_string(s.f);
    const HostProblem p = make_problem(s.rows, s.cols, s.f, s.heavy, 31 + static_cast<uint32_t>(s.f));
    DeviceProblem c = upload(p, Device::cpu());
    K::als_update_cholesky(c.X, c.Y, c.YtY, c.C, kReg);
    DeviceProblem g = upload(p, Device::cuda());
    K::als_update_cholesky(g.X, g.Y, g.YtY, g.C, kReg);
    const std::vector<float> got = host_floats(g.X);
    expect_near_all(host_floats(c.X), got, kTol, what);
    expect_empty_rows_zero(p, got, what);
    // Independent check: the residual of every row's system, in double.
    for (int64_t u = 0; u < p.rows; ++u) {
      if (p.indptr[u] == p.indptr[u + 1]) continue;
      const std::vector<double> x(got.begin() + u * s.f, got.begin() + (u + 1) * s.f);
      const std::vector<double> ax = apply_a(p, u, kReg, x), b = rhs(p, u);
      double res = 0, bn = 0, xn = 0;
      for (int64_t j = 0; j < s.f; ++j) {
        res = std::max(res, std::fabs(ax[j] - b[j]));
        bn = std::max(bn, std::fabs(b[j]));
        xn = std::max(xn, std::fabs(x[j]));
      }
      EXPECT_LE(res, 1e-4 * (bn + xn)) << what << ": residual of row " << u;
    }
  }
}

TEST(AlsCudaKernels, LossPartsMatchCpuAndDouble) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (int64_t f : {1, 7, 64, 100, 1024}) {
    const std::string what = "loss f=" + std::to_string(f);
    const HostProblem p = make_problem(50, 120, f, 110, 57 + static_cast<uint32_t>(f));
    double obs = 0, obs_abs = 0, dense = 0, dense_abs = 0;
    for (int64_t u = 0; u < p.rows; ++u) {
      std::vector<double> x(p.X.begin() + u * f, p.X.begin() + (u + 1) * f);
      for (int64_t e = p.indptr[u]; e < p.indptr[u + 1]; ++e) {
        double s = 0;
        for (int64_t j = 0; j < f; ++j) s += x[j] * p.Y[p.indices[e] * f + j];
        const double term = p.values[e] * (1 - s) * (1 - s) - s * s;
        obs += term;
        obs_abs += std::fabs(term);
      }
      for (int64_t j = 0; j < f; ++j) {
        double t = 0;
        for (int64_t k = 0; k < f; ++k) t += static_cast<double>(p.YtY[j * f + k]) * x[k];
        dense += x[j] * t;
        dense_abs += std::fabs(x[j] * t);
      }
    }
    const DeviceProblem c = upload(p, Device::cpu()), g = upload(p, Device::cuda());
    const K::AlsLossParts cpu = K::als_loss_parts(c.X, c.Y, c.YtY, c.C);
    const K::AlsLossParts gpu = K::als_loss_parts(g.X, g.Y, g.YtY, g.C);
    EXPECT_NEAR(gpu.observed, obs, 1e-5 * obs_abs) << what;
    EXPECT_NEAR(gpu.dense, dense, 1e-5 * dense_abs) << what;
    EXPECT_NEAR(gpu.observed, cpu.observed, 1e-5 * obs_abs) << what;
    EXPECT_NEAR(gpu.dense, cpu.dense, 1e-5 * dense_abs) << what;
  }
}

TEST(AlsCudaKernels, BitwiseRepeatable) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (int64_t f : {33, 256}) {
    const HostProblem p = make_problem(60, 200, f, 190, 77 + static_cast<uint32_t>(f));
    for (int path = 1; path < 3; ++path) {
      PathGuard guard(path);
      DeviceProblem a = upload(p, Device::cuda()), b = upload(p, Device::cuda());
      K::als_update_cg(a.X, a.Y, a.YtY, a.C, kReg, 3);
      K::als_update_cg(b.X, b.Y, b.YtY, b.C, kReg, 3);
      EXPECT_EQ(host_floats(a.X), host_floats(b.X)) << "cg f=" << f << " " << kPathName[path];
    }
    DeviceProblem a = upload(p, Device::cuda()), b = upload(p, Device::cuda());
    K::als_update_cholesky(a.X, a.Y, a.YtY, a.C, kReg);
    K::als_update_cholesky(b.X, b.Y, b.YtY, b.C, kReg);
    EXPECT_EQ(host_floats(a.X), host_floats(b.X)) << "cholesky f=" << f;
    const K::AlsLossParts la = K::als_loss_parts(a.X, a.Y, a.YtY, a.C);
    const K::AlsLossParts lb = K::als_loss_parts(a.X, a.Y, a.YtY, a.C);
    EXPECT_EQ(la.observed, lb.observed) << "loss f=" << f;
    EXPECT_EQ(la.dense, lb.dense) << "loss f=" << f;
  }
}

// The dispatcher checks the CSR structure of host arrays only; the CUDA backend checks its
// device arrays itself before reading Y through them.
TEST(AlsCudaKernels, RejectsBrokenCsrOnTheDevice) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  HostProblem p = make_problem(10, 30, 8, 12, 5);
  {
    HostProblem bad = p;
    bad.indices[3] = static_cast<int32_t>(p.cols);
    DeviceProblem g = upload(bad, Device::cuda());
    try {
      K::cuda::als_update_cg(g.X, g.Y, g.YtY, g.C, kReg, 3);
      ADD_FAILURE() << "an index past the columns was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("C.indices[3] = 30 is outside [0, 30)"),
                std::string::npos) << e.what();
    }
  }
  {
    HostProblem bad = p;
    bad.indptr[4] = bad.indptr[3] - 1;
    DeviceProblem g = upload(bad, Device::cuda());
    try {
      K::cuda::als_update_cholesky(g.X, g.Y, g.YtY, g.C, kReg);
      ADD_FAILURE() << "a decreasing indptr was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("C.indptr[4]"), std::string::npos) << e.what();
    }
  }
  {
    HostProblem bad = p;
    bad.indices[0] = -1;
    DeviceProblem g = upload(bad, Device::cuda());
    EXPECT_THROW((void)K::cuda::als_loss_parts(g.X, g.Y, g.YtY, g.C), Error);
  }
}

// reg = 0 with YtY = 0 and all confidences 1 leaves A_u = 0: the factorization must fail
// loudly, naming the row, not return NaNs.
TEST(AlsCudaKernels, CholeskyReportsSingularSystems) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  HostProblem p = make_problem(6, 20, 5, 8, 9);
  std::fill(p.YtY.begin(), p.YtY.end(), 0.0f);
  std::fill(p.values.begin(), p.values.end(), 1.0f);
  DeviceProblem g = upload(p, Device::cuda());
  try {
    K::als_update_cholesky(g.X, g.Y, g.YtY, g.C, 0.0f);
    ADD_FAILURE() << "a singular system was solved";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not positive definite"), std::string::npos) << e.what();
  }
}

TEST(AlsCudaKernels, NoRows) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const HostProblem p = make_problem(0, 10, 4, 0, 3);
  DeviceProblem g = upload(p, Device::cuda());
  K::als_update_cg(g.X, g.Y, g.YtY, g.C, kReg, 3);
  K::als_update_cholesky(g.X, g.Y, g.YtY, g.C, kReg);
  const K::AlsLossParts l = K::als_loss_parts(g.X, g.Y, g.YtY, g.C);
  EXPECT_EQ(l.observed, 0.0);
  EXPECT_EQ(l.dense, 0.0);
}

}  // namespace
}  // namespace dan

#endif  // DAN_WITH_CUDA
