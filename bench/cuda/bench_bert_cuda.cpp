// Benchmark of the BERT encoder (models/bert, fused kernels, random HF-style weights) on a CUDA
// device: tokens/s and % of the FP32 (non-tensor-core) peak of the inference forward (eval,
// no grad) and of a training step (train mode with dropout, loss = sum(h * W), backward, no
// optimizer step), for MiniLM's and BERT-base's shapes at 32 x 128 and 8 x 512 tokens, under
// each self-attention variant of DAN_ATTENTION (auto: the measured fastest per shape; its
// choices are printed at the end). First checks the CUDA forward against the CPU
// (exit 1 when max |diff| > 1e-3). Prints "skipped: no CUDA device" without a GPU.
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bert_inputs.h"
#include "bench/common.h"
#include "bench/cuda/timing.h"
#include "core/cuda/context.h"
#include "core/cuda/runtime.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "models/bert/bert.h"

namespace {

using dan::Tensor;
namespace bert = dan::bert;
using dan::bench::Clock;
using ModelShape = dan::bench::BertShape;

constexpr int kDev = 0;
constexpr double kMaxDiff = 1e-3;
constexpr int kWarmup = 2;
// Dense FP32 (FFMA) peak of an H100 SXM (132 SMs x 128 lanes x 2 x 1.98 GHz); the H200 has
// the same SMs and clocks.
constexpr double kH100Fp32Tflops = 67.0;

const char* const kAlgos[] = {"tiled", "naive", "materialized", "auto"};

struct Batch {
  int64_t B, T;
};

struct Options {
  int reps = 10;
  std::vector<std::string> models = {"minilm", "base"};
  std::vector<std::string> algos = {"tiled", "naive", "materialized", "auto"};
  bool check = true;
};

// The encoder without a pooler (the loss reads last_hidden_state only), drawn on the CPU with
// HF's init. `gen` also draws the dropout masks later, so it must outlive the model.
std::shared_ptr<bert::BertModel> make_model(const ModelShape& m, dan::Generator& gen) {
  return std::make_shared<bert::BertModel>(dan::bench::bert_config(m), false, gen);
}

// Token ids in [1000, vocab) (no special tokens are needed for timing), no padding; the mask
// is all ones, so the key bias is applied as it is for a tokenized batch.
struct Inputs {
  Tensor ids, mask;
};

Inputs make_inputs(const Batch& b, int64_t vocab, dan::Device dev, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> tok(1000, vocab - 1);
  const dan::bench::TokenBatch tb = dan::bench::make_token_batch(
      b.B, b.T, [&](int64_t) { return b.T; }, [&] { return tok(rng); });
  return {tb.ids_tensor(dev), tb.mask_tensor(dev)};
}

// Median wall seconds of f over reps runs after kWarmup, the device drained before each clock
// read so queued kernels are counted (host work -- autograd, allocation -- is counted too).
double time_wall(const std::function<void()>& f, int reps) {
  for (int i = 0; i < kWarmup; ++i) f();
  dan::cuda::synchronize(kDev);
  std::vector<double> s;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    dan::cuda::synchronize(kDev);
    s.push_back(dan::bench::seconds_since(t0));
  }
  return dan::bench::median_high(s);
}

// Median device seconds of f over reps runs after kWarmup, by events on the library's stream:
// for the isolated attention kernels, whose host side is negligible.
double time_events(const std::function<void()>& f, int reps) {
  return 1e-3 * dan::bench::event_median_ms(kDev, kWarmup, reps, f);
}

// Forward FLOPs: the GEMMs (q, k, v, attention output: 4 h^2; the two FFN matrices: 2 h i; 2
// FLOPs per multiply-add) and the attention's two batched products (4 B heads T^2 dh).
// Embeddings, layer norms, softmax and GELU are not counted.
double forward_flops(const ModelShape& m, const Batch& b) {
  const double tokens = static_cast<double>(b.B * b.T), h = static_cast<double>(m.hidden);
  const double gemm = 2.0 * tokens * (4.0 * h * h + 2.0 * h * static_cast<double>(m.inter));
  const double attn = 4.0 * static_cast<double>(b.B) * static_cast<double>(b.T) *
                      static_cast<double>(b.T) * h;  // heads x dh = h
  return static_cast<double>(m.layers) * (gemm + attn);
}

