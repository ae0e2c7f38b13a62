// Tests for layers/: Module naming and registration rules, state_dict round trips through a
// file, load errors, train/eval behaviour of BatchNorm1d and Dropout, device moves, and each
// layer's forward against a naive double-precision reference written here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "core/philox.h"
#include "core/serialize.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/mlp.h"
#include "layers/norm.h"
#include "layers/sequential.h"

namespace fs = std::filesystem;
using namespace dan;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected dan::Error";
  return "";
}

void expect_contains(const std::string& msg, const std::vector<std::string>& parts) {
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << p << " in: " << msg;
}

std::vector<std::string> names_of(const NamedTensors& v) {
  std::vector<std::string> out;
  for (const auto& [n, _] : v) out.push_back(n);
  return out;
}

// Deterministic, non-trivial test data: value i of a sequence scaled into [-1, 1).
Tensor test_data(const Shape& s, double seed, DType t = DType::f32) {
  std::vector<double> v(static_cast<size_t>(numel_of(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(seed * 12.9898 + static_cast<double>(i) * 78.233);
  return from_doubles(v, s, t);
}

class LayersFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("dan_layers_{}_{}", ::getpid(), info->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& n) const { return (dir_ / n).string(); }
  fs::path dir_;
};

MLPConfig bn_mlp_config() {
  MLPConfig c;
  c.in_dim = 5;
  c.hidden = {4};
  c.out_dim = 3;
  c.activation = Activation::tanh;
  c.batch_norm = true;
  return c;
}

// A two-level model for dotted names: encoder (Sequential) + head (Linear) + a buffer.
class Net : public Module {
 public:
  explicit Net(Generator& gen) {
    encoder = register_module("encoder", std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
        std::make_shared<Linear>(3, 4, true, gen), std::make_shared<ReLU>()}));
    scale = register_buffer("scale", full({}, 2.0));
    head = register_module("head", std::make_shared<Linear>(4, 2, false, gen));
  }
  Tensor forward(const Tensor& x) override { return head->forward(encoder->forward(x)) * 2.0; }
  std::string type_name() const override { return "Net"; }
  std::shared_ptr<Sequential> encoder;
  std::shared_ptr<Linear> head;
  Tensor scale;
};

}  // namespace

// ---- naming ------------------------------------------------------------------------------

