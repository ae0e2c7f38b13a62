// GCNConv (Kipf & Welling 2017) with PyTorch Geometric's semantics and parameter names:
// out = Â · (x Wᵀ) + b, Â = D^-1/2 (A + I) D^-1/2 over a SparseCsr adjacency (core/sparse.h;
// rows = targets, columns = sources, values = edge weights).
#pragma once

#include <cstdint>
#include <string>

#include "core/sparse.h"
#include "layers/linear.h"

namespace dan {

struct GCNConvOptions {
  // Self-loops get weight 2 instead of 1 ("improved" GCN). Existing self-loops keep their
  // weight either way, as PyG's add_remaining_self_loops.
  bool improved = false;
  // Normalize on the first forward and reuse that matrix for every later call whatever graph
  // is passed (transductive training on one graph); reset_cache() drops it.
  bool cached = false;
  bool add_self_loops = true;
  // false: the adjacency is used exactly as given (then its values may require grad and get
  // one through spmm); true: self-loops and symmetric degree normalization as below.
  bool normalize = true;
  bool bias = true;
};

class GCNConv : public Module {
 public:
  // Parameters "bias" [out] (zeros) and "lin.weight" [out, in] (Glorot-uniform, drawn from
  // gen); state_dict order and names as torch_geometric.nn.GCNConv.
  GCNConv(int64_t in_channels, int64_t out_channels, GCNConvOptions opt = {},
          Generator& gen = default_generator());

  // x [N, in], adj N x N -> [N, out]. With normalize, the propagation matrix is
  // add_remaining_self_loops(adj, improved ? 2 : 1) with values d_i^-1/2 w_ij d_j^-1/2
  // (d = weighted in-degree incl. the loops, d^-1/2 = 0 where d = 0); the edge weights are
  // constants there (no gradient reaches adj.values()). x·Wᵀ runs before the propagation,
  // the bias after it.
  Tensor forward(const Tensor& x, const SparseCsr& adj);
  using Module::forward;
  std::string type_name() const override { return "GCNConv"; }

  // The matrix forward(x, adj) multiplies by (the cached one when cached and present).
  SparseCsr propagation_matrix(const SparseCsr& adj);
  void reset_cache() { cache_ = SparseCsr(); }

  const GCNConvOptions& options() const { return opt_; }
  const Linear& lin() const { return *lin_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  int64_t in_, out_;
  GCNConvOptions opt_;
  std::shared_ptr<Linear> lin_;
  Tensor bias_;
  SparseCsr cache_;
};

}  // namespace dan
