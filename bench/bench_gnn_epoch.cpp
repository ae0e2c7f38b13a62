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
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "bench/common.h"
#include "core/sparse.h"
#include "core/threads.h"
#include "layers/gcn.h"
#include "layers/gine.h"
#include "layers/mlp.h"
#include "layers/optim/adam.h"

namespace {

using dan::SparseCsr;
using dan::Tensor;
using dan::bench::Clock;
using dan::bench::det_uniform;  // the reference draws the same values
using dan::bench::median;
using dan::bench::process_cpu_ms;
namespace fs = std::filesystem;

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
    const double w = dan::bench::ms_since(t0);
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

nlohmann::json run_torch(const std::string& python, const std::string& script, int threads,
                         const fs::path& edges, const Config& c, int warmup, int epochs,
                         const std::string& models, std::string* error) {
  dan::bench::PeerResult r = dan::bench::run_peer(fmt::format(
      "{0} '{1}' '{2}' --threads {3} --edges-file '{4}' --features {5} --hidden {6} --classes {7} "
      "--edge-dim {8} --lr {9} --warmup {10} --epochs {11} --models {12} 2>&1",
      dan::bench::peer_thread_env(threads), python, script, threads, edges.string(), c.features,
      c.hidden, c.classes, c.edge_dim, c.lr, warmup, epochs, models));
  if (!r.ok) {
    *error = r.error;
    return {};
  }
  return std::move(r.j);
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
  if (o.threads.empty()) o.threads = dan::bench::default_thread_counts(cores);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = dan::bench::hardware_cores();
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
             dan::bench::load_average(), opt.warmup, opt.epochs);

  std::vector<int32_t> src, dst;
  dan::bench::power_law_edges(c.nodes, c.edges, src, dst);
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
    labels[i] = static_cast<int64_t>(
        dan::bench::splitmix64((uint64_t{3} << 32) + static_cast<uint64_t>(i)) %
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
