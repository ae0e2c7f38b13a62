// Benchmark: WMF by implicit ALS (CG, 3 steps) per iteration, ours (models/wmf) against the
// `implicit` package's native CPU solver (bench/reference/als_implicit.py, a subprocess), on
// identical inputs: the confidence matrix and the initial factors are written once by this
// program and read by the script, so both runs start from the same point and their final
// losses are comparable. Workloads: mal2023 (confidence 1 + alpha * score) and a synthetic
// 100k users x 20k items x 5M ratings matrix with skewed item popularity.
//
// The reference runs under the interpreter of $DAN_IMPLICIT_PYTHON (default
// /tmp/implicitvenv/bin/python), a venv with implicit 0.7 (see bench/README.md).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "bench/common.h"
#include "core/serialize.h"
#include "core/threads.h"
#include "kernels/als.h"
#include "models/wmf/als.h"
#include "recsys/csr.h"
#include "recsys/dataset.h"

namespace {

using dan::Tensor;
using dan::bench::Clock;
using dan::bench::median;
using dan::bench::process_cpu_s;
using dan::bench::seconds_since;

// Per-iteration CPU times without the first (which includes the fit's set-up) when there are
// others.
std::vector<double> tail(const std::vector<double>& v) {
  return v.size() > 1 ? std::vector<double>(v.begin() + 1, v.end()) : v;
}

struct Options {
  int threads = 0;
  std::vector<int64_t> factors = {64, 256};
  int iters = 3;
  int cg_steps = 3;
  double alpha = 1.0;
  double reg = 0.01;
  std::string data;
  std::string python;
  std::string script = std::string(DAN_BENCH_REFERENCE_DIR) + "/als_implicit.py";
  std::string only;  // "", "mal2023" or "synthetic"
  int64_t syn_users = 100000, syn_items = 20000, syn_ratings = 5000000;
};

[[noreturn]] void usage(const char* argv0) {
  fmt::print(stderr,
             "usage: {} [--threads T] [--factors 64,256] [--iters N] [--cg-steps S] [--alpha A] "
             "[--reg R] [--data DIR] [--python PATH] [--reference als_implicit.py] "
             "[--only mal2023|synthetic] [--synthetic USERS,ITEMS,RATINGS]\n",
             argv0);
  std::exit(2);
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) out.push_back(std::stoll(tok));
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  o.python = dan::bench::env_or("DAN_IMPLICIT_PYTHON", "/tmp/implicitvenv/bin/python");
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    const std::string v = argv[++i];
    if (a == "--threads") o.threads = std::max(1, std::atoi(v.c_str()));
    else if (a == "--factors") o.factors = parse_list(v);
    else if (a == "--iters") o.iters = std::max(1, std::atoi(v.c_str()));
    else if (a == "--cg-steps") o.cg_steps = std::max(1, std::atoi(v.c_str()));
    else if (a == "--alpha") o.alpha = std::atof(v.c_str());
    else if (a == "--reg") o.reg = std::atof(v.c_str());
    else if (a == "--data") o.data = v;
    else if (a == "--python") o.python = v;
    else if (a == "--reference") o.script = v;
    else if (a == "--only") o.only = v;
    else if (a == "--synthetic") {
      const std::vector<int64_t> s = parse_list(v);
      if (s.size() != 3) usage(argv[0]);
      o.syn_users = s[0];
      o.syn_items = s[1];
      o.syn_ratings = s[2];
    } else {
      usage(argv[0]);
    }
  }
  return o;
}

// ---- workloads ------------------------------------------------------------------------------

