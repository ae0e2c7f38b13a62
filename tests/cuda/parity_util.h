// Helpers for the CPU <-> CUDA parity tests: random inputs built identically on both devices,
// the same views taken on both, and element comparisons (tolerance or bitwise).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cuda/runtime.h"
#include "kernels/kernels.h"

namespace dan::parity {

namespace K = ::dan::kernels;

// The same data on the CPU and on cuda:0 (the CUDA copy is made with raw::contiguous_copy, and
// views are taken identically on both, so strides and offsets match).
struct Pair {
  Tensor cpu, gpu;
};

inline Pair on_both(const Tensor& cpu) { return {cpu, raw::contiguous_copy(cpu, Device::cuda())}; }

inline Pair uniform_pair(const Shape& s, uint32_t seed, double lo = -2.0, double hi = 2.0,
                         DType dt = DType::f32) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(numel_of(s)));
  for (double& x : v) x = u(rng);
  return on_both(from_doubles(v, s, dt));
}

// Small integers (many ties), as any dtype: bool gets 0/1.
inline Pair int_pair(const Shape& s, uint32_t seed, int lo, int hi, DType dt) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(numel_of(s)));
  for (double& x : v) x = dt == DType::b8 ? (u(rng) > 0 ? 1.0 : 0.0) : u(rng);
  return on_both(from_doubles(v, s, dt));
}

inline Pair map(const Pair& p, const std::function<Tensor(const Tensor&)>& f) {
  return {f(p.cpu), f(p.gpu)};
}

// |cpu - gpu| <= atol + rtol * max(|cpu|, |gpu|) elementwise; NaN must match NaN, inf must match.
inline void expect_close(const Tensor& c, const Tensor& g, double rtol, double atol,
                         const std::string& what, bool check_shape = true) {
  ASSERT_TRUE(c.defined() && g.defined()) << what << ": undefined result";
  ASSERT_TRUE(g.device().is_cuda()) << what << ": CUDA result is on " << g.device().str();
  if (check_shape) {
    ASSERT_EQ(shape_str(c.shape()), shape_str(g.shape())) << what;
  } else {
    ASSERT_EQ(c.numel(), g.numel()) << what;
  }
  ASSERT_EQ(dtype_name(c.dtype()), dtype_name(g.dtype())) << what;
  const std::vector<double> a = c.to_vector(), b = g.to_vector();
  int bad = 0;
  for (size_t i = 0; i < a.size() && bad < 5; ++i) {
    const bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    const bool same_inf = std::isinf(a[i]) && a[i] == b[i];
    if (both_nan || same_inf) continue;
    const double tol = atol + rtol * std::max(std::fabs(a[i]), std::fabs(b[i]));
    if (!(std::fabs(a[i] - b[i]) <= tol)) {
      ADD_FAILURE() << what << ": element " << i << " cpu " << a[i] << " cuda " << b[i]
                    << " (tol " << tol << ", shape " << shape_str(c.shape()) << ")";
      ++bad;
    }
  }
}

// Same values bit for bit (NaN payloads aside).
inline void expect_bitwise(const Tensor& c, const Tensor& g, const std::string& what) {
  ASSERT_EQ(shape_str(c.shape()), shape_str(g.shape())) << what;
  ASSERT_EQ(dtype_name(c.dtype()), dtype_name(g.dtype())) << what;
  const std::vector<double> a = c.to_vector(), b = g.to_vector();
  int bad = 0;
  for (size_t i = 0; i < a.size() && bad < 5; ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (a[i] != b[i]) {
      ADD_FAILURE() << what << ": element " << i << " differs: " << a[i] << " vs " << b[i];
      ++bad;
    }
  }
}

// Named input layouts for a base shape, covering the strided cases every kernel must handle.
struct Layout {
  std::string name;
  Shape base;
  std::function<Tensor(const Tensor&)> view;
};

inline std::vector<Layout> layouts() {
  return {
      {"contiguous[1003]", {1003}, [](const Tensor& t) { return t; }},
      {"contiguous[4,5,6]", {4, 5, 6}, [](const Tensor& t) { return t; }},
      {"transposed[37,53]", {53, 37}, [](const Tensor& t) { return raw::transpose(t, 0, 1); }},
      {"step-slice", {20, 30}, [](const Tensor& t) { return raw::slice(t, 1, 1, 30, 3); }},
      {"expanded", {1, 17}, [](const Tensor& t) { return raw::expand(t, {9, 17}); }},
      {"offset-select", {3, 41}, [](const Tensor& t) { return raw::select(t, 0, 2); }},
      {"permuted[2,3,4,5]", {5, 4, 3, 2}, [](const Tensor& t) { return raw::permute(t, {3, 2, 1, 0}); }},
      {"scalar", {}, [](const Tensor& t) { return t; }},
      {"empty[0,5]", {0, 5}, [](const Tensor& t) { return t; }},
      {"size-1 dims", {1, 1, 7}, [](const Tensor& t) { return t; }},
      {"large", {(1 << 20) + 3}, [](const Tensor& t) { return t; }},
  };
}

}  // namespace dan::parity
