// The MyAnimeList recommendation graph as a GNN input: one node per anime of the dataset, one
// undirected edge per anime pair that users recommended together (recommendations.csv), and
// per-edge features for GINEConv from the recommendation texts written for the pair
// (rec_texts.csv). See models/gnn/README.md for the leakage stance and the text coverage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sparse.h"
#include "recsys/dataset.h"

namespace dan::gnn {

enum class EdgeWeight {
  count,   // w = number of user recommendations
  log1p,   // w = ln(1 + count): many-recommendation edges do not swamp a node's degree
  binary,  // w = 1
};
// "count" | "log1p" | "binary".
EdgeWeight parse_edge_weight(const std::string& s);

struct GraphConfig {
  EdgeWeight weight = EdgeWeight::log1p;
  // Edge features: [has_text, ln(1 + count), the pair's text as TF-IDF reduced by randomized
  // SVD to edge_text_dims columns]. 0 dims: only the first two.
  int64_t edge_text_dims = 16;
  uint64_t seed = 0;  // of the SVD's random projection
  std::string key() const;  // canonical text of every option, for cache keys and logs
};

struct AnimeGraph {
  int64_t num_nodes = 0;
  // num_nodes x num_nodes, symmetric: A[i, j] = A[j, i] = the pair's weight. Built with
  // sum_duplicates = false, so edge_ids() maps entries to rows of edge_attr (both directions of
  // a pair are two directed edges with the same features).
  SparseCsr adj;
  Tensor edge_attr;  // [directed edges, edge_dim] f32
  std::vector<std::string> edge_attr_names;
  int64_t pairs = 0;            // undirected edges
  int64_t nodes_with_edges = 0;
  int64_t pairs_with_text = 0;  // pairs that have at least one recommendation text
  int64_t edge_dim() const { return edge_attr.defined() ? edge_attr.size(1) : 0; }
  std::string summary() const;  // one line of counts
};

// Pairs: recommendations.csv rows with a != b, merged per unordered pair (the count is the
// largest of the rows naming the pair: MALmap lists a pair's count on both anime's pages).
// Texts: every rec_texts.csv row of the pair, either direction, joined. A dataset without
// recommendations gives a graph without edges (every node isolated), not an error.
AnimeGraph build_anime_graph(const recsys::Dataset& ds, const GraphConfig& cfg);

}  // namespace dan::gnn
