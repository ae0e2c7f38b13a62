// Benchmark of CUDA SpMM (kernels::spmm, f32, CSR x row-major dense): cuSPARSE (CSR_ALG2)
// against our row-split kernel, and what the `automatic` setting picks, for the forward A·X and
// the backward's Aᵀ·G (through the cached transpose), on MyAnimeList's recommendation graph
// (when the dataset is present), a synthetic power-law graph and a denser uniform one, at
// several feature widths. Reports ms, GFLOP/s, GB/s under two byte models and % of the peak
// HBM bandwidth, and checks that both algorithms agree. Prints "skipped: no CUDA device"
// without a GPU.
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "bench/common.h"
#include "bench/cuda/timing.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/cuda/runtime.h"
#include "core/sparse.h"
#include "kernels/kernels.h"
#include "kernels/sparse.h"
#include "recsys/dataset.h"

namespace {

using dan::SparseCsr;
using dan::Tensor;
namespace k = dan::kernels;
namespace fs = std::filesystem;
using dan::bench::EventTimer;
using dan::bench::median;
using dan::bench::splitmix64;

constexpr int kDev = 0;
constexpr int kWarmup = 2;
// Graphs below this many entries run in tens of microseconds: they get kSmallRepsFactor x reps
// so that their medians are not a handful of launch-latency samples.
constexpr int64_t kSmallNnz = 1000000;
constexpr int kSmallRepsFactor = 5;
// The two algorithms sum a row's entries in different orders; beyond this relative difference
// (max |diff| / max |output|) one of them computes something else.
constexpr double kMaxRelDiff = 1e-3;

struct Options {
  std::vector<int64_t> features = {16, 64, 256};
  int64_t nodes = 1000000, edges = 10000000;                 // power-law graph
  int64_t uniform_nodes = 100000, uniform_edges = 10000000;  // 0 edges: no uniform graph
  int reps = 10;
  std::string data_dir;
  std::vector<std::string> graphs = {"anime", "powerlaw", "uniform"};
};

constexpr const char* kUsage =
    "usage: bench_spmm_cuda [--features 16,64,256] [--nodes N] [--edges E] "
    "[--uniform NODES,EDGES|none] [--reps R] [--data DIR] [--graphs anime,powerlaw,uniform]\n"
    "  --features  feature widths F of the dense operand (default 16,64,256)\n"
    "  --nodes/--edges  size of the power-law graph (default 1000000 / 10000000)\n"
    "  --uniform   size of the uniform graph (default 100000,10000000), none to skip it\n"
    "  --reps      timed repetitions per case, median reported (default 10; graphs under 1M\n"
    "              entries get 5x)\n"
    "  --data      mal2023 directory for the anime graph (default $DEEPANINET_DATA or\n"
    "              ../shared/data/mal2023); the graph is skipped when it is absent\n"
    "  --graphs    which graphs to run (default all three)\n";

std::vector<int64_t> parse_list(const std::string& s, const char* flag) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    DAN_CHECK(!item.empty() && end != nullptr && *end == '\0' && v > 0,
              "{} '{}': '{}' is not a positive integer (expected e.g. 16,64)", flag, s, item);
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

int64_t parse_one(const std::string& s, const char* flag) {
  const std::vector<int64_t> v = parse_list(s, flag);
  DAN_CHECK(v.size() == 1, "{} expects one positive integer, got '{}'", flag, s);
  return v[0];
}

Options parse(int argc, char** argv) {
  Options o;
  o.data_dir = dan::recsys::default_data_dir();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("{}", kUsage);
      std::exit(0);
    }
    DAN_CHECK(i + 1 < argc, "{} needs a value (see --help)", a);
    const std::string v = argv[++i];
    if (a == "--features") {
      o.features = parse_list(v, "--features");
    } else if (a == "--nodes") {
      o.nodes = parse_one(v, "--nodes");
    } else if (a == "--edges") {
      o.edges = parse_one(v, "--edges");
    } else if (a == "--uniform") {
      if (v == "none") {
        o.uniform_edges = 0;
      } else {
        const std::vector<int64_t> ne = parse_list(v, "--uniform");
        DAN_CHECK(ne.size() == 2, "--uniform expects NODES,EDGES or none, got '{}'", v);
        o.uniform_nodes = ne[0];
        o.uniform_edges = ne[1];
      }
    } else if (a == "--reps") {
      o.reps = static_cast<int>(parse_one(v, "--reps"));
    } else if (a == "--data") {
      o.data_dir = v;
    } else if (a == "--graphs") {
      o.graphs.clear();
      size_t pos = 0;
      while (pos <= v.size()) {
        const size_t comma = std::min(v.find(',', pos), v.size());
        const std::string g = v.substr(pos, comma - pos);
        DAN_CHECK(g == "anime" || g == "powerlaw" || g == "uniform",
                  "--graphs '{}': unknown graph '{}' (expected a list of "
                  "anime, powerlaw, uniform)",
                  v, g);
        o.graphs.push_back(g);
        pos = comma + 1;
      }
    } else {
      dan::fail("unknown argument '{}'\n{}", a, kUsage);
    }
  }
  // The matrices use i32 indices (SparseCsr's default).
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  DAN_CHECK(o.nodes >= 2 && o.nodes <= kMax && o.edges <= kMax,
            "--nodes {} / --edges {}: expected 2 <= nodes and both <= {} "
            "(i32 indices)",
            o.nodes, o.edges, kMax);
  DAN_CHECK(o.uniform_nodes >= 2 && o.uniform_nodes <= kMax && o.uniform_edges <= kMax,
            "--uniform {},{}: expected 2 <= nodes and both <= {} (i32 indices)", o.uniform_nodes,
            o.uniform_edges, kMax);
  return o;
}

