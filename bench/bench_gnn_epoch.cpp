// Benchmark: one full-graph training epoch (forward, cross-entropy over every node, backward,
// Adam step) of a 2-layer GCN (GCNConv, cached normalization) and a 2-layer GINE (GINEConv with
// edge features and trainable ε) on a synthetic power-law graph (200k nodes, 2M edges by
// default), against the same models written in plain PyTorch (bench/reference/gnn_epoch.py)
// in the same run and at the same thread count. Parameters, features, labels and edges come
// from one splitmix64 stream on both sides, so the printed losses double as a cross-check.
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "autograd/ops.h"
#include "core/sparse.h"
#include "core/threads.h"
#include "layers/gcn.h"
#include "layers/gine.h"
#include "layers/mlp.h"
#include "layers/optim/adam.h"

namespace {

using dan::SparseCsr;
using dan::Tensor;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

uint64_t splitmix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// splitmix64(seed << 32 | i) -> top 24 bits -> lo + (hi - lo) u (the reference does the same).
Tensor det_uniform(const dan::Shape& shape, uint64_t seed, double lo, double hi) {
  Tensor t = dan::raw::empty(shape, dan::DType::f32);
  float* p = t.data<float>();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double u =
        static_cast<double>(splitmix((seed << 32) + static_cast<uint64_t>(i)) >> 40) / 16777216.0;
    p[i] = static_cast<float>(lo + (hi - lo) * u);
  }
  return t;
}

// The power-law generator of bench_spmm: endpoints floor(N u^2), scattered by a bijection.
void power_law(int64_t nodes, int64_t edges, std::vector<int32_t>& src, std::vector<int32_t>& dst) {
  uint64_t mult = 2654435761ull % static_cast<uint64_t>(nodes);
  while (std::gcd(mult, static_cast<uint64_t>(nodes)) != 1) ++mult;
  src.resize(edges);
  dst.resize(edges);
  auto draw = [&](uint64_t key) {
    const double u = static_cast<double>(splitmix(key) >> 11) / 9007199254740992.0;
    const auto i = static_cast<uint64_t>(static_cast<double>(nodes) * u * u);
    return static_cast<int32_t>((std::min<uint64_t>(i, nodes - 1) * mult) %
                                static_cast<uint64_t>(nodes));
  };
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < edges; ++e) {
    src[e] = draw((uint64_t{1} << 40) + 2 * static_cast<uint64_t>(e));
    dst[e] = draw((uint64_t{1} << 40) + 2 * static_cast<uint64_t>(e) + 1);
  }
}

struct Config {
  int64_t nodes = 200000, edges = 2000000, features = 64, hidden = 64, classes = 16, edge_dim = 8;
  double lr = 0.01;
};

// Every parameter, in named_parameters() order k = 0, 1, ..., drawn from seed base + k:
// 2-D [out, in] weights U(±1/sqrt(in)), 1-D ones U(±0.1), GINE's ε set to 0.
void init_params(dan::Module& m, uint64_t base) {
  dan::NoGradGuard ng;
  uint64_t k = 0;
  for (const auto& [name, p] : m.named_parameters()) {
    Tensor v;
    if (name.ends_with("eps")) {
      v = dan::zeros(p.shape());
    } else if (p.dim() == 2) {
      const double b = 1.0 / std::sqrt(static_cast<double>(p.size(1)));
      v = det_uniform(p.shape(), base + k, -b, b);
    } else {
      v = det_uniform(p.shape(), base + k, -0.1, 0.1);
    }
    dan::copy_(p, v);
    ++k;
  }
}

class GcnNet : public dan::Module {
 public:
  explicit GcnNet(const Config& c) {
    conv1_ = register_module(
        "conv1",
        std::make_shared<dan::GCNConv>(c.features, c.hidden, dan::GCNConvOptions{.cached = true}));
    conv2_ = register_module(
        "conv2",
        std::make_shared<dan::GCNConv>(c.hidden, c.classes, dan::GCNConvOptions{.cached = true}));
  }
  Tensor forward(const Tensor& x, const SparseCsr& a) {
    return conv2_->forward(dan::relu(conv1_->forward(x, a)), a);
  }

