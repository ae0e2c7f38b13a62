// GCNConv: PyG's gcn_norm (remaining self-loops, symmetric normalization) on the sparse
// kernels, then spmm on x·Wᵀ.
#include "layers/gcn.h"

#include <cmath>

#include "autograd/ops_sparse.h"
#include "kernels/sparse.h"

namespace dan {

GCNConv::GCNConv(int64_t in_channels, int64_t out_channels, GCNConvOptions opt, Generator& gen)
    : in_(in_channels), out_(out_channels), opt_(opt) {
  DAN_CHECK(in_channels > 0 && out_channels > 0,
            "GCNConv: expected in_channels > 0 and out_channels > 0, got {} and {}", in_channels,
            out_channels);
  // Registration order gives PyG's state_dict order: own parameter "bias", then "lin.weight".
  if (opt.bias) bias_ = register_parameter("bias", zeros({out_channels}));
  lin_ = register_module("lin", std::make_shared<Linear>(in_channels, out_channels, false, gen));
  // PyG initializes lin with Glorot (Xavier) uniform: U(±sqrt(6 / (in + out))).
  const double a = std::sqrt(6.0 / static_cast<double>(in_channels + out_channels));
  init_uniform_(lin_->weight(), -a, a, gen);
}

SparseCsr GCNConv::propagation_matrix(const SparseCsr& adj) {
  DAN_CHECK(adj.defined(), "GCNConv: the adjacency matrix is undefined");
  if (!opt_.normalize) return adj;
  if (opt_.cached && cache_.defined()) {
    if (cache_.device() != adj.device()) cache_ = cache_.to(adj.device());
    return cache_;
  }
  DAN_CHECK(adj.rows() == adj.cols(), "GCNConv: the adjacency must be square, got {}", adj.str());
  NoGradGuard no_grad;  // edge weights are constants of the normalization
  const SparseCsr loops =
      opt_.add_self_loops ? adj.add_remaining_self_loops(opt_.improved ? 2.0 : 1.0) : adj;
  SparseCsr norm = kernels::gcn_norm(loops);
  if (opt_.cached) cache_ = norm;
  return norm;
}

Tensor GCNConv::forward(const Tensor& x, const SparseCsr& adj) {
  DAN_CHECK(x.defined() && x.dim() == 2 && x.size(1) == in_,
            "GCNConv: x must be [N, {}] (in_channels), got {}", in_,
            x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  DAN_CHECK(adj.defined() && adj.cols() == x.size(0),
            "GCNConv: x has {} nodes but the adjacency is {}", x.size(0), adj.str());
  const SparseCsr a = propagation_matrix(adj);
  Tensor out = spmm(a, lin_->forward(x));
  if (bias_.defined()) out = out + bias_;
  return out;
}

}  // namespace dan
