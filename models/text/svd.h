// Truncated SVD of a sparse matrix by randomized range finding (Halko, Martinsson, Tropp 2011,
// algorithms 4.4 + 5.1): Y = A Ω with a Gaussian Ω drawn from Philox, q power iterations
// Y = A (Aᵀ Q) each followed by re-orthonormalization, then the exact SVD of the small
// projected matrix B = Qᵀ A through a Jacobi eigen-decomposition of B Bᵀ. Dense products go
// through kernels::matmul (OpenBLAS), sparse x dense products are OpenMP loops over CSR rows.
// Reproducible run to run at a given thread count; at another thread count OpenBLAS's GEMMs
// round differently (the sparse products and the eigen-solver do not depend on it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "recsys/csr.h"

namespace dan::text {

struct SvdConfig {
  int64_t oversample = 10;  // extra random directions beyond the requested rank
  int power_iters = 4;      // q; 0 = plain range finder
  uint64_t seed = 0;        // Philox seed of Ω
  std::string key() const;
};

struct TruncatedSvd {
  std::vector<double> singular_values;  // k values, descending
  Tensor u;   // [rows, k] f32, left singular vectors (orthonormal columns)
  Tensor vt;  // [k, cols] f32, right singular vectors; only when compute_v, else undefined
  // U diag(S): the rows of A projected on the top-k right singular vectors (= A V), as
  // scikit-learn's TruncatedSVD.fit_transform returns them.
  Tensor transform() const;
};

// The top-k singular triplets of `a`. k may exceed the rank of `a`: components beyond the
// numerical rank (including beyond min(rows, cols)) come back as zero singular values with
// zero vectors, so the shapes are always [rows, k] / [k, cols]. Signs follow scikit-learn's
// svd_flip (the largest-magnitude entry of each column of U is positive).
TruncatedSvd randomized_svd(const recsys::Csr& a, int64_t k, const SvdConfig& cfg = {},
                            bool compute_v = false);

// Per-column z-scores of a 2-D f32/f64 tensor (population standard deviation); constant columns
// become 0. Returns a new tensor.
Tensor standardize_columns(const Tensor& x);

// --- building blocks, exposed for tests -------------------------------------------------------

// a [m, n] (CSR) @ b [n, l] -> [m, l] (b f32 or f64; the result and its sums in b's dtype).
// Rows run in parallel, each summed in entry order, so the bits do not depend on threads.
Tensor csr_matmul(const recsys::Csr& a, const Tensor& b);

// Eigen-decomposition of the symmetric n x n matrix `a` (row-major, f64) by cyclic Jacobi
// rotations. Returns eigenvalues in descending order and, row by row, the matching unit
// eigenvectors (vectors[i*n .. i*n+n) belongs to values[i]).
struct SymEigen {
  std::vector<double> values;
  std::vector<double> vectors;
  int sweeps = 0;  // sweeps until convergence
};
SymEigen jacobi_eigh(std::vector<double> a, int64_t n);

// An orthonormal basis of the column space of y [m, l] (f64) by pivoted Cholesky QR, run twice
// for orthogonality to working precision (once: orthogonal up to roundoff times cond(y)^2,
// enough to keep power iterations well conditioned). Columns that are numerically dependent
// on the others (relative residual norm below 1e-6) are dropped: the result is [m, r], r <= l.
Tensor orthonormal_basis(const Tensor& y, bool twice = true);

}  // namespace dan::text