 private:
  std::shared_ptr<dan::GCNConv> conv1_, conv2_;
};

class GineNet : public dan::Module {
 public:
  explicit GineNet(const Config& c) {
    auto mlp = [](int64_t in, int64_t hid, int64_t out) {
      return std::make_shared<dan::MLP>(dan::MLPConfig{
          .in_dim = in, .hidden = {hid}, .out_dim = out, .activation = dan::Activation::relu});
    };
    const dan::GINEConvOptions o{.eps = 0.0, .train_eps = true, .edge_dim = c.edge_dim};
    conv1_ = register_module("conv1", std::make_shared<dan::GINEConv>(
                                          mlp(c.features, c.hidden, c.hidden), c.features, o));
    conv2_ = register_module(
        "conv2", std::make_shared<dan::GINEConv>(mlp(c.hidden, c.hidden, c.classes), c.hidden, o));
  }
  Tensor forward(const Tensor& x, const SparseCsr& a, const Tensor& e) {
    return conv2_->forward(dan::relu(conv1_->forward(x, a, e)), a, e);
  }

 private:
  std::shared_ptr<dan::GINEConv> conv1_, conv2_;
};

struct Result {
  double wall_ms = 0, cpu_ms = 0, loss_first = 0, loss_last = 0;
};

template <typename Step>
Result run_epochs(int warmup, int epochs, const Step& step) {
  Result r;
  std::vector<double> wall, cpu;
  for (int e = 0; e < warmup + epochs; ++e) {
    const double c0 = process_cpu_ms();
    const auto t0 = Clock::now();
    const double loss = step();
    const double w = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (e == 0) r.loss_first = loss;
    r.loss_last = loss;
    if (e < warmup) continue;
    wall.push_back(w);
    cpu.push_back(process_cpu_ms() - c0);
  }
  r.wall_ms = median(wall);
  r.cpu_ms = median(cpu);
  return r;
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  if (!(f >> a >> b >> c)) return "unknown";
  return a + " " + b + " " + c;
}

nlohmann::json run_torch(const std::string& python, const std::string& script, int threads,
                         const fs::path& edges, const Config& c, int warmup, int epochs,
                         const std::string& models, std::string* error) {
  const std::string cmd = fmt::format(
      "OMP_NUM_THREADS={0} MKL_NUM_THREADS={0} OPENBLAS_NUM_THREADS={0} '{1}' '{2}' --threads {0} "
      "--edges-file '{3}' --features {4} --hidden {5} --classes {6} --edge-dim {7} --lr {8} "
      "--warmup {9} --epochs {10} --models {11} 2>&1",
      threads, python, script, edges.string(), c.features, c.hidden, c.classes, c.edge_dim, c.lr,
      warmup, epochs, models);
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    *error = "could not start " + cmd;
    return {};
  }
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) out += buf.data();
  const int status = pclose(pipe);
  size_t pos = std::string::npos;
  for (size_t from = 0; from < out.size();) {
    const size_t eol = out.find('\n', from);
    if (out[from] == '{') pos = from;
    from = eol == std::string::npos ? out.size() : eol + 1;
  }
  nlohmann::json j;
  if (pos != std::string::npos)
    j = nlohmann::json::parse(out.substr(pos, out.find('\n', pos) - pos), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *error = fmt::format("`{}` exited with status {} and printed no result:\n{}", cmd, status, out);
    return {};
  }
  if (j.contains("error")) {
    *error = j["error"].get<std::string>();
    return {};
  }
  return j;
}

