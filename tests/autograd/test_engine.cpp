// The tape: accumulation, shared subgraphs, retain_grad, no-grad, graph release, errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "autograd/ops.h"

namespace dan {
namespace {

using ::testing::HasSubstr;

Tensor leaf(std::vector<double> v, Shape s) {
  return from_doubles(v, s, DType::f64).set_requires_grad(true);
}

TEST(Autograd, ChainRuleAndAccumulation) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor y = x * x;          // dy/dx = 2x
  Tensor z = sum(y + x);     // dz/dx = 2x + 1
  z.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, 5, 7}));
  sum(x * 2.0).backward();   // accumulates
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 7, 9}));
  x.zero_grad_();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, DiamondGraphSumsBothPaths) {
  Tensor x = leaf({2}, {1});
  Tensor a = x * 3.0;
  Tensor b = exp(a);
  Tensor c = a * a;
  sum(b + c).backward();  // d/dx (e^{3x} + 9x^2) = 3e^{3x} + 18x
  EXPECT_NEAR(x.grad().item(), 3 * std::exp(6.0) + 36, 1e-9);
}

TEST(Autograd, BranchWithoutGradientDoesNotStall) {
  Tensor x = leaf({1, 2}, {2});
  Tensor w = from_doubles({3, 4}, {2}, DType::f64);  // no grad
  Tensor a = x * w;
  Tensor b = a * 2.0;
  sum(b + a).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{9, 12}));
}

TEST(Autograd, RetainGradNoGradAndDetach) {
  Tensor x = leaf({1, -1}, {2});
  Tensor h = x * 4.0;
  h.retain_grad();
  sum(h * h).backward();
  EXPECT_EQ(h.grad().to_vector(), (std::vector<double>{8, -8}));
  {
    NoGradGuard ng;
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
  Tensor d = (x * 2.0).detach();
  EXPECT_FALSE(d.requires_grad());
}

TEST(Autograd, SecondBackwardNeedsRetainGraph) {
  Tensor x = leaf({1}, {1});
  Tensor y = sum(x * x);
  autograd::backward(y, Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_EQ(x.grad().item(), 4);
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("already freed"));
  }
}

TEST(Autograd, ErrorsAreClear) {
  Tensor x = leaf({1, 2}, {2});
  try {
    (x * 2.0).backward();
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("implicit gradient only for one-element outputs"));
  }
  try {
    from_doubles({1}, {1}).backward();
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("does not require grad"));
  }
  try {
    add(zeros({2, 3}), zeros({4}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("add: shapes [2, 3] and [4] cannot be broadcast"));
  }
  try {
    matmul(zeros({32, 384}), zeros({256, 10}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("matmul: inner dims differ: a is [32, 384], b is [256, 10]"));
  }
  try {
    add(zeros({2}), zeros({2}, DType::f64));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("add: dtype mismatch"));
  }
}

TEST(Autograd, LeafGradIsNotAliased) {
  // add() hands the same gradient tensor to both inputs; in-place scaling of one leaf's grad
  // must not change the other's.
  Tensor a = leaf({1}, {1}), b = leaf({1}, {1});
  sum(a + b).backward();
  fill_(a.grad(), 5.0);
  EXPECT_EQ(b.grad().item(), 1.0);
}

}  // namespace
}  // namespace dan
