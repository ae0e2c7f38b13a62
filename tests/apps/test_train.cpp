// The experiment runner end to end on a small synthetic world: it writes a complete run
// folder, its model beats random guessing on cold anime, and resuming from a checkpoint
// continues bit-identically (4 epochs straight == 2 epochs + resume + 2 epochs).
#include <gtest/gtest.h>

#include <filesystem>

#include "apps/schema.h"
#include "apps/train.h"
#include "core/serialize.h"
#include "recsys/rundir.h"

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
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) {
    const auto x = t.to_vector(), y = b.at(k).to_vector();
    ASSERT_EQ(x.size(), y.size()) << k;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], y[i]) << k << "[" << i << "]";
  }
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
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) {
    const auto x = t.to_vector(), y = b.at(k).to_vector();
    ASSERT_EQ(x.size(), y.size()) << k;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], y[i]) << k << "[" << i << "]";
  }
  fs::remove_all(tmp);
}
