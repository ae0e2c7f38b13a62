// deepaninet: the command-line entry point. Subcommands: info, demo.
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "apps/demo.h"
#include "core/cuda/runtime.h"
#include "core/error.h"
#include "core/threads.h"

namespace {

const char* kUsage =
    "usage: deepaninet <command> [options]\n"
    "  info                         build and device information\n"
    "  demo [--epochs N] [--items N] [--batch N] [--lr X] [--seed N] [--threads N]\n"
    "       [--device cpu|cuda[:N]] [--out DIR]\n"
    "                               train a small MLP on synthetic cold-start data\n";

int info() {
  fmt::print("DeepAniNet\n  CUDA built: {}\n  CUDA devices: {}\n  threads: {} (DAN_NUM_THREADS)\n",
             dan::cuda::is_built() ? "yes" : "no", dan::cuda::device_count(), dan::num_threads());
  return 0;
}

// --key value pairs into a map; unknown keys are an error naming them.
std::map<std::string, std::string> parse_flags(int argc, char** argv, int start,
                                               const std::vector<std::string>& known) {
  std::map<std::string, std::string> out;
  for (int i = start; i < argc; ++i) {
    std::string k = argv[i];
    DAN_CHECK(k.rfind("--", 0) == 0, "expected an option like --epochs, got '{}'", k);
    k = k.substr(2);
    DAN_CHECK(std::find(known.begin(), known.end(), k) != known.end(),
              "unknown option --{} (known: --{})", k, fmt::join(known, ", --"));
    DAN_CHECK(i + 1 < argc, "option --{} needs a value", k);
    out[k] = argv[++i];
  }
  return out;
}

long long to_int(const std::string& key, const std::string& v) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  DAN_CHECK(!v.empty() && *end == '\0', "--{}: expected an integer, got '{}'", key, v);
  return x;
}

double to_double(const std::string& key, const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  DAN_CHECK(!v.empty() && *end == '\0', "--{}: expected a number, got '{}'", key, v);
  return x;
}

int demo(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"epochs", "items", "batch", "lr", "seed", "threads", "device", "out"});
  dan::apps::DemoOptions o;
  if (f.count("epochs")) o.epochs = static_cast<int>(to_int("epochs", f.at("epochs")));
  if (f.count("items")) o.items = to_int("items", f.at("items"));
  if (f.count("batch")) o.batch = to_int("batch", f.at("batch"));
  if (f.count("lr")) o.lr = to_double("lr", f.at("lr"));
  if (f.count("seed")) o.seed = static_cast<uint64_t>(to_int("seed", f.at("seed")));
  if (f.count("threads")) o.threads = static_cast<int>(to_int("threads", f.at("threads")));
  if (f.count("device")) o.device = f.at("device");
  if (f.count("out")) o.out = f.at("out");
  DAN_CHECK(o.epochs >= 1 && o.items >= 10 && o.batch >= 2 && o.lr > 0,
            "demo: need --epochs >= 1, --items >= 10, --batch >= 2, --lr > 0");
  DAN_CHECK(o.batch <= o.items * 4 / 5, "demo: --batch {} exceeds the {} training items", o.batch, o.items * 4 / 5);
  return dan::apps::run_demo(o);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "info") return info();
    if (cmd == "demo") return demo(argc, argv);
    fmt::print(stderr, "{}", kUsage);
    return cmd.empty() || cmd == "--help" || cmd == "-h" ? 0 : 2;
  } catch (const dan::Error& e) {
    fmt::print(stderr, "deepaninet: error: {}\n", e.what());
    return 1;
  }
}
