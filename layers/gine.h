// GINEConv (Hu et al. 2020, "Strategies for Pre-training GNNs") with PyTorch Geometric's
// semantics and parameter names: out_i = nn((1 + ε) x_i + Σ_{j -> i} ReLU(x_j + Lin(e_ji))),
// over a SparseCsr adjacency (core/sparse.h; rows = targets, columns = sources).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/sparse.h"
#include "layers/linear.h"

namespace dan {

struct GINEConvOptions {
  double eps = 0.0;        // initial ε
  bool train_eps = false;  // ε a parameter (trained) rather than a buffer
  // > 0: edge features [E, edge_dim] go through Linear(edge_dim, in_channels), child "lin";
  // 0: they must already have in_channels features (PyG's edge_dim=None).
  int64_t edge_dim = 0;
};

class GINEConv : public Module {
 public:
  // nn maps [N, in_channels] to the output (an MLP from layers/mlp.h, usually); it becomes
  // child "nn". State: "eps" [1] (parameter or buffer), "nn.*", "lin.*" — PyG's names and
  // order.
  GINEConv(std::shared_ptr<Module> nn, int64_t in_channels, GINEConvOptions opt = {},
           Generator& gen = default_generator());

  // x [N, in_channels]; adj N x N; edge_attr [nnz, edge_dim or in_channels]. When adj keeps
  // edge ids (SparseCsr::from_edge_index with sum_duplicates = false), the rows of edge_attr
  // are in edge-list order, as PyG's edge_attr next to edge_index, and are permuted here
  // (differentiably); otherwise they follow adj's storage order. Messages ReLU(x_j + e_ji)
  // are summed at the targets by the fused gine_aggregate op (autograd/ops_sparse.h). No
  // self-loops are added; adj.values() is not used.
  Tensor forward(const Tensor& x, const SparseCsr& adj, const Tensor& edge_attr);
  using Module::forward;
  std::string type_name() const override { return "GINEConv"; }

  const Tensor& eps() const { return eps_; }
  const std::shared_ptr<Module>& nn() const { return nn_; }
  const std::shared_ptr<Linear>& lin() const { return lin_; }  // null without edge_dim

 private:
  int64_t in_;
  GINEConvOptions opt_;
  Tensor eps_;
  std::shared_ptr<Module> nn_;
  std::shared_ptr<Linear> lin_;
};

}  // namespace dan