uint64_t mix(uint64_t z) {  // splitmix64's finalizer
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Rating k: user uniform, item = floor(items * u^2) (popularity ~ 1/sqrt(rank): a few items
// with tens of thousands of users), score 1..10; duplicate pairs are summed.
dan::recsys::Csr synthetic(int64_t users, int64_t items, int64_t ratings, double alpha) {
  std::vector<int32_t> r(ratings), c(ratings);
  std::vector<float> v(ratings);
  for (int64_t k = 0; k < ratings; ++k) {
    const uint64_t a = mix(3 * static_cast<uint64_t>(k)), b = mix(3 * static_cast<uint64_t>(k) + 1),
                   s = mix(3 * static_cast<uint64_t>(k) + 2);
    const double u = static_cast<double>(b >> 11) * 0x1p-53;
    r[k] = static_cast<int32_t>(a % static_cast<uint64_t>(users));
    c[k] = static_cast<int32_t>(std::min<int64_t>(items - 1, static_cast<int64_t>(items * u * u)));
    v[k] = static_cast<float>(1.0 + alpha * static_cast<double>(1 + s % 10));
  }
  return dan::recsys::Csr::from_triplets(users, items, r, c, v, /*sum_duplicates=*/true);
}

dan::recsys::Csr mal2023(const std::string& dir, double alpha) {
  dan::recsys::LoadOptions lo;
  lo.reviews = lo.recommendations = lo.rec_texts = false;
  const dan::recsys::Dataset ds = dan::recsys::load_dataset(dir, lo);
  std::vector<int32_t> r, c;
  std::vector<float> v;
  for (const auto& x : ds.ratings) {
    r.push_back(x.user);
    c.push_back(x.item);
    v.push_back(static_cast<float>(1.0 + alpha * x.score));
  }
  return dan::recsys::Csr::from_triplets(ds.num_users(), ds.num_items(), r, c, v);
}

// ---- the reference ----------------------------------------------------------------------------

dan::bench::PeerResult run_implicit(const Options& o, const std::string& input, int threads) {
  return dan::bench::run_peer(fmt::format(
      "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS={0} '{1}' '{2}' --input '{3}' --iters {4} "
      "--cg-steps {5} --threads {0} --reg {6} 2>&1",
      threads, o.python, o.script, input, o.iters, o.cg_steps, o.reg));
}

struct Row {
  std::string workload;
  int64_t f = 0;
  double ours = NAN, theirs = NAN, loss_ours = NAN, loss_theirs = NAN;
  double ours_cpu = NAN, theirs_cpu = NAN;  // process CPU seconds per iteration
};

Row run_one(const Options& o, const std::string& name, const dan::recsys::Csr& C, int64_t f,
            int threads, const std::string& tmpdir) {
  Row row;
  row.workload = name;
  row.f = f;
  dan::wmf::AlsConfig cfg;
  cfg.factors = f;
  cfg.iterations = 0;
  cfg.reg = o.reg;
  cfg.solver = dan::wmf::Solver::cg;
  cfg.cg_steps = o.cg_steps;
  cfg.seed = 42;
  cfg.compute_loss = false;
  const dan::wmf::AlsResult init = dan::wmf::fit_als(C, cfg);  // U0, V0 ~ U[0, 0.01) (Philox)
  const std::string input = tmpdir + "/als_input.safetensors";
  dan::save_safetensors(
      input, {{"indptr", dan::from_vector<int64_t>(C.indptr, {C.rows + 1})},
              {"indices", dan::from_vector<int32_t>(C.indices, {C.nnz()})},
              {"values", dan::from_vector<float>(C.values, {C.nnz()})},
              {"U0", init.U},
              {"V0", init.V}});

  cfg.iterations = o.iters;
  std::vector<double> cpu = {process_cpu_s()};
  const auto t0 = Clock::now();
  const dan::wmf::AlsResult r = dan::wmf::fit_als(
      C, cfg, init.U, init.V,
      [&](const dan::wmf::IterationStats&) { cpu.push_back(process_cpu_s()); });
  const double fit_s = seconds_since(t0);
  std::vector<double> secs, cpu_secs;
  for (const auto& h : r.history) secs.push_back(h.seconds);
  for (size_t i = 1; i < cpu.size(); ++i) cpu_secs.push_back(cpu[i] - cpu[i - 1]);
  row.ours = median(secs);
  row.ours_cpu = median(tail(cpu_secs));
  row.loss_ours = dan::wmf::als_loss(C, r.U, r.V, o.reg);

  const dan::bench::PeerResult peer = run_implicit(o, input, threads);
  std::filesystem::remove(input);
  fmt::print("  {:<9} f={:<4} ours     wall s/iter: ", name, f);
  for (double s : secs) fmt::print("{:.3f} ", s);
  fmt::print(" cpu s/iter: ");
  for (double s : cpu_secs) fmt::print("{:.3f} ", s);
  fmt::print(" (fit {:.2f} s)  loss {:.6f}\n", fit_s, row.loss_ours);
  if (!peer.ok) {
    fmt::print("  implicit reference unavailable: {}\n", peer.error);
    return row;
  }
  const std::vector<double> theirs = peer.j["seconds"].get<std::vector<double>>();
  const std::vector<double> theirs_cpu = peer.j["cpu_seconds"].get<std::vector<double>>();
  row.theirs = median(theirs);
  row.theirs_cpu = median(tail(theirs_cpu));
  row.loss_theirs = peer.j["loss"].get<double>();
  fmt::print("  {:<9} f={:<4} implicit wall s/iter: ", name, f);
  for (double s : theirs) fmt::print("{:.3f} ", s);
  fmt::print(" cpu s/iter: ");
  for (double s : theirs_cpu) fmt::print("{:.3f} ", s);
  fmt::print(" (fit {:.2f} s)  loss {:.6f}  (implicit {}, {} threads)\n",
             peer.j["fit_seconds"].get<double>(), row.loss_theirs,
             peer.j["implicit"].get<std::string>(), peer.j["threads"].get<int>());
  std::fflush(stdout);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const int cores = dan::bench::hardware_cores();
  const int threads = o.threads > 0 ? o.threads : cores;
  dan::set_num_threads(threads);
  fmt::print("bench_als: implicit ALS (CG, {} steps) seconds per iteration, ours vs implicit\n",
             o.cg_steps);
  fmt::print("machine cores: {}   load average: {}   threads: {} (ours: DAN_NUM_THREADS; "
             "implicit: num_threads, OPENBLAS_NUM_THREADS=1)\n",
             cores, dan::bench::load_average(), threads);
  fmt::print("reg {}, alpha {}, {} iterations from identical initial factors; CPU path: {}\n",
             o.reg, o.alpha, o.iters, dan::kernels::cpu::als_uses_simd() ? "AVX2+FMA" : "portable");
  fmt::print("reference: {} {}\n\n", o.python, o.script);

  char tmpl[] = "/tmp/dan_bench_als_XXXXXX";
  const char* tmpdir = mkdtemp(tmpl);
  if (tmpdir == nullptr) {
    fmt::print(stderr, "bench_als: cannot create a temporary directory\n");
    return 1;
  }

  std::vector<std::pair<std::string, dan::recsys::Csr>> work;
  if (o.only.empty() || o.only == "mal2023") {
    const std::string dir = o.data.empty() ? dan::recsys::default_data_dir() : o.data;
    if (dir.empty()) {
      fmt::print("mal2023: not found ($DEEPANINET_DATA or ../shared/data/mal2023); skipped\n");
    } else {
      const auto t0 = Clock::now();
      work.emplace_back("mal2023", mal2023(dir, o.alpha));
      const auto& C = work.back().second;
      fmt::print("mal2023: {} users x {} items, {} ratings ({:.1f} s to load)\n", C.rows, C.cols,
                 C.nnz(), seconds_since(t0));
    }
  }
  if (o.only.empty() || o.only == "synthetic") {
    const auto t0 = Clock::now();
    work.emplace_back("synthetic", synthetic(o.syn_users, o.syn_items, o.syn_ratings, o.alpha));
    const auto& C = work.back().second;
    int64_t heaviest = 0;
    const dan::recsys::Csr Ct = C.transpose();
    for (int64_t i = 0; i < Ct.rows; ++i) heaviest = std::max(heaviest, Ct.row_nnz(i));
    fmt::print("synthetic: {} users x {} items, {} ratings after merging duplicates, most "
               "popular item {} users ({:.1f} s to build)\n",
               C.rows, C.cols, C.nnz(), heaviest, seconds_since(t0));
  }

  std::vector<Row> rows;
  for (const auto& [name, C] : work) {
    for (int64_t f : o.factors) {
      fmt::print("\n");
      rows.push_back(run_one(o, name, C, f, threads, tmpdir));
    }
  }
  std::filesystem::remove_all(tmpdir);

  fmt::print("\n{:<10} {:>5} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8} {:>11} {:>11}\n", "workload",
             "f", "wall ours", "implicit", "ratio", "cpu ours", "implicit", "ratio", "loss ours",
             "implicit");
  for (const Row& r : rows) {
    fmt::print("{:<10} {:>5} {:>9.3f} {:>9.3f} {:>7.3f}x {:>9.3f} {:>9.3f} {:>7.3f}x {:>11.6f} "
               "{:>11.6f}\n",
               r.workload, r.f, r.ours, r.theirs, r.ours / r.theirs, r.ours_cpu, r.theirs_cpu,
               r.ours_cpu / r.theirs_cpu, r.loss_ours, r.loss_theirs);
  }
  fmt::print("seconds per iteration (medians; cpu = process CPU time, iterations after the "
             "first), {} threads; ratio = ours / implicit, target <= 0.7 at equal or lower "
             "loss\n", threads);
  return 0;
}
