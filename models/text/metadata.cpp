// Metadata feature matrix: numeric columns (log-scaled counts, score, episodes with missing
// indicators), then the one-hot/multi-hot category columns; standardized column by column.
#include "models/text/metadata.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "models/text/svd.h"

namespace dan::text {

std::string MetadataConfig::key() const {
  return fmt::format(
      "meta(members={},favorites={},score={},episodes={},type={},genres={},themes={},studios={},"
      "std={})",
      members, favorites, score, episodes, type, genres, themes, top_studios, standardize);
}

FeatureBlock metadata_features(const recsys::Dataset& ds, const MetadataConfig& cfg) {
  DAN_CHECK(cfg.top_studios >= 0, "metadata_features: top_studios must be >= 0, got {}",
            cfg.top_studios);
  const int64_t n = ds.num_items();
  std::vector<std::vector<float>> cols;
  FeatureBlock out;
  auto add = [&](std::string name, std::vector<float> v) {
    out.columns.push_back(std::move(name));
    cols.push_back(std::move(v));
  };
  auto log_count = [](double x) {
    return static_cast<float>(std::isfinite(x) && x > 0 ? std::log1p(x) : 0.0);
  };
  // A numeric column whose NaNs become the mean of the others, plus the missing indicator.
  auto with_missing = [&](const std::string& name, auto value_of) {
    std::vector<float> v(n), miss(n, 0.0f);
    double sum = 0;
    int64_t present = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double x = value_of(ds.anime[i]);
      if (std::isfinite(x)) {
        v[i] = static_cast<float>(x);
        sum += x;
        ++present;
      } else {
        miss[i] = 1;
      }
    }
    const auto mean = static_cast<float>(present > 0 ? sum / static_cast<double>(present) : 0.0);
    for (int64_t i = 0; i < n; ++i)
      if (miss[i] != 0) v[i] = mean;
    add(name, std::move(v));
    add(name + "_missing", std::move(miss));
  };

  if (cfg.members) {
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = log_count(ds.anime[i].members);
    add("log1p_members", std::move(v));
  }
  if (cfg.favorites) {
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = log_count(ds.anime[i].favorites);
    add("log1p_favorites", std::move(v));
  }
  if (cfg.score) with_missing("score", [](const recsys::Anime& a) { return a.score; });
  if (cfg.episodes)
    with_missing("log1p_episodes", [](const recsys::Anime& a) {
      return std::isfinite(a.episodes) && a.episodes >= 0 ? std::log1p(a.episodes) : NAN;
    });
  if (cfg.type) {
    std::map<std::string, std::vector<float>> by_type;
    for (int64_t i = 0; i < n; ++i) {
      const std::string& t = ds.anime[i].type;
      auto& v = by_type["type=" + (t.empty() ? std::string("unknown") : t)];
      if (v.empty()) v.assign(n, 0.0f);
      v[i] = 1;
    }
    for (auto& [name, v] : by_type) add(name, std::move(v));
  }
  auto multi_hot = [&](const char* prefix, auto member, int64_t limit) {
    std::map<std::string, int64_t> count;
    for (const recsys::Anime& a : ds.anime)
      for (const std::string& s : a.*member) ++count[s];
    std::vector<std::pair<std::string, int64_t>> names(count.begin(), count.end());
    if (limit >= 0) {
      std::stable_sort(names.begin(), names.end(),
                       [](auto& a, auto& b) { return a.second > b.second; });
      if (static_cast<int64_t>(names.size()) > limit) names.resize(limit);
    }
    std::map<std::string, int64_t> column;
    const size_t first = cols.size();
    for (auto& [name, c] : names) {
      column[name] = static_cast<int64_t>(cols.size() - first);
      add(std::string(prefix) + "=" + name, std::vector<float>(n, 0.0f));
    }
    for (int64_t i = 0; i < n; ++i)
      for (const std::string& s : ds.anime[i].*member) {
        auto it = column.find(s);
        if (it != column.end()) cols[first + it->second][i] = 1;
      }
  };
  if (cfg.genres) multi_hot("genre", &recsys::Anime::genres, -1);
  if (cfg.themes) multi_hot("theme", &recsys::Anime::themes, -1);
  if (cfg.top_studios > 0) multi_hot("studio", &recsys::Anime::studios, cfg.top_studios);

  const auto d = static_cast<int64_t>(cols.size());
  out.x = empty({n, d});
  float* x = out.x.data<float>();
  for (int64_t j = 0; j < d; ++j)
    for (int64_t i = 0; i < n; ++i) x[i * d + j] = cols[j][i];
  if (cfg.standardize && n > 0 && d > 0) out.x = standardize_columns(out.x);
  return out;
}

}  // namespace dan::text
