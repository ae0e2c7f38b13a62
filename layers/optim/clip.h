// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace dan {

// The L2 norm of all the gradients together (parameters without one are skipped); if it
// exceeds max_norm, every gradient is scaled in place by max_norm / (norm + 1e-6). Returns the
// norm before clipping. A non-finite norm is returned with the gradients left as they are, so
// the caller can skip the step.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

}  // namespace dan
