// Benchmark of the CUDA implicit-ALS kernels (kernels/cuda/als.cu) on a synthetic 100k users x
// 20k items x 5M ratings matrix: the time of one full ALS iteration (YtY by GEMM, the user
// half-step, XtX, the item half-step; CG with 3 steps) at 64 / 256 / 1024 factors for both CG
// implementations (the fused kernel and the SGEMM-batched one, each the other's peer), the
// HBM bandwidth the user CG half-step reaches against the device's peak, and the Cholesky
// half-step and the loss sums next to them. Prints "skipped: no CUDA device" without a GPU.
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/common.h"
#include "bench/cuda/timing.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/cuda/runtime.h"
#include "kernels/als.h"
#include "kernels/kernels.h"

namespace dan::kernels::cuda {
// Defined in kernels/cuda/als.cu: 0 = automatic, 1 = fused CG kernel, 2 = batched.
void set_als_cg_path(int path);
}  // namespace dan::kernels::cuda

namespace {

using dan::Tensor;
namespace k = dan::kernels;
using dan::bench::EventTimer;
using dan::bench::median;

constexpr int kDev = 0;
constexpr int kCgSteps = 3;
constexpr float kReg = 0.1f;

struct Options {
  int64_t users = 100000, items = 20000, ratings = 5000000;
  std::vector<int64_t> factors = {64, 256, 1024};
  std::vector<int64_t> cholesky = {64, 256};
  int iters = 3;
};

std::vector<int64_t> parse_list(const std::string& s, const char* flag) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    if (!item.empty()) {
      char* end = nullptr;
      const long long v = std::strtoll(item.c_str(), &end, 10);
      DAN_CHECK(end != nullptr && *end == '\0' && v > 0,
                "{}: '{}' is not a positive integer (expected a list like 64,256)", flag, item);
      out.push_back(v);
    }
    pos = comma + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("usage: bench_als_cuda [--factors 64,256,1024] [--cholesky 64,256|none] "
                 "[--iters N] [--users N] [--items N] [--ratings N]\n");
      std::exit(0);
    }
    DAN_CHECK(i + 1 < argc, "bench_als_cuda: {} needs a value", a);
    if (a == "--factors") {
      o.factors = parse_list(argv[++i], "--factors");
    } else if (a == "--cholesky") {
      o.cholesky = std::string(argv[i + 1]) == "none" ? std::vector<int64_t>{}
                                                       : parse_list(argv[i + 1], "--cholesky");
      ++i;
    } else if (a == "--iters") {
      o.iters = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--users") {
      o.users = parse_list(argv[++i], "--users").at(0);
    } else if (a == "--items") {
      o.items = parse_list(argv[++i], "--items").at(0);
    } else if (a == "--ratings") {
      o.ratings = parse_list(argv[++i], "--ratings").at(0);
    } else {
      dan::fail("bench_als_cuda: unknown argument '{}' (options: --factors 64,256,1024 "
                "--cholesky 64,256|none --iters N --users N --items N --ratings N)", a);
    }
  }
  return o;
}

struct Csr {
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> values;
  int64_t rows = 0, cols = 0;
};

// Users with a skewed number of ratings (geometric-like around the mean), items drawn from a
// Zipf-like popularity (weight 1 / (rank + 10)^0.9), duplicates within a user dropped;
// confidence 1 + 40 r with r a rating in (0, 1] (Hu et al.'s alpha = 40).
Csr synthetic(const Options& o) {
  std::mt19937_64 rng(2024);
  std::vector<double> cdf(static_cast<size_t>(o.items));
  double acc = 0;
  for (int64_t i = 0; i < o.items; ++i) {
    acc += 1.0 / std::pow(static_cast<double>(i) + 10.0, 0.9);
    cdf[static_cast<size_t>(i)] = acc;
  }
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::exponential_distribution<double> len(1.0);
  const double mean = static_cast<double>(o.ratings) / static_cast<double>(o.users);
  Csr c;
  c.rows = o.users;
  c.cols = o.items;
  c.indptr.push_back(0);
  std::vector<int32_t> row;
  for (int64_t u = 0; u < o.users; ++u) {
    const int64_t n = std::min<int64_t>(o.items, 1 + static_cast<int64_t>(mean * len(rng)));
    row.clear();
    for (int64_t t = 0; t < n; ++t) {
      const double x = u01(rng) * acc;
      row.push_back(static_cast<int32_t>(std::lower_bound(cdf.begin(), cdf.end(), x) - cdf.begin()));
    }
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());
    for (int32_t i : row) {
      c.indices.push_back(std::min<int32_t>(i, static_cast<int32_t>(o.items - 1)));
      c.values.push_back(1.0f + 40.0f * static_cast<float>(1.0 - u01(rng)));
    }
    c.indptr.push_back(static_cast<int64_t>(c.indices.size()));
  }
  return c;
}

