// CPU fused transformer row kernels: bias + GELU (forward, and backward with the bias gradient
// in the same pass) and residual add + layer norm. Self-attention is in attention.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/rows.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

// The row kernels below are compiled as attention.cpp's hot loops are: without -ftrapping-math
// (selects vectorize) and with FP contraction (FMAs in the AVX2 clone).
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")

using detail::erf_t;
using detail::exp_t;
using detail::tanh_t;

// ---- bias + GELU ------------------------------------------------------------------------------

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double k2_SqrtPi = 1.12837916709551257390;
constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double kGeluKappa = 0.044715;

// y = gelu(x + b) per row; PyTorch's formulas (erf form, or the tanh approximation).
template <typename T, bool kTanh>
[[gnu::always_inline]] inline void bias_gelu_rows(const T* x, const T* b, T* y, int64_t r0,
                                                  int64_t r1, int64_t d) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * d;
    T* yr = y + r * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) {
      const T z = xr[j] + b[j];
      if constexpr (kTanh) {
        const T inner = T(kSqrt2 * k2_SqrtPi * 0.5) * (z + T(kGeluKappa) * (z * z * z));
        yr[j] = T(0.5) * z * (T(1) + tanh_t<T>(inner));
      } else {
        yr[j] = z * T(0.5) * (T(1) + erf_t<T>(z * T(kSqrt1_2)));
      }
    }
  }
}

// dx = g * gelu'(x + b) for rows [r0, r1); adds the rows' dx into acc[0:d] (the bias grad).
template <typename T, bool kTanh>
[[gnu::always_inline]] inline void bias_gelu_bwd_rows(const T* g, const T* x, const T* b, T* dx,
                                                      T* acc, int64_t r0, int64_t r1, int64_t d) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* gr = g + r * d;
    const T* xr = x + r * d;
    T* dr = dx + r * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) {
      const T z = xr[j] + b[j];
      T dz;
      if constexpr (kTanh) {
        const T z2 = z * z;
        const T beta = T(kSqrt2 * k2_SqrtPi * 0.5);
        const T t = tanh_t<T>(beta * (z + T(kGeluKappa) * (z2 * z)));
        const T left = T(0.5) * (T(1) + t);
        const T inner_d = beta * (T(1) + T(3 * kGeluKappa) * z2);
        dz = gr[j] * (left + T(0.5) * z * (T(1) - t * t) * inner_d);
      } else {
        const T cdf = T(0.5) * (T(1) + erf_t<T>(z * T(kSqrt1_2)));
        const T pdf = T(k2_SqrtPi * kSqrt1_2 * 0.5) * exp_t<T>(z * z * T(-0.5));
        dz = gr[j] * (cdf + z * pdf);
      }
      dr[j] = dz;
      acc[j] += dz;
    }
  }
}

DAN_CPU_CLONES void bias_gelu_f32(const float* x, const float* b, float* y, int64_t r0, int64_t r1,
                                  int64_t d, bool tanh_form) {
  if (tanh_form)
    bias_gelu_rows<float, true>(x, b, y, r0, r1, d);
  else
    bias_gelu_rows<float, false>(x, b, y, r0, r1, d);
}
DAN_CPU_CLONES void bias_gelu_f64(const double* x, const double* b, double* y, int64_t r0,
                                  int64_t r1, int64_t d, bool tanh_form) {
  if (tanh_form)
    bias_gelu_rows<double, true>(x, b, y, r0, r1, d);
  else
    bias_gelu_rows<double, false>(x, b, y, r0, r1, d);
}
DAN_CPU_CLONES void bias_gelu_bwd_f32(const float* g, const float* x, const float* b, float* dx,
                                      float* acc, int64_t r0, int64_t r1, int64_t d,
                                      bool tanh_form) {
  if (tanh_form)
    bias_gelu_bwd_rows<float, true>(g, x, b, dx, acc, r0, r1, d);
  else
    bias_gelu_bwd_rows<float, false>(g, x, b, dx, acc, r0, r1, d);
}
DAN_CPU_CLONES void bias_gelu_bwd_f64(const double* g, const double* x, const double* b, double* dx,
                                      double* acc, int64_t r0, int64_t r1, int64_t d,
                                      bool tanh_form) {
  if (tanh_form)
    bias_gelu_bwd_rows<double, true>(g, x, b, dx, acc, r0, r1, d);
  else
    bias_gelu_bwd_rows<double, false>(g, x, b, dx, acc, r0, r1, d);
}
void bias_gelu_fn(const float* x, const float* b, float* y, int64_t r0, int64_t r1, int64_t d,
                  bool t) {
  bias_gelu_f32(x, b, y, r0, r1, d, t);
}
void bias_gelu_fn(const double* x, const double* b, double* y, int64_t r0, int64_t r1, int64_t d,
                  bool t) {
  bias_gelu_f64(x, b, y, r0, r1, d, t);
}
void bias_gelu_bwd_fn(const float* g, const float* x, const float* b, float* dx, float* acc,
                      int64_t r0, int64_t r1, int64_t d, bool t) {
  bias_gelu_bwd_f32(g, x, b, dx, acc, r0, r1, d, t);
}
void bias_gelu_bwd_fn(const double* g, const double* x, const double* b, double* dx, double* acc,
                      int64_t r0, int64_t r1, int64_t d, bool t) {
  bias_gelu_bwd_f64(g, x, b, dx, acc, r0, r1, d, t);
}

