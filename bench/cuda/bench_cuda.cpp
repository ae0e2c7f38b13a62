// Benchmark of the CUDA backend: memory-bound kernels in GB/s of the ideal kernel's traffic (and
// % of the device's peak HBM bandwidth), GEMMs in TFLOP/s against cublasSgemm on the same buffers.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "bench/common.h"
#include "bench/cuda/timing.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/cuda/runtime.h"
#include "kernels/kernels.h"

namespace {

using dan::Shape;
using dan::Tensor;
namespace k = dan::kernels;
using dan::bench::EventTimer;
using dan::bench::median;

constexpr int kDev = 0;
constexpr int kWarmup = 3;
constexpr int kIters = 25;
const dan::Device kCuda = dan::Device::cuda(kDev);

// Both columns of the table share one format so that the whole report lines up.
constexpr const char* kRow = "{:<30} {:<24} {:>9} {:>10} {:>8} {:>10} {:>9} {:>9}\n";

double median_ms(EventTimer& timer, const std::function<void()>& fn) {
  for (int i = 0; i < kWarmup; ++i) fn();
  dan::cuda::synchronize(kDev);
  std::vector<double> t;
  for (int i = 0; i < kIters; ++i) t.push_back(timer.time_ms(fn));
  return median(t);
}

Tensor uniform(const Shape& s, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor t = dan::raw::empty(s, dan::DType::f32, kCuda);
  k::uniform_(t, seed, 0, lo, hi);
  return t;
}

// Indices in [0, range) built on the host with a cheap LCG, then copied to the device.
Tensor random_index(int64_t n, int64_t range, uint64_t seed) {
  Tensor h = dan::raw::empty({n}, dan::DType::i64, dan::Device::cpu());
  int64_t* p = h.data<int64_t>();
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    p[i] = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(range));
  }
  return dan::raw::contiguous_copy(h, kCuda);
}

std::string shape_str(const Shape& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r;
}

// ---- memory-bound kernels ------------------------------------------------------------------

void bw_row(EventTimer& timer, const std::string& op, const std::string& shape, double bytes,
            const std::function<void()>& fn) {
  const double ms = median_ms(timer, fn);
  const double gbps = bytes / (ms * 1e-3) * 1e-9;
  const double peak = dan::cuda::device_props(kDev).peak_bandwidth_gbps;
  fmt::print(kRow, op, shape, fmt::format("{:.3f}", ms), fmt::format("{:.0f} GB/s", gbps),
             peak > 0 ? fmt::format("{:.1f}%", 100.0 * gbps / peak) : "-", "-", "-", "-");
}

