// Randomized truncated SVD (see svd.h). The item-side bases (m x l) are kept in f64: the
// orthonormalization works on their Gram matrix, whose condition number is the square of the
// basis's, so f32 would lose the smaller components. Dense products are BLAS calls through
// kernels::matmul; nothing here calls BLAS from inside an OpenMP region.
#include "models/text/svd.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace dan::text {

std::string SvdConfig::key() const {
  return fmt::format("svd(oversample={},power_iters={},seed={})", oversample, power_iters, seed);
}

// ---- sparse x dense --------------------------------------------------------------------------

namespace {

// out[i, :] = sum_k a[i, k] * b[k, :], summed in Acc (the output type) in entry order. Each
// output row is accumulated in place while whole rows of b stream in (rows of b are gathered
// in the order of a's column indices; a row is contiguous, which the prefetcher follows;
// blocking the columns to keep b in cache measured 2.5x slower here).
template <typename In, typename Acc>
void spmm_impl(const recsys::Csr& a, const In* b, int64_t l, Acc* out) {
  const int64_t m = a.rows;
#pragma omp parallel for schedule(dynamic, 64) num_threads(num_threads()) if (a.nnz() * l > 2000000)
  for (int64_t i = 0; i < m; ++i) {
    Acc* o = out + i * l;
    std::fill(o, o + l, Acc(0));
    for (int64_t k = a.indptr[i]; k < a.indptr[i + 1]; ++k) {
      const Acc v = static_cast<Acc>(a.values[k]);
      const In* br = b + static_cast<int64_t>(a.indices[k]) * l;
#pragma omp simd
      for (int64_t c = 0; c < l; ++c) o[c] += v * static_cast<Acc>(br[c]);
    }
  }
}

// a @ b with the result (and the sums) in `out`; b f32 or f64.
Tensor spmm(const recsys::Csr& a, const Tensor& b, DType out) {
  DAN_CHECK(b.dim() == 2 && b.size(0) == a.cols,
            "csr_matmul: a is {}x{} (CSR), b is {}; expected b of shape [{}, l]", a.rows, a.cols,
            shape_str(b.shape()), a.cols);
  DAN_CHECK(b.device().is_cpu(), "csr_matmul: b must be on the CPU, got {}", b.device());
  DAN_CHECK(static_cast<int64_t>(a.indptr.size()) == a.rows + 1,
            "csr_matmul: indptr has {} entries for {} rows", a.indptr.size(), a.rows);
  DAN_CHECK((b.dtype() == DType::f32 || b.dtype() == DType::f64) &&
                (out == DType::f32 || out == DType::f64),
            "csr_matmul: b and the result must be f32 or f64, got {} and {}", b.dtype(), out);
  const Tensor bc = b.is_contiguous() ? b : raw::contiguous_copy(b, Device::cpu());
  const int64_t l = b.size(1);
  Tensor r = empty({a.rows, l}, out);
  const bool in32 = b.dtype() == DType::f32, out32 = out == DType::f32;
  if (in32 && out32) spmm_impl(a, bc.data<float>(), l, r.data<float>());
  if (in32 && !out32) spmm_impl(a, bc.data<float>(), l, r.data<double>());
  if (!in32 && out32) spmm_impl(a, bc.data<double>(), l, r.data<float>());
  if (!in32 && !out32) spmm_impl(a, bc.data<double>(), l, r.data<double>());
  return r;
}

}  // namespace

Tensor csr_matmul(const recsys::Csr& a, const Tensor& b) { return spmm(a, b, b.dtype()); }

// ---- Jacobi eigen-solver -------------------------------------------------------------------

