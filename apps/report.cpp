#include "apps/report.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/baselines/baselines.h"
#include "recsys/rundir.h"
#include "recsys/synthetic.h"

namespace dan::apps {

namespace fs = std::filesystem;

std::string DataChoice::describe() const {
  return dir.empty() ? fmt::format("synthetic world (seed {}, {} anime, {} users)", synthetic_seed,
                                   synthetic_items, synthetic_users)
                     : dir;
}

DataChoice choose_data(const std::string& spec) {
  DataChoice c;
  if (spec.empty()) {
    c.dir = recsys::default_data_dir();
    if (!c.dir.empty() && !fs::exists(fs::path(c.dir) / "ratings.csv")) c.dir.clear();
    return c;
  }
  if (spec.rfind("synthetic", 0) == 0) {
    const std::string rest = spec.substr(9);
    if (!rest.empty()) {
      DAN_CHECK(rest[0] == ':' && rest.size() > 1 &&
                    rest.find_first_not_of("0123456789", 1) == std::string::npos,
                "data: expected 'synthetic' or 'synthetic:SEED', got '{}'", spec);
      c.synthetic_seed = std::stoull(rest.substr(1));
    }
    return c;
  }
  c.dir = spec;
  return c;
}

recsys::Dataset load_data(const DataChoice& c, const recsys::LoadOptions& opts) {
  recsys::Dataset ds;
  if (c.dir.empty()) {
    recsys::SyntheticConfig sc;
    sc.seed = c.synthetic_seed;
    sc.items = c.synthetic_items;
    sc.users = c.synthetic_users;
    ds = recsys::make_synthetic(sc);
  } else {
    ds = recsys::load_dataset(c.dir, opts);
  }
  fmt::print("data: {}: {}\n", c.describe(), ds.summary());
  if (ds.report.total_skipped() > 0) fmt::print("data: skipped rows:\n{}", ds.report.str());
  return ds;
}

recsys::Split load_or_make_split(const recsys::Dataset& ds, const recsys::SplitConfig& cfg,
                                 const std::string& path) {
  if (fs::exists(path)) {
    recsys::Split s = recsys::Split::load(path, ds);
    DAN_CHECK(s.config.seed == cfg.seed && s.config.train == cfg.train && s.config.val == cfg.val &&
                  s.config.warm_holdout == cfg.warm_holdout,
              "{}: saved split has seed {} / fractions {}, {}, warm {}; asked for seed {} / {}, {}, "
              "warm {} (remove the file or use another output folder)",
              path, s.config.seed, s.config.train, s.config.val, s.config.warm_holdout, cfg.seed,
              cfg.train, cfg.val, cfg.warm_holdout);
    fmt::print("split: reusing {}\n", path);
    return s;
  }
  recsys::Split s = recsys::make_split(ds, cfg);
  s.save(path);
  fmt::print("split: {} train / {} val / {} test anime (seed {}) -> {}\n", s.train_items.size(),
             s.val_items.size(), s.test_items.size(), cfg.seed, path);
  return s;
}

void Report::print() const {
  for (const Table& t : tables) {
    fmt::print("\n### {} — {}\n\n{}\n", t.protocol, t.description, recsys::format_table(t.columns));
  }
}

std::string Report::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Table& t : tables) {
    nlohmann::json tj = nlohmann::json::object();
    tj["description"] = t.description;
    for (const auto& [name, m] : t.columns) tj["models"][name] = nlohmann::json::parse(m.to_json());
    j[t.protocol] = tj;
  }
  return j.dump(2) + "\n";
}

void Report::write(const std::string& path) const { recsys::write_text_atomic(path, to_json()); }

