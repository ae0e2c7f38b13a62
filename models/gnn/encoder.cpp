#include "models/gnn/encoder.h"

#include <fmt/core.h>

#include "autograd/ops.h"
#include "core/error.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/sequential.h"

namespace dan::gnn {

ConvKind parse_conv_kind(const std::string& s) {
  if (s == "gcn") return ConvKind::gcn;
  if (s == "gine") return ConvKind::gine;
  fail("graph: unknown conv '{}' (expected gcn or gine)", s);
}

NodeInit parse_node_init(const std::string& s) {
  if (s == "onehot") return NodeInit::onehot;
  if (s == "content") return NodeInit::content;
  fail("graph: unknown node_init '{}' (expected onehot or content)", s);
}

GraphEncoder::GraphEncoder(const EncoderConfig& cfg, int64_t num_nodes, int64_t content_dim,
                           int64_t edge_dim, Generator& gen)
    : cfg_(cfg), num_nodes_(num_nodes) {
  DAN_CHECK(num_nodes > 0, "GraphEncoder: num_nodes must be > 0, got {}", num_nodes);
  DAN_CHECK(cfg.out_dim > 0, "GraphEncoder: out_dim must be > 0, got {}", cfg.out_dim);
  DAN_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, "GraphEncoder: dropout must be in [0, 1), got {}", cfg.dropout);
  for (int64_t h : cfg.hidden) DAN_CHECK(h > 0, "GraphEncoder: hidden widths must be > 0, got {}", h);
  int64_t in = 0;
  if (cfg.node_init == NodeInit::onehot) {
    DAN_CHECK(cfg.onehot_dim > 0, "GraphEncoder: onehot_dim must be > 0, got {}", cfg.onehot_dim);
    embedding_ = register_module("embedding", std::make_shared<Embedding>(num_nodes, cfg.onehot_dim, gen));
    in = cfg.onehot_dim;
  } else {
    DAN_CHECK(content_dim > 0, "GraphEncoder: content node init needs content features (content_dim {})",
              content_dim);
    in = content_dim;
  }
  if (cfg.conv == ConvKind::gine) {
    DAN_CHECK(edge_dim > 0, "GraphEncoder: GINE needs edge features (edge_dim {})", edge_dim);
  }
  std::vector<int64_t> widths = cfg.hidden;
  widths.push_back(cfg.out_dim);
  for (size_t l = 0; l < widths.size(); ++l) {
    const int64_t out = widths[l];
    std::shared_ptr<Module> conv;
    if (cfg.conv == ConvKind::gcn) {
      GCNConvOptions o;
      o.improved = cfg.improved;
      o.cached = true;  // one graph for the whole run: normalize once
      conv = std::make_shared<GCNConv>(in, out, o, gen);
    } else {
      auto mlp = std::make_shared<Sequential>();
      mlp->push_back(std::make_shared<Linear>(in, out, true, gen));
      mlp->push_back(std::make_shared<ReLU>());
      mlp->push_back(std::make_shared<Linear>(out, out, true, gen));
      GINEConvOptions o;
      o.train_eps = cfg.train_eps;
      o.edge_dim = edge_dim;
      conv = std::make_shared<GINEConv>(mlp, in, o, gen);
    }
    convs_.push_back(register_module(fmt::format("conv{}", l), conv));
    in = out;
  }
  if (cfg.layer_norm) norm_ = register_module("norm", std::make_shared<LayerNorm>(cfg.out_dim));
}

Tensor GraphEncoder::forward(const Tensor& x_content, const SparseCsr& adj, const Tensor& edge_attr) {
  DAN_CHECK(adj.defined() && adj.rows() == num_nodes_ && adj.cols() == num_nodes_,
            "GraphEncoder: expected a {0} x {0} graph, got {1}", num_nodes_, adj.defined() ? adj.str() : "none");
  Tensor h;
  if (cfg_.node_init == NodeInit::onehot) {
    h = embedding_->weight();
  } else {
    DAN_CHECK(x_content.defined() && x_content.dim() == 2 && x_content.size(0) == num_nodes_,
              "GraphEncoder: content node init needs x [{} anime, d], got {}", num_nodes_,
              x_content.defined() ? shape_str(x_content.shape()) : "undefined");
    h = x_content;
  }
  for (size_t l = 0; l < convs_.size(); ++l) {
    if (cfg_.dropout > 0) h = dropout(h, cfg_.dropout, is_training());
    if (cfg_.conv == ConvKind::gcn) {
      h = static_cast<GCNConv&>(*convs_[l]).forward(h, adj);
    } else {
      h = static_cast<GINEConv&>(*convs_[l]).forward(h, adj, edge_attr);
    }
    if (l + 1 < convs_.size()) h = relu(h);
  }
  return norm_ ? norm_->forward(h) : h;
}

}  // namespace dan::gnn