SymEigen jacobi_eigh(std::vector<double> a, int64_t n) {
  DAN_CHECK(n >= 0 && static_cast<int64_t>(a.size()) == n * n,
            "jacobi_eigh: {} values for a {}x{} matrix", a.size(), n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j)
      DAN_CHECK(std::isfinite(a[i * n + j]) && a[i * n + j] == a[j * n + i],
                "jacobi_eigh: matrix is not symmetric (or not finite) at ({}, {})", i, j);
  // vt holds the eigenvectors as rows, so both rotations below run over contiguous rows.
  std::vector<double> vt(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) vt[i * n + i] = 1.0;
  double total = 0;
  for (double x : a) total += x * x;
  SymEigen out;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) off += a[p * n + q] * a[p * n + q];
    if (off <= 1e-30 * total) break;
    out.sweeps = sweep + 1;
    for (int64_t p = 0; p < n - 1; ++p) {
      for (int64_t q = p + 1; q < n; ++q) {
        double* rp = &a[p * n];
        double* rq = &a[q * n];
        const double apq = rp[q];
        if (apq == 0) continue;
        const double app = rp[p], aqq = rq[q];
        // Below roundoff of both diagonal entries: rotating would change nothing.
        if (std::abs(apq) <= 1e-18 * std::sqrt(std::abs(app * aqq))) {
          rp[q] = rq[p] = 0;
          continue;
        }
        const double theta = (aqq - app) / (2 * apq);
        const double t =
            std::abs(theta) > 1e150
                ? 0.5 / theta
                : std::copysign(1.0, theta) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) {
          const double xp = rp[k], xq = rq[k];
          rp[k] = c * xp - s * xq;
          rq[k] = s * xp + c * xq;
        }
        rp[p] = app - t * apq;
        rq[q] = aqq + t * apq;
        rp[q] = rq[p] = 0;
        for (int64_t k = 0; k < n; ++k) {
          if (k == p || k == q) continue;
          a[k * n + p] = rp[k];
          a[k * n + q] = rq[k];
        }
        double* vp = &vt[p * n];
        double* vq = &vt[q * n];
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) {
          const double xp = vp[k], xq = vq[k];
          vp[k] = c * xp - s * xq;
          vq[k] = s * xp + c * xq;
        }
      }
    }
  }
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return a[x * n + x] > a[y * n + y]; });
  out.values.resize(n);
  out.vectors.resize(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    out.values[i] = a[order[i] * n + order[i]];
    std::copy_n(&vt[order[i] * n], n, &out.vectors[i * n]);
  }
  return out;
}

// ---- orthonormalization ----------------------------------------------------------------------

namespace {

// One pass of pivoted Cholesky QR: returns y · M with M [l, r] such that the result's columns
// are orthonormal up to roundoff times cond(y)^2.
Tensor cholesky_qr_pass(const Tensor& y) {
  const int64_t m = y.size(0), l = y.size(1);
  const Tensor g_t = kernels::matmul(raw::transpose(y, 0, 1), y);
  const double* g = g_t.data<double>();
  double max_diag = 0;
  for (int64_t i = 0; i < l; ++i) max_diag = std::max(max_diag, g[i * l + i]);
  std::vector<int64_t> piv(l);
  for (int64_t i = 0; i < l; ++i) piv[i] = i;
  std::vector<double> d(l);  // residual squared norm of each column
  for (int64_t i = 0; i < l; ++i) d[i] = g[i * l + i];
  // r_rows[j][c]: row j of R, indexed by original column c.
  std::vector<std::vector<double>> r_rows;
  int64_t r = 0;
  for (; r < l; ++r) {
    // Pivot: the largest residual among the columns that are still independent: a column
    // whose residual is within roundoff of its own norm, or negligible next to the largest
    // column, depends on the ones already taken and is dropped.
    int64_t best = -1;
    for (int64_t i = r; i < l; ++i) {
      const int64_t ci = piv[i];
      if (!(d[ci] > 1e-12 * g[ci * l + ci]) || !(d[ci] > 1e-28 * max_diag)) continue;
      if (best < 0 || d[ci] > d[piv[best]]) best = i;
    }
    if (best < 0) break;
    std::swap(piv[r], piv[best]);
    const int64_t c = piv[r];
    std::vector<double> row(l, 0.0);
    const double rjj = std::sqrt(d[c]);
    row[c] = rjj;
    for (int64_t i = r + 1; i < l; ++i) {
      const int64_t ci = piv[i];
      double s = g[c * l + ci];
      for (int64_t k = 0; k < r; ++k) s -= r_rows[k][c] * r_rows[k][ci];
      row[ci] = s / rjj;
      d[ci] -= row[ci] * row[ci];
    }
    r_rows.push_back(std::move(row));
  }
  if (r == 0) return zeros({m, 0}, DType::f64);
  // R11 [r, r] in pivot order, upper triangular; M = P_S R11^{-1}.
  std::vector<double> rinv(static_cast<size_t>(r * r), 0.0);
  for (int64_t j = r - 1; j >= 0; --j) {
    const double rjj = r_rows[j][piv[j]];
    rinv[j * r + j] = 1.0 / rjj;
    for (int64_t col = j + 1; col < r; ++col) {
      double s = 0;
      for (int64_t k = j + 1; k <= col; ++k) s += r_rows[j][piv[k]] * rinv[k * r + col];
      rinv[j * r + col] = -s / rjj;
    }
  }
  Tensor mm = zeros({l, r}, DType::f64);
  double* mp = mm.data<double>();
  for (int64_t j = 0; j < r; ++j) std::copy_n(&rinv[j * r], r, &mp[piv[j] * r]);
  return kernels::matmul(y, mm);
}

}  // namespace

