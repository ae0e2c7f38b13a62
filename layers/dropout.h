// Dropout: zeroes elements with probability p in training mode (Philox mask, scaled by
// 1/(1-p)); the identity in eval mode.
#pragma once

#include "layers/module.h"

namespace dan {

class Dropout : public Module {
 public:
  // `gen` must outlive the module; each training forward reserves its counters from it, so
  // masks depend only on the seed and the order of random ops.
  explicit Dropout(double p = 0.5, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  double p() const { return p_; }

 private:
  double p_;
  Generator* gen_;
};

}  // namespace dan
