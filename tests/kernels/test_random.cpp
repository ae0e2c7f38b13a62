// Tests for the CPU random kernels: element i must equal the core/philox.h functions bit for
// bit (for several seeds/offsets, thread counts and strided destinations), and the moments of
// large draws must be within statistical tolerances.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/philox.h"
#include "kernels/kernels.h"

namespace {

using dan::DType;
using dan::Shape;
using dan::Tensor;
namespace raw = dan::raw;
namespace k = dan::kernels;
namespace ph = dan::philox;

const std::pair<uint64_t, uint64_t> kStreams[] = {
    {0, 0}, {42, 0}, {42, 1}, {0x123456789abcdefULL, 77}, {7, 0xfffffffffffffff0ULL}};

// Raw bits of element i of a contiguous float/double tensor (exact comparison, NaN-safe).
template <typename T>
T elem(const Tensor& t, int64_t i) {
  return static_cast<const T*>(t.raw_data())[i];
}

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Logical (row-major) values of any tensor, read with exact dtype precision.
std::vector<double> values(const Tensor& t) { return t.to_vector(); }

struct ThreadCount {
  explicit ThreadCount(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved); }
  int saved;
};

TEST(CpuRandomKernel, UniformMatchesPhiloxBitwise) {
  for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{1001}, int64_t{70001}}) {
    for (const auto& [seed, offset] : kStreams) {
      const Tensor f = raw::empty({n}, DType::f32);
      k::uniform_(f, seed, offset, 0.0, 1.0);
      const Tensor g = raw::empty({n}, DType::f32);
      k::uniform_(g, seed, offset, -2.0, 3.0);
      const Tensor d = raw::empty({n}, DType::f64);
      k::uniform_(d, seed, offset, 0.0, 1.0);
      const Tensor e = raw::empty({n}, DType::f64);
      k::uniform_(e, seed, offset, -2.0, 3.0);
      for (int64_t i = 0; i < n; ++i) {
        const float u = ph::uniform_f32(seed, offset, static_cast<uint64_t>(i));
        const double ud = ph::uniform_f64(seed, offset, static_cast<uint64_t>(i));
        ASSERT_TRUE(same_bits(elem<float>(f, i), u))
            << "f32 n=" << n << " seed=" << seed << " i=" << i;
        ASSERT_TRUE(same_bits(elem<float>(g, i), -2.0f + 5.0f * u)) << "f32 range i=" << i;
        ASSERT_TRUE(same_bits(elem<double>(d, i), ud)) << "f64 n=" << n << " i=" << i;
        ASSERT_TRUE(same_bits(elem<double>(e, i), -2.0 + 5.0 * ud)) << "f64 range i=" << i;
      }
    }
  }
}

TEST(CpuRandomKernel, NormalMatchesPhiloxBitwise) {
  for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{1001}, int64_t{70001}}) {
    for (const auto& [seed, offset] : kStreams) {
      const Tensor f = raw::empty({n}, DType::f32);
      k::normal_(f, seed, offset, 0.0, 1.0);
      const Tensor g = raw::empty({n}, DType::f32);
      k::normal_(g, seed, offset, 1.5, 0.25);
      const Tensor d = raw::empty({n}, DType::f64);
      k::normal_(d, seed, offset, 0.0, 1.0);
      const Tensor e = raw::empty({n}, DType::f64);
      k::normal_(e, seed, offset, 1.5, 0.25);
      for (int64_t i = 0; i < n; ++i) {
        const float z = ph::normal_f32(seed, offset, static_cast<uint64_t>(i));
        const double zd = ph::normal_f64(seed, offset, static_cast<uint64_t>(i));
        ASSERT_TRUE(same_bits(elem<float>(f, i), z))
            << "f32 n=" << n << " seed=" << seed << " i=" << i;
        ASSERT_TRUE(same_bits(elem<float>(g, i), 1.5f + 0.25f * z)) << "f32 mean/std i=" << i;
        ASSERT_TRUE(same_bits(elem<double>(d, i), zd)) << "f64 n=" << n << " i=" << i;
        ASSERT_TRUE(same_bits(elem<double>(e, i), 1.5 + 0.25 * zd)) << "f64 mean/std i=" << i;
      }
    }
  }
}

