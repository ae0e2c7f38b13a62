// Gold test: values and gradients of the nn ops against PyTorch 1.13 (tests/fixtures/
// ops_gold.safetensors, see tests/fixtures/README.md §2), through the autograd ops with the
// backward of (out * g).sum().
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/ops.h"
#include "core/serialize.h"

using namespace dan;

namespace {

const std::map<std::string, Tensor>& gold() {
  static const std::map<std::string, Tensor> g =
      load_safetensors(std::string(DAN_FIXTURES_DIR) + "/ops_gold.safetensors");
  return g;
}

Tensor key(const std::string& k) {
  const auto it = gold().find(k);
  if (it == gold().end()) fail("ops_gold.safetensors has no key '{}'", k);
  return it->second;
}

// A fresh leaf requiring grad with the fixture's values (the map's tensor stays untouched).
Tensor leaf(const std::string& k) {
  Tensor t = raw::contiguous_copy(key(k), Device::cpu());
  t.set_requires_grad(true);
  return t;
}

// F32 keys: |got - want| <= 1e-6 + 1e-5 |want| (a float64 reference matches the file to
// 6e-7, README §2); F64 keys were computed in float64 end to end: 1e-13 + 1e-12 |want|.
void expect_matches(const Tensor& got, const std::string& k) {
  const Tensor want = key(k);
  ASSERT_TRUE(got.defined()) << k;
  ASSERT_EQ(got.shape(), want.shape()) << k;
  ASSERT_EQ(got.dtype(), want.dtype()) << k;
  const bool f64 = want.dtype() == DType::f64;
  const double atol = f64 ? 1e-13 : 1e-6, rtol = f64 ? 1e-12 : 1e-5;
  const auto g = got.to_vector(), w = want.to_vector();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(g[i], w[i], atol + rtol * std::abs(w[i])) << k << " element " << i;
    worst = std::max(worst, std::abs(g[i] - w[i]));
  }
  ::testing::Test::RecordProperty(k, fmt::format("{:.3g}", worst));
}

void backward_with(const Tensor& out, const std::string& g_key) {
  sum(out * key(g_key)).backward();
}

}  // namespace

TEST(GoldOps, Softmax) {
  for (const std::string p : {"softmax", "softmax_f64"}) {
    SCOPED_TRACE(p);
    Tensor x = leaf(p + ".x");
    Tensor out = softmax(x);
    expect_matches(out, p + ".out");
    backward_with(out, p + ".g");
    expect_matches(x.grad(), p + ".dx");
  }
}

TEST(GoldOps, LogSoftmax) {
  Tensor x = leaf("log_softmax.x");
  Tensor out = log_softmax(x);
  expect_matches(out, "log_softmax.out");
  backward_with(out, "log_softmax.g");
  expect_matches(x.grad(), "log_softmax.dx");
}

TEST(GoldOps, LayerNorm) {
  for (const std::string p : {"layer_norm", "layer_norm_f64"}) {
    SCOPED_TRACE(p);
    Tensor x = leaf(p + ".x"), w = leaf(p + ".weight"), b = leaf(p + ".bias");
    Tensor out = layer_norm(x, w, b, 1e-5);
    expect_matches(out, p + ".out");
    backward_with(out, p + ".g");
    expect_matches(x.grad(), p + ".dx");
    expect_matches(w.grad(), p + ".dweight");
    expect_matches(b.grad(), p + ".dbias");
  }
}

TEST(GoldOps, GeluBothForms) {
  for (const std::string p : {"gelu", "gelu_tanh"}) {
    SCOPED_TRACE(p);
    Tensor x = leaf(p + ".x");
    Tensor out = gelu(x, /*approximate=*/p == "gelu_tanh");
    expect_matches(out, p + ".out");
    backward_with(out, p + ".g");
    expect_matches(x.grad(), p + ".dx");
  }
}

TEST(GoldOps, CrossEntropyWithIgnoredRow) {
  Tensor logits = leaf("cross_entropy.logits");
  const Tensor target = key("cross_entropy.target");
  ASSERT_EQ(target.dtype(), DType::i64);
  EXPECT_EQ(target.to_vector(), (std::vector<double>{1, 2, -100, 0, 4, 8}));
  Tensor loss = cross_entropy(logits, target, -100);
  expect_matches(loss, "cross_entropy.loss");
  loss.backward();
  expect_matches(logits.grad(), "cross_entropy.dlogits");
  // The ignored row gets exactly no gradient.
  for (double v : raw::select(logits.grad(), 0, 2).to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(GoldOps, BatchNormTrainingForwardBackwardAndRunningStats) {
  Tensor x = leaf("batch_norm.x"), w = leaf("batch_norm.weight"), b = leaf("batch_norm.bias");
  Tensor rm = raw::contiguous_copy(key("batch_norm.running_mean_before"), Device::cpu());
  Tensor rv = raw::contiguous_copy(key("batch_norm.running_var_before"), Device::cpu());
  Tensor out = batch_norm(x, w, b, rm, rv, /*training=*/true, 0.1, 1e-5);
  expect_matches(out, "batch_norm.out");
  expect_matches(rm, "batch_norm.running_mean_after");
  expect_matches(rv, "batch_norm.running_var_after");
  backward_with(out, "batch_norm.g");
  expect_matches(x.grad(), "batch_norm.dx");
  expect_matches(w.grad(), "batch_norm.dweight");
  expect_matches(b.grad(), "batch_norm.dbias");
}
