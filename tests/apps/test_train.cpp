// The experiment runner end to end on a small synthetic world: it writes a complete run
// folder, its model beats random guessing on cold anime, and resuming from a checkpoint
// continues bit-identically (4 epochs straight == 2 epochs + resume + 2 epochs).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "apps/finetune.h"
#include "apps/schema.h"
#include "apps/train.h"
#include "core/serialize.h"
#include "recsys/rundir.h"
#include "tests/models/tiny_bert_dir.h"

namespace fs = std::filesystem;

namespace {

dan::recsys::Config small_config(const std::string& cache, int epochs, const std::string& extra = "") {
  return dan::recsys::load_config_string(
      dan::apps::train_schema(),
      "data: {dir: 'synthetic:3', synthetic_items: 300, synthetic_users: 400}\n"
      "wmf: {factors: 8, iterations: 4}\n"
      "features: {svd_dims: 16, metadata: true, cache_dir: '" + cache + "'}\n"
      "model: {hidden: [32], rank_out: 16}\n"
      "train: {epochs: " + std::to_string(epochs) +
          ", batch_size: 128, top_n: 10, random_n: 10, lr: 0.02, select_metric: recall@20}\n"
      "eval: {ks: [5, 20]}\n" + extra,
      "test config");
}

std::map<std::string, dan::Tensor> weights(const std::string& ckpt) {
  std::map<std::string, dan::Tensor> out;
  // Everything: weights, batch-norm buffers, optimizer moments, scheduler and RNG state.
  for (auto& [k, v] : dan::load_safetensors(ckpt)) out[k] = v;
  return out;
}

// Every tensor of two checkpoints equal bit for bit (same keys).
void expect_bit_identical(const std::map<std::string, dan::Tensor>& a, const std::map<std::string, dan::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) {
    const auto x = t.to_vector(), y = b.at(k).to_vector();
    ASSERT_EQ(x.size(), y.size()) << k;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], y[i]) << k << "[" << i << "]";
  }
}

}  // namespace

