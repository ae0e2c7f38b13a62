// deepaninet: the command-line entry point. Subcommands: info, demo, wmf, train, recommend,
// config-doc (one file each under apps/).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/demo.h"
#include "apps/schema.h"
#include "core/cuda/runtime.h"
#include "core/error.h"
#include "core/threads.h"

namespace {

const char* kUsage =
    "usage: deepaninet <command> [options]\n"
    "  info                         build and device information\n"
    "  demo [--data DIR] [--epochs N] [--threads N] [--out DIR] [--k 8] [key=value ...]\n"
    "                               the main job: configs/demo.yaml end to end + recommendations\n"
    "  wmf [--data DIR|synthetic[:SEED]] [--factors 64] [--iters 15] [--solver cg|cholesky]\n"
    "      [--cg-steps 3] [--reg 0.01] [--alpha 1] [--confidence linear|log1p] [--threshold 0]\n"
    "      [--device cpu|cuda] [--seed 0] [--split-seed 1] [--threads N] [--out DIR]\n"
    "      [--skip-bad-rows] [--no-eval]\n"
    "                               WMF by implicit ALS, evaluated beside the baselines\n"
    "  train CONFIG.yaml [key=value ...] | train --resume RUN_DIR [key=value ...]\n"
    "                               run an experiment (see configs/README.md)\n"
    "  recommend --run RUN_DIR --like TITLE [--like TITLE ...] [--k 10]\n"
    "                               side-by-side WMF / item-kNN / DeepAniNet for a new user\n"
    "  pretrain-mlm --out DIR [--data DIR] [--from MODEL_DIR] [--fields synopsis,reviews,\n"
    "      recommendations] [--max-length 128] [--batch-size 16] [--steps 200] [--lr 5e-5]\n"
    "      [--mask-prob 0.15] [--whole-word] [--heldout 0.02] [--eval-batches 8] [--seed 0]\n"
    "                               masked-LM pre-training of a BERT encoder on the texts\n"
    "  config-doc                   the table of every config key (configs/README.md)\n";

int info() {
  fmt::print("DeepAniNet\n  CUDA built: {}\n  CUDA devices: {}\n  threads: {} (DAN_NUM_THREADS)\n",
             dan::cuda::is_built() ? "yes" : "no", dan::cuda::device_count(), dan::num_threads());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // libgomp busy-waits ~300k spins between parallel regions by default. On a machine where
  // anything else runs, waiting workers then hold the cores the working thread needs: a
  // DropoutNet epoch ran 40-70x slower (7 vs 480 it/s) next to a compiler. A short spin keeps
  // the idle-machine speed. The setting is read when libgomp loads, hence the re-exec; a user's
  // own OMP_WAIT_POLICY / GOMP_SPINCOUNT wins.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    ::setenv("GOMP_SPINCOUNT", "1000", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: run on with the default
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen, also in logs
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "info") return info();
    if (cmd == "demo") return dan::apps::demo_command(argc, argv);
    if (cmd == "wmf") return dan::apps::wmf_command(argc, argv);
    if (cmd == "train") return dan::apps::train_command(argc, argv);
    if (cmd == "recommend") return dan::apps::recommend_command(argc, argv);
    if (cmd == "pretrain-mlm") return dan::apps::pretrain_mlm_command(argc, argv);
    if (cmd == "config-doc") {
      fmt::print("{}", dan::apps::train_schema().markdown());
      return 0;
    }
    fmt::print(stderr, "{}", kUsage);
    return cmd.empty() || cmd == "--help" || cmd == "-h" ? 0 : 2;
  } catch (const dan::Error& e) {
    fmt::print(stderr, "deepaninet: error: {}\n", e.what());
    return 1;
  }
}
