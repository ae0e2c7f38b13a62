// Recommendations for a new user defined by a few liked anime, side by side from WMF (warm
// anime only), item-kNN ("top-K CF") and DeepAniNet, as in the paper's app comparison.
#pragma once
#include <string>
#include <vector>

#include "apps/pipeline.h"

namespace dan::apps {

struct Recommendation {
  int32_t item = 0;  // dataset anime index
  float score = 0;
  bool cold = false;  // not among the train anime (WMF and item-kNN cannot rank it)
};

struct RecommendLists {
  std::vector<int32_t> liked;  // dataset anime indices of the resolved titles
  std::vector<Recommendation> wmf, knn, deepaninet;
};

// Title -> anime index: exact case-insensitive match (the most-members one if several), else
// an error listing up to five close titles (substring matches first, then edit distance).
int32_t find_title(const recsys::Dataset& ds, const std::string& title);

RecommendLists recommend(const Prepared& p, const recsys::Config& cfg, Model& model,
                         const std::vector<std::string>& liked_titles, int k);

// The three lists as one aligned text table.
std::string format_recommendations(const recsys::Dataset& ds, const RecommendLists& r);

}  // namespace dan::apps