TEST(Train, RunFolderAndResumeIsBitIdentical) {
  const fs::path tmp = fs::temp_directory_path() / ("dan_train_test_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cache = (tmp / "cache").string();

  const auto straight_dir = dan::recsys::RunDir::create(tmp.string(), "straight").path();
  const auto straight = dan::apps::run_training(small_config(cache, 4), straight_dir, false);
  for (const char* f : {"config.yaml", "split.safetensors", "metrics.jsonl", "results.json",
                        "checkpoint.safetensors", "best.safetensors", "plots/loss.svg",
                        "plots/val_metric.svg"})
    EXPECT_TRUE(fs::exists(fs::path(straight_dir) / f)) << f;
  EXPECT_EQ(dan::recsys::read_jsonl(straight_dir + "/metrics.jsonl").size(), 4u);

  // The model beats random guessing on the cold test anime.
  const auto& cold = straight.report.tables.at(0);
  double model = -1, random = -1;
  for (const auto& [name, m] : cold.columns) {
    if (name == "DeepAniNet") model = m.get("recall@20");
    if (name == "random") random = m.get("recall@20");
  }
  EXPECT_GT(model, 1.2 * random);

  const auto resumed_dir = dan::recsys::RunDir::create(tmp.string(), "resumed").path();
  dan::apps::run_training(small_config(cache, 2), resumed_dir, false);
  auto cfg4 = small_config(cache, 4);
  dan::apps::run_training(cfg4, resumed_dir, true);
  EXPECT_EQ(dan::recsys::read_jsonl(resumed_dir + "/metrics.jsonl").size(), 4u);

  const auto a = weights(straight_dir + "/checkpoint.safetensors");
  const auto b = weights(resumed_dir + "/checkpoint.safetensors");
  ASSERT_FALSE(a.empty());
  expect_bit_identical(a, b);
  fs::remove_all(tmp);
}

// With a graph encoder trained inside DropoutNet (GINE on the synthetic recommendation graph,
// dropout in the encoder so the RNG state matters): the encoder's weights and optimizer state
// are checkpointed, and resuming is bit-identical too.
TEST(Train, GraphAugmentedResumeIsBitIdentical) {
  const fs::path tmp = fs::temp_directory_path() / ("dan_train_graph_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cache = (tmp / "cache").string();
  const std::string graph =
      "graph: {conv: gine, node_init: content, hidden: [8], out_dim: 6, dropout: 0.2, edge_text_dims: 4}\n";
  const auto straight_dir = dan::recsys::RunDir::create(tmp.string(), "straight").path();
  dan::apps::run_training(small_config(cache, 3, graph), straight_dir, false);
  const auto resumed_dir = dan::recsys::RunDir::create(tmp.string(), "resumed").path();
  dan::apps::run_training(small_config(cache, 1, graph), resumed_dir, false);
  dan::apps::run_training(small_config(cache, 3, graph), resumed_dir, true);
  const auto a = weights(straight_dir + "/checkpoint.safetensors");
  const auto b = weights(resumed_dir + "/checkpoint.safetensors");
  size_t graph_keys = 0;
  for (const auto& [k, t] : a) graph_keys += k.find("graph.") != std::string::npos;
  EXPECT_GT(graph_keys, 0u);
  expect_bit_identical(a, b);
  fs::remove_all(tmp);
}

namespace {

dan::recsys::Config bert_config(const std::string& cache, const std::string& model_dir, int epochs,
                                const std::string& train_extra = "", const std::string& bert_extra = "") {
  return dan::recsys::load_config_string(
      dan::apps::train_schema(),
      "data: {dir: 'synthetic:3', synthetic_items: 120, synthetic_users: 150}\n"
      "wmf: {factors: 8, iterations: 4}\n"
      "features: {kind: bert, metadata: true, cache_dir: '" + cache + "',\n"
      "  bert: {model_dir: '" + model_dir + "', max_length: 12, batch_size: 16, finetune_layers: 1,\n"
      "         lr: 0.001, schedule: exponential, gamma: 0.5" + bert_extra + "}}\n"
      "model: {hidden: [16], rank_out: 8, user_content_top_n: 3}\n"
      "train: {epochs: " + std::to_string(epochs) +
          ", batch_size: 32, sampling: threshold, threshold_lo: -0.05, threshold_hi: 0.05, pairs_per_epoch: 96,\n"
          "        optimizer: adam, lr: 0.01, select_metric: recall@20" + train_extra + "}\n"
      "eval: {ks: [5, 20]}\n",
      "test config");
}

}  // namespace

// BERT fine-tuned inside DropoutNet (tiny random BERT, last layer trained): the BERT layer's
// weights move, the checkpoint holds them (and only them) under "bert.", the BERT group's lr
// follows its own schedule while DropoutNet's stays, and resuming is bit-identical (dropout in
// the trained layer draws from the checkpointed generator).
TEST(Train, BertFinetuneResumeIsBitIdentical) {
  const fs::path tmp = fs::temp_directory_path() / ("dan_train_bert_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cache = (tmp / "cache").string();
  const std::string model_dir = dan::testing::tiny_bert_dir("train");
  const auto straight_dir = dan::recsys::RunDir::create(tmp.string(), "straight").path();
  dan::apps::run_training(bert_config(cache, model_dir, 3), straight_dir, false);
  const auto resumed_dir = dan::recsys::RunDir::create(tmp.string(), "resumed").path();
  dan::apps::run_training(bert_config(cache, model_dir, 1), resumed_dir, false);
  dan::apps::run_training(bert_config(cache, model_dir, 3), resumed_dir, true);
  const auto a = weights(straight_dir + "/checkpoint.safetensors");
  const auto b = weights(resumed_dir + "/checkpoint.safetensors");
  // Only the trained layer (layer 1 of 2) is checkpointed, and it moved from the pretrained one.
  const auto pretrained = dan::load_safetensors(model_dir + "/model.safetensors");
  size_t bert_keys = 0;
  for (const auto& [k, t] : a) {
    if (k.rfind("bert.", 0) != 0) continue;
    ++bert_keys;
    EXPECT_EQ(k.rfind("bert.layer.1.", 0), 0u) << k;
    for (const auto& [pk, pt] : pretrained) {
      if (pk == "encoder." + k.substr(5) && k.find("query.weight") != std::string::npos) {
        EXPECT_NE(pt.to_vector(), t.to_vector()) << k << " did not train";
      }
    }
  }
  EXPECT_EQ(bert_keys, 16u);  // 6 Linear (weight + bias) + 2 LayerNorm (weight + bias)
  // Epoch lrs: DropoutNet fixed at 0.01, BERT 0.001 * 0.5^epoch.
  const auto lines = dan::recsys::read_jsonl(straight_dir + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    const auto lrs = lines[e].at("lr");
    EXPECT_DOUBLE_EQ(lrs.at(0).get<double>(), 0.01);
    EXPECT_DOUBLE_EQ(lrs.at(1).get<double>(), 0.001 * std::pow(0.5, static_cast<double>(e)));
  }
  expect_bit_identical(a, b);
  fs::remove_all(tmp);
}

// train.accumulate = 2 with batches of 32 takes the same steps as batches of 64 (no batch norm,
// no input dropout, so the batch split changes nothing but the summation order).
TEST(Train, GradientAccumulationEqualsTheLargerBatch) {
  const fs::path tmp = fs::temp_directory_path() / ("dan_train_accum_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cache = (tmp / "cache").string();
  const std::string extra = "model: {batch_norm: false}\n";
  auto run = [&](const std::string& name, const std::string& train) {
    const auto dir = dan::recsys::RunDir::create(tmp.string(), name).path();
    dan::apps::run_training(
        dan::recsys::load_config_string(
            dan::apps::train_schema(),
            "data: {dir: 'synthetic:3', synthetic_items: 300, synthetic_users: 400}\n"
            "wmf: {factors: 8, iterations: 4}\n"
            "features: {svd_dims: 16, metadata: true, cache_dir: '" + cache + "'}\n"
            "model: {hidden: [32], rank_out: 16, batch_norm: false}\n"
            "train: {epochs: 1, top_n: 10, random_n: 10, dropout_p: 0, optimizer: adam, lr: 0.01, select_metric: recall@20, " + train + "}\n"
            "eval: {ks: [5, 20]}\n",
            "test config"),
        dir, false);
    return weights(dir + "/checkpoint.safetensors");
  };
  const auto big = run("big", "batch_size: 64");
  const auto acc = run("acc", "batch_size: 32, accumulate: 2");
  const auto small = run("small", "batch_size: 32");
  double diff_acc = 0, diff_small = 0;
  for (const auto& [k, t] : big) {
    if (k.rfind("model.", 0) != 0) continue;
    const auto x = t.to_vector(), y = acc.at(k).to_vector(), z = small.at(k).to_vector();
    for (size_t i = 0; i < x.size(); ++i) {
      diff_acc = std::max(diff_acc, std::abs(x[i] - y[i]));
      diff_small = std::max(diff_small, std::abs(x[i] - z[i]));
    }
  }
  EXPECT_LT(diff_acc, 1e-4);
  EXPECT_GT(diff_small, 100 * diff_acc);  // the comparison can tell batch sizes apart
  fs::remove_all(tmp);
}

// features.bert.user_grad = false: φ^U from the epoch-start content table; the item side still
// trains the layer, and resuming rebuilds the table bit-identically.
TEST(Train, BertFinetuneUserTableResumeIsBitIdentical) {
  const fs::path tmp = fs::temp_directory_path() / ("dan_train_bert_ut_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cache = (tmp / "cache").string();
  const std::string model_dir = dan::testing::tiny_bert_dir("train_ut");
  const std::string extra = ", user_grad: false";
  const auto straight_dir = dan::recsys::RunDir::create(tmp.string(), "straight").path();
  dan::apps::run_training(bert_config(cache, model_dir, 2, "", extra), straight_dir, false);
  const auto resumed_dir = dan::recsys::RunDir::create(tmp.string(), "resumed").path();
  dan::apps::run_training(bert_config(cache, model_dir, 1, "", extra), resumed_dir, false);
  dan::apps::run_training(bert_config(cache, model_dir, 2, "", extra), resumed_dir, true);
  const auto a = weights(straight_dir + "/checkpoint.safetensors");
  const auto b = weights(resumed_dir + "/checkpoint.safetensors");
  const auto with_grad_dir = dan::recsys::RunDir::create(tmp.string(), "with_grad").path();
  dan::apps::run_training(bert_config(cache, model_dir, 2), with_grad_dir, false);
  const auto c = weights(with_grad_dir + "/checkpoint.safetensors");
  ASSERT_EQ(a.size(), b.size());
  bool differs_from_user_grad = false;
  for (const auto& [k, t] : a) {
    const auto x = t.to_vector(), y = b.at(k).to_vector();
    ASSERT_EQ(x.size(), y.size()) << k;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], y[i]) << k << "[" << i << "]";
    if (k.rfind("bert.", 0) == 0 && c.count(k)) differs_from_user_grad |= c.at(k).to_vector() != x;
  }
  EXPECT_TRUE(differs_from_user_grad);  // the user side's gradient did reach the layer before
  fs::remove_all(tmp);
}

// The fine-tuning standardization: z-scores like text::standardize_columns, but an almost
// constant column's scale is capped at 1 / (25% of the median std), and a constant one is 0.
TEST(Train, FinetuneStandardizationCapsNearConstantColumns) {
  const int64_t n = 200;
  std::vector<float> x(static_cast<size_t>(n * 4));
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(i * 4 + 0)] = static_cast<float>(i % 7) * 0.1f;         // ordinary
    x[static_cast<size_t>(i * 4 + 1)] = static_cast<float>(i % 5) * 0.2f + 1.0f;   // ordinary
    x[static_cast<size_t>(i * 4 + 2)] = 0.5f + (i % 2 ? 1e-6f : -1e-6f);           // near-constant
    x[static_cast<size_t>(i * 4 + 3)] = 0.25f;                                      // constant
  }
  std::vector<float> mean, scale;
  dan::apps::standardization(dan::from_vector(x, {n, 4}), &mean, &scale);
  // Column 0: values 0..0.6 in steps of 0.1 over i % 7 -> population std computed directly.
  double m0 = 0, v0 = 0;
  for (int64_t i = 0; i < n; ++i) m0 += (i % 7) * 0.1;
  m0 /= n;
  for (int64_t i = 0; i < n; ++i) v0 += ((i % 7) * 0.1 - m0) * ((i % 7) * 0.1 - m0);
  v0 /= n;
  EXPECT_NEAR(mean[0], m0, 1e-6);
  EXPECT_NEAR(scale[0], 1.0 / std::sqrt(v0), 1e-3);
  // The median of the three non-zero stds (1e-6, those of columns 0 and 1) is the smaller of the two.
  const double median_sd = std::min(1.0 / scale[0], 1.0 / scale[1]);
  EXPECT_NEAR(scale[2], 1.0 / (0.25 * median_sd), 1e-3 / (0.25 * median_sd));  // capped, not 1e6
  EXPECT_EQ(scale[3], 0.0f);
}
