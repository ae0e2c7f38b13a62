// Per-device CUDA contexts: lazily created stream and library handles, cached properties.
// Contexts are never destroyed: tearing down streams/handles from static destructors races
// with the CUDA runtime's own shutdown, and the driver reclaims everything at exit anyway.
#include "core/cuda/context.h"

#include <atomic>
#include <memory>
#include <mutex>

#include "core/cuda/runtime.h"

namespace dan::cuda {

namespace detail {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  // Clears the (non-sticky) error so later unrelated calls do not report it again.
  (void)cudaGetLastError();
  fail("CUDA error in {}: {} ({}) at {}:{}", call, cudaGetErrorString(err), cudaGetErrorName(err),
       file, line);
}

void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line) {
  fail("cuBLAS error in {}: {} ({}) at {}:{}", call, cublasGetStatusString(st),
       static_cast<int>(st), file, line);
}

void throw_cusparse_error(cusparseStatus_t st, const char* call, const char* file, int line) {
  fail("cuSPARSE error in {}: {} ({}) at {}:{}", call, cusparseGetErrorString(st),
       static_cast<int>(st), file, line);
}

}  // namespace detail

namespace {

struct DeviceContext {
  std::mutex mu;
  // Read on every kernel launch, so the common path is one atomic load, not a lock.
  std::atomic<cudaStream_t> stream{nullptr};
  cublasHandle_t cublas = nullptr;
  cusparseHandle_t cusparse = nullptr;
  // cudnnHandle_t cudnn = nullptr;  // with cudnn_handle(), when cuDNN lands
  std::unique_ptr<DeviceProps> props;
};

struct Contexts {
  int count = 0;
  std::unique_ptr<DeviceContext[]> ctx;
};

Contexts& contexts() {
  static Contexts* all = [] {
    auto* c = new Contexts;
    c->count = device_count();
    c->ctx = std::make_unique<DeviceContext[]>(static_cast<size_t>(c->count > 0 ? c->count : 1));
    return c;
  }();
  return *all;
}

DeviceContext& context(int device, const char* what) {
  check_device(device, what);
  return contexts().ctx[static_cast<size_t>(device)];
}

// FP32 FMA lanes per SM by compute capability (CUDA programming guide, arithmetic throughput).
int fp32_lanes_per_sm(int major, int minor) {
  switch (major) {
    case 6: return minor == 0 ? 64 : 128;
    case 7: return 64;
    case 8: return minor == 0 ? 64 : 128;
    case 9:
    case 10:
    case 12: return 128;
    default: return 0;
  }
}

}  // namespace

void check_device(int device, const char* what) {
  const int n = device_count();
  DAN_CHECK(device >= 0 && device < n, "{}: cuda:{} does not exist ({} CUDA device(s) present)",
            what, device, n);
}

DeviceGuard::DeviceGuard(int device) {
  int cur = 0;
  DAN_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) {
    DAN_CUDA_CHECK(cudaSetDevice(device));
    prev_ = cur;
  }
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) (void)cudaSetDevice(prev_);
}

cudaStream_t current_stream(int device) {
  DeviceContext& c = context(device, "current_stream");
  cudaStream_t s = c.stream.load(std::memory_order_acquire);
  if (s != nullptr) return s;
  std::lock_guard<std::mutex> lock(c.mu);
  s = c.stream.load(std::memory_order_relaxed);
  if (s == nullptr) {
    DeviceGuard g(device);
    DAN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    c.stream.store(s, std::memory_order_release);
  }
  return s;
}

cublasHandle_t cublas_handle(int device) {
  cudaStream_t s = current_stream(device);
  DeviceContext& c = context(device, "cublas_handle");
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.cublas == nullptr) {
    DeviceGuard g(device);
    cublasHandle_t h = nullptr;
    DAN_CUBLAS_CHECK(cublasCreate(&h));
    DAN_CUBLAS_CHECK(cublasSetStream(h, s));
    // Keep FP32 GEMMs in full FP32 (no TF32): CPU/CUDA parity and gradchecks rely on it.
    DAN_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    c.cublas = h;
  }
  return c.cublas;
}

cusparseHandle_t cusparse_handle(int device) {
  cudaStream_t s = current_stream(device);
  DeviceContext& c = context(device, "cusparse_handle");
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.cusparse == nullptr) {
    DeviceGuard g(device);
    cusparseHandle_t h = nullptr;
    DAN_CUSPARSE_CHECK(cusparseCreate(&h));
    DAN_CUSPARSE_CHECK(cusparseSetStream(h, s));
    c.cusparse = h;
  }
  return c.cusparse;
}

const DeviceProps& device_props(int device) {
  DeviceContext& c = context(device, "device_props");
  std::lock_guard<std::mutex> lock(c.mu);
  if (!c.props) {
    cudaDeviceProp p{};
    DAN_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    auto attr = [device](cudaDeviceAttr a) {
      int v = 0;
      DAN_CUDA_CHECK(cudaDeviceGetAttribute(&v, a, device));
      return v;
    };
    auto d = std::make_unique<DeviceProps>();
    d->name = p.name;
    d->index = device;
    d->cc_major = p.major;
    d->cc_minor = p.minor;
    d->sm_count = p.multiProcessorCount;
    d->max_threads_per_block = p.maxThreadsPerBlock;
    d->shared_mem_per_block = p.sharedMemPerBlock;
    d->total_memory = p.totalGlobalMem;
    d->l2_cache_bytes = static_cast<size_t>(attr(cudaDevAttrL2CacheSize));
    // cudaDeviceProp lost memoryClockRate/clockRate in CUDA 13; the attributes remain.
    d->mem_clock_khz = attr(cudaDevAttrMemoryClockRate);
    d->mem_bus_width_bits = attr(cudaDevAttrGlobalMemoryBusWidth);
    d->sm_clock_khz = attr(cudaDevAttrClockRate);
    d->peak_bandwidth_gbps = 2.0 * d->mem_clock_khz * 1e3 * (d->mem_bus_width_bits / 8.0) / 1e9;
    d->peak_fp32_tflops = 2.0 * fp32_lanes_per_sm(p.major, p.minor) * d->sm_count *
                          d->sm_clock_khz * 1e3 / 1e12;
    c.props = std::move(d);
  }
  return *c.props;
}

}  // namespace dan::cuda
