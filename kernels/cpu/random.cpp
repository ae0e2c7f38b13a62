// CPU random fills and dropout: element i (row-major) uses exactly the counters of core/philox.h,
// so results match philox::uniform_f32 / normal_f32 / ... bit for bit for any thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/philox.h"
#include "kernels/cpu/philox_blocks.h"
#include "kernels/kernels.h"

namespace dan::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = int64_t{1} << 14;  // elements before OpenMP pays off

constexpr int64_t kBatchBlocks = 64;               // Philox blocks generated together
constexpr int64_t kBatchWords = 4 * kBatchBlocks;  // their 32-bit words

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DAN_CPU_CLONES
#endif

// words[4 l + k] = philox::block(seed, c0 + l).v[k] for l < kBatchBlocks.
DAN_CPU_CLONES void philox_words(uint64_t seed, uint64_t c0, uint32_t* words) {
  philox_blocks(seed, c0, kBatchBlocks, words);
}

// The word stream of a draw at `offset`: word j is word j % 4 of block offset + j / 4 (so word
// i is what philox::u32_at(seed, offset, i) returns). Calls f(words, j0, j1) for consecutive
// ranges [j0, j1) of the first nwords words, with words[0] being word j0; in parallel for
// large draws, j0 always a multiple of 4 * kBatchBlocks.
template <typename F>
void for_words(int64_t nwords, uint64_t seed, uint64_t offset, const F& f) {
  const int64_t nbatches = (nwords + kBatchWords - 1) / kBatchWords;
#pragma omp parallel for schedule(static) if (nwords >= kParallelMin)
  for (int64_t bt = 0; bt < nbatches; ++bt) {
    uint32_t words[kBatchWords];
    philox_words(seed, offset + static_cast<uint64_t>(bt * kBatchBlocks), words);
    const int64_t j0 = bt * kBatchWords;
    f(words, j0, std::min(nwords, j0 + kBatchWords));
  }
}

// Runs fill(ptr) on t's memory when t is contiguous, else on a contiguous temporary that is
// then copied into the view (so element order is the row-major order of the view).
template <typename F>
void fill_dense(const Tensor& t, const F& fill) {
  if (t.numel() == 0) return;
  if (t.is_contiguous()) {
    fill(t.raw_data());
    return;
  }
  Tensor tmp = raw::empty(t.shape(), t.dtype());
  fill(tmp.raw_data());
  raw::copy_(t, tmp);
}

// Element i = lo + (hi - lo) * uniform(i), computed in T.
template <typename T>
void uniform_fill(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  const T a = static_cast<T>(lo), w = static_cast<T>(hi - lo);
  if constexpr (std::is_same_v<T, float>) {
    // Element i <- word i.
    for_words(n, seed, offset, [&](const uint32_t* words, int64_t j0, int64_t j1) {
      float* o = out + j0;
      for (int64_t k = 0; k < j1 - j0; ++k) o[k] = a + w * philox::u32_to_unit_f32(words[k]);
    });
  } else {
    // Element i <- words 2i, 2i + 1.
    for_words(2 * n, seed, offset, [&](const uint32_t* words, int64_t j0, int64_t j1) {
      double* o = out + j0 / 2;
      for (int64_t k = 0; k < (j1 - j0) / 2; ++k) {
        o[k] = a + w * philox::u64_to_unit_f64(words[2 * k], words[2 * k + 1]);
      }
    });
  }
}

