#include "models/gnn/graph.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "models/text/corpus.h"
#include "models/text/svd.h"
#include "models/text/tfidf.h"

namespace dan::gnn {

EdgeWeight parse_edge_weight(const std::string& s) {
  if (s == "count") return EdgeWeight::count;
  if (s == "log1p") return EdgeWeight::log1p;
  if (s == "binary") return EdgeWeight::binary;
  fail("graph: unknown edge weight '{}' (expected count, log1p or binary)", s);
}

std::string GraphConfig::key() const {
  const char* w = weight == EdgeWeight::count ? "count" : weight == EdgeWeight::log1p ? "log1p" : "binary";
  return fmt::format("weight={};edge_text_dims={};seed={}", w, edge_text_dims, seed);
}

std::string AnimeGraph::summary() const {
  return fmt::format("{} nodes, {} undirected edges ({} nodes with an edge), {} edges with text, "
                     "edge features {}",
                     num_nodes, pairs, nodes_with_edges, pairs_with_text, edge_dim());
}

namespace {

struct Pair {
  float count = 0;
  std::string text;
};

}  // namespace

AnimeGraph build_anime_graph(const recsys::Dataset& ds, const GraphConfig& cfg) {
  DAN_CHECK(cfg.edge_text_dims >= 0, "graph: edge_text_dims must be >= 0, got {}", cfg.edge_text_dims);
  const int64_t n = ds.num_items();
  // Ordered map: the edge list (and so every tensor below) does not depend on hashing.
  std::map<std::pair<int32_t, int32_t>, Pair> pairs;
  const auto key = [](int32_t a, int32_t b) { return std::make_pair(std::min(a, b), std::max(a, b)); };
  for (size_t r = 0; r < ds.recommendations.size(); ++r) {
    const recsys::RecEdge& e = ds.recommendations[r];
    DAN_CHECK(e.a >= 0 && e.a < n && e.b >= 0 && e.b < n,
              "graph: recommendations.csv row {} names item {} / {} outside the {} anime", r + 1, e.a,
              e.b, n);
    DAN_CHECK(std::isfinite(e.weight) && e.weight >= 0,
              "graph: recommendations.csv row {}: weight {} is not a non-negative number", r + 1, e.weight);
    if (e.a == e.b) continue;
    Pair& p = pairs[key(e.a, e.b)];
    p.count = std::max(p.count, e.weight);
  }
  AnimeGraph g;
  g.num_nodes = n;
  g.pairs = static_cast<int64_t>(pairs.size());
  for (const recsys::RecText& t : ds.rec_texts) {
    if (t.a == t.b) continue;
    auto it = pairs.find(key(t.a, t.b));
    if (it == pairs.end()) continue;  // a text for a pair that is no graph edge
    if (!it->second.text.empty()) it->second.text += ' ';
    it->second.text += t.text;
  }

  // Edge texts -> TF-IDF -> SVD, one row per pair with text.
  std::vector<std::string> docs;
  std::vector<int64_t> doc_of_pair(pairs.size(), -1);
  {
    int64_t i = 0;
    for (const auto& [k, p] : pairs) {
      if (!p.text.empty()) {
        doc_of_pair[static_cast<size_t>(i)] = static_cast<int64_t>(docs.size());
        docs.push_back(p.text);
      }
      ++i;
    }
  }
  g.pairs_with_text = static_cast<int64_t>(docs.size());
  const int64_t dt = cfg.edge_text_dims;
  std::vector<float> text_rows;  // [docs, dt]
  if (dt > 0 && !docs.empty()) {
    const text::Corpus corpus = text::build_corpus(docs, text::TokenizerConfig{});
    bool any_term = false;
    for (const auto& d : corpus.docs) any_term = any_term || !d.empty();
    if (any_term) {
      text::TfidfConfig tc;
      tc.sublinear_tf = true;
      const text::Tfidf tf = text::tfidf(corpus, tc);
      text::SvdConfig sc;
      sc.seed = cfg.seed;
      const Tensor z = text::randomized_svd(tf.matrix, dt, sc).transform().contiguous();
      const float* zp = z.data<float>();
      text_rows.assign(zp, zp + z.numel());
    }
  }

  // Directed edges: both directions of every pair, features shared.
  const int64_t de = 2 + dt;
  const int64_t ne = 2 * g.pairs;
  std::vector<int64_t> src, dst;
  std::vector<float> w, attr;
  src.reserve(static_cast<size_t>(ne));
  dst.reserve(static_cast<size_t>(ne));
  w.reserve(static_cast<size_t>(ne));
  attr.reserve(static_cast<size_t>(ne * de));
  std::vector<uint8_t> has_edge(static_cast<size_t>(n), 0);
  int64_t i = 0;
  for (const auto& [k, p] : pairs) {
    const float wv = cfg.weight == EdgeWeight::count ? p.count
                     : cfg.weight == EdgeWeight::log1p ? std::log1p(p.count)
                                                       : 1.0F;
    const int64_t doc = doc_of_pair[static_cast<size_t>(i)];
    for (int dir = 0; dir < 2; ++dir) {
      src.push_back(dir == 0 ? k.first : k.second);
      dst.push_back(dir == 0 ? k.second : k.first);
      w.push_back(wv);
      attr.push_back(doc >= 0 ? 1.0F : 0.0F);
      attr.push_back(std::log1p(p.count));
      for (int64_t c = 0; c < dt; ++c) {
        attr.push_back(doc >= 0 && !text_rows.empty() ? text_rows[static_cast<size_t>(doc * dt + c)] : 0.0F);
      }
    }
    has_edge[static_cast<size_t>(k.first)] = has_edge[static_cast<size_t>(k.second)] = 1;
    ++i;
  }
  for (uint8_t h : has_edge) g.nodes_with_edges += h;

  NoGradGuard ng;
  std::vector<int64_t> ei(src);
  ei.insert(ei.end(), dst.begin(), dst.end());
  const Tensor edge_index = from_vector(ei, {2, ne});
  CooOptions co;
  co.sum_duplicates = false;
  g.adj = SparseCsr::from_edge_index(edge_index, n, from_vector(w, {ne}), co);
  g.edge_attr = from_vector(attr, {ne, de});
  g.edge_attr_names = {"has_text", "log1p_count"};
  for (int64_t c = 0; c < dt; ++c) g.edge_attr_names.push_back(fmt::format("text_svd_{}", c));
  return g;
}

}  // namespace dan::gnn
