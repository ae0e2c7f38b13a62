// Storage: one owned allocation on one device. Tensors share a Storage through views.
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace dan {

// Raw allocation entry points; CPU memory is 64-byte aligned, CUDA memory comes from the
// caching allocator (core/cuda/runtime.h).
void* allocate(Device d, size_t nbytes);
void deallocate(Device d, void* p, size_t nbytes);

class Storage {
 public:
  Storage(Device d, size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  size_t nbytes_;
  void* ptr_;
};

// Copies bytes between any two devices (host<->device, device<->device, host<->host).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);

}  // namespace dan