TEST(CpuRandomKernel, BernoulliAndDropoutMatchPhilox) {
  const int64_t n = 20003;  // past the parallel threshold
  for (const auto& [seed, offset] : kStreams) {
    for (const double p : {0.0, 0.1, 0.5, 0.9, 1.0}) {
      for (const DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::b8}) {
        const Tensor t = raw::empty({n}, dt);
        k::bernoulli_(t, seed, offset, p);
        const std::vector<double> v = values(t);
        for (int64_t i = 0; i < n; ++i) {
          const double want = ph::uniform_f32(seed, offset, static_cast<uint64_t>(i)) < p ? 1 : 0;
          ASSERT_EQ(v[i], want) << "bernoulli dtype " << dan::dtype_name(dt) << " p=" << p
                                << " i=" << i;
        }
      }
      if (p >= 1.0) continue;
      for (const DType dt : {DType::f32, DType::f64}) {
        const Tensor x = dan::arange(1.0, static_cast<double>(n) + 1.0, 1.0, dt);
        const k::DropoutOut o = k::dropout(x, p, seed, offset);
        const std::vector<double> y = values(o.y), m = values(o.mask);
        const double scale = dt == DType::f32
                                 ? static_cast<double>(static_cast<float>(1.0 / (1.0 - p)))
                                 : 1.0 / (1.0 - p);
        for (int64_t i = 0; i < n; ++i) {
          const bool keep = ph::uniform_f32(seed, offset, static_cast<uint64_t>(i)) >= p;
          ASSERT_EQ(m[i], keep ? scale : 0.0) << "dropout mask p=" << p << " i=" << i;
          const double yi =
              dt == DType::f32
                  ? static_cast<double>(static_cast<float>(i + 1) * static_cast<float>(m[i]))
                  : static_cast<double>(i + 1) * m[i];
          ASSERT_EQ(y[i], yi) << "dropout y p=" << p << " i=" << i;
        }
      }
    }
  }
}

// Every kernel with 1 and 2 (and 3) OpenMP threads on sizes past the parallel threshold.
TEST(CpuRandomKernel, IndependentOfThreadCount) {
  const int64_t n = 200003;
  auto run = [&](int threads) {
    ThreadCount tc(threads);
    std::vector<Tensor> out;
    for (const DType dt : {DType::f32, DType::f64}) {
      Tensor u = raw::empty({n}, dt), z = raw::empty({n}, dt), b = raw::empty({n}, dt);
      k::uniform_(u, 9, 3, -1.0, 1.0);
      k::normal_(z, 9, 3, 0.0, 2.0);
      k::bernoulli_(b, 9, 3, 0.3);
      const k::DropoutOut d = k::dropout(z, 0.25, 9, 5);
      out.insert(out.end(), {u, z, b, d.y, d.mask});
    }
    return out;
  };
  const std::vector<Tensor> one = run(1), two = run(2), three = run(3);
  for (size_t j = 0; j < one.size(); ++j) {
    ASSERT_EQ(std::memcmp(one[j].raw_data(), two[j].raw_data(), one[j].nbytes()), 0)
        << "output " << j;
    ASSERT_EQ(std::memcmp(one[j].raw_data(), three[j].raw_data(), one[j].nbytes()), 0)
        << "output " << j;
  }
}

