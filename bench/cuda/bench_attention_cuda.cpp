// Benchmark of the CUDA fused self-attention (kernels::attention_forward/backward, f32) on
// BERT-shaped inputs: the tiled kernels (FlashAttention-2 schedule) against the per-row naive
// kernels and the materialized form (cuBLAS scores + softmax + cuBLAS), chosen through
// DAN_ATTENTION, and DAN_ATTENTION=auto, which measures them and keeps the fastest per shape
// (its decisions are printed at the end). Reports forward and forward+backward ms, TFLOP/s
// (4 B h S^2 dh forward, 2.5x that for the backward: the usual attention FLOP count, no
// recomputation counted) and % of the device's dense FP32 (non-tensor-core) peak, and checks
// that the variants agree (exit 1 when max |diff| > 1e-3). Prints "skipped: no CUDA device"
// without a GPU.
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda/timing.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/cuda/runtime.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"

namespace {

using dan::Tensor;
namespace k = dan::kernels;

constexpr int kDev = 0;
constexpr double kMaxDiff = 1e-3;
// Dense FP32 (FFMA) peak of an H100 SXM: 132 SMs x 128 lanes x 2 x 1.98 GHz.
constexpr double kH100Fp32Tflops = 67.0;

struct Shape {
  int64_t B, S, heads, dh;
};

const char* const kAlgos[] = {"tiled", "naive", "materialized", "auto"};

struct Inputs {
  Tensor qkv, bias, grad, stats;
  double scale;
};

Inputs make_inputs(const Shape& s) {
  const int64_t H = s.heads * s.dh;
  std::mt19937 rng(7);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> q(static_cast<size_t>(s.B * s.S * 3 * H)),
      g(static_cast<size_t>(s.B * s.S * H));
  for (double& x : q) x = nd(rng);
  for (double& x : g) x = nd(rng);
  // Padded batch as a tokenizer produces it: lengths between S/2 and S, the rest masked.
  std::vector<double> kb(static_cast<size_t>(s.B * s.S), 0.0);
  std::uniform_int_distribution<int64_t> len(s.S / 2, s.S);
  for (int64_t b = 0; b < s.B; ++b) {
    const int64_t n = std::max<int64_t>(1, len(rng));
    for (int64_t j = n; j < s.S; ++j) kb[static_cast<size_t>(b * s.S + j)] = -3.4028234663852886e38;
  }
  const dan::Device dev = dan::Device::cuda(kDev);
  Inputs in;
  in.qkv = dan::from_doubles(q, {s.B, s.S, 3 * H}, dan::DType::f32).to(dev);
  in.grad = dan::from_doubles(g, {s.B, s.S, H}, dan::DType::f32).to(dev);
  in.bias = dan::from_doubles(kb, {s.B, s.S}, dan::DType::f32).to(dev);
  in.stats = dan::raw::empty({s.B, s.heads, s.S, 2}, dan::DType::f32, dev);
  in.scale = 1.0 / std::sqrt(static_cast<double>(s.dh));
  return in;
}

// Median ms of f over reps runs (after 2 warm-up runs), timed with events on the library's
// stream.
template <typename F>
double time_ms(const F& f, int reps) {
  return dan::bench::event_median_ms(kDev, 2, reps, f);
}

double max_abs_diff(const Tensor& x, const Tensor& y) {
  const std::vector<double> a = x.to_vector(), b = y.to_vector();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(a[i] - b[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

int run(int reps, double p) {
  const auto& props = dan::cuda::device_props(kDev);
  const bool is_h100 = props.name.find("H100") != std::string::npos;
  const double peak =
      is_h100 || props.peak_fp32_tflops <= 0 ? kH100Fp32Tflops : props.peak_fp32_tflops;
  fmt::print("device: {} ({} SMs); FP32 peak assumed {:.1f} TFLOP/s ({})\n", props.name,
             props.sm_count, peak,
             is_h100 || props.peak_fp32_tflops <= 0 ? "H100 SXM dense FP32, non-tensor-core"
                                                    : "from SM count x clock");
  fmt::print(
      "attention dropout p = {}; key bias pads each sequence to a random length in [S/2, S]\n"
      "(FLOPs counted on the full S x S; the tiled kernels skip the padded key tiles)\n\n",
      p);
  const std::vector<Shape> shapes = {
      {32, 128, 12, 32}, {32, 512, 12, 32}, {32, 128, 12, 64}, {32, 512, 12, 64}};
  fmt::print("{:<22} {:<13} {:>9} {:>9} {:>7} {:>11} {:>9} {:>7} {:>10}\n", "shape (B,S,h x dh)",
             "algorithm", "fwd ms", "TFLOP/s", "% peak", "fwd+bwd ms", "TFLOP/s", "% peak",
             "vs tiled");
  bool ok = true;
  for (const Shape& s : shapes) {
    const Inputs in = make_inputs(s);
    const double fwd_flop = 4.0 * s.B * s.heads * static_cast<double>(s.S) * s.S * s.dh;
    const double all_flop = fwd_flop * 3.5;
    Tensor ref_y, ref_d;
    double tiled_total = 0;
    for (const char* algo : kAlgos) {
      setenv("DAN_ATTENTION", algo, 1);
      Tensor y, d;
      auto fwd = [&] {
        y = k::attention_forward(in.qkv, in.bias, s.heads, in.scale, p, 3, 0, in.stats);
      };
      auto both = [&] {
        fwd();
        d = k::attention_backward(in.grad, in.qkv, y, in.bias, in.stats, s.heads, in.scale, p, 3,
                                  0);
      };
      const double tf = time_ms(fwd, reps), tb = time_ms(both, reps);
      if (std::strcmp(algo, "tiled") == 0) tiled_total = tb;
      const double gf = fwd_flop / (tf * 1e9), gb = all_flop / (tb * 1e9);
      std::string diff;
      if (ref_y.defined()) {
        const double dy = max_abs_diff(ref_y, y), dd = max_abs_diff(ref_d, d);
        diff = fmt::format("  max|diff| vs tiled: out {:.2g}, dqkv {:.2g}", dy, dd);
        if (!(dy <= kMaxDiff && dd <= kMaxDiff)) {
          diff += "  DISAGREE";
          ok = false;
        }
      } else {
        ref_y = y;
        ref_d = d;
      }
      fmt::print(
          "{:<22} {:<13} {:>9.3f} {:>9.2f} {:>6.1f}% {:>11.3f} {:>9.2f} {:>6.1f}% {:>9.2f}x{}\n",
          fmt::format("{}, {}, {} x {}", s.B, s.S, s.heads, s.dh), algo, tf, gf, 100.0 * gf / peak,
          tb, gb, 100.0 * gb / peak, tb / tiled_total, diff);
    }
    unsetenv("DAN_ATTENTION");
  }
  if (!ok) {
    fmt::print("FAILED: the attention variants disagree by more than {}\n", kMaxDiff);
    return 1;
  }
  fmt::print("\nvariants agree (max |diff| <= {})\nDAN_ATTENTION=auto decided:\n", kMaxDiff);
  for (const std::string& line : k::cuda::attention_decisions()) fmt::print("  {}\n", line);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  double p = 0.0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--dropout" && i + 1 < argc) {
      p = std::atof(argv[++i]);
    } else {
      fmt::print(stderr,
                 "usage: bench_attention_cuda [--reps R] [--dropout P]\n"
                 "  --reps     timed repetitions, median reported (default 10)\n"
                 "  --dropout  attention-probability dropout (default 0)\n");
      return 2;
    }
  }
  if (!dan::cuda::is_available()) {
    fmt::print("skipped: no CUDA device\n");
    return 0;
  }
  try {
    return run(reps, p);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_attention_cuda: {}\n", e.what());
    return 1;
  }
}