Tensor orthonormal_basis(const Tensor& y, bool twice) {
  DAN_CHECK(y.dim() == 2 && y.dtype() == DType::f64 && y.device().is_cpu(),
            "orthonormal_basis: expected a 2-D f64 CPU tensor, got {} {}", shape_str(y.shape()),
            y.dtype());
  if (y.size(1) == 0 || y.size(0) == 0) return zeros({y.size(0), 0}, DType::f64);
  const Tensor q = cholesky_qr_pass(y);
  return twice ? cholesky_qr_pass(q) : q;
}

// ---- randomized SVD ---------------------------------------------------------------------------

Tensor TruncatedSvd::transform() const {
  const int64_t m = u.size(0), k = u.size(1);
  Tensor out = empty({m, k});
  const float* up = u.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j)
      o[i * k + j] = static_cast<float>(up[i * k + j] * singular_values[j]);
  return out;
}

TruncatedSvd randomized_svd(const recsys::Csr& a, int64_t k, const SvdConfig& cfg, bool compute_v) {
  DAN_CHECK(k >= 0, "randomized_svd: k must be >= 0, got {}", k);
  DAN_CHECK(cfg.oversample >= 0 && cfg.power_iters >= 0,
            "randomized_svd: oversample and power_iters must be >= 0, got {} and {}",
            cfg.oversample, cfg.power_iters);
  const int64_t m = a.rows, n = a.cols;
  DAN_CHECK(static_cast<int64_t>(a.indptr.size()) == m + 1 && a.indptr[m] == a.nnz(),
            "randomized_svd: malformed CSR ({} rows, {} indptr entries, {} nnz)", m,
            a.indptr.size(), a.nnz());
  TruncatedSvd res;
  res.singular_values.assign(k, 0.0);
  const int64_t l = std::min(k + cfg.oversample, std::min(m, n));
  Tensor q;
  if (l > 0) {
    const recsys::Csr at = a.transpose();
    // The range finder only needs a well-conditioned basis of the right subspace: its sparse
    // products run in f32 and its intermediate bases take one Cholesky QR pass. The Gram
    // matrices, the final basis and the projected matrix B Bᵀ are f64.
    Tensor omega = empty({n, l}, DType::f32);
    kernels::normal_(omega, cfg.seed, 0, 0.0, 1.0);
    Tensor y = raw::cast(spmm(a, omega, DType::f32), DType::f64);
    for (int it = 0; it < cfg.power_iters; ++it) {
      const Tensor qi = orthonormal_basis(y, false);
      if (qi.size(1) == 0) break;
      const Tensor z = spmm(at, raw::cast(qi, DType::f32), DType::f32);
      y = raw::cast(spmm(a, z, DType::f32), DType::f64);
    }
    q = orthonormal_basis(y, true);
    const int64_t r = q.size(1);
    if (r > 0) {
      // B = Qᵀ A, so B Bᵀ = Zᵀ Z with Z = Aᵀ Q.
      const Tensor z = spmm(at, q, DType::f64);  // [n, r] = Bᵀ
      const Tensor c_t = kernels::matmul(raw::transpose(z, 0, 1), z);
      std::vector<double> c = c_t.to_vector();
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < i; ++j)
          c[i * r + j] = c[j * r + i] = 0.5 * (c[i * r + j] + c[j * r + i]);
      const SymEigen eig = jacobi_eigh(std::move(c), r);
      const int64_t kk = std::min(k, r);
      Tensor e = empty({r, kk}, DType::f64);  // eigenvectors as columns
      double* ep = e.data<double>();
      for (int64_t j = 0; j < kk; ++j) {
        res.singular_values[j] = std::sqrt(std::max(eig.values[j], 0.0));
        for (int64_t i = 0; i < r; ++i) ep[i * kk + j] = eig.vectors[j * r + i];
      }
      Tensor u64 = kernels::matmul(q, e);  // [m, kk]
      double* up = u64.data<double>();
      // svd_flip: the largest |u| of each column positive.
      std::vector<double> sign(kk, 1.0);
      for (int64_t j = 0; j < kk; ++j) {
        int64_t best = 0;
        for (int64_t i = 1; i < m; ++i)
          if (std::abs(up[i * kk + j]) > std::abs(up[best * kk + j])) best = i;
        sign[j] = up[best * kk + j] < 0 ? -1.0 : 1.0;
      }
      res.u = zeros({m, k});
      float* uo = res.u.data<float>();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < kk; ++j)
          uo[i * k + j] = static_cast<float>(sign[j] * up[i * kk + j]);
      if (compute_v) {
        // V = Aᵀ U Σ⁻¹ = Z E Σ⁻¹; components with σ at roundoff level have no direction.
        const Tensor v64 = kernels::matmul(z, e);  // [n, kk]
        const double* vp = v64.data<double>();
        res.vt = zeros({k, n});
        float* vo = res.vt.data<float>();
        const double s0 = res.singular_values.empty() ? 0 : res.singular_values[0];
        for (int64_t j = 0; j < kk; ++j) {
          const double s = res.singular_values[j];
          if (!(s > 1e-12 * s0)) continue;
          for (int64_t i = 0; i < n; ++i)
            vo[j * n + i] = static_cast<float>(sign[j] * vp[i * kk + j] / s);
        }
      }
      return res;
    }
  }
  res.u = zeros({m, k});
  if (compute_v) res.vt = zeros({k, n});
  return res;
}

