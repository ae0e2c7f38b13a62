// Benchmark: load_dataset on the mal2023 files (median of 5 loads), in seconds and MB/s of CSV,
// against two peers measured in the same run: reading the same bytes into memory (the floor)
// and Python's csv module (C parser) splitting the same files into fields without converting
// anything. Then make_split + build_interactions on the loaded data, and the generation of the
// default synthetic world. Prints "skipped: no dataset" (exit 0) when the data is absent.
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench/common.h"
#include "recsys/dataset.h"
#include "recsys/split.h"
#include "recsys/synthetic.h"

namespace {

namespace fs = std::filesystem;
using namespace dan::recsys;

constexpr const char* kFiles[] = {"anime.csv", "ratings.csv", "reviews.csv", "recommendations.csv",
                                  "rec_texts.csv"};

using Timing = dan::bench::WallCpu;  // medians, seconds

// Medians of `reps` calls after one warm-up call. CPU time is reported too: on a busy machine
// the wall time of this single-threaded code stretches with the load, its CPU time does not.
Timing time_median(const std::function<void()>& fn, int reps) {
  return dan::bench::time_wall_cpu(1, reps, fn);
}

size_t read_all(const std::string& dir) {
  size_t total = 0;
  std::vector<char> buf;
  for (const char* f : kFiles) {
    const std::string p = (fs::path(dir) / f).string();
    std::FILE* fp = std::fopen(p.c_str(), "rb");
    if (!fp) continue;
    buf.resize(fs::file_size(p));
    total += std::fread(buf.data(), 1, buf.size(), fp);
    std::fclose(fp);
  }
  return total;
}

// Python's csv module over the same files, median of 3 passes; < 0 when it cannot run.
double python_csv_seconds(const std::string& dir) {
  const std::string script =
      "import csv,sys,time,os\n"
      "d=sys.argv[1]; ts=[]\n"
      "for _ in range(4):\n"
      "  t=time.perf_counter()\n"
      "  for f in "
      "['anime.csv','ratings.csv','reviews.csv','recommendations.csv','rec_texts.csv']:\n"
      "    p=os.path.join(d,f)\n"
      "    if os.path.exists(p):\n"
      "      with open(p,newline='',encoding='utf-8') as fh:\n"
      "        for row in csv.reader(fh): pass\n"
      "  ts.append(time.perf_counter()-t)\n"
      "ts=sorted(ts[1:]); print(ts[1])\n";
  const std::string tmp = fmt::format("/tmp/bench_load_{}.py", ::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return -1;
  std::fputs(script.c_str(), f);
  std::fclose(f);
  const std::string cmd = fmt::format("/usr/bin/python3 '{}' '{}' 2>/dev/null", tmp, dir);
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  double s = -1;
  if (pipe) {
    char line[128] = {0};
    if (std::fgets(line, sizeof line, pipe)) s = std::atof(line);
    if (::pclose(pipe) != 0) s = -1;
  }
  std::remove(tmp.c_str());
  return s > 0 ? s : -1;
}

}  // namespace

int main() {
  fmt::print("bench_load: {} cores, load average {:.2f} (single-threaded code)\n",
             std::thread::hardware_concurrency(), dan::bench::load_average_1min());

  // The synthetic world needs no data.
  const Timing gen = time_median([] { (void)make_synthetic(); }, 3);
  const Dataset syn = make_synthetic();
  fmt::print(
      "synthetic world (default config: {}):\n  make_synthetic         {:.3f} s wall  {:.3f} s cpu "
      " "
      "(median of 3)\n",
      syn.summary(), gen.wall, gen.cpu);

  const std::string dir = default_data_dir();
  if (dir.empty() || !fs::exists(fs::path(dir) / "anime.csv")) {
    fmt::print("skipped: no dataset (set DEEPANINET_DATA to the mal2023 directory)\n");
    return 0;
  }
  double mb = 0;
  for (const char* f : kFiles) {
    std::error_code ec;
    const auto n = fs::file_size(fs::path(dir) / f, ec);
    if (!ec) mb += static_cast<double>(n) / 1e6;
  }
  Dataset ds;
  const Timing load = time_median([&] { ds = load_dataset(dir); }, 5);
  const Timing read = time_median([&] { (void)read_all(dir); }, 5);
  fmt::print("dataset {}: {}, {:.1f} MB of CSV\n", dir, ds.summary(), mb);
  fmt::print(
      "  load_dataset           {:.3f} s wall  {:.3f} s cpu  {:7.1f} MB/s wall  {:7.1f} MB/s cpu  "
      "(median of 5)\n",
      load.wall, load.cpu, mb / load.wall, mb / load.cpu);
  fmt::print(
      "  read the bytes only    {:.3f} s wall  {:.3f} s cpu  {:7.1f} MB/s wall  load/read = "
      "{:.1f}x\n",
      read.wall, read.cpu, mb / read.wall, load.wall / read.wall);
  const double py_s = python_csv_seconds(dir);
  if (py_s > 0) {
    fmt::print(
        "  python csv.reader      {:.3f} s wall                {:7.1f} MB/s wall  (fields only, "
        "no conversion); python/ours = {:.2f}x\n",
        py_s, mb / py_s, py_s / load.wall);
  } else {
    fmt::print("  python csv.reader      not run (/usr/bin/python3 unavailable)\n");
  }

  Split split;
  const Timing sp = time_median([&] { split = make_split(ds, SplitConfig{}); }, 5);
  Interactions x;
  const Timing in = time_median([&] { x = build_interactions(ds, split, ImplicitConfig{}); }, 5);
  fmt::print(
      "  make_split             {:.4f} s wall  {:.4f} s cpu  ({} train / {} val / {} test anime)\n",
      sp.wall, sp.cpu, split.train_items.size(), split.val_items.size(), split.test_items.size());
  fmt::print(
      "  build_interactions     {:.4f} s wall  {:.4f} s cpu  ({} active users; nnz fit {}, warm "
      "{}, val {}, test {})\n",
      in.wall, in.cpu, x.users.size(), x.fit.nnz(), x.warm_test.nnz(), x.val.nnz(), x.test.nnz());
  fmt::print("  load + split + interactions: {:.3f} s wall, {:.3f} s cpu\n",
             load.wall + sp.wall + in.wall, load.cpu + sp.cpu + in.cpu);
  return 0;
}