// Element i = mean + std * normal(i), computed in T. Each Box-Muller pair is evaluated once;
// the operations are those of philox::normal_f32 / normal_f64, so the bits agree.
template <typename T>
void normal_fill(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  const T mu = static_cast<T>(mean), sd = static_cast<T>(std);
  if constexpr (std::is_same_v<T, float>) {
    // Elements 2q, 2q + 1 <- the pair of words 2q, 2q + 1 (both read when n is odd).
    for_words(n + n % 2, seed, offset, [&](const uint32_t* words, int64_t j0, int64_t j1) {
      for (int64_t k = 0; k < j1 - j0; k += 2) {
        const float u1 = 1.0f - philox::u32_to_unit_f32(words[k]);
        const float u2 = philox::u32_to_unit_f32(words[k + 1]);
        const float r = sqrtf(-2.0f * logf(u1));
        const float th = 6.2831853071795864769f * u2;
        out[j0 + k] = mu + sd * (r * cosf(th));
        if (j0 + k + 1 < n) out[j0 + k + 1] = mu + sd * (r * sinf(th));
      }
    });
  } else {
    // Elements 2b, 2b + 1 <- the four words of block b.
    for_words(2 * (n + n % 2), seed, offset, [&](const uint32_t* words, int64_t j0, int64_t j1) {
      for (int64_t k = 0; k < j1 - j0; k += 4) {
        const double u1 = 1.0 - philox::u64_to_unit_f64(words[k], words[k + 1]);
        const double u2 = philox::u64_to_unit_f64(words[k + 2], words[k + 3]);
        const double r = sqrt(-2.0 * log(u1));
        const double th = 6.283185307179586476925 * u2;
        const int64_t i = (j0 + k) / 2;
        out[i] = mu + sd * (r * cos(th));
        if (i + 1 < n) out[i + 1] = mu + sd * (r * sin(th));
      }
    });
  }
}

// Calls f(i, one) with one = (uniform_f32(i) < p) for every element (element i <- word i).
template <typename F>
void bernoulli_each(int64_t n, uint64_t seed, uint64_t offset, double p, const F& f) {
  for_words(n, seed, offset, [&](const uint32_t* words, int64_t j0, int64_t j1) {
    for (int64_t k = 0; k < j1 - j0; ++k) {
      f(j0 + k, static_cast<double>(philox::u32_to_unit_f32(words[k])) < p);
    }
  });
}

}  // namespace

void uniform_(const Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  DAN_DISPATCH_FLOAT(t.dtype(), "uniform_", [&]<typename T>() {
    fill_dense(t,
               [&](void* p) { uniform_fill(static_cast<T*>(p), t.numel(), seed, offset, lo, hi); });
  });
}

void normal_(const Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  DAN_DISPATCH_FLOAT(t.dtype(), "normal_", [&]<typename T>() {
    fill_dense(
        t, [&](void* p) { normal_fill(static_cast<T*>(p), t.numel(), seed, offset, mean, std); });
  });
}

void bernoulli_(const Tensor& t, uint64_t seed, uint64_t offset, double p) {
  DAN_DISPATCH_ALL(t.dtype(), "bernoulli_", [&]<typename T>() {
    fill_dense(t, [&](void* ptr) {
      T* out = static_cast<T*>(ptr);
      bernoulli_each(t.numel(), seed, offset, p,
                     [&](int64_t i, bool one) { out[i] = one ? T(1) : T(0); });
    });
  });
}

// mask = (uniform_f32(i) >= p) / (1 - p); y = x * mask (so NaN/inf inputs stay NaN where
// dropped, as in PyTorch).
DropoutOut dropout(const Tensor& x_in, double p, uint64_t seed, uint64_t offset) {
  const Tensor x = x_in.is_contiguous() ? x_in : raw::contiguous_copy(x_in, Device::cpu());
  DropoutOut out;
  out.y = raw::empty(x.shape(), x.dtype());
  out.mask = raw::empty(x.shape(), x.dtype());
  DAN_DISPATCH_FLOAT(x.dtype(), "dropout", [&]<typename T>() {
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(out.y.raw_data());
    T* mp = static_cast<T*>(out.mask.raw_data());
    // keep = !(u < p): the same comparison as bernoulli_, negated.
    bernoulli_each(x.numel(), seed, offset, p, [&](int64_t i, bool drop) {
      const T m = drop ? T(0) : scale;
      mp[i] = m;
      yp[i] = xp[i] * m;
    });
  });
  return out;
}

}  // namespace dan::kernels::cpu
