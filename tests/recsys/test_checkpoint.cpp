// Training checkpoints: a run resumed from a checkpoint into freshly built objects continues
// bit-identically (weights, Adam moments, scheduler lr, Philox dropout masks and sampling);
// mismatched checkpoints fail before changing anything, naming each key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "autograd/ops.h"
#include "core/error.h"
#include "core/serialize.h"
#include "layers/mlp.h"
#include "layers/optim/adam.h"
#include "layers/optim/sgd.h"
#include "recsys/checkpoint.h"

namespace fs = std::filesystem;
using namespace dan;
using namespace dan::recsys;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dan::Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_contains(const std::string& msg, const std::vector<std::string>& parts) {
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in:\n" << msg;
}

class RecsysCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("dan_ckpt_{}_{}", ::getpid(), info->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& n) const { return (dir_ / n).string(); }
  fs::path dir_;
};

MLPConfig mlp_config(int64_t hidden = 5, bool batch_norm = true) {
  MLPConfig c;
  c.in_dim = 6;
  c.hidden = {hidden};
  c.out_dim = 2;
  c.activation = Activation::tanh;
  c.batch_norm = batch_norm;
  c.dropout = 0.25;  // masks come from the generator: its state must be restored too
  return c;
}

std::vector<double> seq(size_t n, double seed) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(seed * static_cast<double>(i + 1) + 0.3);
  return v;
}

// One "epoch" = 2 steps; each step samples a batch of 8 of the 16 rows with the generator.
struct Trainer {
  MLP& model;
  Optimizer& opt;
  LRScheduler& sched;
  Generator& gen;
  int64_t step = 0;
  Tensor x = from_doubles(seq(16 * 6, 1.7), {16, 6});
  Tensor y = from_doubles(seq(16 * 2, 2.3), {16, 2});

  std::vector<double> run(int n) {
    std::vector<double> losses;
    for (int i = 0; i < n; ++i) {
      std::vector<int64_t> idx;
      for (double u : rand({8}, gen, DType::f64).to_vector()) idx.push_back(static_cast<int64_t>(u * 16));
      const Tensor bi = from_vector(idx, {8});
      opt.zero_grad();
      Tensor loss = mse_loss(model(index_select(x, bi)), index_select(y, bi));
      loss.backward();
      opt.step();
      if (++step % 2 == 0) sched.step();
      losses.push_back(loss.item());
    }
    return losses;
  }
};

std::vector<std::vector<double>> weights(const Module& m) {
  std::vector<std::vector<double>> out;
  for (const auto& [k, t] : m.state_dict()) out.push_back(t.to_vector());
  return out;
}

}  // namespace