void run_bandwidth(EventTimer& timer) {
  constexpr double F = sizeof(float);
  {
    const int64_t n = int64_t{1} << 26;  // 64M elements
    Tensor a = uniform({n}, 1), b = uniform({n}, 2);
    bw_row(timer, "add (contiguous)", shape_str({n}), 3.0 * F * n,
           [&] { (void)k::binary(k::BinaryOp::add, a, b); });
    Tensor x = uniform({8192, 8192}, 3), bias = uniform({8192}, 4);
    bw_row(timer, "add (broadcast row bias)", "8192x8192 + 8192", F * (2.0 * n + 8192),
           [&] { (void)k::binary(k::BinaryOp::add, x, bias); });
    bw_row(timer, "gelu (erf)", shape_str({n}), 2.0 * F * n,
           [&] { (void)k::unary(k::UnaryOp::gelu_erf, a); });
    bw_row(timer, "sum over each row (dim 1)", "8192x8192", F * (n + 8192.0),
           [&] { (void)k::reduce(k::ReduceOp::sum, x, {1}, false); });
    bw_row(timer, "sum over rows (dim 0)", "8192x8192", F * (n + 8192.0),
           [&] { (void)k::reduce(k::ReduceOp::sum, x, {0}, false); });
    bw_row(timer, "sum over all", shape_str({n}), F * (n + 1.0),
           [&] { (void)k::reduce(k::ReduceOp::sum, a, {}, false); });
  }
  for (int64_t cols : {128, 1024}) {
    const int64_t rows = (int64_t{1} << 26) / cols;
    const double n = static_cast<double>(rows * cols);
    Tensor x = uniform({rows, cols}, 5), g = uniform({rows, cols}, 6);
    Tensor y = k::softmax(x);
    bw_row(timer, "softmax fwd", shape_str({rows, cols}), 2.0 * F * n,
           [&] { (void)k::softmax(x); });
    bw_row(timer, "softmax bwd", shape_str({rows, cols}), 3.0 * F * n,
           [&] { (void)k::softmax_backward(g, y); });
  }
  for (int64_t cols : {384, 1024}) {
    const int64_t rows = cols == 384 ? 131072 : 65536;
    const double n = static_cast<double>(rows * cols), r = static_cast<double>(rows);
    const double d = static_cast<double>(cols);
    Tensor x = uniform({rows, cols}, 7), g = uniform({rows, cols}, 8);
    Tensor w = uniform({cols}, 9), b = uniform({cols}, 10);
    const k::LayerNormOut fwd = k::layer_norm(x, w, b, 1e-5);
    // Ideal: x, w, b read; y, mean, rstd written.
    bw_row(timer, "layer_norm fwd", shape_str({rows, cols}), F * (2.0 * n + 2.0 * d + 2.0 * r),
           [&] { (void)k::layer_norm(x, w, b, 1e-5); });
    // Ideal: grad, x, mean, rstd, w read; dx, dweight, dbias written.
    bw_row(timer, "layer_norm bwd", shape_str({rows, cols}), F * (3.0 * n + 2.0 * r + 3.0 * d),
           [&] { (void)k::layer_norm_backward(g, x, fwd.mean, fwd.rstd, w, true); });
  }
  {
    const int64_t n = int64_t{1} << 24;  // 16M parameters
    Tensor p = uniform({n}, 11), g = uniform({n}, 12), m = uniform({n}, 13);
    Tensor v = uniform({n}, 14, 0.0, 1.0);
    int64_t step = 1;
    // Reads param, grad, exp_avg, exp_avg_sq; writes param, exp_avg, exp_avg_sq.
    bw_row(timer, "adam_step (AdamW)", shape_str({n}), 7.0 * F * n, [&] {
      k::adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, step++, true);
    });
  }
  {
    const int64_t n = int64_t{1} << 26;
    Tensor x = uniform({n}, 15);
    uint64_t offset = 0;
    // Reads x; writes y and the scaled mask (x's dtype).
    bw_row(timer, "dropout p=0.5", shape_str({n}), 3.0 * F * n, [&] {
      (void)k::dropout(x, 0.5, 1234, offset);
      offset += static_cast<uint64_t>(n);
    });
  }
  {
    const int64_t vocab = 1000000, dim = 128, batch = 262144;
    Tensor table = uniform({vocab, dim}, 16);
    Tensor idx = random_index(batch, vocab, 17);
    const double moved = F * 2.0 * batch * dim + 8.0 * batch;
    bw_row(timer, "index_select (embedding)", fmt::format("{}x{}[{}]", vocab, dim, batch), moved,
           [&] { (void)k::index_select(table, idx); });
  }
  {
    const int64_t rows = 65536, classes = 1024;
    Tensor logits = uniform({rows, classes}, 18);
    Tensor target = random_index(rows, classes, 19);
    // Reads logits and targets; writes log_probs (and a scalar loss).
    const double moved = F * 2.0 * rows * classes + 8.0 * rows;
    bw_row(timer, "cross_entropy fwd", shape_str({rows, classes}), moved,
           [&] { (void)k::cross_entropy(logits, target, -100); });
  }
  dan::cuda::empty_cache();
}

// ---- GEMM ------------------------------------------------------------------------------------

// C[m,n] = op(A) @ op(B), row-major. A is stored [k,m] when a_t, B is stored [n,k] when b_t
// (then `linear` can take it as the weight directly).
struct GemmCase {
  std::string name;
  int64_t m, k, n;
  bool a_t = false, b_t = false;
  bool linear = false, bias = false;
};

double max_abs_diff(const Tensor& a, const Tensor& b) {
  Tensor d = k::unary(k::UnaryOp::abs, k::binary(k::BinaryOp::sub, a, b));
  return k::reduce(k::ReduceOp::max, d, {}, false).to_vector().at(0);
}