Csr transpose(const Csr& a) {
  Csr t;
  t.rows = a.cols;
  t.cols = a.rows;
  t.indptr.assign(static_cast<size_t>(t.rows + 1), 0);
  for (int32_t i : a.indices) ++t.indptr[static_cast<size_t>(i) + 1];
  for (int64_t r = 0; r < t.rows; ++r) t.indptr[r + 1] += t.indptr[r];
  std::vector<int64_t> next(t.indptr.begin(), t.indptr.end() - 1);
  t.indices.resize(a.indices.size());
  t.values.resize(a.values.size());
  for (int64_t u = 0; u < a.rows; ++u) {
    for (int64_t e = a.indptr[u]; e < a.indptr[u + 1]; ++e) {
      const int64_t pos = next[static_cast<size_t>(a.indices[e])]++;
      t.indices[pos] = static_cast<int32_t>(u);
      t.values[pos] = a.values[e];
    }
  }
  return t;
}

k::CsrTensors upload(const Csr& c) {
  const dan::Device d = dan::Device::cuda(kDev);
  k::CsrTensors t;
  t.indptr = dan::from_vector(c.indptr, {c.rows + 1}, d);
  t.indices = dan::from_vector(c.indices, {static_cast<int64_t>(c.indices.size())}, d);
  t.values = dan::from_vector(c.values, {static_cast<int64_t>(c.values.size())}, d);
  t.rows = c.rows;
  t.cols = c.cols;
  return t;
}

Tensor uniform(int64_t rows, int64_t f, uint64_t seed) {
  Tensor t = dan::raw::empty({rows, f}, dan::DType::f32, dan::Device::cuda(kDev));
  k::uniform_(t, seed, 0, -0.1, 0.1);
  return t;
}

struct IterTimes {
  double iter = 0, user_half = 0, item_half = 0;
};

// One ALS iteration: YtY, users' CG half-step, XtX, items' CG half-step. Median over `iters`
// after one warm-up iteration; the half-steps are timed inside the same runs by a second pair
// of events (the host waits at their end, so the iteration time includes those short gaps).
IterTimes time_iterations(EventTimer& outer, EventTimer& inner, Tensor& X, Tensor& Y,
                          const k::CsrTensors& Cu, const k::CsrTensors& Ci, int iters) {
  std::vector<double> it, uh, ih;
  for (int i = 0; i <= iters; ++i) {
    double user = 0, item = 0;
    const double total = outer.time_ms([&] {
      const Tensor YtY = k::als_gram(Y);
      user = inner.time_ms([&] { k::als_update_cg(X, Y, YtY, Cu, kReg, kCgSteps); });
      const Tensor XtX = k::als_gram(X);
      item = inner.time_ms([&] { k::als_update_cg(Y, X, XtX, Ci, kReg, kCgSteps); });
    });
    if (i == 0) continue;  // warm-up
    it.push_back(total);
    uh.push_back(user);
    ih.push_back(item);
  }
  return {median(it), median(uh), median(ih)};
}

