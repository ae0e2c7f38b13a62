#include "apps/demo.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "apps/cli.h"
#include "apps/recommend.h"
#include "apps/schema.h"
#include "apps/train.h"
#include "core/threads.h"
#include "recsys/rundir.h"

namespace dan::apps {

namespace fs = std::filesystem;

namespace {

// Query users for the demo: on the real data two well-known shows; otherwise the most
// popular train anime of two different genres.
std::vector<std::vector<std::string>> demo_queries(const Prepared& p) {
  std::vector<std::vector<std::string>> q;
  auto has = [&](const std::string& t) {
    return std::any_of(p.ds.anime.begin(), p.ds.anime.end(), [&](const recsys::Anime& a) { return a.title == t; });
  };
  if (has("Fullmetal Alchemist: Brotherhood") && has("Shingeki no Kyojin"))
    q.push_back({"Fullmetal Alchemist: Brotherhood", "Shingeki no Kyojin"});
  std::vector<int32_t> order = p.inter.train_items;
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return p.ds.anime[static_cast<size_t>(a)].members > p.ds.anime[static_cast<size_t>(b)].members;
  });
  std::vector<std::string> seen_genre;
  for (int32_t i : order) {
    const auto& a = p.ds.anime[static_cast<size_t>(i)];
    if (a.genres.empty() || std::find(seen_genre.begin(), seen_genre.end(), a.genres[0]) != seen_genre.end()) continue;
    seen_genre.push_back(a.genres[0]);
    q.push_back({a.title});
    if (q.size() >= 3) break;
  }
  return q;
}

}  // namespace

int demo_command(int argc, char** argv) {
  const Flags f = parse_flags(argc, argv, 2, {"config", "data", "epochs", "threads", "out", "k"});
  if (f.has("threads")) set_num_threads(static_cast<int>(f.integer("threads", 1)));
  const std::string path = f.str("config", std::string(DAN_SOURCE_DIR) + "/configs/demo.yaml");
  std::vector<std::string> overrides = f.positional;
  if (f.has("data")) overrides.push_back("data.dir=" + f.str("data", ""));
  if (f.has("epochs")) overrides.push_back("train.epochs=" + f.str("epochs", ""));
  if (f.has("out")) overrides.push_back("run.dir=" + f.str("out", ""));
  const recsys::Config cfg = recsys::load_config(train_schema(), path, overrides);
  const recsys::RunDir run = recsys::RunDir::create(cfg.get_string("run.dir"), cfg.get_string("name"));
  fmt::print("demo: {} -> {}\n", path, run.path());
  const TrainOutcome out = run_training(cfg, run.path(), false);

  const Prepared& p = *out.prepared;
  for (const auto& q : demo_queries(p)) {
    const RecommendLists r = recommend(p, cfg, *out.model, q, static_cast<int>(f.integer("k", 8)));
    fmt::print("\nliked: {}\n{}", fmt::join(q, " | "), format_recommendations(p.ds, r));
  }
  fmt::print("\ndemo: done; run folder {}\n", run.path());
  return 0;
}

}  // namespace dan::apps
