// Shared helpers of the models/text tests: the scikit-learn/numpy gold file
// (tests/fixtures/tfidf_gold.safetensors, made by scripts/gen_tfidf_fixture.py) and small
// in-memory datasets.
#pragma once

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/serialize.h"
#include "recsys/csr.h"
#include "recsys/dataset.h"

namespace dan::text::textfx {

inline const std::string& gold_path() {
  static const std::string p = std::string(DAN_FIXTURES_DIR) + "/tfidf_gold.safetensors";
  return p;
}

inline const std::map<std::string, Tensor>& gold() {
  static const std::map<std::string, Tensor> g = load_safetensors(gold_path());
  return g;
}

inline const nlohmann::json& gold_meta(const std::string& key) {
  static std::map<std::string, nlohmann::json> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  static const st::Reader r = st::Reader::open(gold_path());
  auto m = r.metadata().find(key);
  if (m == r.metadata().end()) fail("tfidf_gold.safetensors has no metadata '{}'", key);
  return cache.emplace(key, nlohmann::json::parse(m->second)).first->second;
}

inline Tensor gold_tensor(const std::string& key) {
  auto it = gold().find(key);
  if (it == gold().end()) fail("tfidf_gold.safetensors has no tensor '{}'", key);
  return it->second;
}

inline std::vector<std::string> gold_docs() {
  return gold_meta("docs").get<std::vector<std::string>>();
}

inline recsys::Csr gold_csr(const std::string& prefix, int64_t cols) {
  recsys::Csr m;
  m.indptr = gold_tensor(prefix + ".indptr").to_vector_as<int64_t>();
  m.indices = gold_tensor(prefix + ".indices").to_vector_as<int32_t>();
  m.values = gold_tensor(prefix + ".data").to_vector_as<float>();
  m.rows = static_cast<int64_t>(m.indptr.size()) - 1;
  m.cols = cols;
  return m;
}

inline recsys::Anime make_anime(int64_t id, std::string title, std::string synopsis) {
  recsys::Anime a;
  a.id = id;
  a.title = std::move(title);
  a.type = "TV";
  a.episodes = 12;
  a.score = 7.5;
  a.ranked = NAN;
  a.popularity = NAN;
  a.members = 1000;
  a.favorites = 10;
  a.synopsis = std::move(synopsis);
  return a;
}

}  // namespace dan::text::textfx
