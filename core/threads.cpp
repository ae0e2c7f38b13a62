#include "core/threads.h"

#include <omp.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "core/error.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace dan {

namespace {
int initial_threads() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("DAN_NUM_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    DAN_CHECK(end != nullptr && *end == '\0' && v >= 1 && v <= 4096,
              "DAN_NUM_THREADS: expected a positive integer, got '{}'", env);
    n = static_cast<int>(v);
  }
  n = n < 1 ? 1 : n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

int& current() {
  static int n = initial_threads();
  return n;
}
// Apply DAN_NUM_THREADS before main(): OpenMP regions that never ask num_threads() (library
// code, BLAS) must see the same team size as those that do.
[[maybe_unused]] const int kApplyAtStartup = current();

}  // namespace

int num_threads() { return current(); }

void set_num_threads(int n) {
  DAN_CHECK(n >= 1, "set_num_threads: expected n >= 1, got {}", n);
  current() = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

}  // namespace dan
