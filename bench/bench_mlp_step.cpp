// Benchmark: one SGD-momentum training step of a DropoutNet-shaped MLP built from the autograd
// ops directly, against the same step in PyTorch (bench/reference/mlp_step.py, a subprocess).
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser
// (fill_t::operator=, reached through width/align specs); silence it for that header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "bench/common.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace {

using dan::Tensor;
namespace k = dan::kernels;
using dan::bench::Clock;
using dan::bench::median;
using dan::bench::ms_since;
using dan::bench::process_cpu_ms;

constexpr int64_t kBatch = 1024;
constexpr std::array<int64_t, 4> kDims = {500, 800, 400, 200};
constexpr double kLr = 0.01, kMomentum = 0.9, kEps = 1e-5, kBnMomentum = 0.1;

// The reference script builds the same values with NumPy, so both runs follow the same loss
// trajectory.
using dan::bench::det_uniform;

struct Mlp {
  std::array<Tensor, 3> w, b;        // Linear weight [out, in], bias [out]
  std::array<Tensor, 2> gamma, beta;  // BatchNorm1d affine
  std::array<Tensor, 2> run_mean, run_var;
  std::vector<Tensor> params, bufs;  // every trainable tensor, and its momentum buffer
  Tensor x, target;

  Mlp() {
    for (size_t i = 0; i < 3; ++i) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(kDims[i]));
      w[i] = det_uniform({kDims[i + 1], kDims[i]}, 10 * i + 1, -bound, bound);
      b[i] = det_uniform({kDims[i + 1]}, 10 * i + 2, -bound, bound);
      params.push_back(w[i]);
      params.push_back(b[i]);
      if (i < 2) {
        gamma[i] = dan::ones({kDims[i + 1]});
        beta[i] = dan::zeros({kDims[i + 1]});
        run_mean[i] = dan::zeros({kDims[i + 1]});
        run_var[i] = dan::ones({kDims[i + 1]});
        params.push_back(gamma[i]);
        params.push_back(beta[i]);
      }
    }
    for (Tensor& p : params) {
      p.set_requires_grad(true);
      bufs.push_back(dan::zeros(p.shape()));
    }
    x = det_uniform({kBatch, kDims[0]}, 100, -1.0, 1.0);
    target = det_uniform({kBatch, kDims[3]}, 101, -1.0, 1.0);
  }
};

struct StepTimes {
  double zero_grad, forward, backward, step, loss;
};

StepTimes train_step(Mlp& m, bool first_step) {
  StepTimes t{};
  auto t0 = Clock::now();
  for (Tensor& p : m.params) p.zero_grad_();
  t.zero_grad = ms_since(t0);

  t0 = Clock::now();
  Tensor h = m.x;
  for (size_t i = 0; i < 2; ++i) {
    h = dan::linear(h, m.w[i], m.b[i]);
    h = dan::batch_norm(h, m.gamma[i], m.beta[i], m.run_mean[i], m.run_var[i], true,
                        kBnMomentum, kEps);
    h = dan::tanh(h);
  }
  Tensor loss = dan::mse_loss(dan::linear(h, m.w[2], m.b[2]), m.target);
  t.forward = ms_since(t0);

  t0 = Clock::now();
  loss.backward();
  t.backward = ms_since(t0);

  t0 = Clock::now();
  {
    dan::NoGradGuard no_grad;
    for (size_t i = 0; i < m.params.size(); ++i) {
      k::sgd_step(m.params[i], m.params[i].grad(), m.bufs[i], kLr, kMomentum, 0.0, 0.0, false,
                  first_step);
    }
  }
  t.step = ms_since(t0);
  t.loss = loss.item();
  return t;
}

struct OursResult {
  double median_ms = 0, median_cpu_ms = 0;
  std::array<double, 4> phases{};
  double loss_first = 0, loss_last = 0;
};

