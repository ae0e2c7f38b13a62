// CPU layer norm (rows over the last dim) and batch norm ([N, C], statistics per column),
// forward and backward, with PyTorch's semantics. Reductions accumulate in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/rows.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

Tensor contig(const Tensor& t) {
  return t.is_contiguous() ? t : raw::contiguous_copy(t, Device::cpu());
}

template <typename T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}


// Per-column sums over rows that give the same bits for any thread count: the rows are cut
// into chunks by shape alone, each chunk accumulates `nvec` vectors of `cols` doubles in its
// own buffer (f(r0, r1, acc)), and the buffers are added in chunk order.
template <typename F>
std::vector<double> column_sums(int64_t rows, int64_t cols, int64_t nvec, const F& f) {
  constexpr int64_t kMaxChunks = 64, kMinChunkRows = 8, kMaxBufferDoubles = int64_t{1} << 22;
  const int64_t width = nvec * cols;
  int64_t nchunks = std::min<int64_t>(kMaxChunks, rows / kMinChunkRows);
  nchunks = std::min<int64_t>(nchunks, kMaxBufferDoubles / std::max<int64_t>(width, 1));
  nchunks = std::max<int64_t>(nchunks, 1);
  const int64_t chunk = (rows + nchunks - 1) / nchunks;
  std::vector<double> acc(static_cast<size_t>(nchunks * width), 0.0);
  const bool par = rows * cols >= kParallelMin && nchunks > 1;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t r0 = std::min(rows, c * chunk);
    f(r0, std::min(rows, r0 + chunk), acc.data() + c * width);
  }
  for (int64_t c = 1; c < nchunks; ++c) {
    const double* src = acc.data() + c * width;
    for (int64_t j = 0; j < width; ++j) acc[j] += src[j];
  }
  acc.resize(static_cast<size_t>(width));
  return acc;
}

// ---- layer norm ------------------------------------------------------------------------------

template <typename T>
struct LnFwd {
  const T* x;
  const T* w;  // may be null
  const T* b;  // may be null
  T* y;
  T* mean;
  T* rstd;
  int64_t d;
  double eps;
};

template <typename T>
[[gnu::always_inline]] inline void ln_fwd_rows(const LnFwd<T>& a, int64_t r0, int64_t r1) {
  const int64_t d = a.d;
  for (int64_t r = r0; r < r1; ++r) {
    const T* x = a.x + r * d;
    T* y = a.y + r * d;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += x[j];
    const double mu = s / static_cast<double>(d);
    // Two passes (not E[x^2] - mean^2): the row is in cache and this cannot cancel.
    double q = 0;
#pragma omp simd reduction(+ : q)
    for (int64_t j = 0; j < d; ++j) {
      const double c = static_cast<double>(x[j]) - mu;
      q += c * c;
    }
    const double rs = 1.0 / std::sqrt(q / static_cast<double>(d) + a.eps);
    a.rstd[r] = static_cast<T>(rs);
    // The mean as hi + lo in T: x - hi is exact for x near the mean, so rows with a large
    // mean and a small spread keep full precision in f32 (lo is 0 for f64).
    const T mh = static_cast<T>(mu), ml = static_cast<T>(mu - static_cast<double>(mh));
    const T k = static_cast<T>(rs);
    a.mean[r] = mh;
    const T* w = a.w;
    const T* b = a.b;
    if (w != nullptr && b != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) y[j] = ((x[j] - mh) - ml) * k * w[j] + b[j];
    } else if (w != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) y[j] = ((x[j] - mh) - ml) * k * w[j];
    } else if (b != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) y[j] = ((x[j] - mh) - ml) * k + b[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) y[j] = ((x[j] - mh) - ml) * k;
    }
  }
}

template <typename T>
struct LnBwd {
  const T* g;
  const T* x;
  const T* mean;
  const T* rstd;
  const T* w;  // may be null
  T* dx;
  int64_t d;
};

// dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat)); with acc != null it also adds
// g*xhat (dweight) and g (dbias) of these rows into acc[0:d] and acc[d:2d].
template <typename T>
[[gnu::always_inline]] inline void ln_bwd_rows(const LnBwd<T>& a, int64_t r0, int64_t r1,
                                               double* acc) {
  const int64_t d = a.d;
  const T* w = a.w;
  for (int64_t r = r0; r < r1; ++r) {
    const T* g = a.g + r * d;
    const T* x = a.x + r * d;
    T* dx = a.dx + r * d;
    const T m = a.mean[r], k = a.rstd[r];
    double s1 = 0, s2 = 0;
    if (w != nullptr) {
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t j = 0; j < d; ++j) {
        const T gw = g[j] * w[j];
        s1 += gw;
        s2 += static_cast<double>(gw) * ((x[j] - m) * k);
      }
    } else {
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t j = 0; j < d; ++j) {
        s1 += g[j];
        s2 += static_cast<double>(g[j]) * ((x[j] - m) * k);
      }
    }
    const T c1 = static_cast<T>(s1 / static_cast<double>(d));
    const T c2 = static_cast<T>(s2 / static_cast<double>(d));
    if (w != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) dx[j] = k * (g[j] * w[j] - c1 - (x[j] - m) * k * c2);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) dx[j] = k * (g[j] - c1 - (x[j] - m) * k * c2);
    }
    if (acc != nullptr) {
      double* dw = acc;
      double* db = acc + d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        dw[j] += static_cast<double>(g[j]) * ((x[j] - m) * k);
        db[j] += g[j];
      }
    }
  }
}

// AVX2+FMA and baseline versions of the row kernels, selected once at load time (the OpenMP
// regions stay outside, so every thread runs the selected clone).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DAN_CPU_CLONES
#endif

DAN_CPU_CLONES void ln_fwd_f32(const LnFwd<float>& a, int64_t r0, int64_t r1) {
  ln_fwd_rows(a, r0, r1);
}
DAN_CPU_CLONES void ln_fwd_f64(const LnFwd<double>& a, int64_t r0, int64_t r1) {
  ln_fwd_rows(a, r0, r1);
}
DAN_CPU_CLONES void ln_bwd_f32(const LnBwd<float>& a, int64_t r0, int64_t r1, double* acc) {
  ln_bwd_rows(a, r0, r1, acc);
}
DAN_CPU_CLONES void ln_bwd_f64(const LnBwd<double>& a, int64_t r0, int64_t r1, double* acc) {
  ln_bwd_rows(a, r0, r1, acc);
}

void ln_fwd(const LnFwd<float>& a, int64_t r0, int64_t r1) { ln_fwd_f32(a, r0, r1); }
void ln_fwd(const LnFwd<double>& a, int64_t r0, int64_t r1) { ln_fwd_f64(a, r0, r1); }
void ln_bwd(const LnBwd<float>& a, int64_t r0, int64_t r1, double* acc) {
  ln_bwd_f32(a, r0, r1, acc);
}
void ln_bwd(const LnBwd<double>& a, int64_t r0, int64_t r1, double* acc) {
  ln_bwd_f64(a, r0, r1, acc);
}

// Rows of the last-dim normalization, as the dispatcher and the CUDA backend count them (a
// [3, 0] input has no rows).
int64_t row_count(const Tensor& x) {
  const int64_t d = x.size(-1);
  return d == 0 ? 0 : x.numel() / d;
}

template <typename T>
Tensor to_tensor(const std::vector<double>& v, int64_t off, int64_t n, DType dt) {
  Tensor t = raw::empty({n}, dt);
  T* p = static_cast<T*>(t.raw_data());
  for (int64_t j = 0; j < n; ++j) p[j] = static_cast<T>(v[off + j]);
  return t;
}

// ---- batch norm --------------------------------------------------------------------------------

// Column means and biased variances of a contiguous [n, c] matrix (two passes, like the rows
// of layer norm, so large means do not cancel).
template <typename T>
void column_moments(const T* x, int64_t n, int64_t c, std::vector<double>* mean,
                    std::vector<double>* var) {
  *mean = column_sums(n, c, 1, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) acc[j] += xr[j];
    }
  });
  for (double& m : *mean) m /= static_cast<double>(n);
  const double* mu = mean->data();
  *var = column_sums(n, c, 1, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) {
        const double dv = static_cast<double>(xr[j]) - mu[j];
        acc[j] += dv * dv;
      }
    }
  });
  for (double& v : *var) v /= static_cast<double>(n);
}