bool wants(const Options& o, const std::string& g) {
  return std::find(o.graphs.begin(), o.graphs.end(), g) != o.graphs.end();
}

// ---- graphs (built on the host, then copied to the device) ------------------------------------

// Entries per row (or per column) of a matrix: the longest, and how many are non-empty.
struct LineStats {
  int64_t max_len = 0;
  int64_t non_empty = 0;
};

struct Graph {
  std::string key, description;
  SparseCsr host;  // CPU copy, for the statistics below
  SparseCsr dev;   // on the GPU, its transpose built before timing
  LineStats row_stats, col_stats;
};

SparseCsr csr_from_edges(const std::vector<int32_t>& src, const std::vector<int32_t>& dst,
                         const std::vector<float>& weight, int64_t nodes) {
  const auto e = static_cast<int64_t>(src.size());
  const Tensor s = dan::from_vector(src, {e}), d = dan::from_vector(dst, {e});
  const Tensor w = weight.empty() ? Tensor() : dan::from_vector(weight, {e});
  return SparseCsr::from_coo(d, s, w, nodes, nodes);
}

// Recommendation edges between anime (dense item indices over all of anime.csv), weighted by
// the number of users who made the recommendation, symmetrized as for the GNN.
SparseCsr anime_graph(const std::string& dir) {
  dan::recsys::LoadOptions lo;
  lo.reviews = false;
  lo.rec_texts = false;
  const dan::recsys::Dataset ds = dan::recsys::load_dataset(dir, lo);
  std::vector<int32_t> src, dst;
  std::vector<float> w;
  for (const dan::recsys::RecEdge& e : ds.recommendations) {
    src.push_back(e.a);
    dst.push_back(e.b);
    w.push_back(e.weight);
  }
  return csr_from_edges(src, dst, w, ds.num_items()).symmetrize();
}

// The CPU benchmark's generator (dan::bench::power_law_edges, as bench/bench_spmm.cpp): a few
// hubs holding ~1e-3 of the edges each; duplicates are summed, values all ones.
SparseCsr power_law_graph(int64_t nodes, int64_t edges) {
  std::vector<int32_t> src, dst;
  dan::bench::power_law_edges(nodes, edges, src, dst);
  return csr_from_edges(src, dst, {}, nodes);
}

// Both endpoints uniform: every row has about edges / nodes entries (no hubs), the case where
// a fixed thread group per row wastes nothing.
SparseCsr uniform_graph(int64_t nodes, int64_t edges) {
  std::vector<int32_t> src(static_cast<size_t>(edges)), dst(static_cast<size_t>(edges));
  const auto n = static_cast<uint64_t>(nodes);
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < edges; ++e) {
    src[e] =
        static_cast<int32_t>(splitmix64((uint64_t{3} << 40) + 2 * static_cast<uint64_t>(e)) % n);
    dst[e] = static_cast<int32_t>(
        splitmix64((uint64_t{3} << 40) + 2 * static_cast<uint64_t>(e) + 1) % n);
  }
  return csr_from_edges(src, dst, {}, nodes);
}