void run(const Options& o) {
  const dan::cuda::DeviceProps& p = dan::cuda::device_props(kDev);
  fmt::print("bench_als_cuda: {} (cc {}.{}, {} SMs, {:.1f} GiB), peak HBM {:.0f} GB/s "
             "(2 x memory clock x bus width)\n",
             p.name, p.cc_major, p.cc_minor, p.sm_count,
             static_cast<double>(p.total_memory) / (1u << 30), p.peak_bandwidth_gbps);
  const Csr users = synthetic(o);
  const Csr items = transpose(users);
  const int64_t nnz = static_cast<int64_t>(users.indices.size());
  int64_t max_user = 0, max_item = 0;
  for (int64_t u = 0; u < users.rows; ++u) max_user = std::max(max_user, users.indptr[u + 1] - users.indptr[u]);
  for (int64_t i = 0; i < items.rows; ++i) max_item = std::max(max_item, items.indptr[i + 1] - items.indptr[i]);
  fmt::print("matrix: {} users x {} items, {} ratings (longest user row {}, longest item row {}); "
             "CG {} steps, reg {}; median of {} iterations after 1 warm-up\n",
             o.users, o.items, nnz, max_user, max_item, kCgSteps, kReg, o.iters);
  fmt::print("GB/s of a CG half-step counts the gathers of an ideal kernel: (steps + 1) passes x "
             "nnz x (f floats of y_i + index + value)\n\n");
  const k::CsrTensors Cu = upload(users), Ci = upload(items);
  EventTimer timer(kDev), inner(kDev);

  constexpr const char* kRow = "{:>7} {:<9} {:>12} {:>12} {:>12} {:>11} {:>8} {:>14}\n";
  fmt::print(kRow, "factors", "CG path", "iteration ms", "users CG ms", "items CG ms",
             "users GB/s", "% peak", "vs batched");
  fmt::print("{}\n", std::string(94, '-'));
  for (int64_t f : o.factors) {
    double batched_ms = 0;
    for (int path : {2, 1}) {
      k::cuda::set_als_cg_path(path);
      Tensor X = uniform(o.users, f, 1), Y = uniform(o.items, f, 2);
      const IterTimes t = time_iterations(timer, inner, X, Y, Cu, Ci, o.iters);
      const double bytes = static_cast<double>(kCgSteps + 1) * static_cast<double>(nnz) *
                           (4.0 * static_cast<double>(f) + 8.0);
      const double gbps = bytes / (t.user_half * 1e-3) * 1e-9;
      if (path == 2) batched_ms = t.iter;
      fmt::print(kRow, f, path == 1 ? "fused" : "batched", fmt::format("{:.2f}", t.iter),
                 fmt::format("{:.2f}", t.user_half), fmt::format("{:.2f}", t.item_half),
                 fmt::format("{:.0f}", gbps),
                 p.peak_bandwidth_gbps > 0
                     ? fmt::format("{:.1f}%", 100.0 * gbps / p.peak_bandwidth_gbps)
                     : "-",
                 path == 1 ? fmt::format("{:.2f}x faster", batched_ms / t.iter) : "-");
    }
    k::cuda::set_als_cg_path(0);
  }

  fmt::print("\n");
  constexpr const char* kRow2 = "{:>7} {:<34} {:>12}\n";
  fmt::print(kRow2, "factors", "kernel", "ms");
  fmt::print("{}\n", std::string(55, '-'));
  for (int64_t f : o.factors) {
    Tensor X = uniform(o.users, f, 3), Y = uniform(o.items, f, 4);
    const Tensor YtY = k::als_gram(Y);
    std::vector<double> t;
    for (int i = 0; i <= o.iters; ++i) {
      const double ms = timer.time_ms([&] { (void)k::als_loss_parts(X, Y, YtY, Cu); });
      if (i > 0) t.push_back(ms);
    }
    fmt::print(kRow2, f, "als_loss_parts (users)", fmt::format("{:.2f}", median(t)));
  }
  for (int64_t f : o.cholesky) {
    Tensor X = uniform(o.users, f, 5), Y = uniform(o.items, f, 6);
    const Tensor YtY = k::als_gram(Y);
    const int reps = f >= 512 ? 1 : o.iters;
    std::vector<double> t;
    for (int i = 0; i <= reps; ++i) {
      const double ms = timer.time_ms([&] { k::als_update_cholesky(X, Y, YtY, Cu, kReg); });
      if (i > 0) t.push_back(ms);
    }
    fmt::print(kRow2, f, "als_update_cholesky (users half)", fmt::format("{:.2f}", median(t)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (!dan::cuda::is_available()) {
      fmt::print("skipped: no CUDA device\n");
      return 0;
    }
    run(o);
    dan::cuda::synchronize(kDev);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_als_cuda: {}\n", e.what());
    return 1;
  }
  return 0;
}