// y = ((x - mean_hi) - mean_lo) * scale + b with per-column coefficients (b may be null); the
// mean is split in two as in layer norm so that large means keep f32 precision.
template <typename T>
void bn_apply(const T* x, T* y, int64_t n, int64_t c, const std::vector<T>& mean_hi,
              const std::vector<T>& mean_lo, const std::vector<T>& scale, const T* b) {
  const T* mh = mean_hi.data();
  const T* ml = mean_lo.data();
  const T* k = scale.data();
  for_row_blocks(n, c, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * c;
      T* yr = y + r * c;
      if (b != nullptr) {
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) yr[j] = ((xr[j] - mh[j]) - ml[j]) * k[j] + b[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) yr[j] = ((xr[j] - mh[j]) - ml[j]) * k[j];
      }
    }
  });
}

template <typename T>
void update_running(const Tensor& running, const std::vector<double>& batch, double momentum) {
  T* p = static_cast<T*>(running.raw_data());
  const int64_t s = running.stride(0);
  for (size_t j = 0; j < batch.size(); ++j) {
    T& r = p[static_cast<int64_t>(j) * s];
    r = static_cast<T>((1.0 - momentum) * static_cast<double>(r) + momentum * batch[j]);
  }
}

template <typename T>
BatchNormOut batch_norm_impl(const Tensor& x_in, const Tensor& weight, const Tensor& bias,
                             const Tensor& running_mean, const Tensor& running_var, bool training,
                             double momentum, double eps) {
  const Tensor x = contig(x_in);
  const int64_t n = x.size(0), c = x.size(1);
  const DType dt = x.dtype();
  const Tensor w = weight.defined() ? contig(weight) : Tensor();
  const Tensor b = bias.defined() ? contig(bias) : Tensor();
  const T* xp = static_cast<const T*>(x.raw_data());
  std::vector<double> mean, var;  // statistics used for normalization
  if (training) {
    column_moments(xp, n, c, &mean, &var);
    if (running_mean.defined()) update_running<T>(running_mean, mean, momentum);
    if (running_var.defined()) {
      std::vector<double> unbiased(var);
      for (double& v : unbiased) v *= static_cast<double>(n) / static_cast<double>(n - 1);
      update_running<T>(running_var, unbiased, momentum);
    }
  } else {
    const std::vector<double> rm = contig(running_mean).to_vector();
    const std::vector<double> rv = contig(running_var).to_vector();
    mean = rm;
    var = rv;
  }
  BatchNormOut out;
  out.save_mean = raw::empty({c}, dt);
  out.save_invstd = raw::empty({c}, dt);
  T* sm = static_cast<T*>(out.save_mean.raw_data());
  T* si = static_cast<T*>(out.save_invstd.raw_data());
  std::vector<T> mean_hi(c), mean_lo(c), scale(c);
  const T* wp = data_or_null<T>(w);
  for (int64_t j = 0; j < c; ++j) {
    const double invstd = 1.0 / std::sqrt(var[j] + eps);
    mean_hi[j] = static_cast<T>(mean[j]);
    mean_lo[j] = static_cast<T>(mean[j] - static_cast<double>(mean_hi[j]));
    sm[j] = mean_hi[j];
    si[j] = static_cast<T>(invstd);
    scale[j] = static_cast<T>(wp != nullptr ? invstd * static_cast<double>(wp[j]) : invstd);
  }
  out.y = raw::empty(x.shape(), dt);
  bn_apply(xp, static_cast<T*>(out.y.raw_data()), n, c, mean_hi, mean_lo, scale,
           data_or_null<T>(b));
  return out;
}