TEST(LayersModule, MlpNamesMatchTorchSequential) {
  Generator gen(3);
  MLP m(bn_mlp_config(), gen);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0]->type_name(), "Linear");
  EXPECT_EQ(m[1]->type_name(), "BatchNorm1d");
  EXPECT_EQ(m[2]->type_name(), "Tanh");
  EXPECT_EQ(m[3]->type_name(), "Linear");
  EXPECT_EQ(names_of(m.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"}));
  EXPECT_EQ(names_of(m.named_buffers()),
            (std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"}));
  EXPECT_EQ(names_of(m.state_dict()),
            (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                      "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"}));
  const auto sd = m.state_dict();
  EXPECT_EQ(sd[0].second.shape(), (Shape{4, 5}));
  EXPECT_EQ(sd[6].second.shape(), Shape{});
  EXPECT_EQ(sd[6].second.dtype(), DType::i64);
  EXPECT_EQ(m.num_parameters(), 4 * 5 + 4 + 4 + 4 + 3 * 4 + 3);
  for (const Tensor& p : m.parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
  }
  for (const auto& [n, b] : m.named_buffers()) EXPECT_FALSE(b.requires_grad()) << n;
}

TEST(LayersModule, MlpWithDropoutAndFinalActivationNumbering) {
  MLPConfig c;
  c.in_dim = 6;
  c.hidden = {5, 4};
  c.out_dim = 2;
  c.activation = parse_activation("relu");
  c.dropout = 0.1;
  c.final_activation = parse_activation("sigmoid");
  MLP m(c);
  std::vector<std::string> types;
  for (size_t i = 0; i < m.size(); ++i) types.push_back(m[i]->type_name());
  EXPECT_EQ(types, (std::vector<std::string>{"Linear", "ReLU", "Dropout", "Linear", "ReLU",
                                             "Dropout", "Linear", "Sigmoid"}));
  EXPECT_EQ(names_of(m.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"}));
  c.bias = false;
  c.hidden = {};
  c.final_activation = Activation::none;
  EXPECT_EQ(names_of(MLP(c).named_parameters()), std::vector<std::string>{"0.weight"});
  expect_contains(error_of([] { parse_activation("swish"); }), {"swish", "tanh"});
  c.hidden = {3};
  c.activation = Activation::none;
  expect_contains(error_of([&] { MLP{c}; }), {"MLP", "activation"});
}

TEST(LayersModule, NestedDottedNamesAndBuffers) {
  Generator gen(1);
  Net net(gen);
  EXPECT_EQ(names_of(net.state_dict()),
            (std::vector<std::string>{"scale", "encoder.0.weight", "encoder.0.bias", "head.weight"}));
  EXPECT_EQ(names_of(net.named_parameters()),
            (std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "head.weight"}));
  EXPECT_EQ(net.children().size(), 2u);
  EXPECT_FALSE(net.head->bias().defined());
}

TEST(LayersModule, TiedParameterListedOnceButSavedUnderBothNames) {
  class Tied : public Module {
   public:
    Tied() {
      Tensor w = register_parameter("w", zeros({2, 2}));
      auto child = std::make_shared<Module>();
      child->register_parameter("w_tied", w);
      register_module("child", child);
    }
  } m;
  EXPECT_EQ(names_of(m.named_parameters()), std::vector<std::string>{"w"});
  EXPECT_EQ(m.num_parameters(), 4);
  EXPECT_EQ(names_of(m.state_dict()), (std::vector<std::string>{"w", "child.w_tied"}));
}

TEST(LayersModule, RegistrationErrors) {
  Module m;
  m.register_parameter("a", zeros({2}));
  expect_contains(error_of([&] { m.register_parameter("a", zeros({2})); }), {"'a'", "already"});
  expect_contains(error_of([&] { m.register_buffer("a", zeros({2})); }), {"'a'", "already"});
  expect_contains(error_of([&] { m.register_module("a", std::make_shared<Module>()); }), {"'a'"});
  expect_contains(error_of([&] { m.register_parameter("x.y", zeros({2})); }), {"x.y", "'.'"});
  expect_contains(error_of([&] { m.register_parameter("", zeros({2})); }), {"non-empty"});
  expect_contains(error_of([&] { m.register_parameter("i", zeros({2}, DType::i64)); }), {"'i'", "i64"});
  Tensor leaf = ones({2});
  leaf.set_requires_grad(true);
  Tensor nonleaf = leaf * 2.0;
  expect_contains(error_of([&] { m.register_parameter("n", nonleaf); }), {"'n'", "leaf"});
  expect_contains(error_of([&] { m.forward(zeros({1})); }), {"Module", "forward"});
  Sequential s;
  expect_contains(error_of([&] { s[0]; }), {"Sequential", "index 0"});
}

// ---- layer forwards vs naive references -------------------------------------------------

TEST(LayersLinear, InitIsTorchBoundFromPhilox) {
  Generator gen(42);
  const uint64_t off0 = gen.offset();
  Linear lin(7, 5, true, gen);
  const double bound = 1.0 / std::sqrt(7.0);
  const std::vector<double> w = lin.weight().to_vector();
  const std::vector<double> b = lin.bias().to_vector();
  // weight draws 35 numbers from offset off0, bias 5 from the next free block.
  const uint64_t off_b = off0 + philox::blocks_for(35, false);
  for (size_t i = 0; i < w.size(); ++i) {
    const double want = -bound + 2 * bound * philox::uniform_f32(42, off0, i);
    EXPECT_NEAR(w[i], want, 1e-6) << i;
    EXPECT_LE(std::abs(w[i]), bound);
  }
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_NEAR(b[i], -bound + 2 * bound * philox::uniform_f32(42, off_b, i), 1e-6) << i;
  }
  EXPECT_EQ(gen.offset(), off_b + philox::blocks_for(5, false));
  Generator same(42);
  EXPECT_EQ(Linear(7, 5, true, same).weight().to_vector(), w);
}

TEST(LayersLinear, ForwardMatchesReferenceForBatchedAndVectorInputs) {
  Generator gen(5);
  Linear lin(6, 3, true, gen);
  const auto w = lin.weight().to_vector(), b = lin.bias().to_vector();
  for (const Shape& s : {Shape{4, 6}, Shape{2, 3, 6}, Shape{6}, Shape{0, 6}}) {
    SCOPED_TRACE(shape_str(s));
    const Tensor x = test_data(s, 1.0);
    const Tensor y = lin(x);
    Shape want_shape = s;
    want_shape.back() = 3;
    ASSERT_EQ(y.shape(), want_shape);
    const auto xv = x.to_vector(), yv = y.to_vector();
    const int64_t rows = x.numel() / 6;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t o = 0; o < 3; ++o) {
        double acc = b[o];
        for (int64_t i = 0; i < 6; ++i) acc += xv[r * 6 + i] * w[o * 6 + i];
        EXPECT_NEAR(yv[r * 3 + o], acc, 1e-5);
      }
    }
  }
  expect_contains(error_of([&] { lin(zeros({2, 5})); }), {"Linear", "[2, 5]", "6"});
}

