// Tests for the CPU index_select / index_add / cat kernels against naive loops written here:
// every dtype, index shapes and dtypes, strided tables and indices, out-of-range errors, and
// index_add's determinism (same bits across runs, thread counts and parallel strategies).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/threads.h"
#include "kernels/kernels.h"

namespace {

using dan::DType;
using dan::Shape;
using dan::Tensor;
namespace raw = dan::raw;
namespace k = dan::kernels;

const std::vector<DType> kAllDtypes = {DType::f32, DType::f64, DType::i32, DType::i64, DType::b8};

// Values representable in every dtype (bool: 0/1).
Tensor random_tensor(const Shape& s, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(-50, 50);
  std::vector<double> v(static_cast<size_t>(dan::numel_of(s)));
  for (double& x : v)
    x = dt == DType::b8 ? (u(rng) > 0) : u(rng) / (dan::is_floating(dt) ? 4.0 : 1.0);
  return dan::from_doubles(v, s, dt);
}

Tensor random_index(const Shape& s, int64_t rows, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> u(0, rows - 1);
  std::vector<double> v(static_cast<size_t>(dan::numel_of(s)));
  for (double& x : v) x = static_cast<double>(u(rng));
  return dan::from_doubles(v, s, dt);
}

// The table x [R, ...] stored transposed (dims reversed), so rows are strided.
Tensor transposed_table(const Shape& s, DType dt, uint32_t seed) {
  Shape rs(s.rbegin(), s.rend()), perm;
  for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) perm.push_back(d);
  return raw::permute(random_tensor(rs, dt, seed), perm);
}

// Every other row of a table with 2R rows (row stride doubled, offset 1 row).
Tensor sliced_table(const Shape& s, DType dt, uint32_t seed) {
  Shape big = s;
  big[0] = 2 * s[0];
  return raw::slice(random_tensor(big, dt, seed), 0, 1, 2 * s[0], 2);
}

TEST(IndexKernels, IndexSelectMatchesReference) {
  uint32_t seed = 1;
  const std::vector<Shape> tables = {{10}, {10, 3}, {10, 3, 4}, {7, 1}, {10, 0}};
  const std::vector<Shape> index_shapes = {{}, {5}, {2, 3}, {0}, {4, 1, 2}};
  for (DType dt : kAllDtypes) {
    for (DType it : {DType::i32, DType::i64}) {
      for (const Shape& ts : tables) {
        for (int layout = 0; layout < 3; ++layout) {
          const Tensor x = layout == 0   ? random_tensor(ts, dt, seed++)
                           : layout == 1 ? transposed_table(ts, dt, seed++)
                                         : sliced_table(ts, dt, seed++);
          for (const Shape& is : index_shapes) {
            Tensor idx = random_index(is, ts[0], it, seed++);
            if (is.size() == 1 && is[0] > 0) {  // a strided index: every other entry
              idx = raw::slice(random_index({2 * is[0]}, ts[0], it, seed++), 0, 0, 2 * is[0], 2);
            }
            const Tensor out = k::index_select(x, idx);
            Shape want_shape = is;
            want_shape.insert(want_shape.end(), ts.begin() + 1, ts.end());
            ASSERT_EQ(out.shape(), want_shape);
            ASSERT_EQ(out.dtype(), dt);
            const std::vector<double> xv = x.to_vector(), iv = idx.to_vector(),
                                      ov = out.to_vector();
            const int64_t D = dan::numel_of(Shape(ts.begin() + 1, ts.end()));
            for (size_t i = 0; i < iv.size(); ++i) {
              for (int64_t j = 0; j < D; ++j) {
                ASSERT_EQ(ov[i * D + j], xv[static_cast<int64_t>(iv[i]) * D + j])
                    << "index_select " << dan::shape_str(ts) << " layout " << layout;
              }
            }
          }
        }
      }
    }
  }
}

TEST(IndexKernels, IndexSelectLargeParallel) {
  for (int layout = 0; layout < 2; ++layout) {
    const Shape ts = {1000, 64};
    const Tensor x =
        layout == 0 ? random_tensor(ts, DType::f32, 7) : transposed_table(ts, DType::f32, 7);
    const Tensor idx = random_index({40, 50}, 1000, DType::i64, 8);
    const Tensor out = k::index_select(x, idx);
    ASSERT_EQ(out.shape(), (Shape{40, 50, 64}));
    const std::vector<double> xv = x.to_vector(), iv = idx.to_vector(), ov = out.to_vector();
    for (size_t i = 0; i < iv.size(); ++i) {
      for (int64_t j = 0; j < 64; ++j) {
        ASSERT_EQ(ov[i * 64 + j], xv[static_cast<int64_t>(iv[i]) * 64 + j]) << layout;
      }
    }
  }
}

void expect_error_with(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected dan::Error";
  } catch (const dan::Error& e) {
    const std::string m = e.what();
    for (const std::string& p : parts) EXPECT_NE(m.find(p), std::string::npos) << m;
  }
}