void run_gemm_case(EventTimer& timer, const GemmCase& c) {
  Tensor a_store = uniform(c.a_t ? Shape{c.k, c.m} : Shape{c.m, c.k}, 21);
  Tensor b_store = uniform(c.b_t ? Shape{c.n, c.k} : Shape{c.k, c.n}, 22);
  Tensor a = c.a_t ? dan::raw::transpose(a_store, 0, 1) : a_store;
  Tensor b = c.b_t ? dan::raw::transpose(b_store, 0, 1) : b_store;
  Tensor bias = c.bias ? uniform({c.n}, 23) : Tensor();
  Tensor c_ref = dan::raw::empty({c.m, c.n}, dan::DType::f32, kCuda);

  auto ours = [&] { return c.linear ? k::linear(a, b_store, bias) : k::matmul(a, b); };
  cublasHandle_t h = dan::cuda::cublas_handle(kDev);
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = A B is column-major C^T = B^T A^T: swap the operands, keep the buffers.
  auto peer = [&] {
    DAN_CUBLAS_CHECK(cublasSgemm(
        h, c.b_t ? CUBLAS_OP_T : CUBLAS_OP_N, c.a_t ? CUBLAS_OP_T : CUBLAS_OP_N,
        static_cast<int>(c.n), static_cast<int>(c.m), static_cast<int>(c.k), &one,
        static_cast<const float*>(b_store.raw_data()), static_cast<int>(c.b_t ? c.k : c.n),
        static_cast<const float*>(a_store.raw_data()), static_cast<int>(c.a_t ? c.m : c.k),
        &zero, static_cast<float*>(c_ref.raw_data()), static_cast<int>(c.n)));
  };

  for (int i = 0; i < kWarmup; ++i) {
    (void)ours();
    peer();
  }
  dan::cuda::synchronize(kDev);
  // Alternating samples so clock and thermal drift hit both sides alike.
  std::vector<double> t_ours, t_peer;
  for (int i = 0; i < kIters; ++i) {
    t_ours.push_back(timer.time_ms([&] { (void)ours(); }));
    t_peer.push_back(timer.time_ms(peer));
  }
  const double ms = median(t_ours), ms_peer = median(t_peer);
  const double flop = 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) *
                      static_cast<double>(c.k);
  const double tf = flop / (ms * 1e-3) * 1e-12, tf_peer = flop / (ms_peer * 1e-3) * 1e-12;
  const double peak = dan::cuda::device_props(kDev).peak_fp32_tflops;

  // The bias is not in the peer's result: compare against it added back.
  Tensor out = ours();
  const Tensor expect = c.bias ? k::binary(k::BinaryOp::add, c_ref, bias) : c_ref;
  const double diff = max_abs_diff(out, expect);

  fmt::print(kRow, c.name, fmt::format("{}x{}x{}", c.m, c.k, c.n), fmt::format("{:.3f}", ms),
             fmt::format("{:.1f} TF/s", tf),
             peak > 0 ? fmt::format("{:.1f}%", 100.0 * tf / peak) : "-",
             fmt::format("{:.1f} TF/s", tf_peer), fmt::format("{:.1f}%", 100.0 * tf / tf_peer),
             fmt::format("{:.1e}", diff));
}

void run_gemm(EventTimer& timer) {
  const std::vector<GemmCase> cases = {
      {"matmul square", 4096, 4096, 4096},
      {"linear square (W^T)", 4096, 4096, 4096, false, true, true},
      {"matmul wide", 8192, 1024, 8192},
      {"linear wide (W^T)", 8192, 1024, 8192, false, true, true},
      {"matmul dropoutnet x@W^T view", 1024, 500, 800, false, true},
      {"linear dropoutnet", 1024, 500, 800, false, true, true},
      {"linear dropoutnet +bias", 1024, 500, 800, false, true, true, true},
      {"matmul dropoutnet dX = g@W", 1024, 800, 500},
      {"matmul dropoutnet dW = g^T@x", 800, 1024, 500, true, false},
  };
  for (const GemmCase& c : cases) run_gemm_case(timer, c);
  dan::cuda::empty_cache();
}

}  // namespace

int main() {
  if (!dan::cuda::is_available()) {
    fmt::print("no CUDA device\n");
    return 0;
  }
  try {
    const dan::cuda::DeviceProps& p = dan::cuda::device_props(kDev);
    fmt::print("bench_cuda: {} (cc {}.{}, {} SMs, {:.1f} GiB)\n", p.name, p.cc_major, p.cc_minor,
               p.sm_count, static_cast<double>(p.total_memory) / (1u << 30));
    fmt::print("peak HBM bandwidth {:.0f} GB/s, peak FP32 {:.1f} TFLOP/s (spec-sheet estimates)\n",
               p.peak_bandwidth_gbps, p.peak_fp32_tflops);
    fmt::print("f32; median of {} cudaEvent-timed iterations after {} warm-up calls; GB/s counts "
               "the bytes an ideal kernel reads + writes; GEMM shape is m x k x n\n\n",
               kIters, kWarmup);
    fmt::print(kRow, "kernel", "shape", "ms", "achieved", "% peak", "cuBLAS", "vs cuBLAS",
               "max|diff|");
    fmt::print("{}\n", std::string(116, '-'));
    EventTimer timer(kDev);
    run_bandwidth(timer);
    fmt::print("{}\n", std::string(116, '-'));
    run_gemm(timer);
    dan::cuda::synchronize(kDev);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_cuda: {}\n", e.what());
    return 1;
  }
  return 0;
}