OursResult run_ours(int warmup, int steps) {
  Mlp m;
  OursResult r;
  std::vector<double> totals, cpu;
  std::array<std::vector<double>, 4> phases;
  for (int s = 0; s < warmup + steps; ++s) {
    const double c0 = process_cpu_ms();
    const auto t0 = Clock::now();
    const StepTimes st = train_step(m, s == 0);  // the graph is freed inside the timed region
    const double total = ms_since(t0);
    const double cpu_ms = process_cpu_ms() - c0;
    if (s == 0) r.loss_first = st.loss;
    r.loss_last = st.loss;
    if (s < warmup) continue;
    totals.push_back(total);
    cpu.push_back(cpu_ms);
    const std::array<double, 4> p = {st.zero_grad, st.forward, st.backward, st.step};
    for (size_t i = 0; i < 4; ++i) phases[i].push_back(p[i]);
  }
  r.median_ms = median(totals);
  r.median_cpu_ms = median(cpu);
  for (size_t i = 0; i < 4; ++i) r.phases[i] = median(phases[i]);
  return r;
}

// ---- per-kernel breakdown: every kernel call of one step, timed in isolation ---------------

struct KernelRow {
  const char* phase;
  std::string name;
  std::function<void()> fn;
};

struct Timing {
  double wall_ms, cpu_ms;
};

Timing time_median_ms(const std::function<void()>& fn, int reps) {
  const dan::bench::WallCpu t = dan::bench::time_wall_cpu(1, reps, fn);
  return {1e3 * t.wall, 1e3 * t.cpu};
}

std::string shp(const Tensor& t) { return dan::shape_str(t.shape()); }

