// The CUDA caching allocator and runtime surface: bin rounding, block reuse, stats,
// empty_cache, OOM reporting, thread safety, copies. Skipped without a CUDA device.
#include "core/cuda/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/tensor.h"

// Runs in every build, GPU or not: a missing device is an answer (0), not a crash, and using
// one anyway is a dan::Error.
TEST(CudaRuntime, AbsentDeviceIsReportedNotFatal) {
  const int n = dan::cuda::device_count();
  EXPECT_EQ(dan::cuda::is_available(), n > 0);
  if (n > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_THROW(dan::raw::empty({4}, dan::DType::f32, dan::Device::cuda()), dan::Error);
}

#ifdef DAN_WITH_CUDA

#include <cstring>
#include <thread>
#include <vector>

#include "core/cuda/context.h"

namespace dan {
namespace {

using ::testing::HasSubstr;
constexpr size_t kMiB = size_t{1} << 20;

TEST(CudaAllocator, RoundSize) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  EXPECT_EQ(cuda::round_size(1), 512u);
  EXPECT_EQ(cuda::round_size(512), 512u);
  EXPECT_EQ(cuda::round_size(513), 1024u);
  EXPECT_EQ(cuda::round_size(kMiB), kMiB);
  EXPECT_EQ(cuda::round_size(kMiB + 1), 2 * kMiB);
  EXPECT_EQ(cuda::round_size(3 * kMiB), 4 * kMiB);
  EXPECT_EQ(cuda::round_size(4 * kMiB + 1), 6 * kMiB);
}

TEST(CudaAllocator, ReusesSameBinAndCountsStats) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  cuda::empty_cache();
  const cuda::AllocatorStats s0 = cuda::allocator_stats(0);
  EXPECT_EQ(s0.bytes_cached, 0u);
  void* p = cuda::caching_alloc(0, 1000);
  ASSERT_NE(p, nullptr);
  cuda::AllocatorStats s1 = cuda::allocator_stats(0);
  EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use + 1024);
  EXPECT_EQ(s1.num_allocs, s0.num_allocs + 1);
  EXPECT_GE(s1.peak_in_use, s1.bytes_in_use);
  cuda::caching_free(0, p, 1000);
  s1 = cuda::allocator_stats(0);
  EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
  EXPECT_EQ(s1.bytes_cached, 1024u);
  // Same bin (1024): the cached block comes back without a cudaMalloc.
  void* q = cuda::caching_alloc(0, 900);
  EXPECT_EQ(q, p);
  cuda::AllocatorStats s2 = cuda::allocator_stats(0);
  EXPECT_EQ(s2.cache_hits, s1.cache_hits + 1);
  EXPECT_EQ(s2.num_allocs, s1.num_allocs);
  EXPECT_EQ(s2.bytes_cached, 0u);
  // Another bin does not take it.
  void* r = cuda::caching_alloc(0, 3000);
  EXPECT_NE(r, q);
  EXPECT_EQ(cuda::allocator_stats(0).num_allocs, s2.num_allocs + 1);
  cuda::caching_free(0, q, 900);
  cuda::caching_free(0, r, 3000);
  EXPECT_EQ(cuda::allocator_stats(0).bytes_cached, 1024u + 3072u);
  cuda::empty_cache();
  EXPECT_EQ(cuda::allocator_stats(0).bytes_cached, 0u);
  const size_t allocs = cuda::allocator_stats(0).num_allocs;
  void* t = cuda::caching_alloc(0, 1000);
  EXPECT_EQ(cuda::allocator_stats(0).num_allocs, allocs + 1) << "empty_cache must drop blocks";
  cuda::caching_free(0, t, 1000);
  EXPECT_EQ(cuda::caching_alloc(0, 0), nullptr);
}

TEST(CudaAllocator, PeakAndReset) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  cuda::reset_peak_stats(0);
  const size_t base = cuda::allocator_stats(0).bytes_in_use;
  {
    Tensor a = raw::empty({3, static_cast<int64_t>(kMiB / 4)}, DType::f32, Device::cuda());  // 3 MiB: a 4 MiB block
    EXPECT_EQ(cuda::allocator_stats(0).bytes_in_use, base + 4 * kMiB);
  }
  EXPECT_EQ(cuda::allocator_stats(0).bytes_in_use, base);
  EXPECT_EQ(cuda::allocator_stats(0).peak_in_use, base + 4 * kMiB);
  cuda::reset_peak_stats(0);
  EXPECT_EQ(cuda::allocator_stats(0).peak_in_use, base);
}

TEST(CudaAllocator, OutOfMemoryNamesTheRequest) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const size_t huge = size_t{1} << 50;  // 1 PiB
  std::string msg;
  try {
    cuda::caching_alloc(0, huge);
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_THAT(msg, AllOf(HasSubstr("out of memory"), HasSubstr(std::to_string(huge))));
  void* p = cuda::caching_alloc(0, 4096);  // still usable afterwards
  EXPECT_NE(p, nullptr);
  cuda::caching_free(0, p, 4096);
}

TEST(CudaAllocator, RejectsForeignPointersAndBadDevices) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  int x = 0;
  EXPECT_THROW(cuda::caching_free(0, &x, 4), Error);
  EXPECT_THROW(cuda::caching_alloc(cuda::device_count(), 16), Error);
  EXPECT_THROW(cuda::set_device(-1), Error);
}

TEST(CudaAllocator, ThreadSafe) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const size_t before = cuda::allocator_stats(0).bytes_in_use;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t] {
      std::vector<std::pair<void*, size_t>> held;
      for (int i = 0; i < 200; ++i) {
        const size_t n = static_cast<size_t>(512 * (1 + (i * 7 + t) % 5));
        held.emplace_back(cuda::caching_alloc(0, n), n);
        if (i % 3 == 2) {
          cuda::caching_free(0, held.front().first, held.front().second);
          held.erase(held.begin());
        }
      }
      for (auto [p, n] : held) cuda::caching_free(0, p, n);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(cuda::allocator_stats(0).bytes_in_use, before);
}

TEST(CudaRuntime, DevicesCopiesAndProps) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  EXPECT_TRUE(cuda::is_built());
  EXPECT_GT(cuda::device_count(), 0);
  cuda::set_device(0);
  EXPECT_EQ(cuda::current_device(), 0);
  std::vector<float> host(1000), back(1000, 0.0f);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i) * 0.5f;
  void* d1 = cuda::caching_alloc(0, 4000);
  void* d2 = cuda::caching_alloc(0, 4000);
  cuda::memcpy(d1, Device::cuda(), host.data(), Device::cpu(), 4000);
  cuda::memcpy(d2, Device::cuda(), d1, Device::cuda(), 4000);
  cuda::memcpy(back.data(), Device::cpu(), d2, Device::cuda(), 4000);
  cuda::synchronize(0);
  EXPECT_EQ(std::memcmp(host.data(), back.data(), 4000), 0);
  cuda::caching_free(0, d1, 4000);
  cuda::caching_free(0, d2, 4000);
  const cuda::DeviceProps& p = cuda::device_props(0);
  EXPECT_FALSE(p.name.empty());
  EXPECT_GT(p.sm_count, 0);
  EXPECT_GT(p.peak_bandwidth_gbps, 100.0);
  EXPECT_NE(cuda::current_stream(0), nullptr);
  EXPECT_EQ(cuda::current_stream(0), cuda::current_stream(0));
  EXPECT_NE(cuda::cublas_handle(0), nullptr);
  EXPECT_NE(cuda::cusparse_handle(0), nullptr);
}

}  // namespace
}  // namespace dan

#endif  // DAN_WITH_CUDA
