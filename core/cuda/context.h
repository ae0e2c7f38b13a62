// Per-device CUDA context: the device's stream, library handles bound to it, and the device
// properties benchmarks use to report % of peak. Needs the CUDA headers (CUDA builds only).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusparse.h>

#include <string>

#include "core/cuda/check.h"

namespace dan::cuda {

namespace detail {
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* call, const char* file,
                                     int line);
[[noreturn]] void throw_cusparse_error(cusparseStatus_t st, const char* call, const char* file,
                                       int line);
}  // namespace detail

// Every kernel, copy and library call of a device goes to this one stream, so the caching
// allocator may hand a freed block to the next request without a synchronization: all users
// of a block are ordered on the stream. Non-blocking: it never waits for the legacy stream.
// Created lazily (the first call sets up the device's context).
cudaStream_t current_stream(int device);

// Created lazily on first use and bound to current_stream(device).
cublasHandle_t cublas_handle(int device);
cusparseHandle_t cusparse_handle(int device);
// cuDNN goes here: cudnnHandle_t cudnn_handle(int device), created the same way (lazily, bound
// with cudnnSetStream to current_stream(device)) in context.cpp.

struct DeviceProps {
  std::string name;
  int index = 0;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int max_threads_per_block = 0;
  size_t shared_mem_per_block = 0;
  size_t total_memory = 0;        // bytes
  size_t l2_cache_bytes = 0;
  int mem_clock_khz = 0;          // peak memory clock
  int mem_bus_width_bits = 0;
  int sm_clock_khz = 0;           // peak SM clock
  // 2 (double data rate) x memory clock x bus width: the usual spec-sheet estimate.
  double peak_bandwidth_gbps = 0;  // GB/s (1e9 bytes)
  // FP32 FMA lanes per SM (from the compute capability) x 2 x SMs x SM clock; 0 if unknown.
  double peak_fp32_tflops = 0;
};
const DeviceProps& device_props(int device);

// Makes `device` current for the scope and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// Throws dan::Error naming `what` unless 0 <= device < device_count().
void check_device(int device, const char* what);

}  // namespace dan::cuda

#define DAN_CUBLAS_CHECK(expr)                                                           \
  do {                                                                                   \
    const cublasStatus_t dan_cublas_st_ = (expr);                                        \
    if (dan_cublas_st_ != CUBLAS_STATUS_SUCCESS) {                                       \
      ::dan::cuda::detail::throw_cublas_error(dan_cublas_st_, #expr, __FILE__, __LINE__); \
    }                                                                                    \
  } while (0)

#define DAN_CUSPARSE_CHECK(expr)                                                             \
  do {                                                                                       \
    const cusparseStatus_t dan_cusparse_st_ = (expr);                                        \
    if (dan_cusparse_st_ != CUSPARSE_STATUS_SUCCESS) {                                       \
      ::dan::cuda::detail::throw_cusparse_error(dan_cusparse_st_, #expr, __FILE__, __LINE__); \
    }                                                                                        \
  } while (0)