TEST(CpuRandomKernel, StridedDestinationsUseRowMajorOrder) {
  // A transposed view, a stepped slice and an offset select: element i of the view's logical
  // order gets philox element i; storage outside the view is untouched.
  const Tensor base = dan::full({6, 10}, -7.0, DType::f32);
  const Tensor views[] = {raw::transpose(base, 0, 1), raw::slice(base, 1, 1, 10, 3),
                          raw::select(base, 0, 4)};
  for (const Tensor& v : views) {
    const Tensor fresh = dan::full({6, 10}, -7.0, DType::f32);
    const Tensor view = raw::make_view(fresh, v.shape(), v.strides(), v.offset());
    k::uniform_(view, 5, 11, 0.0, 1.0);
    const std::vector<double> got = values(view);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], ph::uniform_f32(5, 11, i)) << dan::shape_str(v.shape()) << " i=" << i;
    }
    int64_t untouched = 0;
    for (double x : values(fresh)) untouched += x == -7.0;
    EXPECT_EQ(untouched, 60 - view.numel()) << dan::shape_str(v.shape());
    const Tensor z =
        raw::make_view(dan::zeros({6, 10}, DType::f64), v.shape(), v.strides(), v.offset());
    k::normal_(z, 5, 11, 0.0, 1.0);
    const std::vector<double> zv = values(z);
    for (size_t i = 0; i < zv.size(); ++i) ASSERT_EQ(zv[i], ph::normal_f64(5, 11, i)) << i;
    const Tensor bi =
        raw::make_view(dan::zeros({6, 10}, DType::i64), v.shape(), v.strides(), v.offset());
    k::bernoulli_(bi, 5, 11, 0.5);
    const std::vector<double> bv = values(bi);
    for (size_t i = 0; i < bv.size(); ++i)
      ASSERT_EQ(bv[i], ph::uniform_f32(5, 11, i) < 0.5 ? 1 : 0);
  }
  // Dropout of a strided input: the mask follows the input's logical order.
  const Tensor xt = raw::transpose(raw::view(dan::arange(0, 12, 1, DType::f32), {3, 4}), 0, 1);
  const k::DropoutOut o = k::dropout(xt, 0.5, 1, 2);
  const std::vector<double> xv = values(xt), y = values(o.y);
  for (size_t i = 0; i < xv.size(); ++i) {
    const bool keep = ph::uniform_f32(1, 2, i) >= 0.5;
    ASSERT_EQ(y[i], keep ? xv[i] * 2 : 0.0) << i;
  }
}

TEST(CpuRandomKernel, OffsetsAdvanceByBlocks) {
  // Consecutive draws with offsets advanced by philox::blocks_for do not overlap: a draw at
  // offset o + 1 repeats the first one shifted by 4 (f32) or 2 (f64) elements.
  const Tensor a = raw::empty({64}, DType::f32), b = raw::empty({60}, DType::f32);
  k::uniform_(a, 3, 10, 0.0, 1.0);
  k::uniform_(b, 3, 11, 0.0, 1.0);
  for (int64_t i = 0; i < 60; ++i) ASSERT_EQ(elem<float>(b, i), elem<float>(a, i + 4)) << i;
  const Tensor c = raw::empty({64}, DType::f64), d = raw::empty({62}, DType::f64);
  k::normal_(c, 3, 10, 0.0, 1.0);
  k::normal_(d, 3, 11, 0.0, 1.0);
  for (int64_t i = 0; i < 62; ++i) ASSERT_EQ(elem<double>(d, i), elem<double>(c, i + 2)) << i;
  EXPECT_EQ(ph::blocks_for(64, false), 16u);
  EXPECT_EQ(ph::blocks_for(64, true), 32u);
}

TEST(CpuRandomKernel, EmptyAndZeroDimTensors) {
  const Tensor e = raw::empty({0, 3}, DType::f32);
  k::uniform_(e, 1, 0, 0.0, 1.0);
  k::normal_(e, 1, 0, 0.0, 1.0);
  k::bernoulli_(e, 1, 0, 0.5);
  const k::DropoutOut o = k::dropout(e, 0.5, 1, 0);
  EXPECT_EQ(o.y.shape(), (Shape{0, 3}));
  const Tensor s = raw::empty({}, DType::f64);
  k::normal_(s, 8, 2, 0.0, 1.0);
  EXPECT_EQ(s.item(), ph::normal_f64(8, 2, 0));
}