TEST(LayersEmbedding, LooksUpRowsAndInitsStandardNormal) {
  Generator gen(9);
  Embedding emb(1000, 16, gen);
  const auto w = emb.weight().to_vector();
  double mean = 0, sq = 0;
  for (double v : w) mean += v;
  mean /= static_cast<double>(w.size());
  for (double v : w) sq += (v - mean) * (v - mean);
  const double sd = std::sqrt(sq / static_cast<double>(w.size()));
  EXPECT_NEAR(mean, 0.0, 0.03);  // 16000 draws: the standard error is 0.008
  EXPECT_NEAR(sd, 1.0, 0.03);
  EXPECT_NEAR(w[0], philox::normal_f32(9, 0, 0), 1e-6);
  const Tensor idx = from_vector<int64_t>({3, 999, 3, 0}, {2, 2});
  const Tensor y = emb(idx);
  ASSERT_EQ(y.shape(), (Shape{2, 2, 16}));
  const auto yv = y.to_vector();
  const int64_t rows[] = {3, 999, 3, 0};
  for (int r = 0; r < 4; ++r) {
    for (int d = 0; d < 16; ++d) EXPECT_EQ(yv[r * 16 + d], w[rows[r] * 16 + d]);
  }
}

TEST(LayersNorm, LayerNormMatchesReference) {
  LayerNorm ln(8, 1e-5);
  {
    NoGradGuard g;
    copy_(ln.weight(), test_data({8}, 2.0) + 1.0);
    copy_(ln.bias(), test_data({8}, 3.0));
  }
  const Tensor x = test_data({3, 8}, 4.0) * 3.0;
  const auto y = ln(x).to_vector(), xv = x.to_vector();
  const auto w = ln.weight().to_vector(), b = ln.bias().to_vector();
  for (int r = 0; r < 3; ++r) {
    double mu = 0, var = 0;
    for (int i = 0; i < 8; ++i) mu += xv[r * 8 + i] / 8;
    for (int i = 0; i < 8; ++i) var += (xv[r * 8 + i] - mu) * (xv[r * 8 + i] - mu) / 8;
    for (int i = 0; i < 8; ++i) {
      EXPECT_NEAR(y[r * 8 + i], (xv[r * 8 + i] - mu) / std::sqrt(var + 1e-5) * w[i] + b[i], 1e-5);
    }
  }
  EXPECT_TRUE(LayerNorm(4, 1e-5, false).named_parameters().empty());
}

// ---- train / eval --------------------------------------------------------------------------

TEST(LayersNorm, BatchNormTrainUsesBatchStatsAndUpdatesBuffersEvalUsesRunning) {
  BatchNorm1d bn(3);
  const Tensor x = test_data({6, 3}, 7.0) * 2.0 + 0.5;
  const auto xv = x.to_vector();
  double mu[3] = {}, var_b[3] = {};
  for (int c = 0; c < 3; ++c) {
    for (int r = 0; r < 6; ++r) mu[c] += xv[r * 3 + c] / 6;
    for (int r = 0; r < 6; ++r) var_b[c] += (xv[r * 3 + c] - mu[c]) * (xv[r * 3 + c] - mu[c]) / 6;
  }
  ASSERT_TRUE(bn.is_training());
  const auto y = bn(x).to_vector();
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(y[r * 3 + c], (xv[r * 3 + c] - mu[c]) / std::sqrt(var_b[c] + 1e-5), 1e-5);
    }
  }
  const auto rm = bn.running_mean().to_vector(), rv = bn.running_var().to_vector();
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(rm[c], 0.1 * mu[c], 1e-6);
    EXPECT_NEAR(rv[c], 0.9 + 0.1 * var_b[c] * 6 / 5, 1e-6);
  }
  EXPECT_EQ(bn.num_batches_tracked().item(), 1);

  bn.eval();
  EXPECT_FALSE(bn.is_training());
  const auto ye = bn(x).to_vector();
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(ye[r * 3 + c], (xv[r * 3 + c] - rm[c]) / std::sqrt(rv[c] + 1e-5), 1e-5);
    }
  }
  EXPECT_EQ(bn.running_mean().to_vector(), rm);  // eval leaves the buffers alone
  EXPECT_EQ(bn.num_batches_tracked().item(), 1);
  // A single row works in eval mode (running stats) but not in training.
  EXPECT_EQ(bn(test_data({1, 3}, 1.0)).shape(), (Shape{1, 3}));
  bn.train();
  expect_contains(error_of([&] { bn(test_data({1, 3}, 1.0)); }), {"batch_norm"});
  EXPECT_EQ(bn.num_batches_tracked().item(), 1);  // a failed forward is not counted
}

