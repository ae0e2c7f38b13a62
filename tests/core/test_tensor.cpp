// Tensor metadata, views (checked element by element against index arithmetic), factories,
// copies and the error messages of bad calls.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "core/cuda/runtime.h"
#include "core/tensor.h"

namespace dan {
namespace {

using ::testing::HasSubstr;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

Tensor iota(const Shape& s) { return arange(0, static_cast<double>(numel_of(s))).reshape(s); }

TEST(Tensor, MetadataAndStrides) {
  Tensor t = zeros({2, 3, 4});
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.storage()->data()) % 64, 0u) << "CPU storage is 64-byte aligned";
  EXPECT_EQ(t.size(-1), 4);
}

TEST(Tensor, TransposeAndPermuteIndexCorrectly) {
  Tensor t = iota({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(p.at({c, a, b}), static_cast<double>(a * 12 + b * 4 + c));
  Tensor tr = t.transpose(0, 1);
  EXPECT_EQ(tr.at({2, 1, 3}), 1 * 12 + 2 * 4 + 3);
  Tensor c = tr.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), tr.to_vector());
}

TEST(Tensor, SliceSelectNarrowShareStorage) {
  Tensor t = iota({5, 6});
  Tensor s = t.slice(1, 1, 6, 2);  // columns 1, 3, 5
  EXPECT_EQ(s.shape(), (Shape{5, 3}));
  EXPECT_EQ(s.at({4, 2}), 4 * 6 + 5);
  EXPECT_EQ(s.storage().get(), t.storage().get());
  Tensor r = t.select(0, -1);
  EXPECT_EQ(r.to_vector(), (std::vector<double>{24, 25, 26, 27, 28, 29}));
  Tensor n = t.narrow(0, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 6}));
  EXPECT_EQ(n.at({0, 0}), 6);
  EXPECT_EQ(n.offset(), 6);
  EXPECT_THAT(error_of([&] { t.narrow(0, 4, 3); }), HasSubstr("narrow: [4, 7) is out of range"));
  EXPECT_THAT(error_of([&] { t.select(1, 6); }), HasSubstr("select: index 6 out of range"));
}

TEST(Tensor, ExpandSqueezeUnsqueeze) {
  Tensor t = iota({3, 1});
  Tensor e = t.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(e.at({1, 2, 3}), 2);
  EXPECT_EQ(t.squeeze(1).shape(), (Shape{3}));
  EXPECT_EQ(t.squeeze(0).shape(), (Shape{3, 1})) << "squeezing a non-1 dim is a no-op";
  EXPECT_EQ(t.unsqueeze(0).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{3, 1, 1}));
  EXPECT_THAT(error_of([&] { t.expand({3, 2, 5}); }), HasSubstr("expand: cannot expand [3, 1] to [3, 2, 5]"));
}

TEST(Tensor, ViewVersusReshape) {
  Tensor t = iota({4, 6});
  EXPECT_EQ(t.view({2, 12}).at({1, 0}), 12);
  EXPECT_EQ(t.view({-1}).numel(), 24);
  Tensor tr = t.transpose(0, 1);
  EXPECT_THAT(error_of([&] { tr.view({24}); }), HasSubstr("view: shape [24] is not compatible"));
  Tensor flat = tr.reshape({24});  // copies
  EXPECT_EQ(flat.at({1}), 6);
  EXPECT_EQ(t.slice(1, 0, 6, 1).view({2, 2, 6}).at({1, 1, 5}), 23) << "view of a contiguous slice";
  EXPECT_THAT(error_of([&] { t.reshape({5, -1}); }), HasSubstr("reshape: cannot infer -1 in [5, -1] for 24 elements"));
  EXPECT_EQ(t.flatten().shape(), (Shape{24}));
}

TEST(Tensor, FactoriesAndDtypes) {
  EXPECT_EQ(full({2}, 3.5).to_vector(), (std::vector<double>{3.5, 3.5}));
  EXPECT_EQ(arange(0, 5, 2, DType::i64).to_vector(), (std::vector<double>{0, 2, 4}));
  EXPECT_EQ(ones({3}, DType::i32).dtype(), DType::i32);
  Tensor b = from_doubles({1, 0, 1}, {3}, DType::b8);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(from_vector<int64_t>({5, -6}, {2}).at({1}), -6);
  Tensor s = scalar_tensor(2.0, DType::f64);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 2.0);
  EXPECT_EQ(zeros({0, 3}).numel(), 0);
  EXPECT_THAT(error_of([] { from_doubles({1, 2}, {3}); }), HasSubstr("2 values for shape [3]"));
  EXPECT_THAT(error_of([] { zeros({2, -1}); }), HasSubstr("negative dimension"));
  EXPECT_THAT(error_of([] { zeros({2}).data<double>(); }), HasSubstr("tensor has dtype f32"));
}

TEST(Tensor, RandomFactoriesAreReproducible) {
  Generator g1(3), g2(3);
  const auto a = randn({100}, g1).to_vector();
  const auto b = randn({100}, g2).to_vector();
  EXPECT_EQ(a, b);
  EXPECT_NE(randn({100}, g1).to_vector(), a) << "the generator advances";
  Tensor u = rand({1000}, g1, DType::f64);
  for (double v : u.to_vector()) {
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
  }
}

TEST(Tensor, PrintingShowsValuesShapeAndDtype) {
  const std::string s = iota({2, 3}).str();
  EXPECT_THAT(s, HasSubstr("[[0, 1, 2],"));
  EXPECT_THAT(s, HasSubstr("shape=[2, 3], dtype=f32, device=cpu"));
  EXPECT_THAT(arange(0, 100).str(), HasSubstr("..."));
}

TEST(Tensor, DevicesAndErrors) {
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_THAT(error_of([] { Device::parse("gpu"); }), HasSubstr("cannot parse 'gpu'"));
  if (!cuda::is_available()) {
    EXPECT_THAT(error_of([] { zeros({2}, DType::f32, Device::cuda()); }), HasSubstr("CUDA"));
  }
  EXPECT_THAT(error_of([] { Tensor().shape(); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([] { zeros({2}, DType::i64).set_requires_grad(); }),
              HasSubstr("only floating tensors can require gradients"));
}

TEST(Tensor, CudaRoundTripWhenAvailable) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor t = iota({3, 4}).transpose(0, 1);
  Tensor d = t.to(Device::cuda());
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.to(Device::cpu()).to_vector(), t.to_vector());
}

}  // namespace
}  // namespace dan
