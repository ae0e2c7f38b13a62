// DAN_CUDA_CHECK(call): turns a failed CUDA runtime call into dan::Error naming the call, the
// CUDA error and file:line. Needs the CUDA headers, so only CUDA-enabled code includes it.
#pragma once

#include <cuda_runtime_api.h>

#include "core/error.h"

namespace dan::cuda::detail {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

}  // namespace dan::cuda::detail

#define DAN_CUDA_CHECK(expr)                                                        \
  do {                                                                              \
    const cudaError_t dan_cuda_err_ = (expr);                                       \
    if (dan_cuda_err_ != cudaSuccess) {                                             \
      ::dan::cuda::detail::throw_cuda_error(dan_cuda_err_, #expr, __FILE__, __LINE__); \
    }                                                                               \
  } while (0)

// After a <<<>>> launch: reports bad launch configurations where they happen rather than at
// the next synchronizing call.
#define DAN_CUDA_CHECK_LAUNCH() DAN_CUDA_CHECK(cudaGetLastError())