// ---- standardization --------------------------------------------------------------------------

Tensor standardize_columns(const Tensor& x) {
  DAN_CHECK(
      x.dim() == 2 && x.device().is_cpu() && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
      "standardize_columns: expected a 2-D f32/f64 CPU tensor, got {} {}", shape_str(x.shape()),
      x.dtype());
  const int64_t m = x.size(0), d = x.size(1);
  const Tensor xd = raw::contiguous_copy(raw::cast(x, DType::f64), Device::cpu());
  const double* p = xd.data<double>();
  std::vector<double> mean(d, 0.0), var(d, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < d; ++j) mean[j] += p[i * d + j];
  for (int64_t j = 0; j < d; ++j) mean[j] /= std::max<int64_t>(m, 1);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < d; ++j) {
      const double c = p[i * d + j] - mean[j];
      var[j] += c * c;
    }
  std::vector<double> scale(d, 0.0);
  for (int64_t j = 0; j < d; ++j) {
    var[j] /= std::max<int64_t>(m, 1);
    scale[j] = var[j] > 1e-24 + 1e-14 * mean[j] * mean[j] ? 1.0 / std::sqrt(var[j]) : 0.0;
  }
  Tensor out = empty({m, d}, x.dtype());
  if (x.dtype() == DType::f32) {
    float* o = out.data<float>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < d; ++j)
        o[i * d + j] = static_cast<float>((p[i * d + j] - mean[j]) * scale[j]);
  } else {
    double* o = out.data<double>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < d; ++j) o[i * d + j] = (p[i * d + j] - mean[j]) * scale[j];
  }
  return out;
}

}  // namespace dan::text
