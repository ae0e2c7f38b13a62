// Built when DAN_CUDA is OFF: the CUDA surface exists and says clearly that it is absent.
#include "core/cuda/runtime.h"

namespace dan::cuda {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  fail("{}: this build of DeepAniNet has no CUDA support (configure with -DDAN_CUDA=ON)", what);
}
}  // namespace

bool is_built() { return false; }
int device_count() { return 0; }
bool is_available() { return false; }
void set_device(int) { no_cuda("set_device"); }
int current_device() { no_cuda("current_device"); }
void synchronize(int) { no_cuda("synchronize"); }
void* caching_alloc(int, size_t) { no_cuda("allocate"); }
void caching_free(int, void*, size_t) { no_cuda("free"); }
AllocatorStats allocator_stats(int) { return {}; }
void reset_peak_stats(int) {}
void empty_cache() {}
size_t round_size(size_t nbytes) { return nbytes; }
void memcpy(void*, Device, const void*, Device, size_t) { no_cuda("memcpy"); }

}  // namespace dan::cuda