TEST(IndexKernels, OutOfRangeIndicesAreErrors) {
  const Tensor x = dan::zeros({10, 3});
  for (DType it : {DType::i32, DType::i64}) {
    expect_error_with(
        [&] {
          k::index_select(x, dan::from_doubles({1, 12, 3}, {3}, it));
        },
        {"index_select", "12", "10 rows"});
    expect_error_with([&] { k::index_select(x, dan::from_doubles({-1}, {1}, it)); },
                      {"index_select", "-1", "10 rows"});
    expect_error_with(
        [&] {
          k::index_add(dan::zeros({2, 3}), dan::from_doubles({0, 17}, {2}, it), 10);
        },
        {"index_add", "17", "10 rows"});
  }
  expect_error_with([&] { k::index_select(x, dan::zeros({2}, DType::f32)); }, {"index_select"});
  expect_error_with(
      [&] {
        k::index_add(dan::zeros({3, 2}), dan::zeros({2}, DType::i64), 4);
      },
      {"index_add", "[3, 2]", "[2]"});
}

// index_add reference: out starts at 0 and adds grad rows in index order, in T, the exact
// summation order the kernel promises, so the results must match bit for bit.
template <typename T>
std::vector<T> index_add_ref(const std::vector<double>& g, const std::vector<double>& idx,
                             int64_t rows, int64_t D) {
  std::vector<T> out(static_cast<size_t>(rows * D), T(0));
  for (size_t i = 0; i < idx.size(); ++i) {
    for (int64_t j = 0; j < D; ++j) {
      out[static_cast<int64_t>(idx[i]) * D + j] += static_cast<T>(g[i * D + j]);
    }
  }
  return out;
}

template <typename T>
void check_index_add(const Tensor& grad, const Tensor& idx, int64_t rows, const std::string& what) {
  const Tensor out = k::index_add(grad, idx, rows);
  Shape want_shape{rows};
  want_shape.insert(want_shape.end(), grad.shape().begin() + idx.dim(), grad.shape().end());
  ASSERT_EQ(out.shape(), want_shape) << what;
  const int64_t D = dan::numel_of(Shape(grad.shape().begin() + idx.dim(), grad.shape().end()));
  const std::vector<T> want = index_add_ref<T>(grad.to_vector(), idx.to_vector(), rows, D);
  const T* got = static_cast<const T*>(out.raw_data());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(T)), 0)
        << what << ": element " << i << " is " << got[i] << ", expected " << want[i];
  }
}

// Random float values of mixed magnitude, so that a different summation order changes bits.
Tensor random_grad(const Shape& s, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1), e(-6, 6);
  std::vector<double> v(static_cast<size_t>(dan::numel_of(s)));
  for (double& x : v) x = u(rng) * std::exp2(e(rng));
  return dan::from_doubles(v, s, dt);
}

TEST(IndexKernels, IndexAddMatchesIndexOrderSums) {
  const int saved = dan::num_threads();
  dan::set_num_threads(2);
  uint32_t seed = 100;
  // (index shape, feature shape, rows): small serial cases, heavy duplicates, and large ones
  // that take the bucketed (narrow rows) and column-band (wide rows) parallel strategies.
  const std::vector<std::tuple<Shape, Shape, int64_t>> cases = {
      {{5}, {3}, 4},       {{2, 3}, {2, 2}, 7},  {{0}, {3}, 5},        {{4}, {}, 3},
      {{6}, {3}, 9},       {{100000}, {}, 50},   {{40000}, {3}, 1000}, {{64}, {2048}, 10},
      {{1000}, {100}, 30}, {{300, 10}, {16}, 5}, {{7}, {0}, 3}};
  for (DType dt : {DType::f32, DType::f64}) {
    for (DType it : {DType::i32, DType::i64}) {
      for (const auto& [is, fs, rows] : cases) {
        Shape gs = is;
        gs.insert(gs.end(), fs.begin(), fs.end());
        const Tensor grad = random_grad(gs, dt, seed++);
        const Tensor idx = random_index(is, rows, it, seed++);
        const std::string what =
            "index_add " + dan::shape_str(gs) + " rows " + std::to_string(rows);
        if (dt == DType::f32) {
          check_index_add<float>(grad, idx, rows, what);
        } else {
          check_index_add<double>(grad, idx, rows, what);
        }
      }
    }
  }
  // Non-contiguous grad and index.
  const Tensor gt = raw::transpose(random_grad({8, 50}, DType::f32, 5), 0, 1);  // [50, 8]
  const Tensor ix = raw::slice(random_index({100}, 6, DType::i64, 6), 0, 0, 100, 2);
  check_index_add<float>(gt, ix, 6, "index_add strided");
  // Unused rows stay zero; no rows at all.
  const Tensor z = k::index_add(dan::ones({2, 3}), dan::from_doubles({4, 4}, {2}, DType::i64), 6);
  const std::vector<double> zv = z.to_vector();
  for (int64_t i = 0; i < 18; ++i) EXPECT_EQ(zv[i], (i >= 12 && i < 15) ? 2.0 : 0.0);
  EXPECT_EQ(k::index_add(dan::ones({0, 3}), dan::zeros({0}, DType::i64), 0).shape(), (Shape{0, 3}));
  dan::set_num_threads(saved);
}