template <typename T>
BatchNormGrads batch_norm_backward_impl(const Tensor& grad, const Tensor& x_in,
                                        const Tensor& weight, const Tensor& save_mean,
                                        const Tensor& save_invstd, bool training,
                                        bool need_affine) {
  const Tensor g = contig(grad), x = contig(x_in);
  const int64_t n = x.size(0), c = x.size(1);
  const DType dt = x.dtype();
  const std::vector<double> mean = contig(save_mean).to_vector();
  const std::vector<double> invstd = contig(save_invstd).to_vector();
  const std::vector<double> w =
      weight.defined() ? contig(weight).to_vector() : std::vector<double>(c, 1.0);
  const T* gp = static_cast<const T*>(g.raw_data());
  const T* xp = static_cast<const T*>(x.raw_data());
  const double* mu = mean.data();
  // sums[0:c] = sum g, sums[c:2c] = sum (x - mean) * g, per column.
  std::vector<double> sums;
  if (training || need_affine) {
    sums = column_sums(n, c, 2, [&](int64_t r0, int64_t r1, double* acc) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* gr = gp + r * c;
        const T* xr = xp + r * c;
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) {
          acc[j] += gr[j];
          acc[c + j] += (static_cast<double>(xr[j]) - mu[j]) * gr[j];
        }
      }
    });
  }
  // dx = (g - a - (x - mean) * k) * s per column; eval mode is the a = k = 0 case.
  std::vector<T> a(c, T(0)), k(c, T(0)), s(c), m(c);
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t j = 0; j < c; ++j) {
    if (training) {
      a[j] = static_cast<T>(sums[j] * inv_n);
      k[j] = static_cast<T>(sums[c + j] * invstd[j] * invstd[j] * inv_n);
    }
    s[j] = static_cast<T>(invstd[j] * w[j]);
    m[j] = static_cast<T>(mean[j]);
  }
  BatchNormGrads out;
  out.dx = raw::empty(x.shape(), dt);
  T* dxp = static_cast<T*>(out.dx.raw_data());
  const T *ap = a.data(), *kp = k.data(), *sp = s.data(), *mp = m.data();
  for_row_blocks(n, c, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* gr = gp + r * c;
      const T* xr = xp + r * c;
      T* dr = dxp + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) dr[j] = (gr[j] - ap[j] - (xr[j] - mp[j]) * kp[j]) * sp[j];
    }
  });
  if (need_affine) {
    std::vector<double> dw(c);
    for (int64_t j = 0; j < c; ++j) dw[j] = sums[c + j] * invstd[j];
    out.dweight = to_tensor<T>(dw, 0, c, dt);
    out.dbias = to_tensor<T>(sums, 0, c, dt);
  }
  return out;
}

}  // namespace

LayerNormOut layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, double eps) {
  const Tensor x = contig(x_in);
  const Tensor w = weight.defined() ? contig(weight) : Tensor();
  const Tensor b = bias.defined() ? contig(bias) : Tensor();
  const int64_t rows = row_count(x), d = x.size(-1);
  LayerNormOut out;
  out.y = raw::empty(x.shape(), x.dtype());
  out.mean = raw::empty({rows}, x.dtype());
  out.rstd = raw::empty({rows}, x.dtype());
  DAN_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&]<typename T>() {
    const LnFwd<T> a{static_cast<const T*>(x.raw_data()),
                     data_or_null<T>(w),
                     data_or_null<T>(b),
                     static_cast<T*>(out.y.raw_data()),
                     static_cast<T*>(out.mean.raw_data()),
                     static_cast<T*>(out.rstd.raw_data()),
                     d,
                     eps};
    for_row_blocks(rows, d, [&](int64_t r0, int64_t r1) { ln_fwd(a, r0, r1); });
  });
  return out;
}

LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& x_in, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, bool need_affine) {
  const Tensor g = contig(grad), x = contig(x_in);
  const Tensor mu = contig(mean), rs = contig(rstd);
  const Tensor w = weight.defined() ? contig(weight) : Tensor();
  const int64_t rows = row_count(x), d = x.size(-1);
  LayerNormGrads out;
  out.dx = raw::empty(x.shape(), x.dtype());
  DAN_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", [&]<typename T>() {
    const LnBwd<T> a{static_cast<const T*>(g.raw_data()),
                     static_cast<const T*>(x.raw_data()),
                     static_cast<const T*>(mu.raw_data()),
                     static_cast<const T*>(rs.raw_data()),
                     data_or_null<T>(w),
                     static_cast<T*>(out.dx.raw_data()),
                     d};
    if (!need_affine) {
      for_row_blocks(rows, d, [&](int64_t r0, int64_t r1) { ln_bwd(a, r0, r1, nullptr); });
      return;
    }
    const std::vector<double> sums = column_sums(
        rows, d, 2, [&](int64_t r0, int64_t r1, double* acc) { ln_bwd(a, r0, r1, acc); });
    out.dweight = to_tensor<T>(sums, 0, d, x.dtype());
    out.dbias = to_tensor<T>(sums, d, d, x.dtype());
  });
  return out;
}

BatchNormOut batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Tensor& running_mean, const Tensor& running_var, bool training,
                        double momentum, double eps) {
  return DAN_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&]<typename T>() {
    return batch_norm_impl<T>(x, weight, bias, running_mean, running_var, training, momentum, eps);
  });
}

BatchNormGrads batch_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   bool training, bool need_affine) {
  return DAN_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&]<typename T>() {
    return batch_norm_backward_impl<T>(grad, x, weight, save_mean, save_invstd, training,
                                       need_affine);
  });
}

}  // namespace dan::kernels::cpu
