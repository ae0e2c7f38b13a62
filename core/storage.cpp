#include "core/storage.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/cuda/runtime.h"

namespace dan {

namespace {
constexpr size_t kCpuAlignment = 64;
}

void* allocate(Device d, size_t nbytes) {
  if (d.is_cuda()) return cuda::caching_alloc(d.index, nbytes);
  // aligned_alloc needs a size that is a multiple of the alignment; never ask for 0 bytes.
  const size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  void* p = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
  DAN_CHECK(p != nullptr, "allocate: out of host memory asking for {} bytes", nbytes);
  return p;
}

void deallocate(Device d, void* p, size_t nbytes) {
  if (p == nullptr) return;
  if (d.is_cuda()) {
    cuda::caching_free(d.index, p, nbytes);
    return;
  }
  std::free(p);
}

Storage::Storage(Device d, size_t nbytes) : device_(d), nbytes_(nbytes), ptr_(allocate(d, nbytes)) {}

Storage::~Storage() {
  // Destructors must not throw; a failing free is a bug worth shouting about, not a crash.
  try {
    deallocate(device_, ptr_, nbytes_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dan: error freeing %zu bytes on %s: %s\n", nbytes_, device_.str().c_str(), e.what());
  }
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  cuda::memcpy(dst, dst_dev, src, src_dev, nbytes);
}

}  // namespace dan