// Replays the step's kernel calls (what autograd/ops_*.cpp and the engine issue) on real
// activations, so the sum per phase can be set against the measured phase times.
void kernel_breakdown(const OursResult& ours, int reps) {
  Mlp m;
  dan::NoGradGuard no_grad;
  const auto tanh = k::UnaryOp::tanh;
  std::array<Tensor, 3> in, lin;  // input of each Linear, its output
  std::array<k::BatchNormOut, 2> bn;
  std::array<Tensor, 2> act;
  in[0] = m.x;
  for (size_t i = 0; i < 2; ++i) {
    lin[i] = k::linear(in[i], m.w[i], m.b[i]);
    bn[i] = k::batch_norm(lin[i], m.gamma[i], m.beta[i], m.run_mean[i], m.run_var[i], true,
                          kBnMomentum, kEps);
    act[i] = k::unary(tanh, bn[i].y);
    in[i + 1] = act[i];
  }
  lin[2] = k::linear(in[2], m.w[2], m.b[2]);
  const Tensor one = dan::full({}, 1.0);

  std::vector<KernelRow> rows;
  for (size_t i = 0; i < 3; ++i) {
    rows.push_back({"forward", fmt::format("linear{} {}x{}^T", i + 1, shp(in[i]), shp(m.w[i])),
                    [&, i] { k::linear(in[i], m.w[i], m.b[i]); }});
    if (i == 2) break;
    rows.push_back({"forward", fmt::format("batch_norm{} {}", i + 1, shp(lin[i])), [&, i] {
                      k::batch_norm(lin[i], m.gamma[i], m.beta[i], m.run_mean[i],
                                    m.run_var[i], true, kBnMomentum, kEps);
                    }});
    rows.push_back({"forward", fmt::format("tanh{} {}", i + 1, shp(bn[i].y)),
                    [&, i] { k::unary(tanh, bn[i].y); }});
  }
  rows.push_back({"forward", "mse_loss", [&] { k::mse_loss(lin[2], m.target); }});

  // Backward, in the engine's order, on the real upstream gradients.
  std::array<Tensor, 3> g_lin;  // gradient arriving at each Linear's output
  g_lin[2] = k::mse_loss_backward(one, lin[2], m.target);
  std::array<Tensor, 2> g_act, g_bn;
  for (int i = 1; i >= 0; --i) {
    g_act[i] = k::matmul(g_lin[i + 1], m.w[i + 1]);
    g_bn[i] = k::unary_backward(tanh, g_act[i], bn[i].y, act[i]);
    g_lin[i] = k::batch_norm_backward(g_bn[i], lin[i], m.gamma[i], bn[i].save_mean,
                                      bn[i].save_invstd, true, true).dx;
  }
  rows.push_back({"backward", "mse_loss_backward", [&] { k::mse_loss_backward(one, lin[2], m.target); }});
  for (int i = 2; i >= 0; --i) {
    const Tensor& g = g_lin[i];
    if (i > 0) {
      rows.push_back({"backward", fmt::format("linear{} dx: {} @ {}", i + 1, shp(g), shp(m.w[i])),
                      [&, i] { k::matmul(g_lin[i], m.w[i]); }});
    }
    rows.push_back({"backward", fmt::format("linear{} dW: {}^T @ {}", i + 1, shp(g), shp(in[i])),
                    [&, i] { k::matmul(dan::raw::transpose(g_lin[i], 0, 1), in[i]); }});
    rows.push_back({"backward", fmt::format("linear{} db: sum{} dim 0", i + 1, shp(g)),
                    [&, i] { k::reduce(k::ReduceOp::sum, g_lin[i], {0}, false); }});
    if (i == 0) break;
    const size_t j = static_cast<size_t>(i - 1);
    rows.push_back({"backward", fmt::format("tanh{} backward {}", j + 1, shp(g_act[j])),
                    [&, j] { k::unary_backward(tanh, g_act[j], bn[j].y, act[j]); }});
    rows.push_back({"backward", fmt::format("batch_norm{} backward {}", j + 1, shp(g_bn[j])), [&, j] {
                      k::batch_norm_backward(g_bn[j], lin[j], m.gamma[j], bn[j].save_mean,
                                             bn[j].save_invstd, true, true);
                    }});
  }
  // The engine stores a private contiguous copy of each leaf's first gradient.
  rows.push_back({"backward", "leaf .grad copies (10 params)", [&] {
                    for (const Tensor& p : m.params) dan::raw::contiguous_copy(p, dan::Device::cpu());
                  }});
  // Zero gradients keep the parameters (and momentum buffers) unchanged across the repeats.
  std::vector<Tensor> zero_grads;
  for (const Tensor& p : m.params) zero_grads.push_back(dan::zeros(p.shape()));
  for (size_t i = 0; i < m.params.size(); ++i) {
    rows.push_back({"step", fmt::format("sgd_step {}", shp(m.params[i])), [&, i] {
                      k::sgd_step(m.params[i], zero_grads[i], m.bufs[i], kLr, kMomentum, 0.0,
                                  0.0, false, false);
                    }});
  }

  fmt::print("  per-kernel breakdown (each call timed alone, median of {}; cpu = process CPU "
             "time, % = wall / step wall):\n", reps);
  fmt::print("    {:<9} {:<48} {:>8} {:>8} {:>6}\n", "phase", "kernel", "wall ms", "cpu ms",
             "%");
  const std::array<const char*, 3> phase_names = {"forward", "backward", "step"};
  const std::array<double, 3> measured = {ours.phases[1], ours.phases[2], ours.phases[3]};
  for (size_t p = 0; p < 3; ++p) {
    double sum = 0, sum_cpu = 0;
    for (const KernelRow& r : rows) {
      if (std::strcmp(r.phase, phase_names[p]) != 0) continue;
      const Timing t = time_median_ms(r.fn, reps);
      sum += t.wall_ms;
      sum_cpu += t.cpu_ms;
      fmt::print("    {:<9} {:<48} {:>8.3f} {:>8.3f} {:>5.1f}%\n", r.phase, r.name, t.wall_ms,
                 t.cpu_ms, 100.0 * t.wall_ms / ours.median_ms);
    }
    fmt::print("    {:<9} {:<48} {:>8.3f} {:>8.3f}   (measured phase: {:.3f} ms wall; the rest "
               "is autograd, allocation, accumulation)\n", phase_names[p], "= sum of kernels",
               sum, sum_cpu, measured[p]);
  }
}

// ---- the PyTorch reference ----------------------------------------------------------------

dan::bench::PeerResult run_torch(const std::string& python, const std::string& script, int threads,
                                 int warmup, int steps) {
  return dan::bench::run_peer(
      fmt::format("{0} '{1}' '{2}' --threads {3} --steps {4} --warmup {5} 2>&1",
                  dan::bench::peer_thread_env(threads), python, script, threads, steps, warmup));
}

struct Options {
  std::vector<int> threads;
  int steps = 30, warmup = 5, breakdown_reps = 20;
  bool breakdown = true;
  std::string python = "/usr/bin/python3";
  std::string script = DAN_BENCH_REFERENCE_SCRIPT;
};

