#include "models/gnn/augment.h"

#include <algorithm>
#include <numeric>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "autograd/ops_sparse.h"
#include "core/error.h"

namespace dan::gnn {

SparseCsr user_mean_matrix(const recsys::Csr& ui, const std::vector<int32_t>& node_of_col,
                           int64_t num_nodes, int top_n) {
  DAN_CHECK(static_cast<int64_t>(node_of_col.size()) == ui.cols,
            "user_mean_matrix: {} node ids for {} columns", node_of_col.size(), ui.cols);
  std::vector<int64_t> rows, cols;
  std::vector<float> vals;
  std::vector<int64_t> order;
  for (int64_t u = 0; u < ui.rows; ++u) {
    const int64_t b = ui.indptr[u], e = ui.indptr[u + 1];
    order.resize(static_cast<size_t>(e - b));
    std::iota(order.begin(), order.end(), b);
    int64_t k = e - b;
    if (top_n > 0 && top_n < k) {
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t x, int64_t y) { return ui.values[x] > ui.values[y]; });
      k = top_n;
    }
    for (int64_t j = 0; j < k; ++j) {
      const int32_t node = node_of_col[static_cast<size_t>(ui.indices[order[j]])];
      DAN_CHECK(node >= 0 && node < num_nodes, "user_mean_matrix: node {} outside [0, {})", node, num_nodes);
      rows.push_back(u);
      cols.push_back(node);
      vals.push_back(static_cast<float>(1.0 / static_cast<double>(k)));
    }
  }
  NoGradGuard ng;
  const auto nnz = static_cast<int64_t>(rows.size());
  return SparseCsr::from_coo(from_vector(rows, {nnz}), from_vector(cols, {nnz}), from_vector(vals, {nnz}),
                             ui.rows, num_nodes);
}

Tensor embed(GraphEncoder& enc, const GraphInputs& in) {
  DAN_CHECK(in.graph != nullptr, "graph embedding: no graph");
  return enc.forward(in.x, in.graph->adj, in.graph->edge_attr);
}

dropoutnet::Batch augment(const dropoutnet::Batch& b, const Tensor& G, const GraphInputs& in,
                          const int32_t* users, const int32_t* items, int64_t n) {
  std::vector<int32_t> nodes(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    DAN_CHECK(items[i] >= 0 && static_cast<size_t>(items[i]) < in.node_of_item.size(),
              "graph batch: item {} has no graph node", items[i]);
    nodes[static_cast<size_t>(i)] = in.node_of_item[static_cast<size_t>(items[i])];
  }
  dropoutnet::Batch out = b;
  const Tensor Gv = index_select(G, from_vector(nodes, {n}).to(G.device()));
  out.phiV = b.phiV.defined() ? cat({b.phiV, Gv}, 1) : Gv;
  if (in.user_content) {
    const Tensor GU = spmm(in.user_mean, G);
    const Tensor Gu = index_select(GU, from_vector(std::vector<int32_t>(users, users + n), {n}).to(G.device()));
    out.phiU = b.phiU.defined() ? cat({b.phiU, Gu}, 1) : Gu;
  }
  return out;
}

dropoutnet::EpochResult train_epoch(dropoutnet::DropoutNet& model, GraphEncoder& enc,
                                    const GraphInputs& in, Optimizer& opt,
                                    const dropoutnet::BatchMaker& maker, const recsys::Pairs& pairs,
                                    int64_t batch_size, uint64_t epoch,
                                    const std::function<void(int64_t, double)>& on_batch) {
  DAN_CHECK(batch_size > 0, "train_epoch: batch_size must be > 0, got {}", batch_size);
  model.train();
  enc.train();
  dropoutnet::EpochResult r;
  double weighted = 0;
  const int64_t nb = pairs.num_batches(batch_size);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t begin = b * batch_size, end = std::min(pairs.size(), begin + batch_size);
    if (end - begin < 2 && model.config().batch_norm) continue;  // batch norm needs 2 rows
    opt.zero_grad();
    const Tensor G = embed(enc, in);
    const int32_t* us = pairs.users.data() + begin;
    const int32_t* is = pairs.items.data() + begin;
    const dropoutnet::Batch x =
        augment(maker.make(pairs, begin, end, epoch, static_cast<uint64_t>(b)), G, in, us, is, end - begin);
    const Tensor loss = model.loss(x.Uin, x.Vin, x.phiU, x.phiV, x.target);
    loss.backward();
    opt.step();
    const double l = loss.item();
    weighted += l * static_cast<double>(end - begin);
    r.pairs += end - begin;
    ++r.batches;
    if (on_batch) on_batch(b, l);
  }
  r.mean_loss = r.pairs > 0 ? weighted / static_cast<double>(r.pairs) : 0.0;
  return r;
}

}  // namespace dan::gnn
