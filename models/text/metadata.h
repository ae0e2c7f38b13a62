// Metadata features of each anime from anime.csv: popularity counts, MAL score, type, episode
// count and the genre/theme/studio lists, as one dense standardized matrix with named columns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "recsys/dataset.h"

namespace dan::text {

struct MetadataConfig {
  bool members = true;       // log1p(members)
  bool favorites = true;     // log1p(favorites)
  bool score = true;         // MAL score; missing -> column mean, plus a 0/1 "score_missing" column
  bool episodes = true;      // log1p(episodes); missing -> column mean, plus "episodes_missing"
  bool type = true;          // one-hot over the types present ("type=TV", ..., "type=unknown")
  bool genres = true;        // multi-hot "genre=<name>" over every genre present
  bool themes = true;        // multi-hot "theme=<name>"
  int64_t top_studios = 50;  // multi-hot over the N studios with the most anime (0 = none)
  bool standardize = true;   // per-column z-scores (constant columns become 0)
  std::string key() const;
};

// A dense item feature block: x is [items, columns.size()] f32, row = dataset item index.
struct FeatureBlock {
  Tensor x;
  std::vector<std::string> columns;
};

// Category columns are sorted by name (studios: by count, descending, then name), so the layout
// depends only on the dataset. Members/favorites that are missing count as 0.
FeatureBlock metadata_features(const recsys::Dataset& ds, const MetadataConfig& cfg = {});

}  // namespace dan::text
