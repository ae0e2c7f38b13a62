// The graph half of graph-augmented anime2vec: a stack of GCNConv or GINEConv layers over the
// anime graph (models/gnn/graph.h) whose output G [anime, out_dim] is concatenated to the
// content features, φ^V = [content ‖ G], and trained end to end inside DropoutNet.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/sparse.h"
#include "layers/embedding.h"
#include "layers/gcn.h"
#include "layers/gine.h"
#include "layers/module.h"
#include "layers/norm.h"

namespace dan::gnn {

enum class ConvKind { gcn, gine };
ConvKind parse_conv_kind(const std::string& s);  // "gcn" | "gine"

enum class NodeInit {
  onehot,   // a learned embedding row per anime (an identity one-hot times a weight matrix)
  content,  // the anime's content features (TF-IDF, word2vec, ... as the run computes them)
};
NodeInit parse_node_init(const std::string& s);  // "onehot" | "content"

struct EncoderConfig {
  ConvKind conv = ConvKind::gcn;
  NodeInit node_init = NodeInit::content;
  int64_t onehot_dim = 64;        // width of the embedding table for onehot
  std::vector<int64_t> hidden = {64};  // widths of the hidden conv layers (ReLU after each)
  int64_t out_dim = 64;           // width of G; the last layer has no activation
  double dropout = 0.0;           // dropout on every conv layer's input
  bool improved = false;          // GCN: self-loop weight 2
  bool train_eps = false;         // GINE: ε trained
  // LayerNorm on G (child "norm"): GINE's sum aggregation grows with the degree (mal2023 has
  // hubs with hundreds of neighbours), which without it feeds DropoutNet inputs orders of
  // magnitude larger than the content and makes SGD diverge.
  bool layer_norm = false;
};

// Children: "embedding" (onehot only), then "conv0", "conv1", ... (GCNConv or GINEConv, the
// latter with an MLP nn = Linear(in, w) -> ReLU -> Linear(w, w) and an edge Linear). Dropout
// draws from the default generator (a run seeds it and checkpoints it).
class GraphEncoder : public Module {
 public:
  // num_nodes: anime in the graph; content_dim: width of the content features (content init);
  // edge_dim: width of the edge features (GINE).
  GraphEncoder(const EncoderConfig& cfg, int64_t num_nodes, int64_t content_dim, int64_t edge_dim,
               Generator& gen = default_generator());
  std::string type_name() const override { return "GraphEncoder"; }
  const EncoderConfig& config() const { return cfg_; }
  using Module::forward;

  // x_content [num_nodes, content_dim] (ignored, may be undefined, for onehot); adj the
  // num_nodes x num_nodes graph; edge_attr its edge features (GINE) -> G [num_nodes, out_dim].
  Tensor forward(const Tensor& x_content, const SparseCsr& adj, const Tensor& edge_attr);

 private:
  EncoderConfig cfg_;
  int64_t num_nodes_;
  std::shared_ptr<Embedding> embedding_;
  std::vector<std::shared_ptr<Module>> convs_;
  std::shared_ptr<LayerNorm> norm_;
};

}  // namespace dan::gnn
