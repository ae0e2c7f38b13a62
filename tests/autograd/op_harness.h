// The op harness (after ggml's test-backend-ops): one table of cases per differentiable op;
// every case runs a finite-difference gradcheck in f64 on the CPU and, on a GPU, CPU<->CUDA
// parity of the forward output and of every input gradient.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dan::harness {

enum class Init {
  normal,          // N(0, 1)
  positive,        // in [0.5, 2.5] (log, sqrt, pow bases)
  away_from_zero,  // |x| in [0.2, 1.2] with random sign (abs, relu kinks)
  index,           // integers in [0, bound) (i64)
  mask,            // bool, ~half true
};

struct Input {
  Shape shape;
  Init init = Init::normal;
  bool grad = true;
  bool transposed = false;  // materialized as a transposed (non-contiguous) view
  int64_t bound = 0;        // for Init::index
  DType index_dtype = DType::i64;
};

struct Case {
  std::string op;    // name in autograd/ops.def, and what the output's grad_fn records
  std::string desc;  // shape / variant, for messages
  std::vector<Input> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  double rtol = 1e-5;  // gradcheck tolerance (f64)
  bool gradcheck = true;   // finite differences in f64 (small cases only)
  bool needs_gpu = false;  // the case itself moves data to CUDA
};

std::vector<Case> all_cases();

}  // namespace dan::harness
