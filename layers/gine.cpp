// GINEConv: optional edge Linear, the fused gather + ReLU + segment-sum aggregation, the
// (1 + ε) self term, then the inner network.
#include "layers/gine.h"

#include "autograd/ops_sparse.h"

namespace dan {

GINEConv::GINEConv(std::shared_ptr<Module> nn, int64_t in_channels, GINEConvOptions opt,
                   Generator& gen)
    : in_(in_channels), opt_(opt) {
  DAN_CHECK(nn != nullptr, "GINEConv: nn must not be null");
  DAN_CHECK(in_channels > 0, "GINEConv: in_channels must be > 0, got {}", in_channels);
  DAN_CHECK(opt.edge_dim >= 0, "GINEConv: edge_dim must be >= 0, got {}", opt.edge_dim);
  const Tensor e = full({1}, opt.eps);
  eps_ = opt.train_eps ? register_parameter("eps", e) : register_buffer("eps", e);
  nn_ = register_module("nn", std::move(nn));
  if (opt.edge_dim > 0) {
    lin_ = register_module("lin", std::make_shared<Linear>(opt.edge_dim, in_channels, true, gen));
  }
}

Tensor GINEConv::forward(const Tensor& x, const SparseCsr& adj, const Tensor& edge_attr) {
  DAN_CHECK(x.defined() && x.dim() == 2 && x.size(1) == in_,
            "GINEConv: x must be [N, {}] (in_channels), got {}", in_,
            x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  DAN_CHECK(adj.defined() && adj.cols() == x.size(0) && adj.rows() == x.size(0),
            "GINEConv: x has {} nodes but the adjacency is {}", x.size(0), adj.str());
  const int64_t want = opt_.edge_dim > 0 ? opt_.edge_dim : in_;
  DAN_CHECK(edge_attr.defined() && edge_attr.dim() == 2 && edge_attr.size(0) == adj.nnz() &&
                edge_attr.size(1) == want,
            "GINEConv: edge_attr must be [{}, {}] (one row per edge{}), got {}", adj.nnz(), want,
            opt_.edge_dim > 0 ? ", edge_dim features" : ", in_channels features: no edge_dim",
            edge_attr.defined() ? shape_str(edge_attr.shape()) : std::string("undefined"));
  // Permute the narrower of edge_attr and its projection: the rows are independent.
  Tensor e = adj.has_edge_ids() ? index_select(edge_attr, adj.edge_ids()) : edge_attr;
  if (lin_) e = lin_->forward(e);
  Tensor h = gine_aggregate(x, e, adj) + x * (eps_ + 1.0);
  return nn_->forward(h);
}

}  // namespace dan
