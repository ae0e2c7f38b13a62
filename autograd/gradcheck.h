// Finite-difference gradient check (f64, CPU): compares backward() with central differences
// of a random projection of the output, for every input that requires grad.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dan::autograd {

struct GradcheckOptions {
  double eps = 1e-6;    // finite-difference step
  double atol = 1e-7;
  double rtol = 1e-5;
  uint64_t seed = 1234;  // for the output projection
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0;  // over all inputs and elements
  std::string message;     // first mismatch: input, element, analytic vs numeric
};

// fn must be deterministic in its inputs (dropout: pass a generator reset inside fn).
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

}  // namespace dan::autograd
