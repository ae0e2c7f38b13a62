// Device-time measurement for the CUDA benchmarks: a pair of CUDA events recorded on the
// library's stream around the work, and the median of such samples.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "bench/common.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"

namespace dan::bench {

// Events on the context stream measure device time only (host work between launches is not
// counted). Each sample waits for its stop event, so the outputs a call frees go back to the
// caching allocator before the next one starts.
class EventTimer {
 public:
  explicit EventTimer(int device) : stream_(dan::cuda::current_stream(device)) {
    DAN_CUDA_CHECK(cudaEventCreate(&start_));
    DAN_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Milliseconds of device time between fn()'s first and last work on the stream.
  template <typename F>
  double time_ms(const F& fn) {
    DAN_CUDA_CHECK(cudaEventRecord(start_, stream_));
    fn();
    DAN_CUDA_CHECK(cudaEventRecord(stop_, stream_));
    DAN_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    DAN_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_{}, stop_{};
};

// median_high (always one measured sample) of the device milliseconds of fn() over `reps`
// calls after `warmup` untimed calls.
template <typename F>
double event_median_ms(int device, int warmup, int reps, const F& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  EventTimer timer(device);
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) ms.push_back(timer.time_ms(fn));
  return median_high(ms);
}

}  // namespace dan::bench
