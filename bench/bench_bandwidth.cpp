// Benchmark: the memory-bound kernels (layer_norm, softmax; forward and backward) in GB/s of
// bytes read + written, as a percentage of a memcpy moving the same number of bytes.
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser
// (fill_t::operator=, reached through width/align specs); silence it for that header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/common.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace {

using dan::Tensor;
namespace k = dan::kernels;
using dan::bench::Clock;
using dan::bench::median;
using dan::bench::seconds_since;

// Median seconds of fn() after two warm-up calls; stops at max_reps or once budget_s is spent.
double time_median(const std::function<void()>& fn, int max_reps, double budget_s) {
  fn();
  fn();
  std::vector<double> t;
  const auto start = Clock::now();
  for (int r = 0; r < max_reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    t.push_back(seconds_since(t0));
    if (r >= 4 && seconds_since(start) > budget_s) break;
  }
  return median(t);
}

Tensor random_tensor(const dan::Shape& s, uint32_t seed) {
  Tensor t = dan::raw::empty(s, dan::DType::f32);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = n(rng);
  return t;
}

// The baseline moves `bytes` in total (bytes/2 read, bytes/2 written), split over the same
// number of threads as the kernel so that both are measured against the same ceiling.
struct MemcpyBaseline {
  std::vector<char> src, dst;
  explicit MemcpyBaseline(size_t bytes) : src(bytes / 2, 1), dst(bytes / 2, 0) {}

  void copy_warm() { parallel_copy(dst.data()); }

  // Into a freshly allocated buffer each time, as our kernels do for their outputs.
  void copy_fresh() {
    char* d = static_cast<char*>(std::aligned_alloc(64, (src.size() + 63) / 64 * 64));
    parallel_copy(d);
    std::free(d);
  }

  void parallel_copy(char* d) {
    const int64_t n = static_cast<int64_t>(src.size());
    const char* s = src.data();
#pragma omp parallel
    {
      const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
      const int64_t lo = n * id / nt, hi = n * (id + 1) / nt;
      std::memcpy(d + lo, s + lo, static_cast<size_t>(hi - lo));
    }
  }
};

struct Row {
  std::string kernel;
  std::string shape;
  double bytes;
  std::function<void()> fn;
};

}  // namespace

int main(int argc, char** argv) {
  const int cores = dan::bench::hardware_cores();
  const std::vector<int> threads = dan::bench::thread_counts_from_args(argc, argv, cores);
  constexpr double f = sizeof(float);

  std::vector<Row> rows;
  std::vector<Tensor> keep;  // inputs live as long as the closures that use them
  for (int64_t n : {4096, 32768}) {
    const int64_t d = 384;
    Tensor x = random_tensor({n, d}, 1), w = random_tensor({d}, 2), b = random_tensor({d}, 3);
    Tensor g = random_tensor({n, d}, 4);
    k::LayerNormOut fwd = k::layer_norm(x, w, b, 1e-5);
    keep.insert(keep.end(), {x, w, b, g, fwd.mean, fwd.rstd});
    const std::string shape = fmt::format("{}x{}", n, d);
    const double nd = static_cast<double>(n * d), nn = static_cast<double>(n), dd = d;
    // read x, w, b; write y, mean, rstd
    rows.push_back({"layer_norm fwd", shape, f * (2 * nd + 2 * dd + 2 * nn),
                    [=] { k::layer_norm(x, w, b, 1e-5); }});
    // read grad, x, mean, rstd, w; write dx, dweight, dbias
    rows.push_back({"layer_norm bwd", shape, f * (3 * nd + 2 * nn + 3 * dd),
                    [=, m = fwd.mean, r = fwd.rstd] { k::layer_norm_backward(g, x, m, r, w, true); }});
  }
  for (int64_t d : {128, 512}) {
    for (int64_t n : {4096, 32768}) {
      Tensor x = random_tensor({n, d}, 5), g = random_tensor({n, d}, 6);
      Tensor y = k::softmax(x);
      keep.insert(keep.end(), {x, g, y});
      const std::string shape = fmt::format("{}x{}", n, d);
      const double nd = static_cast<double>(n * d);
      rows.push_back({"softmax fwd", shape, f * 2 * nd, [=] { k::softmax(x); }});
      rows.push_back({"softmax bwd", shape, f * 3 * nd, [=] { k::softmax_backward(g, y); }});
    }
  }

  fmt::print("bench_bandwidth: memory-bound kernels vs memcpy of the same byte count\n");
  fmt::print("machine cores: {}   load average: {}\n", cores, dan::bench::load_average());
  fmt::print("GB/s = (bytes read + bytes written) / median time; memcpy moves the same total\n"
             "(half read, half written) with the same thread count; 'fresh' allocates its\n"
             "destination every call, as our kernels do for their outputs.\n");
  for (int t : threads) {
    dan::set_num_threads(t);
    fmt::print("\n== threads = {} ==\n", dan::num_threads());
    fmt::print("{:<16} {:>10} {:>9} {:>10} {:>9} {:>8} {:>11} {:>8}\n", "kernel", "shape", "MB",
               "time us", "GB/s", "memcpy", "% memcpy", "fresh");
    for (const Row& r : rows) {
      const double s = time_median(r.fn, 50, 0.6);
      MemcpyBaseline base(static_cast<size_t>(r.bytes));
      const double sm = time_median([&] { base.copy_warm(); }, 50, 0.3);
      const double sf = time_median([&] { base.copy_fresh(); }, 50, 0.3);
      const double gbs = r.bytes / s * 1e-9, mgbs = r.bytes / sm * 1e-9;
      fmt::print("{:<16} {:>10} {:>9.1f} {:>10.1f} {:>9.2f} {:>8.2f} {:>10.1f}% {:>8.2f}\n",
                 r.kernel, r.shape, r.bytes * 1e-6, s * 1e6, gbs, mgbs, 100.0 * gbs / mgbs,
                 r.bytes / sf * 1e-9);
    }
  }
  return 0;
}
