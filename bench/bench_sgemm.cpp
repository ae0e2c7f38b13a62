// Benchmark: dan::kernels::matmul (f32, 2-D) against cblas_sgemm called directly on the same
// operands, so the ratio isolates what our layer adds (checks, output allocation, layout logic).
#include <cblas.h>
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser
// (fill_t::operator=, reached through width/align specs); silence it for that header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "bench/common.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace {

using dan::Tensor;
using dan::bench::Clock;
using dan::bench::median;
using dan::bench::seconds_since;

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  Tensor t = dan::raw::empty({rows, cols}, dan::DType::f32);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  float* p = t.data<float>();
  for (int64_t i = 0; i < rows * cols; ++i) p[i] = u(rng);
  return t;
}

// One operand as both sides see it: the view handed to kernels::matmul, and the pointer,
// transpose flag and leading dim handed to cblas_sgemm (on a contiguous buffer).
struct Operand {
  Tensor view;
  const float* blas_ptr = nullptr;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int ld = 0;
  Tensor keep_alive;  // the buffer blas_ptr points into when it differs from view's
};

// A [rows, cols] operand; `transposed` stores it as a [cols, rows] buffer and passes the
// transpose view; `strided` passes a column-sliced view (step 2) that forces our copy path,
// while the direct call gets an already-contiguous copy (what a caller would have to make).
Operand make_operand(int64_t rows, int64_t cols, bool transposed, bool strided, uint32_t seed) {
  Operand o;
  if (strided) {
    Tensor wide = random_matrix(rows, 2 * cols, seed);
    o.view = dan::raw::slice(wide, 1, 0, 2 * cols, 2);
    o.keep_alive = dan::raw::contiguous_copy(o.view, dan::Device::cpu());
    o.blas_ptr = o.keep_alive.data<float>();
    o.ld = static_cast<int>(cols);
    return o;
  }
  if (transposed) {
    Tensor store = random_matrix(cols, rows, seed);
    o.view = dan::raw::transpose(store, 0, 1);
    o.blas_ptr = store.data<float>();
    o.trans = CblasTrans;
    o.ld = static_cast<int>(rows);
    return o;
  }
  o.view = random_matrix(rows, cols, seed);
  o.blas_ptr = o.view.data<float>();
  o.ld = static_cast<int>(cols);
  return o;
}

struct Case {
  std::string name;
  int64_t m, k, n;
  bool a_t = false, b_t = false, a_strided = false;
};

struct Result {
  double ours_s, direct_s, max_abs_diff;
};

// Alternates ours/direct samples so clock drift and noisy neighbours hit both equally.
Result run_case(const Case& c, int max_reps, double budget_s) {
  const Operand a = make_operand(c.m, c.k, c.a_t, c.a_strided, 1);
  const Operand b = make_operand(c.k, c.n, c.b_t, false, 2);
  Tensor direct_out = dan::raw::empty({c.m, c.n}, dan::DType::f32);
  float* cp = direct_out.data<float>();
  auto direct = [&] {
    cblas_sgemm(CblasRowMajor, a.trans, b.trans, static_cast<int>(c.m), static_cast<int>(c.n),
                static_cast<int>(c.k), 1.0f, a.blas_ptr, a.ld, b.blas_ptr, b.ld, 0.0f, cp,
                static_cast<int>(c.n));
  };
  Tensor ours_out = dan::kernels::matmul(a.view, b.view);  // warm-up (and the result we check)
  direct();
  direct();
  ours_out = dan::kernels::matmul(a.view, b.view);

  double max_diff = 0.0;
  const float* op = ours_out.data<float>();
  for (int64_t i = 0; i < c.m * c.n; ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(op[i] - cp[i])));
  }
  ours_out = Tensor();

  std::vector<double> ours_t, direct_t;
  const auto start = Clock::now();
  for (int r = 0; r < max_reps; ++r) {
    auto t0 = Clock::now();
    {
      Tensor out = dan::kernels::matmul(a.view, b.view);  // freed inside the timed region
    }
    ours_t.push_back(seconds_since(t0));
    t0 = Clock::now();
    direct();
    direct_t.push_back(seconds_since(t0));
    if (r >= 2 && seconds_since(start) > budget_s) break;
  }
  return {median(ours_t), median(direct_t), max_diff};
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = dan::bench::hardware_cores();
  const std::vector<int> threads = dan::bench::thread_counts_from_args(argc, argv, cores);

  std::vector<Case> cases;
  for (int64_t s : {256, 512, 1024, 2048}) cases.push_back({fmt::format("square {}", s), s, s, s});
  // DropoutNet's first layer: x[1024,500] @ W^T, and the shapes its backward feeds to gemm.
  cases.push_back({"dropoutnet 1024x500 @ 500x800", 1024, 500, 800});
  cases.push_back({"  same, B = W^T view (linear)", 1024, 500, 800, false, true});
  cases.push_back({"  dW: g^T view @ x (800x1024 @ 1024x500)", 800, 1024, 500, true, false});
  cases.push_back({"transposed A^T @ B 1024", 1024, 1024, 1024, true, false});
  cases.push_back({"transposed A @ B^T 1024", 1024, 1024, 1024, false, true});
  cases.push_back({"transposed A^T @ B^T 1024", 1024, 1024, 1024, true, true});
  cases.push_back({"strided A[:, ::2] @ B 1024 (copy)", 1024, 1024, 1024, false, false, true});

  fmt::print("bench_sgemm: kernels::matmul vs cblas_sgemm (OpenBLAS), f32, row-major\n");
  fmt::print("machine cores: {}   load average: {}   thread counts: ", cores,
             dan::bench::load_average());
  for (int t : threads) fmt::print("{} ", t);
  fmt::print("\n(median of up to 20 alternating samples after warm-up; GFLOP/s = 2mnk/t)\n");

  for (int t : threads) {
    dan::set_num_threads(t);
    fmt::print("\n== threads = {} (OpenMP and OpenBLAS) ==\n", dan::num_threads());
    fmt::print("{:<44} {:>10} {:>10} {:>8} {:>10}\n", "case (m x k @ k x n)", "ours GF/s",
               "direct", "ratio", "max|diff|");
    for (const Case& c : cases) {
      const Result r = run_case(c, 20, 1.0);
      const double flop = 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) *
                          static_cast<double>(c.k);
      const double ours = flop / r.ours_s * 1e-9, direct = flop / r.direct_s * 1e-9;
      fmt::print("{:<44} {:>10.1f} {:>10.1f} {:>7.3f}x {:>10.2e}\n", c.name, ours, direct,
                 ours / direct, r.max_abs_diff);
    }
  }
  return 0;
}
