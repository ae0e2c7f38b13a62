// Graph-augmented anime2vec inside DropoutNet: φ^V_v = [content_v ‖ G_v] and
// φ^U_u = [content of u ‖ mean of G over u's train anime], G = GraphEncoder(graph) recomputed
// from the current weights at every optimizer step (full-graph forward), so the encoder trains
// end to end through DropoutNet's loss.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/sparse.h"
#include "models/dropoutnet/dropoutnet.h"
#include "models/gnn/encoder.h"
#include "models/gnn/graph.h"
#include "recsys/csr.h"

namespace dan::gnn {

// The users x num_nodes averaging matrix behind φ^U: row u holds 1/k at the nodes of u's k
// train anime (the top_n by value when top_n > 0, ties by lower column — the selection of
// dropoutnet::user_mean), so spmm(M, G) is the mean of G's rows over each user's anime.
// node_of_col maps user_items' columns to graph nodes.
SparseCsr user_mean_matrix(const recsys::Csr& user_items, const std::vector<int32_t>& node_of_col,
                           int64_t num_nodes, int top_n);

// What a step needs besides DropoutNet's batch: the graph, its node and edge inputs, the
// train-item -> node map and the user averaging matrix.
struct GraphInputs {
  const AnimeGraph* graph = nullptr;
  Tensor x;                           // [nodes, d] content node features (content init), or undefined
  std::vector<int32_t> node_of_item;  // BatchMaker item row -> graph node
  SparseCsr user_mean;                // users x nodes (user_mean_matrix)
  bool user_content = true;           // whether the model takes φ^U
};

// G in the current grad mode and module mode.
Tensor embed(GraphEncoder& enc, const GraphInputs& in);

// A DropoutNet batch (content parts from the maker's tables) with the graph parts appended:
// phiV gets G at the items' nodes, phiU the users' rows of spmm(user_mean, G).
dropoutnet::Batch augment(const dropoutnet::Batch& b, const Tensor& G, const GraphInputs& in,
                          const int32_t* users, const int32_t* items, int64_t n);

// dropoutnet::train_epoch with the encoder in the graph: per step zero_grad, G = embed(...),
// the augmented batch, loss, backward, step (opt holds both modules' parameters).
dropoutnet::EpochResult train_epoch(dropoutnet::DropoutNet& model, GraphEncoder& enc,
                                    const GraphInputs& in, Optimizer& opt,
                                    const dropoutnet::BatchMaker& maker, const recsys::Pairs& pairs,
                                    int64_t batch_size, uint64_t epoch,
                                    const std::function<void(int64_t, double)>& on_batch = {});

}  // namespace dan::gnn