Graph make_graph(std::string key, std::string description, SparseCsr host) {
  Graph g;
  g.key = std::move(key);
  g.description = std::move(description);
  g.host = std::move(host);
  return g;
}

LineStats line_stats(const std::vector<int64_t>& len) {
  LineStats s;
  for (int64_t l : len) {
    s.max_len = std::max(s.max_len, l);
    s.non_empty += l > 0 ? 1 : 0;
  }
  return s;
}

// Row and column statistics of a host matrix (i32 indices), by counting: cheaper than the
// host transpose, which the device matrix builds anyway.
void set_stats(Graph& g) {
  const int32_t* p = g.host.indptr().data<int32_t>();
  const int32_t* idx = g.host.indices().data<int32_t>();
  std::vector<int64_t> rows(static_cast<size_t>(g.host.rows())),
      cols(static_cast<size_t>(g.host.cols()), 0);
  for (int64_t r = 0; r < g.host.rows(); ++r) rows[r] = p[r + 1] - p[r];
  for (int64_t e = 0; e < g.host.nnz(); ++e) ++cols[idx[e]];
  g.row_stats = line_stats(rows);
  g.col_stats = line_stats(cols);
}

Tensor uniform(int64_t rows, int64_t f, uint64_t seed) {
  Tensor t = dan::raw::empty({rows, f}, dan::DType::f32, dan::Device::cuda(kDev));
  k::uniform_(t, seed, 0, -1.0, 1.0);
  return t;
}

double max_abs(const Tensor& t) {
  return k::reduce(k::ReduceOp::max, k::unary(k::UnaryOp::abs, t), {}, false).to_vector().at(0);
}

// The decision `automatic` cached for this shape, from kernels::cuda::spmm_decisions() (lines
// "cuda:D R x C nnz N F F idx: winner (cusparse .. ms, rowsplit .. ms)"); "?" if none.
std::string auto_pick(int64_t rows, int64_t cols, int64_t nnz, int64_t F) {
  const std::string prefix = fmt::format("cuda:{} {} x {} nnz {} F {} ", kDev, rows, cols, nnz, F);
  for (const std::string& line : k::cuda::spmm_decisions()) {
    if (line.rfind(prefix, 0) != 0) continue;
    const size_t colon = line.find(": ", prefix.size());
    if (colon == std::string::npos) continue;
    const size_t from = colon + 2;
    return line.substr(from, line.find(' ', from) - from);
  }
  return "?";
}

constexpr const char* kRow =
    "{:<9} {:>4} {:<5} {:<15} {:>9} {:>8} {:>9} {:>6} {:>10} {:>8} {:>9}\n";
constexpr int kRowWidth = 102;

struct Bench {
  EventTimer timer{kDev};
  double peak_gbps = 0;
  int failures = 0;