TEST_F(RecsysCheckpoint, ResumeIntoFreshObjectsContinuesBitIdentically) {
  Generator gen(5);
  MLP a(mlp_config(), gen);
  Adam opt_a(a.parameters(), {.lr = 0.02});
  StepLR sched_a(opt_a, 1, 0.5);
  Trainer ta{a, opt_a, sched_a, gen};
  ta.run(4);  // two epochs

  TrainState sa;
  sa.module("model", a).optimizer("optim", opt_a).scheduler("sched", sched_a).generator("rng", gen);
  sa.epoch = 2;
  sa.step = ta.step;
  sa.extra["best_val"] = from_doubles({0.125}, {});
  sa.metadata["config"] = "wmf:\n  factors: 3\n";
  save_checkpoint(path("ckpt.safetensors"), sa);
  const GeneratorState gen_at_ckpt = gen.state();
  const double lr_at_ckpt = opt_a.param_groups()[0].lr;
  EXPECT_EQ(lr_at_ckpt, 0.02 * 0.25);
  const std::vector<double> cont_a = ta.run(3);

  // Fresh objects: another init, another lr, another generator seed; all overwritten by the load.
  Generator g2(99);
  MLP b(mlp_config(), g2);
  Adam opt_b(b.parameters(), {.lr = 0.5});
  StepLR sched_b(opt_b, 1, 0.5);
  ASSERT_NE(weights(a), weights(b));
  TrainState sb;
  sb.module("model", b).optimizer("optim", opt_b).scheduler("sched", sched_b).generator("rng", g2);
  load_checkpoint(path("ckpt.safetensors"), sb);
  EXPECT_EQ(sb.epoch, 2);
  EXPECT_EQ(sb.step, 4);
  EXPECT_EQ(g2.seed(), gen_at_ckpt.seed);
  EXPECT_EQ(g2.offset(), gen_at_ckpt.offset);
  EXPECT_EQ(opt_b.param_groups()[0].lr, lr_at_ckpt);
  EXPECT_EQ(sched_b.epoch(), 2);
  ASSERT_EQ(sb.extra.count("best_val"), 1u);
  EXPECT_EQ(sb.extra["best_val"].item(), 0.125);
  EXPECT_EQ(sb.metadata, (std::map<std::string, std::string>{{"config", "wmf:\n  factors: 3\n"}}));

  Trainer tb{b, opt_b, sched_b, g2, sb.step};
  const std::vector<double> cont_b = tb.run(3);
  EXPECT_EQ(cont_a, cont_b);
  EXPECT_EQ(weights(a), weights(b));  // every parameter and BatchNorm buffer, bit for bit
  const auto oa = opt_a.state_dict(), ob = opt_b.state_dict();
  ASSERT_EQ(oa.size(), ob.size());
  for (size_t i = 0; i < oa.size(); ++i) EXPECT_EQ(oa[i].second.to_vector(), ob[i].second.to_vector()) << oa[i].first;
  EXPECT_EQ(gen.state().offset, g2.state().offset);

  // The generator state matters: the same load with the generator moved on diverges.
  Generator g3(1);
  MLP c(mlp_config(), g3);
  Adam opt_c(c.parameters(), {.lr = 0.5});
  StepLR sched_c(opt_c, 1, 0.5);
  TrainState sc;
  sc.module("model", c).optimizer("optim", opt_c).scheduler("sched", sched_c).generator("rng", g3);
  load_checkpoint(path("ckpt.safetensors"), sc);
  g3.reserve(1);
  Trainer{c, opt_c, sched_c, g3, sc.step}.run(3);
  EXPECT_NE(weights(a), weights(c));
}

TEST_F(RecsysCheckpoint, FileIsPlainSafetensorsWithDocumentedKeys) {
  Generator gen(1);
  MLP m(mlp_config(), gen);
  SGD opt(m.parameters(), {.lr = 0.1, .momentum = 0.9});
  ExponentialLR sched(opt, 0.9);
  Trainer{m, opt, sched, gen}.run(2);
  TrainState s;
  s.module("model", m).optimizer("optim", opt).scheduler("sched", sched).generator("rng", gen);
  s.epoch = 1;
  s.step = 2;
  s.extra["u"] = zeros({3, 2});
  save_checkpoint(path("c.safetensors"), s);

  const auto all = load_safetensors(path("c.safetensors"));
  for (const char* k : {"model.0.weight", "model.1.running_mean", "model.1.num_batches_tracked", "model.4.bias",
                        "optim.state.0.momentum_buffer", "optim.param_groups.0.lr", "sched.epoch", "extra.u"}) {
    EXPECT_EQ(all.count(k), 1u) << k;
  }
  const CheckpointInfo info = read_checkpoint_info(path("c.safetensors"));
  EXPECT_EQ(info.epoch, 1);
  EXPECT_EQ(info.step, 2);
  EXPECT_EQ(info.parts.at("module"), std::vector<std::string>{"model"});
  EXPECT_EQ(info.parts.at("optimizer"), std::vector<std::string>{"optim"});
  EXPECT_EQ(info.parts.at("generator"), std::vector<std::string>{"rng"});
  EXPECT_TRUE(info.metadata.empty());
  EXPECT_EQ(info.tensor_names.size(), all.size());
  const st::Reader r = st::Reader::open(path("c.safetensors"));
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_EQ(r.metadata().at("dan.generator.rng.seed"), "1");
  EXPECT_EQ(r.metadata().at("dan.generator.rng.offset"), std::to_string(gen.offset()));

  s.metadata["dan.x"] = "no";
  EXPECT_EQ(error_of([&] { save_checkpoint(path("d.safetensors"), s); }),
            "save_checkpoint '" + path("d.safetensors") + "': metadata key 'dan.x' is reserved (\"dan.*\", \"format\")");
  EXPECT_EQ(error_of([&] { s.module("model", m); }), "TrainState: name 'model' registered twice");
  EXPECT_EQ(error_of([&] { s.module("a.b", m); }), "TrainState: bad name 'a.b': expected [A-Za-z0-9_]+");
}