std::vector<unsigned char> bits(const Tensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  return std::vector<unsigned char>(p, p + t.nbytes());
}

TEST(IndexKernels, IndexAddIsDeterministic) {
  const int saved = dan::num_threads();
  // Skewed indices (a few hot rows) at sizes that go parallel, narrow and wide rows.
  for (const auto& [n, D, rows] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {200000, 1, 100}, {50000, 8, 3}, {256, 4096, 7}}) {
    std::mt19937 rng(static_cast<uint32_t>(n + D));
    std::geometric_distribution<int64_t> geo(0.3);
    std::vector<double> iv(static_cast<size_t>(n));
    for (double& v : iv) v = static_cast<double>(std::min(geo(rng), rows - 1));
    const Tensor idx = dan::from_doubles(iv, {n}, DType::i64);
    const Tensor grad = random_grad({n, D}, DType::f32, static_cast<uint32_t>(D));
    dan::set_num_threads(2);
    const auto a = bits(k::index_add(grad, idx, rows));
    const auto b = bits(k::index_add(grad, idx, rows));
    dan::set_num_threads(1);
    const auto c = bits(k::index_add(grad, idx, rows));
    EXPECT_EQ(a, b) << "run to run, n " << n << " D " << D;
    EXPECT_EQ(a, c) << "2 threads vs 1, n " << n << " D " << D;
  }
  dan::set_num_threads(saved);
}

TEST(IndexKernels, CatAnyDimDtypeAndLayout) {
  uint32_t seed = 500;
  for (DType dt : kAllDtypes) {
    for (int64_t dim : {0, 1, 2, -1}) {
      const int64_t d = dim < 0 ? dim + 3 : dim;
      std::vector<Tensor> xs;
      const int64_t sizes[] = {2, 0, 3, 1};
      for (int i = 0; i < 4; ++i) {
        Shape s = {3, 4, 5};
        s[d] = sizes[i];
        Tensor t = random_tensor(s, dt, seed++);
        if (i == 2) {  // transposed storage of the same logical shape
          t = raw::permute(random_tensor({s[2], s[1], s[0]}, dt, seed++), {2, 1, 0});
        }
        if (i == 3) {  // a step-2 slice along the last dim (offset 1)
          Shape big = s;
          big[2] = 2 * s[2] + 1;
          t = raw::slice(random_tensor(big, dt, seed++), 2, 1, 2 * s[2] + 1, 2);
        }
        xs.push_back(t);
      }
      const Tensor out = k::cat(xs, dim);
      Shape want_shape = {3, 4, 5};
      want_shape[d] = 6;
      ASSERT_EQ(out.shape(), want_shape);
      ASSERT_EQ(out.dtype(), dt);
      const std::vector<double> ov = out.to_vector();
      int64_t off = 0;
      for (const Tensor& x : xs) {
        const std::vector<double> xv = x.to_vector();
        const Shape& s = x.shape();
        for (int64_t i = 0; i < x.numel(); ++i) {
          int64_t id[3] = {i / (s[1] * s[2]), (i / s[2]) % s[1], i % s[2]};
          id[d] += off;
          ASSERT_EQ(ov[(id[0] * want_shape[1] + id[1]) * want_shape[2] + id[2]], xv[i])
              << "cat dim " << dim << " " << dan::dtype_name(dt);
        }
        off += s[d];
      }
    }
  }
  // Large inputs along dim 1 (parallel copies into strided output slices), and a single input.
  const Tensor a = random_tensor({300, 100}, DType::f32, 1),
               b = transposed_table({300, 150}, DType::f32, 2);
  const std::vector<double> cv = k::cat({a, b}, 1).to_vector(), av = a.to_vector(),
                            bv = b.to_vector();
  for (int64_t i = 0; i < 300; ++i) {
    for (int64_t j = 0; j < 250; ++j) {
      ASSERT_EQ(cv[i * 250 + j], j < 100 ? av[i * 100 + j] : bv[i * 150 + j - 100]);
    }
  }
  EXPECT_EQ(k::cat({a}, 0).to_vector(), av);
}

TEST(IndexKernels, CatErrorsNameShapes) {
  expect_error_with(
      [] {
        k::cat({dan::zeros({2, 3}), dan::zeros({2, 4})}, 0);
      },
      {"cat", "[2, 4]", "[2, 3]"});
  expect_error_with(
      [] {
        k::cat({dan::zeros({2, 3}), dan::zeros({2, 3}, DType::f64)}, 0);
      },
      {"cat"});
  expect_error_with([] { k::cat({}, 0); }, {"cat"});
  expect_error_with([] { k::cat({dan::zeros({2}), dan::zeros({2})}, 1); }, {"cat"});
}

}  // namespace