  // One product (A·X, or Aᵀ·G when transposed) at one width: the three settings interleaved
  // sample by sample so clock and thermal drift hit them alike.
  void run_case(const Graph& g, bool transposed, int64_t F, int reps, uint64_t seed) {
    const SparseCsr m = transposed ? g.dev.transposed() : g.dev;
    const int64_t rows = m.rows(), cols = m.cols(), nnz = m.nnz();
    // Source rows actually referenced = the non-empty columns of m = non-empty rows of mᵀ.
    const int64_t used_cols = (transposed ? g.row_stats : g.col_stats).non_empty;
    const Tensor in = uniform(cols, F, seed);
    auto call = [&](k::SpmmAlgo algo) {
      k::set_spmm_algo(algo);
      return transposed ? k::spmm_transposed(g.dev, in) : k::spmm(g.dev, in);
    };
    const k::SpmmAlgo algos[3] = {k::SpmmAlgo::cusparse, k::SpmmAlgo::row_split,
                                  k::SpmmAlgo::automatic};
    for (int w = 0; w < kWarmup; ++w)
      for (k::SpmmAlgo a : algos) (void)call(a);
    dan::cuda::synchronize(kDev);
    std::vector<double> t[3];
    for (int r = 0; r < reps; ++r)
      for (int i = 0; i < 3; ++i) t[i].push_back(timer.time_ms([&] { (void)call(algos[i]); }));

    const Tensor ref = call(k::SpmmAlgo::cusparse), ours = call(k::SpmmAlgo::row_split);
    const double scale = max_abs(ref);
    const double diff = max_abs(k::binary(k::BinaryOp::sub, ours, ref));
    const double rel = scale > 0 ? diff / scale : (diff > 0 ? 1.0 : 0.0);
    const bool ok = std::isfinite(rel) && rel <= kMaxRelDiff;
    if (!ok) ++failures;

    // Bytes per call, f32 values and i32 indices:
    //   compulsory: indptr, indices and values once, each referenced source row once, the
    //               output once -- the least any kernel moves (perfect reuse of source rows);
    //   gather:     the same but one source row per entry -- no reuse (an upper bound on DRAM
    //               traffic; above the peak only when the L2 cache serves repeats).
    const double fd = static_cast<double>(F), ed = static_cast<double>(nnz);
    const double sparse_bytes = 4.0 * static_cast<double>(rows + 1) + 8.0 * ed;
    const double out_bytes = 4.0 * static_cast<double>(rows) * fd;
    const double compulsory = sparse_bytes + 4.0 * static_cast<double>(used_cols) * fd + out_bytes;
    const double gather = sparse_bytes + 4.0 * ed * fd + out_bytes;
    const double flop = 2.0 * ed * fd;
    const double ms_cus = median(t[0]);
    const std::string pick = auto_pick(rows, cols, nnz, F);
    const char* product = transposed ? "Aᵀ·G" : "A·X";
    for (int i = 0; i < 3; ++i) {
      const double ms = median(t[i]), s = ms * 1e-3;
      const double gbps = compulsory / s * 1e-9;
      std::string algo = k::name(algos[i]);
      if (i == 2) algo = "auto->" + pick;
      std::string check = "-";
      if (i == 1) check = fmt::format("{:.1e}{}", rel, ok ? "" : " FAIL");
      fmt::print(kRow, g.key, F, product, algo, fmt::format("{:.3f}", ms),
                 fmt::format("{:.1f}", flop / s * 1e-9), fmt::format("{:.0f}", gbps),
                 peak_gbps > 0 ? fmt::format("{:.1f}%", 100.0 * gbps / peak_gbps) : "-",
                 fmt::format("{:.0f}", gather / s * 1e-9),
                 i == 0 ? std::string("1.00") : fmt::format("{:.2f}", ms_cus / ms), check);
    }
    if (!ok) {
      fmt::print(stderr,
                 "bench_spmm_cuda: FAILED: {} {} F={}: rowsplit and cusparse differ by max |diff| "
                 "{:.3e} (max |out| {:.3e}, relative {:.2e} > {:.0e})\n",
                 g.key, product, F, diff, scale, rel, kMaxRelDiff);
    }
  }
};

void describe(const Graph& g) {
  const LineStats& rs = g.row_stats;
  const LineStats& cs = g.col_stats;
  fmt::print(
      "graph {:<9} {}: {} nodes, nnz {} (mean {:.1f} per row; longest row {}, longest "
      "column {}; {} empty rows)\n",
      g.key, g.description, g.host.rows(), g.host.nnz(),
      static_cast<double>(g.host.nnz()) / static_cast<double>(g.host.rows()), rs.max_len,
      cs.max_len, g.host.rows() - rs.non_empty);
}