Options parse(int argc, char** argv, int cores) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--threads" && has) o.threads = {std::max(1, std::atoi(argv[++i]))};
    else if (a == "--steps" && has) o.steps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--warmup" && has) o.warmup = std::max(1, std::atoi(argv[++i]));
    else if (a == "--python" && has) o.python = argv[++i];
    else if (a == "--reference" && has) o.script = argv[++i];
    else if (a == "--no-breakdown") o.breakdown = false;
    else {
      fmt::print(stderr, "usage: {} [--threads T] [--steps N] [--warmup W] [--python PATH] "
                 "[--reference mlp_step.py] [--no-breakdown]\n", argv[0]);
      std::exit(2);
    }
  }
  if (o.threads.empty()) o.threads = dan::bench::default_thread_counts(cores);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = dan::bench::hardware_cores();
  const Options opt = parse(argc, argv, cores);
  fmt::print("bench_mlp_step: DropoutNet-shaped MLP training step, ours vs PyTorch\n");
  fmt::print("batch {}, {}->{}->{}->{} (Linear->BatchNorm1d->tanh x2, Linear), MSE, SGD "
             "momentum {} lr {}\n", kBatch, kDims[0], kDims[1], kDims[2], kDims[3], kMomentum, kLr);
  fmt::print("machine cores: {}   load average: {}   warm-up {} steps, median of {} steps\n",
             cores, dan::bench::load_average(), opt.warmup, opt.steps);

  const std::array<const char*, 4> names = {"zero_grad", "forward", "backward", "step"};
  for (int t : opt.threads) {
    dan::set_num_threads(t);
    fmt::print("\n== threads = {} (ours: OpenMP + OpenBLAS; torch: set_num_threads + "
               "OMP/MKL/OPENBLAS_NUM_THREADS) ==\n", dan::num_threads());
    const OursResult ours = run_ours(opt.warmup, opt.steps);
    const dan::bench::PeerResult torch =
        run_torch(opt.python, opt.script, t, opt.warmup, opt.steps);

    fmt::print("  {:<10} {:>10} {:>10}\n", "phase (ms)", "ours", "pytorch");
    for (size_t i = 0; i < 4; ++i) {
      const std::string theirs =
          torch.ok ? fmt::format("{:.3f}", torch.j["phases_ms"][names[i]].get<double>()) : "-";
      fmt::print("  {:<10} {:>10.3f} {:>10}\n", names[i], ours.phases[i], theirs);
    }
    if (torch.ok) {
      const double tm = torch.j["median_ms"].get<double>();
      fmt::print("  {:<10} {:>10.3f} {:>10.3f}   (torch {}, {} threads)\n", "STEP", ours.median_ms,
                 tm, torch.j["torch"].get<std::string>(), torch.j["threads"].get<int>());
      fmt::print("  throughput ratio ours/PyTorch = {:.3f}x  ({})\n", tm / ours.median_ms,
                 tm >= ours.median_ms ? "we are faster" : "we are slower");
      if (t == 1) {
        const double tc = torch.j["median_cpu_ms"].get<double>();
        fmt::print("  process CPU time per step (robust to other load at 1 thread): ours {:.3f} "
                   "ms, pytorch {:.3f} ms, ratio {:.3f}x\n", ours.median_cpu_ms, tc,
                   tc / ours.median_cpu_ms);
      }
      const double tl = torch.j["loss_last"].get<double>();
      fmt::print("  loss check after {} steps (same init and data): ours {:.6f}, pytorch {:.6f}, "
                 "rel diff {:.1e}\n", opt.warmup + opt.steps, ours.loss_last, tl,
                 std::fabs(ours.loss_last - tl) / std::max(std::fabs(tl), 1e-30));
    } else {
      fmt::print("  {:<10} {:>10.3f} {:>10}   (process CPU time {:.3f} ms)\n", "STEP",
                 ours.median_ms, "-", ours.median_cpu_ms);
      fmt::print("  PyTorch reference unavailable, ours-only numbers above. Reason:\n  {}\n"
                 "  (needs Debian's python3-torch for {}; pass --python to use another)\n",
                 torch.error, opt.python);
    }
    fmt::print("  ours: loss first {:.6f}, last {:.6f}\n", ours.loss_first, ours.loss_last);
    if (opt.breakdown) kernel_breakdown(ours, opt.breakdown_reps);
  }
  return 0;
}
