// The CUDA runtime surface of core/ (device queries, copies) and the caching allocator.
#include "core/cuda/runtime.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/context.h"

namespace dan::cuda {

bool is_built() { return true; }

int device_count() {
  // A missing driver or device is not an error here: the answer is just "no GPU". The count
  // is fixed for the life of the process, so it is asked once.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      n = 0;
    }
    return n;
  }();
  return count;
}

bool is_available() { return device_count() > 0; }

void set_device(int index) {
  check_device(index, "set_device");
  DAN_CUDA_CHECK(cudaSetDevice(index));
}

int current_device() {
  DAN_CHECK(is_available(), "current_device: no CUDA device is present");
  int d = 0;
  DAN_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void synchronize(int index) {
  check_device(index, "synchronize");
  DeviceGuard g(index);
  DAN_CUDA_CHECK(cudaDeviceSynchronize());
}

void memcpy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  // Copies run on the device's stream (ordered after the kernels that produced or will
  // reuse the memory) and are waited for, so the caller may touch host memory right after.
  if (src_dev.is_cpu()) {
    check_device(dst_dev.index, "memcpy");
    DeviceGuard g(dst_dev.index);
    cudaStream_t s = current_stream(dst_dev.index);
    DAN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
    DAN_CUDA_CHECK(cudaStreamSynchronize(s));
    return;
  }
  check_device(src_dev.index, "memcpy");
  if (dst_dev.is_cpu() || dst_dev.index == src_dev.index) {
    DeviceGuard g(src_dev.index);
    cudaStream_t s = current_stream(src_dev.index);
    DAN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes,
                                   dst_dev.is_cpu() ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice,
                                   s));
    DAN_CUDA_CHECK(cudaStreamSynchronize(s));
    return;
  }
  // Peer copy: the destination block may still be in use by work queued on its own stream.
  check_device(dst_dev.index, "memcpy");
  {
    DeviceGuard g(dst_dev.index);
    DAN_CUDA_CHECK(cudaStreamSynchronize(current_stream(dst_dev.index)));
  }
  DeviceGuard g(src_dev.index);
  cudaStream_t s = current_stream(src_dev.index);
  DAN_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev.index, src, src_dev.index, nbytes, s));
  DAN_CUDA_CHECK(cudaStreamSynchronize(s));
}

// ---- caching allocator -----------------------------------------------------------------------
// Blocks are binned by exact rounded size per (device, stream). A freed block goes back to the
// free list of the stream it was allocated on; since every user of that block was queued on
// the same stream, handing it to the next request of that stream needs no synchronization.
namespace {

constexpr size_t kSmallLimit = size_t{1} << 20;  // requests up to 1 MiB are "small"
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t{2} << 20;

struct Block {
  size_t size = 0;
  cudaStream_t stream = nullptr;
};

struct DevicePool {
  std::unordered_map<void*, Block> live;
  std::unordered_map<cudaStream_t, std::unordered_map<size_t, std::vector<void*>>> free_lists;
  AllocatorStats stats;
};

struct Allocator {
  std::mutex mu;
  std::vector<DevicePool> pools;
};

// Never destroyed: tensors that outlive main() still free into it, after which the driver
// reclaims the memory at process exit.
Allocator& allocator() {
  static Allocator* a = [] {
    auto* x = new Allocator;
    x->pools.resize(static_cast<size_t>(device_count()));
    return x;
  }();
  return *a;
}

// Returns every cached block of `device` to the driver. Caller holds the mutex.
void release_cached_locked(int device, DevicePool& pool) {
  if (pool.stats.bytes_cached == 0) return;
  DeviceGuard g(device);
  for (auto& [stream, bins] : pool.free_lists) {
    for (auto& [size, blocks] : bins) {
      for (void* p : blocks) DAN_CUDA_CHECK(cudaFree(p));
      pool.stats.bytes_cached -= size * blocks.size();
      blocks.clear();
    }
  }
  pool.free_lists.clear();
}

}  // namespace

size_t round_size(size_t nbytes) {
  if (nbytes <= kSmallLimit) return (nbytes + kSmallRound - 1) / kSmallRound * kSmallRound;
  return (nbytes + kLargeRound - 1) / kLargeRound * kLargeRound;
}

void* caching_alloc(int device, size_t nbytes) {
  check_device(device, "allocate");
  if (nbytes == 0) return nullptr;  // empty tensors own no memory; deallocate skips nullptr
  const size_t size = round_size(nbytes);
  cudaStream_t stream = current_stream(device);
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  DevicePool& pool = a.pools[static_cast<size_t>(device)];
  AllocatorStats& st = pool.stats;

  void* p = nullptr;
  auto sit = pool.free_lists.find(stream);
  if (sit != pool.free_lists.end()) {
    auto bit = sit->second.find(size);
    if (bit != sit->second.end() && !bit->second.empty()) {
      p = bit->second.back();
      bit->second.pop_back();
      st.bytes_cached -= size;
      ++st.cache_hits;
    }
  }
  if (p == nullptr) {
    DeviceGuard g(device);
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      // Cached blocks of other sizes may be what stands in the way: give them back, retry.
      (void)cudaGetLastError();
      release_cached_locked(device, pool);
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      (void)cudaGetLastError();
      fail("CUDA out of memory on cuda:{}: tried to allocate {} bytes (block of {} bytes); "
           "{} bytes in use by tensors, {} bytes cached (after emptying the cache), peak {} "
           "bytes, {} cudaMalloc calls; driver reports {} of {} bytes free",
           device, nbytes, size, st.bytes_in_use, st.bytes_cached, st.peak_in_use,
           st.num_allocs, free_b, total_b);
    }
    DAN_CUDA_CHECK(err);
    ++st.num_allocs;
  }
  pool.live.emplace(p, Block{size, stream});
  st.bytes_in_use += size;
  if (st.bytes_in_use > st.peak_in_use) st.peak_in_use = st.bytes_in_use;
  return p;
}

void caching_free(int device, void* p, size_t nbytes) {
  if (p == nullptr) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  DAN_CHECK(device >= 0 && static_cast<size_t>(device) < a.pools.size(),
            "free: cuda:{} does not exist", device);
  DevicePool& pool = a.pools[static_cast<size_t>(device)];
  auto it = pool.live.find(p);
  DAN_CHECK(it != pool.live.end(), "free: {} ({} bytes) was not allocated on cuda:{} by the "
            "caching allocator, or was freed twice", p, nbytes, device);
  const Block b = it->second;
  DAN_CHECK(round_size(nbytes) == b.size, "free: {} freed with {} bytes but allocated as a block "
            "of {} bytes", p, nbytes, b.size);
  pool.live.erase(it);
  pool.free_lists[b.stream][b.size].push_back(p);
  pool.stats.bytes_in_use -= b.size;
  pool.stats.bytes_cached += b.size;
}

AllocatorStats allocator_stats(int device) {
  check_device(device, "allocator_stats");
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.pools[static_cast<size_t>(device)].stats;
}

void reset_peak_stats(int device) {
  check_device(device, "reset_peak_stats");
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  AllocatorStats& st = a.pools[static_cast<size_t>(device)].stats;
  st.peak_in_use = st.bytes_in_use;
}

void empty_cache() {
  if (!is_available()) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  for (size_t d = 0; d < a.pools.size(); ++d) release_cached_locked(static_cast<int>(d), a.pools[d]);
}

}  // namespace dan::cuda
