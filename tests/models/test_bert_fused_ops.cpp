// The fused transformer ops (self_attention, bias_gelu, add_layer_norm) against the chains of
// ordinary ops they replace, forward and gradients, at BERT-like sizes that the op harness's
// finite-difference cases are too small for: odd sequence lengths (kernel tails), padded keys
// (the kernel skips them), dropout with the same generator (same mask), and thread-count
// invariance (bitwise).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"
#include "core/threads.h"
#include "models/bert/bert.h"

using namespace dan;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  const auto x = a.to_vector(), y = b.to_vector();
  double w = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    w = std::max(w, std::isnan(x[i]) || std::isnan(y[i]) ? 1e30 : std::abs(x[i] - y[i]));
  }
  return w;
}

double max_abs(const Tensor& a) {
  double w = 0;
  for (double v : a.to_vector()) w = std::max(w, std::abs(v));
  return w;
}

Tensor leaf(const Tensor& t) {
  Tensor c = t.detach().clone();
  c.set_requires_grad(true);
  return c;
}

// HF's eager attention on packed projections.
Tensor composed_attention(const Tensor& qkv, const Tensor& key_bias, int64_t heads, double scale,
                          double p, Generator& gen) {
  const int64_t b = qkv.size(0), s = qkv.size(1), h = qkv.size(2) / 3, dh = h / heads;
  auto split = [&](int64_t part) {
    return qkv.narrow(2, part * h, h)
        .reshape({b, s, heads, dh})
        .permute({0, 2, 1, 3})
        .reshape({b * heads, s, dh});
  };
  Tensor scores = matmul(split(0), split(1).transpose(1, 2)).reshape({b, heads, s, s}) * scale;
  if (key_bias.defined()) scores = scores + key_bias.reshape({b, 1, 1, s});
  const Tensor probs = dropout(softmax(scores), p, p > 0, gen);
  return matmul(probs.reshape({b * heads, s, s}), split(2))
      .reshape({b, heads, s, dh})
      .permute({0, 2, 1, 3})
      .reshape({b, s, h});
}

struct AttnCase {
  int64_t batch, seq, heads, head_dim;
  std::vector<int64_t> lengths;  // empty: no key bias
  double p;
};

class FusedAttention : public ::testing::TestWithParam<AttnCase> {};

// Output within 2e-6 and d qkv within 2e-5 (relative to its scale) of the composed chain.
TEST_P(FusedAttention, MatchesComposedOps) {
  const AttnCase c = GetParam();
  const int64_t h = c.heads * c.head_dim;
  Generator g(3);
  const Tensor qkv0 = randn({c.batch, c.seq, 3 * h}, g);
  const Tensor up = randn({c.batch, c.seq, h}, g);
  Tensor kb;
  if (!c.lengths.empty()) {
    std::vector<double> m;
    for (int64_t b = 0; b < c.batch; ++b) {
      for (int64_t t = 0; t < c.seq; ++t)
        m.push_back(t < c.lengths[static_cast<size_t>(b)] ? 1 : 0);
    }
    kb = bert::extended_attention_mask(from_doubles(m, {c.batch, c.seq}, DType::i64), DType::f32);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  Tensor q1 = leaf(qkv0), q2 = leaf(qkv0);
  Generator g1(9), g2(9);
  const Tensor y1 = self_attention(q1, kb, c.heads, scale, c.p, c.p > 0, g1);
  const Tensor y2 = composed_attention(q2, kb, c.heads, scale, c.p, g2);
  EXPECT_LE(max_abs_diff(y1, y2), 2e-6);
  EXPECT_EQ(g1.offset(), g2.offset()) << "the two reserve different Philox counters";
  sum(y1 * up).backward();
  sum(y2 * up).backward();
  EXPECT_LE(max_abs_diff(q1.grad(), q2.grad()), 2e-5 * (1 + max_abs(q2.grad())));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedAttention,
    ::testing::Values(AttnCase{3, 37, 4, 32, {37, 20, 1}, 0.0},  // odd S, padding, a 1-token row
                      AttnCase{2, 128, 12, 32, {128, 77}, 0.0},  // MiniLM's shape
                      AttnCase{2, 19, 3, 8, {}, 0.0},            // dh = 8, no bias
                      AttnCase{2, 21, 2, 12, {21, 9}, 0.2},      // dh not a multiple of 8, dropout
                      AttnCase{2, 64, 4, 32, {64, 40}, 0.1}));   // dropout at a vector size

// All keys padded: the probabilities are uniform, as with HF's finite mask value.
TEST(FusedAttention, AllKeysPaddedIsUniformLikeComposed) {
  Generator g(4);
  const Tensor qkv = randn({1, 6, 3 * 8}, g);
  const Tensor kb = bert::extended_attention_mask(zeros({1, 6}, DType::i64), DType::f32);
  Generator g1(1), g2(1);
  EXPECT_LE(max_abs_diff(self_attention(qkv, kb, 2, 0.5, 0, false, g1),
                         composed_attention(qkv, kb, 2, 0.5, 0, g2)),
            1e-6);
}

TEST(FusedAttention, SameBitsForAnyThreadCount) {
  Generator g(5);
  const Tensor qkv0 = randn({4, 50, 3 * 64}, g);
  const Tensor up = randn({4, 50, 64}, g);
  const Tensor kb = bert::extended_attention_mask(
      from_doubles(std::vector<double>(200, 1.0), {4, 50}, DType::i64), DType::f32);
  const int saved = num_threads();
  std::vector<Tensor> outs, grads;
  for (int t : {1, 2}) {
    set_num_threads(t);
    Tensor q = leaf(qkv0);
    Generator gd(7);
    const Tensor y = self_attention(q, kb, 4, 0.25, 0.1, true, gd);
    sum(y * up).backward();
    outs.push_back(y.detach());
    grads.push_back(q.grad());
  }
  set_num_threads(saved);
  EXPECT_EQ(max_abs_diff(outs[0], outs[1]), 0.0);
  EXPECT_EQ(max_abs_diff(grads[0], grads[1]), 0.0);
}

TEST(FusedOps, SelfAttentionErrorsNameTheProblem) {
  const Tensor qkv = zeros({2, 5, 24});
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { self_attention(qkv, Tensor(), 5, 1.0); }, "not a multiple of heads = 5");
  expect_error(
      [&] {
        self_attention(zeros({2, 5, 25}), Tensor(), 1, 1.0);
      },
      "[batch, seq, 3 * hidden]");
  expect_error(
      [&] {
        self_attention(qkv, zeros({2, 4}), 2, 1.0);
      },
      "key_bias has shape [2, 4], expected [2, 5]");
}