// ---- statistics ----------------------------------------------------------------------------

struct Moments {
  double mean = 0, var = 0;
};

Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

TEST(CpuRandomKernel, MomentsWithinStatisticalTolerance) {
  const int64_t n = 1000000;
  const double sn = std::sqrt(static_cast<double>(n));
  for (const DType dt : {DType::f32, DType::f64}) {
    // Normal(2, 3^2): 5-sigma bounds on the sample mean and variance.
    const Tensor z = raw::empty({n}, dt);
    k::normal_(z, 1234, 0, 2.0, 3.0);
    const Moments mz = moments(values(z));
    EXPECT_NEAR(mz.mean, 2.0, 5 * 3.0 / sn) << dan::dtype_name(dt);
    EXPECT_NEAR(mz.var, 9.0, 5 * 9.0 * std::sqrt(2.0) / sn) << dan::dtype_name(dt);
    // Uniform(-1, 3): mean 1, variance 16/12, all values inside [lo, hi).
    const Tensor u = raw::empty({n}, dt);
    k::uniform_(u, 99, 5, -1.0, 3.0);
    const std::vector<double> uv = values(u);
    const Moments mu = moments(uv);
    EXPECT_NEAR(mu.mean, 1.0, 5 * std::sqrt(16.0 / 12.0) / sn) << dan::dtype_name(dt);
    EXPECT_NEAR(mu.var, 16.0 / 12.0, 5 * 16.0 / 12.0 * std::sqrt(0.8) / sn) << dan::dtype_name(dt);
    for (double x : uv) ASSERT_TRUE(x >= -1.0 && x < 3.0) << x;
  }
  for (const double p : {0.05, 0.5, 0.8}) {
    const Tensor b = raw::empty({n}, DType::f32);
    k::bernoulli_(b, 77, 0, p);
    const double rate = moments(values(b)).mean;
    EXPECT_NEAR(rate, p, 5 * std::sqrt(p * (1 - p)) / sn) << "bernoulli p=" << p;
    // Dropout keeps 1 - p of the elements, scaled by 1/(1-p): the mean of y equals x's.
    const Tensor x = dan::full({n}, 2.0, DType::f32);
    const k::DropoutOut o = k::dropout(x, p, 77, 0);
    const std::vector<double> m = values(o.mask), y = values(o.y);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      kept += m[i] != 0;
      ASSERT_EQ(y[i],
                m[i] == 0 ? 0.0 : static_cast<double>(2.0f * static_cast<float>(1.0 / (1.0 - p))));
    }
    EXPECT_NEAR(static_cast<double>(kept) / n, 1 - p, 5 * std::sqrt(p * (1 - p)) / sn) << p;
    EXPECT_NEAR(moments(y).mean, 2.0, 5 * 2.0 * std::sqrt(p / (1 - p)) / sn) << p;
  }
}

TEST(CpuRandomKernelErrors, MessagesNameOp) {
  auto error_of = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const dan::Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "did not throw";
    return "";
  };
  const Tensor t = raw::empty({4}, DType::f32);
  EXPECT_NE(error_of([&] { k::uniform_(t, 0, 0, 2.0, 1.0); }).find("uniform_"), std::string::npos);
  EXPECT_NE(error_of([&] { k::normal_(t, 0, 0, 0.0, -1.0); }).find("normal_"), std::string::npos);
  EXPECT_NE(error_of([&] { k::bernoulli_(t, 0, 0, 1.5); }).find("bernoulli_"), std::string::npos);
  EXPECT_NE(error_of([&] { k::dropout(t, 1.0, 0, 0); }).find("dropout"), std::string::npos);
  EXPECT_NE(
      error_of([&] { k::uniform_(raw::empty({4}, DType::i64), 0, 0, 0.0, 1.0); }).find("uniform_"),
      std::string::npos);
}

}  // namespace
