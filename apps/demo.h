// The `demo` subcommand (see demo.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace dan::apps {

struct DemoOptions {
  int epochs = 10;
  int64_t items = 6000;
  int64_t batch = 128;
  double lr = 2e-3;
  uint64_t seed = 0;
  int threads = 0;  // 0 = DAN_NUM_THREADS / all cores
  std::string device = "cpu";
  std::string out = "runs/demo";
};

int run_demo(const DemoOptions& o);

}  // namespace dan::apps