TEST(FusedOps, BiasGeluMatchesComposed) {
  Generator g(6);
  const Tensor x0 = randn({33, 70}, g) * 2.0, b0 = randn({70}, g), up = randn({33, 70}, g);
  for (bool approx : {false, true}) {
    Tensor x1 = leaf(x0), b1 = leaf(b0), x2 = leaf(x0), b2 = leaf(b0);
    const Tensor y1 = bias_gelu(x1, b1, approx);
    const Tensor y2 = gelu(x2 + b2, approx);
    EXPECT_LE(max_abs_diff(y1, y2), 1e-6) << approx;
    sum(y1 * up).backward();
    sum(y2 * up).backward();
    EXPECT_LE(max_abs_diff(x1.grad(), x2.grad()), 1e-5) << approx;
    EXPECT_LE(max_abs_diff(b1.grad(), b2.grad()), 1e-4) << approx;
  }
}

TEST(FusedOps, AddLayerNormMatchesComposed) {
  Generator g(8);
  const Tensor x0 = randn({40, 384}, g), r0 = randn({40, 384}, g) * 3.0 + 1.0;
  const Tensor w0 = randn({384}, g), b0 = randn({384}, g), up = randn({40, 384}, g);
  Tensor x1 = leaf(x0), r1 = leaf(r0), w1 = leaf(w0), b1 = leaf(b0);
  Tensor x2 = leaf(x0), r2 = leaf(r0), w2 = leaf(w0), b2 = leaf(b0);
  const Tensor y1 = add_layer_norm(x1, r1, w1, b1, 1e-12);
  const Tensor y2 = layer_norm(x2 + r2, w2, b2, 1e-12);
  EXPECT_LE(max_abs_diff(y1, y2), 1e-6);
  sum(y1 * up).backward();
  sum(y2 * up).backward();
  EXPECT_LE(max_abs_diff(x1.grad(), x2.grad()), 1e-5);
  EXPECT_LE(max_abs_diff(r1.grad(), r2.grad()), 1e-5);
  EXPECT_LE(max_abs_diff(w1.grad(), w2.grad()), 1e-4);
  EXPECT_LE(max_abs_diff(b1.grad(), b2.grad()), 1e-4);
  // Without the tape the sum is not kept, and the result is the same.
  NoGradGuard no_grad;
  EXPECT_EQ(max_abs_diff(add_layer_norm(x0, r0, w0, b0, 1e-12), y1.detach()), 0.0);
}

// The whole encoder: fused and composed kernels give the same gradients on a padded batch in
// training mode (dropout masks included).
TEST(FusedOps, EncoderTrainingStepMatchesComposed) {
  bert::BertConfig cfg;
  cfg.vocab_size = 60;
  cfg.hidden_size = 64;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 2;
  cfg.intermediate_size = 96;
  cfg.max_position_embeddings = 40;
  Generator gi(1);
  const Tensor ids = from_doubles(
      [] {
        std::vector<double> v;
        for (int i = 0; i < 3 * 29; ++i) v.push_back((i * 7 + 3) % 60);
        return v;
      }(),
      {3, 29}, DType::i64);
  std::vector<double> m;
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t t = 0; t < 29; ++t) m.push_back(t < 29 - 9 * b ? 1 : 0);
  }
  const Tensor mask = from_doubles(m, {3, 29}, DType::i64);
  const Tensor up = randn({3, 29, 64}, gi);
  std::vector<std::vector<std::pair<std::string, Tensor>>> grads;
  std::vector<Tensor> outs;
  for (bert::Kernels k : {bert::Kernels::fused, bert::Kernels::composed}) {
    Generator gen(2);
    bert::BertModel model(cfg, true, gen);
    model.set_kernels(k);
    model.train();
    const bert::BertOutput o = model.forward(ids, mask);
    (sum(o.last_hidden_state * up) + sum(o.pooler_output)).backward();
    outs.push_back(o.last_hidden_state.detach());
    std::vector<std::pair<std::string, Tensor>> gs;
    for (const auto& [name, p] : model.named_parameters()) gs.emplace_back(name, p.grad());
    grads.push_back(gs);
  }
  EXPECT_LE(max_abs_diff(outs[0], outs[1]), 1e-5);
  for (size_t i = 0; i < grads[0].size(); ++i) {
    const Tensor& want = grads[1][i].second;
    EXPECT_LE(max_abs_diff(grads[0][i].second, want), 1e-4 * (1 + max_abs(want)))
        << grads[0][i].first;
  }
}

}  // namespace
