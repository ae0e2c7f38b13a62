// deepaninet: the command-line entry point. Subcommands: info, demo.
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "apps/cli.h"
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

int demo(int argc, char** argv) {
  const auto f = dan::apps::parse_flags(argc, argv, 2,
                                        {"epochs", "items", "batch", "lr", "seed", "threads", "device", "out"});
  DAN_CHECK(f.positional.empty(), "demo: unexpected argument '{}'", f.positional.empty() ? "" : f.positional[0]);
  dan::apps::DemoOptions o;
  o.epochs = static_cast<int>(f.integer("epochs", o.epochs));
  o.items = f.integer("items", o.items);
  o.batch = f.integer("batch", o.batch);
  o.lr = f.number("lr", o.lr);
  o.seed = static_cast<uint64_t>(f.integer("seed", static_cast<long long>(o.seed)));
  o.threads = static_cast<int>(f.integer("threads", o.threads));
  o.device = f.str("device", o.device);
  o.out = f.str("out", o.out);
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
