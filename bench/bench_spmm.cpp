// Benchmark: SpMM (sparse CSR x dense, 64 features) in GFLOP/s = 2 nnz F / s, ours
// (kernels::spmm, and Aᵀ·G through the cached transpose) against torch.sparse.mm (COO and CSR
// layouts; the faster is the peer) in the same run, on (a) MyAnimeList's recommendation graph
// (recommendations.csv, symmetrized) and (b) a synthetic power-law graph (1M nodes, 10M edges
// by default). The graphs go to the PyTorch script (bench/reference/spmm.py) as binary edge
// lists in a temporary directory; both sides build and coalesce the matrix themselves.
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "bench/common.h"
#include "core/sparse.h"
#include "core/threads.h"
#include "kernels/sparse.h"
#include "recsys/dataset.h"

namespace {

using dan::SparseCsr;
using dan::Tensor;
using dan::bench::det_uniform;  // the reference script computes the same values
namespace fs = std::filesystem;

struct EdgeList {
  std::string name;
  int64_t nodes = 0;
  std::vector<int32_t> src, dst;
  std::vector<float> weight;  // empty: all ones
  bool symmetrize = false;
};

// recommendations.csv: anime_id,rec_anime_id,weight. Ids are mapped to 0..n-1 in sorted order.
EdgeList read_recommendations(const std::string& path) {
  std::ifstream f(path);
  DAN_CHECK(f.good(), "bench_spmm: cannot open {}", path);
  std::string line;
  std::getline(f, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  DAN_CHECK(line == "anime_id,rec_anime_id,weight",
            "bench_spmm: {} line 1: expected the header 'anime_id,rec_anime_id,weight', got '{}'",
            path, line);
  std::vector<std::array<int64_t, 3>> rows;
  for (int64_t ln = 2; std::getline(f, line); ++ln) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::array<int64_t, 3> r{};
    std::stringstream ss(line);
    std::string field;
    for (int c = 0; c < 3; ++c) {
      DAN_CHECK(static_cast<bool>(std::getline(ss, field, ',')),
                "bench_spmm: {} line {}: expected 3 comma-separated fields, got '{}'", path, ln,
                line);
      char* end = nullptr;
      r[c] = std::strtoll(field.c_str(), &end, 10);
      DAN_CHECK(!field.empty() && *end == '\0',
                "bench_spmm: {} line {} column {}: expected an "
                "integer, got '{}'",
                path, ln, c + 1, field);
    }
    rows.push_back(r);
  }
  std::vector<int64_t> ids;
  for (const auto& r : rows) {
    ids.push_back(r[0]);
    ids.push_back(r[1]);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  EdgeList g;
  g.name = "anime recommendations";
  g.nodes = static_cast<int64_t>(ids.size());
  g.symmetrize = true;
  for (const auto& r : rows) {
    g.src.push_back(
        static_cast<int32_t>(std::lower_bound(ids.begin(), ids.end(), r[0]) - ids.begin()));
    g.dst.push_back(
        static_cast<int32_t>(std::lower_bound(ids.begin(), ids.end(), r[1]) - ids.begin()));
    g.weight.push_back(static_cast<float>(r[2]));
  }
  return g;
}

// The power-law graph (dan::bench::power_law_edges): duplicates and self-loops are kept
// (coalesced by both sides).
EdgeList power_law(int64_t nodes, int64_t edges) {
  EdgeList g;
  g.name = fmt::format("power-law {}k nodes {}M edges", nodes / 1000, edges / 1000000.0);
  g.nodes = nodes;
  dan::bench::power_law_edges(nodes, edges, g.src, g.dst);
  return g;
}

// Binary edge list for the reference: int64 nodes, int64 edges, int64 weighted, int32 src[E],
// int32 dst[E], float32 weight[E] when weighted. Written to a temp name, then renamed.
void write_edges(const EdgeList& g, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    const int64_t head[3] = {g.nodes, static_cast<int64_t>(g.src.size()), g.weight.empty() ? 0 : 1};
    f.write(reinterpret_cast<const char*>(head), sizeof(head));
    f.write(reinterpret_cast<const char*>(g.src.data()),
            static_cast<std::streamsize>(g.src.size() * 4));
    f.write(reinterpret_cast<const char*>(g.dst.data()),
            static_cast<std::streamsize>(g.dst.size() * 4));
    if (!g.weight.empty()) {
      f.write(reinterpret_cast<const char*>(g.weight.data()),
              static_cast<std::streamsize>(g.weight.size() * 4));
    }
    DAN_CHECK(f.good(), "bench_spmm: writing {} failed", tmp.string());
  }
  fs::rename(tmp, path);
}

SparseCsr to_csr(const EdgeList& g) {
  const auto e = static_cast<int64_t>(g.src.size());
  const Tensor src = dan::from_vector(g.src, {e}), dst = dan::from_vector(g.dst, {e});
  const Tensor w = g.weight.empty() ? Tensor() : dan::from_vector(g.weight, {e});
  SparseCsr a = SparseCsr::from_coo(dst, src, w, g.nodes, g.nodes);
  return g.symmetrize ? a.symmetrize() : a;
}

struct Ms {
  double wall = 0, cpu = 0;  // medians over the repeats
};

struct Timing {
  Ms fwd, bwd;
  double checksum = 0;
};

template <typename F>
Ms time_ms(int warmup, int reps, const F& f) {
  const dan::bench::WallCpu t = dan::bench::time_wall_cpu(warmup, reps, f);
  return {1e3 * t.wall, 1e3 * t.cpu};
}

double sum_of(const Tensor& t) {
  const float* p = t.data<float>();
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += p[i];
  return s;
}

Timing run_ours(const SparseCsr& a, const Tensor& x, int reps) {
  Timing r;
  Tensor y;
  r.fwd = time_ms(1, reps, [&] { y = dan::kernels::spmm(a, x); });
  r.checksum = sum_of(y);
  a.transposed();  // built once per matrix (the backward's cost is the multiply)
  r.bwd = time_ms(1, reps, [&] { y = dan::kernels::spmm_transposed(a, x); });
  return r;
}

// graphs: (KEY:REPS, edge-list file) pairs.
nlohmann::json run_torch(const std::string& python, const std::string& script, int threads,
                         const std::vector<std::pair<std::string, fs::path>>& graphs, int64_t F,
                         std::string* error) {
  std::string args;
  for (const auto& [key, path] : graphs)
    args += fmt::format(" --graph '{}={}'", key, path.string());
  dan::bench::PeerResult r = dan::bench::run_peer(
      fmt::format("{0} '{1}' '{2}' --threads {3} --features {4}{5} 2>&1",
                  dan::bench::peer_thread_env(threads), python, script, threads, F, args));
  if (!r.ok) {
    *error = r.error;
    return {};
  }
  return std::move(r.j);
}

struct Options {
  std::vector<int> threads;
  int64_t nodes = 1000000, edges = 10000000, features = 64;
  int reps = 5, small_reps = 50;
  std::string data_dir, python = "/usr/bin/python3";
  std::string script = std::string(DAN_BENCH_REFERENCE_DIR) + "/spmm.py";
  bool synthetic = true, anime = true;
};

Options parse(int argc, char** argv, int cores) {
  Options o;
  o.data_dir = dan::recsys::default_data_dir();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--threads" && has)
      o.threads = {std::max(1, std::atoi(argv[++i]))};
    else if (a == "--nodes" && has)
      o.nodes = std::max<int64_t>(2, std::atoll(argv[++i]));
    else if (a == "--edges" && has)
      o.edges = std::max<int64_t>(1, std::atoll(argv[++i]));
    else if (a == "--features" && has)
      o.features = std::max<int64_t>(1, std::atoll(argv[++i]));
    else if (a == "--reps" && has)
      o.reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--data" && has)
      o.data_dir = argv[++i];
    else if (a == "--python" && has)
      o.python = argv[++i];
    else if (a == "--reference" && has)
      o.script = argv[++i];
    else if (a == "--no-synthetic")
      o.synthetic = false;
    else if (a == "--no-anime")
      o.anime = false;
    else {
      fmt::print(stderr,
                 "usage: {} [--threads T] [--nodes N] [--edges E] [--features F] "
                 "[--reps R] [--data DIR] [--python PATH] [--reference spmm.py] "
                 "[--no-synthetic] [--no-anime]\n",
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
  fmt::print("bench_spmm: CSR SpMM, ours vs torch.sparse.mm (GFLOP/s = 2 nnz F / time)\n");
  fmt::print("machine cores: {}   load average: {}   F = {}\n", cores, dan::bench::load_average(),
             opt.features);

  struct Graph {
    std::string key;
    EdgeList edges;
    int reps;
  };
  std::vector<Graph> graphs;
  if (opt.anime) {
    const std::string csv = opt.data_dir + "/recommendations.csv";
    if (fs::exists(csv)) {
      graphs.push_back({"anime", read_recommendations(csv), opt.small_reps});
    } else {
      fmt::print("(skipping the anime graph: {} not found; set DEEPANINET_DATA or --data)\n", csv);
    }
  }
  if (opt.synthetic) graphs.push_back({"powerlaw", power_law(opt.nodes, opt.edges), opt.reps});

  const fs::path dir = fs::temp_directory_path() / fmt::format("bench_spmm_{}", ::getpid());
  fs::create_directories(dir);
  std::vector<std::pair<std::string, fs::path>> files;
  std::vector<SparseCsr> mats;
  std::vector<Tensor> xs;
  for (const Graph& g : graphs) {
    const fs::path p = dir / (g.key + ".bin");
    write_edges(g.edges, p);
    files.emplace_back(g.key, p);
    mats.push_back(to_csr(g.edges));
    xs.push_back(det_uniform({g.edges.nodes, opt.features}, 7, -1.0, 1.0));
    const SparseCsr& a = mats.back();
    fmt::print("graph {:<8} {}: {} nodes, {} edges -> nnz {} after {}coalescing\n", g.key,
               g.edges.name, a.rows(), g.edges.src.size(), a.nnz(),
               g.edges.symmetrize ? "symmetrizing and " : "");
  }

  dan::NoGradGuard no_grad;
  for (int t : opt.threads) {
    dan::set_num_threads(t);
    fmt::print("\n== threads = {} (ours: OpenMP; torch: set_num_threads({})) ==\n", t, t);
    std::string err;
    std::vector<std::pair<std::string, fs::path>> keyed;
    for (size_t i = 0; i < graphs.size(); ++i) {
      keyed.emplace_back(fmt::format("{}:{}", graphs[i].key, graphs[i].reps), files[i].second);
    }
    const nlohmann::json peer = run_torch(opt.python, opt.script, t, keyed, opt.features, &err);
    if (!err.empty()) fmt::print("  PyTorch reference unavailable: {}\n", err);
    fmt::print("  {:<9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7} {:>9}\n", "graph",
               "ours ms", "cpu ms", "GFLOP/s", "Aᵀ·G ms", "torch ms", "cpu ms", "GFLOP/s", "ratio",
               "cpu r.", "sum diff");
    for (size_t i = 0; i < graphs.size(); ++i) {
      const Timing ours = run_ours(mats[i], xs[i], graphs[i].reps);
      const double flop =
          2.0 * static_cast<double>(mats[i].nnz()) * static_cast<double>(opt.features);
      const double gf = flop / (ours.fwd.wall * 1e6);
      if (peer.is_object() && peer.contains(graphs[i].key)) {
        const auto& p = peer[graphs[i].key];
        // The peer is torch's faster layout (by wall time).
        const bool csr = p["csr_ms"].get<double>() < p["coo_ms"].get<double>();
        const double tms = p[csr ? "csr_ms" : "coo_ms"].get<double>();
        const double tcpu = p[csr ? "csr_cpu_ms" : "coo_cpu_ms"].get<double>();
        const double diff = std::abs(ours.checksum - p["checksum"].get<double>()) /
                            std::max(1.0, std::abs(p["checksum"].get<double>()));
        fmt::print(
            "  {:<9} {:>9.3f} {:>9.3f} {:>8.2f} {:>9.3f} {:>9.3f} {:>9.3f} {:>8.2f} {:>6.2f}x "
            "{:>6.2f}x {:>9.2e}\n",
            graphs[i].key, ours.fwd.wall, ours.fwd.cpu, gf, ours.bwd.wall, tms, tcpu,
            flop / (tms * 1e6), tms / ours.fwd.wall, tcpu / ours.fwd.cpu, diff);
        fmt::print(
            "            torch COO {:.3f} ms (cpu {:.3f}), CSR {:.3f} ms (cpu {:.3f}); "
            "torch nnz {}\n",
            p["coo_ms"].get<double>(), p["coo_cpu_ms"].get<double>(), p["csr_ms"].get<double>(),
            p["csr_cpu_ms"].get<double>(), p["nnz"].get<int64_t>());
      } else {
        fmt::print("  {:<9} {:>9.3f} {:>9.3f} {:>8.2f} {:>9.3f}\n", graphs[i].key, ours.fwd.wall,
                   ours.fwd.cpu, gf, ours.bwd.wall);
      }
    }
  }
  fmt::print(
      "\nratio = torch wall time / ours (> 1: we are faster), cpu r. = the same for process "
      "CPU time (robust on a busy machine at 1 thread); sum diff = relative difference of "
      "the output sums\n");
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