double max_abs_diff(const Tensor& x, const Tensor& y) {
  const std::vector<double> a = x.to(dan::Device::cpu()).to_vector();
  const std::vector<double> b = y.to(dan::Device::cpu()).to_vector();
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = std::fabs(a[i] - b[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

// last_hidden_state of the MiniLM shape at 2 x 64 on the CPU vs on the device, per attention
// variant; false when one differs by more than kMaxDiff.
bool check_against_cpu(const ModelShape& m, const std::vector<std::string>& algos) {
  dan::Generator gen(11);
  const auto model = make_model(m, gen);
  model->eval();
  dan::NoGradGuard no_grad;
  const Inputs cpu_in = make_inputs({2, 64}, model->config().vocab_size, dan::Device::cpu(), 5);
  const Tensor ref = model->forward(cpu_in.ids, cpu_in.mask).last_hidden_state;
  model->to(dan::Device::cuda(kDev));
  const Inputs gpu_in = {cpu_in.ids.to(dan::Device::cuda(kDev)),
                         cpu_in.mask.to(dan::Device::cuda(kDev))};
  bool ok = true;
  fmt::print("check: {} shape, batch 2 x 64, eval forward, CUDA vs CPU last_hidden_state:", m.name);
  for (const std::string& algo : algos) {
    setenv("DAN_ATTENTION", algo.c_str(), 1);
    const double d = max_abs_diff(ref, model->forward(gpu_in.ids, gpu_in.mask).last_hidden_state);
    fmt::print("  {} max|diff| {:.2e}", algo, d);
    if (!(d <= kMaxDiff)) ok = false;
  }
  unsetenv("DAN_ATTENTION");
  fmt::print("{}\n", ok ? "" : fmt::format("  FAIL (> {})", kMaxDiff));
  return ok;
}

// Device time of one layer's self-attention (kernels::attention_forward, and for training
// forward with dropout + attention_backward) on random packed q|k|v of the model's shape.
struct AttnTimes {
  double fwd = 0, train = 0;
};

AttnTimes time_attention(const ModelShape& m, const Batch& b, double p, int reps) {
  const dan::Device dev = dan::Device::cuda(kDev);
  dan::Generator g(21);
  const Tensor qkv = dan::randn({b.B, b.T, 3 * m.hidden}, g).to(dev);
  const Tensor grad = dan::randn({b.B, b.T, m.hidden}, g).to(dev);
  const Tensor bias = dan::zeros({b.B, b.T}, dan::DType::f32, dev);
  const Tensor stats = dan::raw::empty({b.B, m.heads, b.T, 2}, dan::DType::f32, dev);
  const double scale = 1.0 / std::sqrt(static_cast<double>(m.hidden / m.heads));
  namespace k = dan::kernels;
  AttnTimes t;
  t.fwd = time_events([&] { k::attention_forward(qkv, bias, m.heads, scale, 0.0, 0, 0, Tensor()); },
                      reps);
  t.train = time_events(
      [&] {
        const Tensor y = k::attention_forward(qkv, bias, m.heads, scale, p, 3, 0, stats);
        k::attention_backward(grad, qkv, y, bias, stats, m.heads, scale, p, 3, 0);
      },
      reps);
  return t;
}

void run_model(const ModelShape& m, const std::vector<Batch>& batches, const Options& o,
               double peak) {
  const dan::Device dev = dan::Device::cuda(kDev);
  dan::Generator gen(11);
  const auto model = make_model(m, gen);
  model->to(dev);
  const bert::BertConfig& cfg = model->config();
  fmt::print("\n== {}: {} layers, hidden {}, {} heads, intermediate {}, {:.1f}M parameters ==\n",
             m.name, m.layers, m.hidden, m.heads, m.inter, model->num_parameters() / 1e6);
  fmt::print("{:<9} {:<13} {:>9} {:>10} {:>7} {:>9} {:>10} {:>7} {:>10} {:>11}\n", "batch",
             "attention", "fwd ms", "ktok/s", "% peak", "train ms", "ktok/s", "% peak", "attn fwd",
             "attn train");
  for (const Batch& b : batches) {
    const Inputs in = make_inputs(b, cfg.vocab_size, dev, 7);
    dan::Generator wgen(12);
    const Tensor w = dan::randn({b.B, b.T, m.hidden}, wgen).to(dev);
    const double tokens = static_cast<double>(b.B * b.T);
    const double ff = forward_flops(m, b), tf = 3.0 * ff;
    for (const std::string& algo : o.algos) {
      setenv("DAN_ATTENTION", algo.c_str(), 1);
      model->eval();
      double fwd = 0;
      {
        dan::NoGradGuard no_grad;
        fwd = time_wall([&] { model->forward(in.ids, in.mask); }, o.reps);
      }
      model->train();
      const double train = time_wall(
          [&] {
            model->zero_grad();
            const Tensor h = model->forward(in.ids, in.mask).last_hidden_state;
            dan::sum(h * w).backward();
          },
          o.reps);
      model->zero_grad();
      const AttnTimes at = time_attention(m, b, cfg.attention_probs_dropout_prob, o.reps);
      const double L = static_cast<double>(m.layers);
      fmt::print(
          "{:<9} {:<13} {:>9.2f} {:>10.1f} {:>6.1f}% {:>9.2f} {:>10.1f} {:>6.1f}% {:>9.1f}% "
          "{:>10.1f}%\n",
          fmt::format("{} x {}", b.B, b.T), algo, 1e3 * fwd, tokens / fwd / 1e3,
          100.0 * ff / fwd / (peak * 1e12), 1e3 * train, tokens / train / 1e3,
          100.0 * tf / train / (peak * 1e12), 100.0 * L * at.fwd / fwd,
          100.0 * L * at.train / train);
    }
    unsetenv("DAN_ATTENTION");
  }
  model->eval();
}

int run(const Options& o) {
  const auto start = Clock::now();
  const auto& props = dan::cuda::device_props(kDev);
  const bool pcie =
      props.name.find("PCIe") != std::string::npos || props.name.find("NVL") != std::string::npos;
  const bool known = !pcie && (props.name.find("H100") != std::string::npos ||
                               props.name.find("H200") != std::string::npos);
  const bool estimated = !known && props.peak_fp32_tflops > 0;
  const double peak = estimated ? props.peak_fp32_tflops : kH100Fp32Tflops;
  fmt::print("device: {} ({} SMs, {:.0f} MHz); FP32 peak assumed {:.1f} TFLOP/s ({})\n", props.name,
             props.sm_count, props.sm_clock_khz / 1e3, peak,
             known       ? "H100/H200 SXM dense FP32, non-tensor-core"
             : estimated ? "estimated: SMs x FP32 lanes x 2 x clock"
                         : "unknown device: H100 SXM figure used");
  fmt::print(
      "FLOPs: 2 tokens (4 h^2 + 2 h i) + 4 B heads T^2 dh per layer forward, 3x for the\n"
      "training step (forward in train mode, dropout 0.1, loss = sum(h * W), backward, no\n"
      "optimizer step); GEMMs run in full FP32 (no TF32). Wall time, device synchronized, median\n"
      "of {} after {} warm-up runs. attn fwd / attn train: layers x the isolated attention\n"
      "kernels' device time (forward; forward with dropout + backward) over the step's time.\n\n",
      o.reps, kWarmup);

  const std::vector<ModelShape> all = {dan::bench::kMiniLM, dan::bench::kBertBase};
  bool ok = true;
  if (o.check) ok = check_against_cpu(all[0], o.algos);
  const std::vector<Batch> batches = {{32, 128}, {8, 512}};
  for (const ModelShape& m : all) {
    const std::string key = m.name == "MiniLM" ? "minilm" : "base";
    if (std::find(o.models.begin(), o.models.end(), key) == o.models.end()) continue;
    run_model(m, batches, o, peak);
    dan::cuda::empty_cache();
  }
  const std::vector<std::string> decided = dan::kernels::cuda::attention_decisions();
  if (!decided.empty()) fmt::print("\nDAN_ATTENTION=auto decided:\n");
  for (const std::string& line : decided) fmt::print("  {}\n", line);
  fmt::print("\ntotal {:.1f} s\n", dan::bench::seconds_since(start));
  if (!ok) {
    fmt::print("FAILED: the CUDA forward differs from the CPU by more than {}\n", kMaxDiff);
    return 1;
  }
  return 0;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

[[noreturn]] void usage(const std::string& why = "") {
  if (!why.empty()) fmt::print(stderr, "bench_bert_cuda: {}\n", why);
  fmt::print(stderr,
             "usage: bench_bert_cuda [--reps R] [--models minilm,base] "
             "[--attention tiled,naive,materialized,auto] [--no-check]\n"
             "  --reps       timed repetitions, median reported (default 10)\n"
             "  --models     which shapes to time (default both)\n"
             "  --attention  DAN_ATTENTION variants to time (default all four)\n"
             "  --no-check   skip the CUDA-vs-CPU forward check\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // rows show as they finish, even under timeout
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--no-check") {
      o.check = false;
      continue;
    }
    if (arg == "--help" || arg == "-h") usage();
    if (arg != "--reps" && arg != "--models" && arg != "--attention")
      usage(fmt::format("unknown argument '{}'", arg));
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", arg));
    const std::string v = argv[++i];
    if (arg == "--reps") {
      o.reps = std::atoi(v.c_str());
      if (o.reps < 1) usage(fmt::format("--reps: expected a positive integer, got '{}'", v));
    } else if (arg == "--models") {
      o.models = split(v);
      if (o.models.empty()) usage("--models: empty list");
      for (const std::string& m : o.models)
        if (m != "minilm" && m != "base")
          usage(fmt::format("--models: unknown model '{}' (expected minilm or base)", m));
    } else {  // --attention
      o.algos = split(v);
      for (const std::string& a : o.algos)
        if (std::find(std::begin(kAlgos), std::end(kAlgos), a) == std::end(kAlgos))
          usage(fmt::format(
              "--attention: unknown variant '{}' (expected tiled, naive, materialized or auto)",
              a));
      if (o.algos.empty()) usage("--attention: empty list");
    }
  }
  if (!dan::cuda::is_available()) {
    fmt::print("skipped: no CUDA device\n");
    return 0;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_bert_cuda: {}\n", e.what());
    return 1;
  }
}