TEST(LayersNorm, BatchNormWithoutRunningStatsAlwaysUsesBatchStats) {
  BatchNorm1d bn(2, {.affine = false, .track_running_stats = false});
  EXPECT_TRUE(bn.state_dict().empty());
  // torch's positional order: eps, momentum, affine, track_running_stats.
  BatchNorm1d bn2(2, 1e-3, 0.5, false, true);
  EXPECT_EQ(names_of(bn2.state_dict()),
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
  const Tensor x2 = test_data({4, 2}, 3.0);
  bn2(x2);
  const auto xv2 = x2.to_vector();
  EXPECT_NEAR(bn2.running_mean().to_vector()[1], 0.5 * (xv2[1] + xv2[3] + xv2[5] + xv2[7]) / 4, 1e-6);
  bn.eval();
  const Tensor x = test_data({4, 2}, 2.0);
  const auto y = bn(x).to_vector();
  double s0 = 0;
  for (int r = 0; r < 4; ++r) s0 += y[r * 2];
  EXPECT_NEAR(s0, 0.0, 1e-5);
}

TEST(LayersDropout, TrainDropsWithPhiloxMaskEvalIsIdentity) {
  Generator gen(77);
  Sequential seq{std::make_shared<Dropout>(0.25, gen)};
  const Tensor x = test_data({50, 40}, 5.0);
  const uint64_t off = gen.offset();
  const auto xv = x.to_vector();
  const auto y = seq(x).to_vector();
  int64_t dropped = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const bool keep = philox::uniform_f32(77, off, i) >= 0.25f;
    dropped += keep ? 0 : 1;
    EXPECT_NEAR(y[i], keep ? xv[i] / 0.75 : 0.0, 1e-6) << i;
  }
  EXPECT_NEAR(static_cast<double>(dropped) / 2000.0, 0.25, 0.04);
  EXPECT_GT(gen.offset(), off);
  // A second forward draws a fresh mask.
  EXPECT_NE(seq(x).to_vector(), y);

  seq.eval();  // recursive
  EXPECT_FALSE(seq[0]->is_training());
  const uint64_t off_eval = gen.offset();
  EXPECT_EQ(seq(x).to_vector(), xv);
  EXPECT_EQ(gen.offset(), off_eval);  // eval consumes no random numbers
  expect_contains(error_of([] { Dropout(1.0); }), {"Dropout", "[0, 1)"});
}

// ---- device, gradients -----------------------------------------------------------------------

TEST(LayersModule, ToCpuIsANoOpKeepingHandles) {
  Generator gen(2);
  MLP m(bn_mlp_config(), gen);
  const auto before = m.state_dict();
  std::vector<const void*> ptrs;
  for (const auto& [_, t] : before) ptrs.push_back(t.raw_data());
  m.to(Device::cpu());
  const auto after = m.state_dict();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].second.raw_data(), ptrs[i]) << after[i].first;
    EXPECT_EQ(after[i].second.to_vector(), before[i].second.to_vector());
  }
  for (const Tensor& p : m.parameters()) EXPECT_TRUE(p.requires_grad() && p.is_leaf());
}

TEST(LayersModule, ZeroGradDropsGradients) {
  Generator gen(4);
  MLP m(bn_mlp_config(), gen);
  Tensor loss = mse_loss(m(test_data({8, 5}, 1.0)), test_data({8, 3}, 2.0));
  loss.backward();
  for (const auto& [n, p] : m.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << n;
    EXPECT_EQ(p.grad().shape(), p.shape()) << n;
  }
  m.zero_grad();
  for (const auto& [n, p] : m.named_parameters()) EXPECT_FALSE(p.grad().defined()) << n;
}

