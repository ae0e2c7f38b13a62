// What DAN_ATTENTION=auto decided (kernels/cuda/attention.cu; kernels/README.md).
#pragma once

#include <string>
#include <vector>

namespace dan::kernels::cuda {

// One line per shape and direction measured so far, with the winner and every candidate's
// time, e.g. "cuda:0 forward B=32 S=128 heads=12 dh=32 mask: tiled (tiled 0.101 ms, naive
// 0.232 ms, materialized 0.310 ms)". Empty before the first measured call.
std::vector<std::string> attention_decisions();

}  // namespace dan::kernels::cuda
