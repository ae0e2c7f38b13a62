// The CUDA runtime surface that core/ needs, declared without CUDA headers so every
// translation unit compiles with or without the toolkit. With DAN_CUDA off these throw.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace dan::cuda {

bool is_built();       // compiled with CUDA support
int device_count();    // 0 when built without CUDA or when no GPU/driver is present
bool is_available();   // device_count() > 0

void set_device(int index);
int current_device();
void synchronize(int index);

// Caching allocator: size-binned free lists per (device, stream). Blocks are returned to
// the cache on free and reused for requests of the same bin; empty_cache() gives them back.
void* caching_alloc(int device, size_t nbytes);
void caching_free(int device, void* p, size_t nbytes);

struct AllocatorStats {
  size_t bytes_in_use = 0;   // handed out to tensors now
  size_t peak_in_use = 0;    // max of bytes_in_use since start / reset_peak
  size_t bytes_cached = 0;   // held in free lists, not in use
  size_t num_allocs = 0;     // cudaMalloc calls made
  size_t cache_hits = 0;     // requests served from the cache
};
AllocatorStats allocator_stats(int device);
void reset_peak_stats(int device);
void empty_cache();

// Bin size used by the allocator for a request (exposed for tests).
size_t round_size(size_t nbytes);

void memcpy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);

}  // namespace dan::cuda