struct Options {
  std::vector<int> threads;
  Config cfg;
  int epochs = 3, warmup = 1;
  bool gcn = true, gine = true;
  std::string python = "/usr/bin/python3";
  std::string script = std::string(DAN_BENCH_REFERENCE_DIR) + "/gnn_epoch.py";
};

Options parse(int argc, char** argv, int cores) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--threads" && has)
      o.threads = {std::max(1, std::atoi(argv[++i]))};
    else if (a == "--nodes" && has)
      o.cfg.nodes = std::max<int64_t>(2, std::atoll(argv[++i]));
    else if (a == "--edges" && has)
      o.cfg.edges = std::max<int64_t>(1, std::atoll(argv[++i]));
    else if (a == "--features" && has)
      o.cfg.features = std::max<int64_t>(1, std::atoll(argv[++i]));
    else if (a == "--hidden" && has)
      o.cfg.hidden = std::max<int64_t>(1, std::atoll(argv[++i]));
    else if (a == "--epochs" && has)
      o.epochs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--warmup" && has)
      o.warmup = std::max(1, std::atoi(argv[++i]));
    else if (a == "--only" && has) {
      const std::string m = argv[++i];
      o.gcn = m == "gcn";
      o.gine = m == "gine";
    } else if (a == "--python" && has)
      o.python = argv[++i];
    else if (a == "--reference" && has)
      o.script = argv[++i];
    else {
      fmt::print(stderr,
                 "usage: {} [--threads T] [--nodes N] [--edges E] [--features F] "
                 "[--hidden H] [--epochs N] [--warmup W] [--only gcn|gine] [--python PATH] "
                 "[--reference gnn_epoch.py]\n",
                 argv[0]);
      std::exit(2);
    }
  }
  if (o.threads.empty()) {
    o.threads = {1};
    if (cores > 1) o.threads.push_back(cores);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const Options opt = parse(argc, argv, cores);
  const Config& c = opt.cfg;
  fmt::print(
      "bench_gnn_epoch: full-graph training epoch (forward, cross-entropy, backward, Adam "
      "lr {}), ours vs PyTorch\n",
      c.lr);
  fmt::print(
      "graph: power-law, {} nodes, {} edges; features {}, hidden {}, classes {}, edge "
      "features {}\n",
      c.nodes, c.edges, c.features, c.hidden, c.classes, c.edge_dim);
  fmt::print("GCN: GCNConv({0}, {1}) -> ReLU -> GCNConv({1}, {2}), cached normalization\n",
             c.features, c.hidden, c.classes);
  fmt::print(
      "GINE: GINEConv(MLP {0}->{1}->{1}, edge_dim {3}, train_eps) -> ReLU -> GINEConv(MLP "
      "{1}->{1}->{2})\n",
      c.features, c.hidden, c.classes, c.edge_dim);
  fmt::print("machine cores: {}   load average: {}   warm-up {} epoch(s), median of {}\n", cores,
             load_average(), opt.warmup, opt.epochs);

  std::vector<int32_t> src, dst;
  power_law(c.nodes, c.edges, src, dst);
  const fs::path dir = fs::temp_directory_path() / fmt::format("bench_gnn_epoch_{}", ::getpid());
  fs::create_directories(dir);
  const fs::path file = dir / "edges.bin";
  {
    const fs::path tmp = dir / "edges.bin.tmp";
    std::ofstream f(tmp, std::ios::binary);
    const int64_t head[3] = {c.nodes, c.edges, 0};
    f.write(reinterpret_cast<const char*>(head), sizeof(head));
    f.write(reinterpret_cast<const char*>(src.data()),
            static_cast<std::streamsize>(src.size() * 4));
    f.write(reinterpret_cast<const char*>(dst.data()),
            static_cast<std::streamsize>(dst.size() * 4));
    DAN_CHECK(f.good(), "bench_gnn_epoch: writing {} failed", tmp.string());
    f.close();
    fs::rename(tmp, file);
  }
  const Tensor s = dan::from_vector(src, {c.edges}), d = dan::from_vector(dst, {c.edges});
  // GCN: coalesced adjacency (duplicates summed). GINE: one entry per edge with edge ids, so
  // the edge features stay in edge-list order.
  const SparseCsr adj = SparseCsr::from_coo(d, s, Tensor(), c.nodes, c.nodes);
  const SparseCsr adj_e =
      SparseCsr::from_coo(d, s, Tensor(), c.nodes, c.nodes, {.sum_duplicates = false});
  const Tensor x = det_uniform({c.nodes, c.features}, 7, -1.0, 1.0);
  const Tensor ea = det_uniform({c.edges, c.edge_dim}, 8, -1.0, 1.0);
  std::vector<int64_t> labels(c.nodes);
  for (int64_t i = 0; i < c.nodes; ++i) {
    labels[i] = static_cast<int64_t>(splitmix((uint64_t{3} << 32) + static_cast<uint64_t>(i)) %
                                     static_cast<uint64_t>(c.classes));
  }
  const Tensor y = dan::from_vector(labels, {c.nodes});
  std::string models = opt.gcn && opt.gine ? "gcn,gine" : opt.gcn ? "gcn" : "gine";

  for (int t : opt.threads) {
    dan::set_num_threads(t);
    fmt::print("\n== threads = {} (ours: OpenMP + OpenBLAS; torch: set_num_threads({})) ==\n", t,
               t);
    std::string err;
    const nlohmann::json peer =
        run_torch(opt.python, opt.script, t, file, c, opt.warmup, opt.epochs, models, &err);
    if (!err.empty()) fmt::print("  PyTorch reference unavailable: {}\n", err);
    fmt::print("  {:<5} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7}  {}\n", "model", "ours ms",
               "cpu ms", "torch ms", "cpu ms", "ratio", "cpu r.", "final loss ours / torch");
    for (const std::string m : {"gcn", "gine"}) {
      if ((m == "gcn" && !opt.gcn) || (m == "gine" && !opt.gine)) continue;
      Result r;
      if (m == "gcn") {
        GcnNet net(c);
        init_params(net, 1000);
        dan::Adam adam(net.parameters(), {.lr = c.lr});
        r = run_epochs(opt.warmup, opt.epochs, [&] {
          adam.zero_grad();
          Tensor loss = dan::cross_entropy(net.forward(x, adj), y);
          loss.backward();
          adam.step();
          return loss.item();
        });
      } else {
        GineNet net(c);
        init_params(net, 2000);
        dan::Adam adam(net.parameters(), {.lr = c.lr});
        r = run_epochs(opt.warmup, opt.epochs, [&] {
          adam.zero_grad();
          Tensor loss = dan::cross_entropy(net.forward(x, adj_e, ea), y);
          loss.backward();
          adam.step();
          return loss.item();
        });
      }
      if (peer.is_object() && peer.contains(m)) {
        const auto& p = peer[m];
        const double tw = p["wall_ms"].get<double>(), tc = p["cpu_ms"].get<double>();
        fmt::print(
            "  {:<5} {:>10.1f} {:>10.1f} {:>10.1f} {:>10.1f} {:>6.2f}x {:>6.2f}x  {:.6f} / "
            "{:.6f}\n",
            m, r.wall_ms, r.cpu_ms, tw, tc, tw / r.wall_ms, tc / r.cpu_ms, r.loss_last,
            p["loss_last"].get<double>());
      } else {
        fmt::print("  {:<5} {:>10.1f} {:>10.1f}  loss {:.6f}\n", m, r.wall_ms, r.cpu_ms,
                   r.loss_last);
      }
    }
  }
  fmt::print(
      "\nratio = torch epoch time / ours (> 1: we are faster), cpu r. = the same for process "
      "CPU time; losses after {} epochs from identical parameters and data\n",
      opt.warmup + opt.epochs);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