// ---- residual add + layer norm -----------------------------------------------------------------

// s = x + r (written to s_out when given, else to a row buffer), then layer norm of s as
// kernels::layer_norm computes it (two passes in double; mean and rstd in T).
template <typename T>
[[gnu::always_inline]] inline void add_ln_rows(const T* x, const T* res, const T* w, const T* b,
                                               T* y, T* s_out, T* mean, T* rstd, T* row_buf,
                                               int64_t r0, int64_t r1, int64_t d, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * d;
    const T* rr = res + r * d;
    T* s = s_out != nullptr ? s_out + r * d : row_buf;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < d; ++j) {
      const T v = xr[j] + rr[j];
      s[j] = v;
      sum += v;
    }
    const double mu = sum / static_cast<double>(d);
    double q = 0;
#pragma omp simd reduction(+ : q)
    for (int64_t j = 0; j < d; ++j) {
      const double c = static_cast<double>(s[j]) - mu;
      q += c * c;
    }
    const double rs = 1.0 / std::sqrt(q / static_cast<double>(d) + eps);
    const T mh = static_cast<T>(mu), ml = static_cast<T>(mu - static_cast<double>(mh));
    const T k = static_cast<T>(rs);
    mean[r] = mh;
    rstd[r] = k;
    T* yr = y + r * d;
    if (w != nullptr && b != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) yr[j] = ((s[j] - mh) - ml) * k * w[j] + b[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        T v = ((s[j] - mh) - ml) * k;
        if (w != nullptr) v *= w[j];
        if (b != nullptr) v += b[j];
        yr[j] = v;
      }
    }
  }
}

DAN_CPU_CLONES void add_ln_f32(const float* x, const float* r, const float* w, const float* b,
                               float* y, float* s, float* mean, float* rstd, float* buf, int64_t r0,
                               int64_t r1, int64_t d, double eps) {
  add_ln_rows(x, r, w, b, y, s, mean, rstd, buf, r0, r1, d, eps);
}
DAN_CPU_CLONES void add_ln_f64(const double* x, const double* r, const double* w, const double* b,
                               double* y, double* s, double* mean, double* rstd, double* buf,
                               int64_t r0, int64_t r1, int64_t d, double eps) {
  add_ln_rows(x, r, w, b, y, s, mean, rstd, buf, r0, r1, d, eps);
}
void add_ln(const float* x, const float* r, const float* w, const float* b, float* y, float* s,
            float* mean, float* rstd, float* buf, int64_t r0, int64_t r1, int64_t d, double eps) {
  add_ln_f32(x, r, w, b, y, s, mean, rstd, buf, r0, r1, d, eps);
}
void add_ln(const double* x, const double* r, const double* w, const double* b, double* y,
            double* s, double* mean, double* rstd, double* buf, int64_t r0, int64_t r1, int64_t d,
            double eps) {
  add_ln_f64(x, r, w, b, y, s, mean, rstd, buf, r0, r1, d, eps);
}

#pragma GCC pop_options

Tensor contig(const Tensor& t) {
  return t.is_contiguous() ? t : raw::contiguous_copy(t, Device::cpu());
}

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}