TEST_F(RecsysCheckpoint, MismatchesAreReportedByKeyBeforeAnythingChanges) {
  Generator gen(3);
  MLP m(mlp_config(), gen);
  Adam opt(m.parameters(), {.lr = 0.01});
  StepLR sched(opt, 1, 0.5);
  Trainer{m, opt, sched, gen}.run(2);
  TrainState s;
  s.module("model", m).optimizer("optim", opt).scheduler("sched", sched).generator("rng", gen);
  const std::string p = path("c.safetensors");
  save_checkpoint(p, s);

  {  // Shape mismatch: hidden 4 instead of 5.
    Generator g(0);
    MLP other(mlp_config(4), g);
    const auto before = weights(other);
    TrainState t;
    t.module("model", other);
    const std::string msg = error_of([&] { load_checkpoint(p, t); });
    expect_contains(msg, {"load_checkpoint '" + p + "'", "model.0.weight: shape [5, 6] in the checkpoint, [4, 6] here",
                          "model.1.running_mean: shape [5] in the checkpoint, [4] here",
                          "model.4.weight: shape [2, 5] in the checkpoint, [2, 4] here",
                          "optimizer 'optim': in the checkpoint but not registered",
                          "scheduler 'sched': in the checkpoint but not registered",
                          "generator 'rng': in the checkpoint but not registered"});
    EXPECT_EQ(weights(other), before);  // nothing was loaded
  }
  {  // Missing and unexpected keys: no batch norm here ("0" Linear, "1" Tanh, "2" Dropout, "3" Linear).
    Generator g(0);
    MLP other(mlp_config(5, false), g);
    Adam o2(other.parameters(), {.lr = 0.01});
    StepLR s2(o2, 1, 0.5);
    TrainState t;
    t.module("model", other).optimizer("optim", o2).scheduler("sched", s2).generator("rng", g).generator("noise", g);
    const std::string msg = error_of([&] { load_checkpoint(p, t); });
    expect_contains(msg, {"model.3.weight: missing from the checkpoint",
                          "model.1.running_mean: in the checkpoint, not in module 'model' (MLP)",
                          "generator 'noise': not in the checkpoint"});
  }
  {  // The optimizer's own validation: SGD with momentum has no exp_avg.
    Generator g(0);
    MLP other(mlp_config(), g);
    const auto before = weights(other);
    const uint64_t offset_before = g.offset();
    SGD o2(other.parameters(), {.lr = 0.1, .momentum = 0.9});
    StepLR s2(o2, 1, 0.5);
    TrainState t;
    t.module("model", other).optimizer("optim", o2).scheduler("sched", s2).generator("rng", g);
    const std::string msg = error_of([&] { load_checkpoint(p, t); });
    expect_contains(msg, {"load_checkpoint '" + p + "': optimizer 'optim': ", "optim.state.0.momentum_buffer"});
    EXPECT_EQ(weights(other), before);  // the optimizer fails before the modules load
    EXPECT_EQ(g.offset(), offset_before);
  }
  // A weights-only file is not a training checkpoint.
  m.save(path("weights.safetensors"));
  TrainState t;
  t.module("model", m);
  EXPECT_EQ(error_of([&] { load_checkpoint(path("weights.safetensors"), t); }),
            "'" + path("weights.safetensors") +
                "' is not a training checkpoint (no \"dan.checkpoint\" metadata); a weights file is read with "
                "Module::load");
}
