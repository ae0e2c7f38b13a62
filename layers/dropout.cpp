// Dropout module over the dropout op.
#include "layers/dropout.h"

namespace dan {

Dropout::Dropout(double p, Generator& gen) : p_(p), gen_(&gen) {
  DAN_CHECK(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got {}", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), *gen_); }

}  // namespace dan