namespace {

std::vector<int32_t> iota_rows(int64_t n) {
  std::vector<int32_t> r(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) r[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  return r;
}

}  // namespace

std::vector<float> members_signal(const recsys::Dataset& ds) {
  std::vector<float> v(ds.anime.size());
  std::vector<float> known;
  for (const auto& a : ds.anime)
    if (std::isfinite(a.members)) known.push_back(static_cast<float>(std::log1p(a.members)));
  float fill = 0;
  if (!known.empty()) {
    std::nth_element(known.begin(), known.begin() + static_cast<long>(known.size() / 2), known.end());
    fill = known[known.size() / 2];
  }
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = std::isfinite(ds.anime[i].members) ? static_cast<float>(std::log1p(ds.anime[i].members)) : fill;
  return v;
}

recsys::Metrics all_metrics(const Tensor& scores, const recsys::Csr& truth, const recsys::Csr& exclude,
                            const recsys::EvalConfig& cfg) {
  recsys::Metrics m = recsys::evaluate(scores, truth, exclude, cfg);
  const recsys::Metrics s = recsys::evaluate_seed(scores, truth, exclude, cfg);
  for (const auto& [k, v] : s.values)
    if (!m.has(k)) m.values.emplace_back(k, v);
  return m;
}

recsys::Metrics random_column(const recsys::Csr& truth, const recsys::Csr& exclude,
                              const recsys::EvalConfig& cfg, const recsys::Metrics& a_model) {
  recsys::Metrics r = recsys::random_expectation(truth, exclude, cfg);
  for (const auto& [k, v] : a_model.values) {
    const std::string suffix = ".random";
    if (k.size() > suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = k.substr(0, k.size() - suffix.size());
      if (!r.has(base)) r.values.emplace_back(base, v);
      if (!r.has(k)) r.values.emplace_back(k, v);
    } else if ((k == "seed_users" || k == "seed_items") && !r.has(k)) {
      r.values.emplace_back(k, v);
    }
  }
  return r;
}

Report evaluate_wmf_and_baselines(const recsys::Dataset& ds, const recsys::Split& split,
                                  const recsys::Interactions& inter, const Tensor& U, const Tensor& V) {
  recsys::EvalConfig cfg;
  const recsys::Csr none;
  Report rep;
  const std::vector<int32_t> rows = iota_rows(inter.fit.rows);
  const std::vector<float> members = members_signal(ds);

  {  // warm: held-out ratings of train anime, fit ratings excluded
    Table t;
    t.protocol = "warm";
    t.description = fmt::format("{} users x {} train anime, truth = {} held-out ratings",
                                inter.fit.rows, inter.fit.cols, inter.warm_test.nnz());
    const std::vector<int32_t> cands = iota_rows(inter.fit.cols);
    std::vector<float> members_train(cands.size());
    for (size_t j = 0; j < cands.size(); ++j) members_train[j] = members[static_cast<size_t>(inter.train_items[j])];
    const recsys::Csr& truth = inter.warm_test;
    const recsys::Csr& excl = inter.fit;
    t.columns.emplace_back("pop (train)", all_metrics(baselines::popularity_scores(inter.fit, truth.rows, cands), truth, excl, cfg));
    t.columns.emplace_back("pop (members)", all_metrics(baselines::metadata_scores(members_train, truth.rows, cands), truth, excl, cfg));
    t.columns.emplace_back("item-kNN", all_metrics(baselines::item_knn_scores(inter.fit_score, rows, cands), truth, excl, cfg));
    t.columns.emplace_back("WMF", all_metrics(baselines::wmf_scores(U, V, rows, cands), truth, excl, cfg));
    t.columns.insert(t.columns.begin(), {"random", random_column(truth, excl, cfg, t.columns.back().second)});
    rep.tables.push_back(std::move(t));
  }
  {  // cold: test anime, never seen in training
    Table t;
    t.protocol = "cold";
    t.description = fmt::format("{} users x {} test anime (unseen in training), truth = {} ratings",
                                inter.test.rows, inter.test.cols, inter.test.nnz());
    const recsys::Csr& truth = inter.test;
    const std::vector<int32_t> cands = iota_rows(truth.cols);
    std::vector<float> members_test(cands.size());
    for (size_t j = 0; j < cands.size(); ++j) members_test[j] = members[static_cast<size_t>(split.test_items[j])];
    t.columns.emplace_back("pop (members)", all_metrics(baselines::metadata_scores(members_test, truth.rows, cands), truth, none, cfg));
    t.columns.insert(t.columns.begin(), {"random", random_column(truth, none, cfg, t.columns.back().second)});
    rep.tables.push_back(std::move(t));
  }
  return rep;
}

}  // namespace dan::apps