// dx and the per-chunk bias-gradient partial sums (see bias_gelu_backward).
template <typename T>
void bias_gelu_backward_impl(const T* g, const T* x, const T* b, T* dx, T* dbias, int64_t rows,
                             int64_t d, bool approximate) {
  constexpr int64_t kChunkRows = 32;
  const int64_t chunks = std::max<int64_t>(1, (rows + kChunkRows - 1) / kChunkRows);
  std::vector<T> acc(static_cast<size_t>(chunks * d), T(0));
#pragma omp parallel for schedule(static) if (rows * d >= kParallelMin && chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t r0 = c * kChunkRows, r1 = std::min(rows, r0 + kChunkRows);
    bias_gelu_bwd_fn(g, x, b, dx, acc.data() + c * d, r0, r1, d, approximate);
  }
  std::vector<double> tot(static_cast<size_t>(d), 0.0);
  for (int64_t c = 0; c < chunks; ++c) {
    const T* p = acc.data() + c * d;
    for (int64_t j = 0; j < d; ++j) tot[static_cast<size_t>(j)] += p[j];
  }
  for (int64_t j = 0; j < d; ++j) dbias[j] = static_cast<T>(tot[static_cast<size_t>(j)]);
}

}  // namespace

Tensor bias_gelu(const Tensor& x_in, const Tensor& bias_in, bool approximate) {
  const Tensor x = contig(x_in), b = contig(bias_in);
  Tensor y = raw::empty(x.shape(), x.dtype());
  const int64_t d = x.size(-1);
  if (x.numel() == 0) return y;
  DAN_DISPATCH_FLOAT(x.dtype(), "bias_gelu", [&]<typename T>() {
    const T* xp = static_cast<const T*>(x.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* yp = static_cast<T*>(y.raw_data());
    for_row_blocks(x.numel() / d, d, [&](int64_t r0, int64_t r1) {
      bias_gelu_fn(xp, bp, yp, r0, r1, d, approximate);
    });
  });
  return y;
}

// The bias gradient is a column sum: rows are cut into chunks by shape alone, each chunk sums
// in T into its own buffer, and the buffers are added in chunk order in double, so the result
// does not depend on the thread count.
std::vector<Tensor> bias_gelu_backward(const Tensor& grad_in, const Tensor& x_in,
                                       const Tensor& bias_in, bool approximate) {
  const Tensor g = contig(grad_in), x = contig(x_in), b = contig(bias_in);
  Tensor dx = raw::empty(x.shape(), x.dtype());
  const int64_t d = x.size(-1);
  Tensor db = raw::empty({d}, x.dtype());
  DAN_DISPATCH_FLOAT(x.dtype(), "bias_gelu_backward", [&]<typename T>() {
    const T* gp = static_cast<const T*>(g.raw_data());
    const T* xp = static_cast<const T*>(x.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* dp = static_cast<T*>(dx.raw_data());
    const int64_t rows = d == 0 ? 0 : x.numel() / d;
    bias_gelu_backward_impl<T>(gp, xp, bp, dp, static_cast<T*>(db.raw_data()), rows, d,
                               approximate);
  });
  return {dx, db};
}

LayerNormOut add_layer_norm(const Tensor& x_in, const Tensor& residual_in, const Tensor& weight,
                            const Tensor& bias, double eps, const Tensor& sum_out) {
  const Tensor x = contig(x_in), r = contig(residual_in);
  const Tensor w = weight.defined() ? contig(weight) : Tensor();
  const Tensor b = bias.defined() ? contig(bias) : Tensor();
  const int64_t d = x.size(-1);
  const int64_t rows = d == 0 ? 0 : x.numel() / d;
  LayerNormOut o;
  o.y = raw::empty(x.shape(), x.dtype());
  o.mean = raw::empty({rows}, x.dtype());
  o.rstd = raw::empty({rows}, x.dtype());
  if (rows == 0) return o;
  DAN_DISPATCH_FLOAT(x.dtype(), "add_layer_norm", [&]<typename T>() {
    const T* xp = static_cast<const T*>(x.raw_data());
    const T* rp = static_cast<const T*>(r.raw_data());
    const T* wp = ptr_or_null<T>(w);
    const T* bp = ptr_or_null<T>(b);
    T* yp = static_cast<T*>(o.y.raw_data());
    T* sp = sum_out.defined() ? static_cast<T*>(sum_out.raw_data()) : nullptr;
    T* mp = static_cast<T*>(o.mean.raw_data());
    T* kp = static_cast<T*>(o.rstd.raw_data());
    for_row_blocks(rows, d, [&](int64_t r0, int64_t r1) {
      std::vector<T> buf(sp == nullptr ? static_cast<size_t>(d) : 0);
      add_ln(xp, rp, wp, bp, yp, sp, mp, kp, buf.data(), r0, r1, d, eps);
    });
  });
  return o;
}

}  // namespace dan::kernels::cpu