void run(const Options& o) {
  const dan::cuda::DeviceProps& p = dan::cuda::device_props(kDev);
  fmt::print("{} (cc {}.{}, {} SMs, {:.1f} GiB, L2 {:.0f} MiB)\n", p.name, p.cc_major, p.cc_minor,
             p.sm_count, static_cast<double>(p.total_memory) / (1u << 30),
             static_cast<double>(p.l2_cache_bytes) / (1u << 20));
  fmt::print(
      "peak HBM {:.0f} GB/s = 2 x memory clock {:.0f} MHz x {}-bit bus / 8 "
      "(cudaDevAttrMemoryClockRate / cudaDevAttrGlobalMemoryBusWidth)\n",
      p.peak_bandwidth_gbps, p.mem_clock_khz / 1e3, p.mem_bus_width_bits);

  std::vector<Graph> graphs;
  if (wants(o, "anime")) {
    const fs::path dir = o.data_dir;
    if (!o.data_dir.empty() && fs::exists(dir / "recommendations.csv") &&
        fs::exists(dir / "anime.csv") && fs::exists(dir / "ratings.csv")) {
      graphs.push_back(make_graph("anime", "MyAnimeList recommendations (symmetrized, weighted)",
                                  anime_graph(o.data_dir)));
    } else {
      fmt::print(
          "(skipping the anime graph: no mal2023 dataset with recommendations.csv at '{}'; "
          "set DEEPANINET_DATA or --data DIR)\n",
          o.data_dir);
    }
  }
  if (wants(o, "powerlaw")) {
    graphs.push_back(make_graph("powerlaw", fmt::format("power law, {} edges drawn", o.edges),
                                power_law_graph(o.nodes, o.edges)));
  }
  if (wants(o, "uniform") && o.uniform_edges > 0) {
    graphs.push_back(make_graph("uniform", fmt::format("uniform, {} edges drawn", o.uniform_edges),
                                uniform_graph(o.uniform_nodes, o.uniform_edges)));
  }
  for (Graph& g : graphs) {
    set_stats(g);
    describe(g);
    g.dev = g.host.to(dan::Device::cuda(kDev));
    (void)g.dev.transposed();  // the backward's transpose, built once per matrix, not timed
  }

  fmt::print(
      "\nf32 values, i32 indices; median of R cudaEvent-timed calls after {} warm-up calls of "
      "each setting, the three settings interleaved (R = {}, x{} for graphs under {} entries)\n"
      "A·X: forward, X [cols, F]; Aᵀ·G: the backward's product through the cached transpose, "
      "G [rows, F]\n"
      "GFLOP/s = 2 nnz F / s. GB/s (compulsory) = (indptr + indices + values + each referenced "
      "source row + output, each once) / s, the traffic of a kernel with perfect reuse; %peak "
      "is of that. GB/s (gather) counts one source row per entry (no reuse), an upper bound on "
      "DRAM traffic\n"
      "vs cuSPARSE = cuSPARSE ms / this ms (> 1: faster than cuSPARSE); rel diff = max "
      "|rowsplit - cusparse| / max |cusparse| (fails above {:.0e}); auto->X: the algorithm "
      "`automatic` chose for the shape (best of 3 timed calls each, decided once per rows, cols, "
      "nnz, F and index dtype, so Aᵀ·G of a square matrix reuses A·X's decision)\n\n",
      kWarmup, o.reps, kSmallRepsFactor, kSmallNnz, kMaxRelDiff);
  fmt::print(kRow, "graph", "F", "prod", "algo", "ms", "GFLOP/s", "GB/s comp", "%peak", "GB/s gath",
             "vs cuSP.", "rel diff");
  fmt::print("{}\n", std::string(kRowWidth, '-'));

  const k::SpmmAlgo initial = k::spmm_algo();
  Bench b;
  b.peak_gbps = p.peak_bandwidth_gbps;
  uint64_t seed = 1;
  for (const Graph& g : graphs) {
    const int reps = g.host.nnz() < kSmallNnz ? o.reps * kSmallRepsFactor : o.reps;
    for (int64_t F : o.features) {
      for (bool transposed : {false, true}) b.run_case(g, transposed, F, reps, seed++);
    }
    fmt::print("{}\n", std::string(kRowWidth, '-'));
    dan::cuda::empty_cache();
  }
  k::set_spmm_algo(initial);
  if (b.failures > 0) {
    dan::fail("{} case(s) where rowsplit and cusparse disagree beyond {:.0e} (see above)",
              b.failures, kMaxRelDiff);
  }
  fmt::print("all cases: rowsplit and cusparse agree within {:.0e}\n", kMaxRelDiff);
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
    fmt::print(stderr, "bench_spmm_cuda: {}\n", e.what());
    return 1;
  }
  return 0;
}
