// Helpers the benchmark programs share: clocks, medians and repeat-timing loops, the machine
// summary every program prints, thread-count flags, the deterministic inputs they share with
// their peers, and running a peer script as a subprocess that reports one JSON line.
#pragma once

// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser
// (fill_t::operator=, reached through width/align specs); silence it for that header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dan::bench {

using Clock = std::chrono::steady_clock;

// ---- clocks and medians ----------------------------------------------------------------------

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// CPU time of the whole process, summed over its threads: at one thread it equals the wall
// time on an idle machine and stays meaningful on a busy one (time spent preempted is not
// counted).
inline double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// The median, averaging the two middle values of an even count; NaN when `v` is empty.
inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The upper of the two middle values for an even count (Python's statistics.median_high), so
// the result is always one measured sample; 0 when `v` is empty.
inline double median_high(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct WallCpu {
  double wall = 0, cpu = 0;  // seconds
};

// Medians of the wall and the process-CPU seconds of fn() over `reps` calls after `warmup`
// calls. `pick` chooses the median (median or median_high), as each program always has.
template <typename F>
WallCpu time_wall_cpu(int warmup, int reps, const F& fn,
                      double (*pick)(std::vector<double>) = median) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> wall, cpu;
  for (int r = 0; r < reps; ++r) {
    const double c0 = process_cpu_s();
    const auto t0 = Clock::now();
    fn();
    wall.push_back(seconds_since(t0));
    cpu.push_back(process_cpu_s() - c0);
  }
  return {pick(std::move(wall)), pick(std::move(cpu))};
}

// ---- the machine -----------------------------------------------------------------------------

// The three load averages as /proc/loadavg spells them; "unknown" where it cannot be read.
inline std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  if (!(f >> a >> b >> c)) return "unknown";
  return a + " " + b + " " + c;
}

// The one-minute load average; -1 where it cannot be read.
inline double load_average_1min() {
  double load = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

// Hardware threads, at least 1 (hardware_concurrency() may answer 0).
inline int hardware_cores() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// The thread counts a program runs when none is asked for: 1, and all cores when there are more.
inline std::vector<int> default_thread_counts(int cores) {
  std::vector<int> t = {1};
  if (cores > 1) t.push_back(cores);
  return t;
}

// `--threads T` anywhere on the command line: {T}; otherwise default_thread_counts(cores).
inline std::vector<int> thread_counts_from_args(int argc, char** argv, int cores) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0) return {std::max(1, std::atoi(argv[i + 1]))};
  }
  return default_thread_counts(cores);
}

// The environment variable `name` when set and non-empty, else `fallback`.
inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// ---- deterministic data ----------------------------------------------------------------------

// splitmix64: the generator behind every input that must match a peer's bit for bit (the
// reference scripts compute the same function with NumPy).
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// f32 values splitmix64(seed << 32 | i) -> top 24 bits -> lo + (hi - lo) u, element i in
// row-major order.
inline Tensor det_uniform(const Shape& shape, uint64_t seed, double lo, double hi) {
  Tensor t = raw::empty(shape, DType::f32);
  float* p = t.data<float>();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double u =
        static_cast<double>(splitmix64((seed << 32) + static_cast<uint64_t>(i)) >> 40) / 16777216.0;
    p[i] = static_cast<float>(lo + (hi - lo) * u);
  }
  return t;
}

// The power-law graph of bench_spmm (also timed by bench_gnn_epoch and cuda/bench_spmm_cuda):
// both endpoints of `edges` edges drawn as floor(N u^2) (density ~ i^-1/2: a few hubs hold
// ~1e-3 of the edges each), then scattered by a multiplicative bijection so that hubs are not
// neighbours in memory. Duplicates and self-loops are kept.
inline void power_law_edges(int64_t nodes, int64_t edges, std::vector<int32_t>& src,
                            std::vector<int32_t>& dst) {
  uint64_t mult = 2654435761ull % static_cast<uint64_t>(nodes);
  while (std::gcd(mult, static_cast<uint64_t>(nodes)) != 1) ++mult;
  src.resize(static_cast<size_t>(edges));
  dst.resize(static_cast<size_t>(edges));
  auto draw = [&](uint64_t key) {
    const double u = static_cast<double>(splitmix64(key) >> 11) / 9007199254740992.0;
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

// ---- the peer subprocess ---------------------------------------------------------------------

// Pins every thread pool a PyTorch peer may use (OpenMP, MKL, OpenBLAS) to `threads`, as a
// prefix for its shell command.
inline std::string peer_thread_env(int threads) {
  return fmt::format("OMP_NUM_THREADS={0} MKL_NUM_THREADS={0} OPENBLAS_NUM_THREADS={0}", threads);
}

struct CommandOutput {
  bool started = false;
  int status = -1;   // pclose's status
  std::string text;  // stdout (and stderr where the command redirects it)
};

// Runs `cmd` through the shell and collects what it prints.
inline CommandOutput run_command(const std::string& cmd) {
  CommandOutput r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  r.started = true;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) r.text += buf.data();
  r.status = pclose(pipe);
  return r;
}

// The last line of `out` that starts with '{' (a peer prints its result last, after any
// warnings its libraries write); empty when there is none.
inline std::string last_json_line(const std::string& out) {
  size_t pos = std::string::npos;
  for (size_t from = 0; from < out.size();) {
    const size_t eol = out.find('\n', from);
    if (out[from] == '{') pos = from;
    from = eol == std::string::npos ? out.size() : eol + 1;
  }
  return pos == std::string::npos ? std::string() : out.substr(pos, out.find('\n', pos) - pos);
}

struct PeerResult {
  bool ok = false;
  std::string error;  // why there is no result: the peer's own "error" field, or what it printed
  nlohmann::json j;
};

// Runs a peer script (`cmd` should redirect its stderr to stdout) and reads its result, the
// JSON object on its last line starting with '{'.
inline PeerResult run_peer(const std::string& cmd) {
  PeerResult r;
  const CommandOutput out = run_command(cmd);
  if (!out.started) {
    r.error = fmt::format("could not start `{}`", cmd);
    return r;
  }
  const std::string line = last_json_line(out.text);
  if (!line.empty()) r.j = nlohmann::json::parse(line, nullptr, false);
  if (r.j.is_discarded() || !r.j.is_object()) {
    r.error = fmt::format("`{}` exited with status {} and printed no result:\n{}", cmd, out.status,
                          out.text);
  } else if (r.j.contains("error")) {
    r.error = r.j["error"].get<std::string>();
  } else {
    r.ok = true;
  }
  return r;
}

}  // namespace dan::bench