// ---- state_dict round trips and errors ------------------------------------------------------

TEST_F(LayersFile, StateDictRoundTripThroughFile) {
  Generator g1(1), g2(2);
  MLP a(bn_mlp_config(), g1), b(bn_mlp_config(), g2);
  a(test_data({8, 5}, 3.0));  // moves a's running stats away from their init
  a.save(path("mlp.safetensors"), {{"format", "pt"}});
  const Tensor b_w = b.named_parameters()[0].second;  // the handle must survive the load
  b.load(path("mlp.safetensors"));
  const auto sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_EQ(sa[i].second.dtype(), sb[i].second.dtype());
    EXPECT_EQ(sa[i].second.to_vector(), sb[i].second.to_vector()) << sa[i].first;
  }
  EXPECT_TRUE(b_w.same(b.named_parameters()[0].second));
  EXPECT_EQ(b_w.to_vector(), sa[0].second.to_vector());
  EXPECT_TRUE(b_w.requires_grad() && b_w.is_leaf());
  EXPECT_EQ(b.state_dict()[6].second.item(), 1);  // num_batches_tracked
  a.eval();
  b.eval();
  const Tensor x = test_data({4, 5}, 9.0);
  EXPECT_EQ(a(x).to_vector(), b(x).to_vector());
  // The same file through the free functions: keys are the torch names.
  const auto raw = load_safetensors(path("mlp.safetensors"));
  EXPECT_EQ(raw.count("1.num_batches_tracked"), 1u);
  EXPECT_EQ(raw.at("1.num_batches_tracked").dtype(), DType::i64);
}

TEST(LayersModule, LoadStateDictListsEveryProblemAndChangesNothing) {
  Generator gen(8);
  MLP m(bn_mlp_config(), gen);
  std::map<std::string, Tensor> sd;
  for (const auto& [n, t] : m.state_dict()) sd[n] = t.clone();
  sd.erase("3.bias");
  sd.erase("1.running_var");
  sd["extra.weight"] = zeros({1});
  sd["0.weight"] = zeros({5, 4});                  // transposed shape
  sd["1.num_batches_tracked"] = zeros({}, DType::f32);  // wrong dtype
  sd["1.bias"] = full({4}, 7.0);                  // fine, but must not be applied
  const auto before = m.state_dict()[3].second.to_vector();
  const std::string msg = error_of([&] { m.load_state_dict(sd); });
  expect_contains(msg, {"MLP", "missing", "\"3.bias\"", "\"1.running_var\"", "unexpected",
                        "\"extra.weight\"", "\"0.weight\"", "[5, 4]", "[4, 5]",
                        "\"1.num_batches_tracked\"", "f32", "i64"});
  EXPECT_EQ(m.state_dict()[3].second.to_vector(), before);

  // Non-strict: missing/unexpected are reported, not thrown; mismatches still throw.
  std::map<std::string, Tensor> partial = {{"0.bias", full({4}, 0.5)}, {"junk", zeros({1})}};
  const LoadResult r = m.load_state_dict(partial, false);
  EXPECT_EQ(r.unexpected_keys, std::vector<std::string>{"junk"});
  EXPECT_EQ(r.missing_keys.size(), 8u);
  EXPECT_EQ(m.state_dict()[1].second.to_vector(), std::vector<double>(4, 0.5));
  partial["0.bias"] = zeros({3});
  expect_contains(error_of([&] { m.load_state_dict(partial, false); }), {"\"0.bias\"", "[3]"});
  // Duplicate keys in an ordered list are an error too.
  expect_contains(error_of([&] {
                    m.load_state_dict(NamedTensors{{"0.bias", zeros({4})}, {"0.bias", zeros({4})}});
                  }),
                  {"\"0.bias\"", "twice"});
}

TEST_F(LayersFile, LoadFromFileNamesTheFile) {
  Module small;
  small.register_parameter("w", zeros({2}));
  small.save(path("small.safetensors"));
  Generator gen(1);
  MLP m(bn_mlp_config(), gen);
  expect_contains(error_of([&] { m.load(path("small.safetensors")); }),
                  {"small.safetensors", "\"w\"", "missing"});
}
