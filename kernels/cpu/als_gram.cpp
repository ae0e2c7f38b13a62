// CPU Gram matrix Y^T Y for implicit ALS (kernels/als.h: als_gram), with a summation order fixed
// by the matrix size alone: the rows are cut into buckets (their number depends on the sizes
// only), each bucket sums its rows in order into its own f64 matrix, and the buckets are added
// in order, so the result has the same bits for any thread count (OpenBLAS's sgemm does not).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/als.h"
#include "kernels/cpu/als_simd.h"

namespace dan::kernels::cpu {

namespace {

using als_detail::kParallelWork;
using als_detail::round_up;
using als_detail::use_avx2;

#ifdef DAN_ALS_X86
namespace avx2 {
// Adds Y[r0, r1)^T Y[r0, r1) into the upper triangle of B (f x f, f64), kGramChunk rows at a
// time: each chunk's 4 x 16 output tiles are summed in f32 registers, then added to B.
DAN_AVX2 void gram_rows(const float* Y, int64_t f, int64_t r0, int64_t r1, double* B, float* pad);
}  // namespace avx2
#endif

constexpr int64_t kGramChunk = 128;  // rows per zero-padded copy / register pass

int64_t gram_buckets(int64_t n, int64_t f) {
  int64_t nb = std::clamp<int64_t>(n / 2048, 1, 16);
  while (nb > 1 && nb * f * f * 8 > (int64_t{64} << 20)) --nb;  // at most 64 MiB of sums
  return nb;
}

#ifdef DAN_ALS_X86
DAN_AVX2 void avx2::gram_rows(const float* Y, int64_t f, int64_t r0, int64_t r1, double* B,
                              float* pad) {
  const int64_t fp = round_up(f, 16);
  for (int64_t c0 = r0; c0 < r1; c0 += kGramChunk) {
    const int64_t m = std::min(r1, c0 + kGramChunk) - c0;
    const float* Yc = Y + c0 * f;
    int64_t ld = f;
    if (fp != f) {  // zero-padded copy, so that every tile reads whole vectors
      for (int64_t r = 0; r < m; ++r) {
        std::memcpy(pad + r * fp, Y + (c0 + r) * f, f * sizeof(float));
        std::fill(pad + r * fp + f, pad + (r + 1) * fp, 0.0f);
      }
      Yc = pad;
      ld = fp;
    }
    alignas(32) float tmp[4][16];
    for (int64_t j0 = 0; j0 < f; j0 += 4) {
      for (int64_t k0 = j0 / 16 * 16; k0 < f; k0 += 16) {
        __m256 acc[4][2];
        for (int t = 0; t < 4; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        for (int64_t r = 0; r < m; ++r) {
          const float* y = Yc + r * ld;
          const __m256 a0 = _mm256_loadu_ps(y + k0), a1 = _mm256_loadu_ps(y + k0 + 8);
          for (int t = 0; t < 4; ++t) {
            const __m256 b = _mm256_broadcast_ss(y + j0 + t);
            acc[t][0] = _mm256_fmadd_ps(a0, b, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(a1, b, acc[t][1]);
          }
        }
        for (int t = 0; t < 4; ++t) {
          _mm256_store_ps(tmp[t], acc[t][0]);
          _mm256_store_ps(tmp[t] + 8, acc[t][1]);
        }
        for (int64_t t = 0; t < 4 && j0 + t < f; ++t) {
          const int64_t j = j0 + t;
          for (int64_t l = std::max<int64_t>(0, j - k0); l < 16 && k0 + l < f; ++l) {
            B[j * f + k0 + l] += tmp[t][l];
          }
        }
      }
    }
  }
}
#endif

void gram_rows_portable(const float* Y, int64_t f, int64_t r0, int64_t r1, double* B) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* y = Y + r * f;
    for (int64_t j = 0; j < f; ++j) {
      const double yj = y[j];
      double* Bj = B + j * f;
      for (int64_t k = j; k < f; ++k) Bj[k] += yj * y[k];
    }
  }
}

}  // namespace

Tensor als_gram(const Tensor& Y) {
  const int64_t n = Y.size(0), f = Y.size(1);
  const float* y = Y.data<float>();
  const int64_t nb = gram_buckets(n, f);
  std::vector<double> sums(static_cast<size_t>(nb * f * f), 0.0);
  const bool simd = use_avx2();
  const bool par = nb > 1 && n * f >= kParallelWork;
  const int nthreads = par ? omp_get_max_threads() : 1;
  std::vector<float> pads(static_cast<size_t>(nthreads * kGramChunk * round_up(f, 16)));
#pragma omp parallel num_threads(nthreads) if (par)
  {
    float* pad = &pads[omp_get_thread_num() * kGramChunk * round_up(f, 16)];
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t r0 = n * b / nb, r1 = n * (b + 1) / nb;
      double* B = &sums[b * f * f];
#ifdef DAN_ALS_X86
      if (simd) {
        avx2::gram_rows(y, f, r0, r1, B, pad);
        continue;
      }
#endif
      (void)simd;
      (void)pad;
      gram_rows_portable(y, f, r0, r1, B);
    }
  }
  Tensor G = raw::empty({f, f}, DType::f32);
  float* g = G.data<float>();
  for (int64_t j = 0; j < f; ++j) {
    for (int64_t k = j; k < f; ++k) {
      double s = 0;
      for (int64_t b = 0; b < nb; ++b) s += sums[(b * f + j) * f + k];
      g[j * f + k] = g[k * f + j] = static_cast<float>(s);
    }
  }
  return G;
}

}  // namespace dan::kernels::cpu
