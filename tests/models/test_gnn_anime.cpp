// The anime graph and graph-augmented anime2vec (models/gnn): graph construction from
// recommendations.csv / rec_texts.csv, the user averaging matrix against DropoutNet's own
// per-user mean, the encoder stack against the layers composed by hand, and end-to-end
// training through DropoutNet (gradients reach the encoder, the loss falls).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "autograd/ops_sparse.h"
#include "layers/optim/adam.h"
#include "models/gnn/augment.h"
#include "recsys/sampler.h"
#include "recsys/synthetic.h"
#include "recsys/split.h"

using namespace dan;
using namespace dan::gnn;

namespace {

recsys::Dataset tiny_dataset() {
  recsys::Dataset ds;
  for (int i = 0; i < 6; ++i) {
    recsys::Anime a;
    a.id = 100 + i;
    a.title = "anime " + std::to_string(i);
    ds.item_of_id[a.id] = i;
    ds.anime.push_back(a);
  }
  // (0,1) listed both ways with different counts: one pair, count = max = 7.
  ds.recommendations = {{0, 1, 5}, {1, 0, 7}, {1, 2, 3}, {3, 3, 9}, {4, 2, 20}};
  ds.rec_texts = {{0, 1, "both are dark fantasy with alchemy and brothers"},
                  {1, 0, "alchemy brothers again"},
                  {4, 2, "space opera mecha war"},
                  {5, 0, "a text for a pair that is no edge"}};
  return ds;
}

std::map<std::pair<int64_t, int64_t>, float> dense_entries(const SparseCsr& a) {
  std::map<std::pair<int64_t, int64_t>, float> m;
  const Tensor d = a.to_dense();
  const auto v = d.to_vector();
  for (int64_t i = 0; i < a.rows(); ++i)
    for (int64_t j = 0; j < a.cols(); ++j)
      if (v[static_cast<size_t>(i * a.cols() + j)] != 0) m[{i, j}] = static_cast<float>(v[static_cast<size_t>(i * a.cols() + j)]);
  return m;
}

}  // namespace

TEST(AnimeGraph, PairsMergedSymmetricWeighted) {
  const recsys::Dataset ds = tiny_dataset();
  for (EdgeWeight w : {EdgeWeight::count, EdgeWeight::log1p, EdgeWeight::binary}) {
    GraphConfig cfg;
    cfg.weight = w;
    cfg.edge_text_dims = 2;
    const AnimeGraph g = build_anime_graph(ds, cfg);
    EXPECT_EQ(g.num_nodes, 6);
    EXPECT_EQ(g.pairs, 3);             // {0,1}, {1,2}, {2,4}; the self-pair (3,3) dropped
    EXPECT_EQ(g.nodes_with_edges, 4);  // 0, 1, 2, 4
    EXPECT_EQ(g.pairs_with_text, 2);   // {0,1} and {2,4}
    EXPECT_EQ(g.adj.nnz(), 6);
    const auto f = [w](float count) {
      return w == EdgeWeight::count ? count : w == EdgeWeight::log1p ? std::log1p(count) : 1.0F;
    };
    const auto e = dense_entries(g.adj);
    ASSERT_EQ(e.size(), 6u);
    for (auto [a, b, count] : {std::tuple{0, 1, 7.0F}, {1, 2, 3.0F}, {2, 4, 20.0F}}) {
      EXPECT_FLOAT_EQ(e.at({a, b}), f(count)) << a << "-" << b;
      EXPECT_FLOAT_EQ(e.at({b, a}), f(count)) << b << "-" << a;
    }
  }
}

TEST(AnimeGraph, EdgeFeaturesFollowTheEdgeIds) {
  GraphConfig cfg;
  cfg.edge_text_dims = 3;
  const AnimeGraph g = build_anime_graph(tiny_dataset(), cfg);
  ASSERT_TRUE(g.adj.has_edge_ids());
  ASSERT_EQ(g.edge_attr.shape(), (Shape{6, 5}));
  ASSERT_EQ(g.edge_attr_names.size(), 5u);
  const auto attr = g.edge_attr.to_vector();
  const auto ids = g.adj.edge_ids().to_vector();
  const auto indptr = g.adj.indptr().to_vector(), indices = g.adj.indices().to_vector();
  std::map<std::pair<int64_t, int64_t>, std::vector<double>> by_pair;
  for (int64_t r = 0; r < g.adj.rows(); ++r) {
    for (auto k = static_cast<int64_t>(indptr[static_cast<size_t>(r)]); k < indptr[static_cast<size_t>(r) + 1]; ++k) {
      const auto c = static_cast<int64_t>(indices[static_cast<size_t>(k)]);
      const auto e = static_cast<int64_t>(ids[static_cast<size_t>(k)]);
      by_pair[{r, c}] = std::vector<double>(attr.begin() + e * 5, attr.begin() + e * 5 + 5);
    }
  }
  // Both directions of a pair carry the same features.
  for (const auto& [rc, v] : by_pair) EXPECT_EQ(v, by_pair.at({rc.second, rc.first}));
  const auto& t01 = by_pair.at({0, 1});
  const auto& t12 = by_pair.at({1, 2});
  const auto& t24 = by_pair.at({2, 4});
  EXPECT_EQ(t01[0], 1.0);  // has text
  EXPECT_EQ(t12[0], 0.0);
  EXPECT_EQ(t24[0], 1.0);
  EXPECT_NEAR(t01[1], std::log1p(7.0), 1e-6);
  EXPECT_NEAR(t24[1], std::log1p(20.0), 1e-6);
  // Without text the text columns are zero; the two texts share no word, so their TF-IDF rows
  // are orthogonal and their SVD rows are distinct and non-zero.
  double n01 = 0, n24 = 0, dot = 0;
  for (int c = 2; c < 5; ++c) {
    EXPECT_EQ(t12[static_cast<size_t>(c)], 0.0);
    n01 += t01[static_cast<size_t>(c)] * t01[static_cast<size_t>(c)];
    n24 += t24[static_cast<size_t>(c)] * t24[static_cast<size_t>(c)];
    dot += t01[static_cast<size_t>(c)] * t24[static_cast<size_t>(c)];
  }
  EXPECT_NEAR(n01, 1.0, 1e-5);  // unit TF-IDF rows keep their norm in the 2-dim SVD
  EXPECT_NEAR(n24, 1.0, 1e-5);
  EXPECT_NEAR(dot, 0.0, 1e-5);
}

TEST(AnimeGraph, BadInputsNameTheProblem) {
  recsys::Dataset ds = tiny_dataset();
  ds.recommendations.push_back({0, 9, 3});
  try {
    build_anime_graph(ds, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("recommendations.csv row 6"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_edge_weight("sqrt"), Error);
  EXPECT_THROW(parse_conv_kind("gat"), Error);
  EXPECT_THROW(parse_node_init("random"), Error);
  // GINE without edge features, content init without content.
  EXPECT_THROW(GraphEncoder({.conv = ConvKind::gine}, 6, 4, 0), Error);
  EXPECT_THROW(GraphEncoder({.node_init = NodeInit::content}, 6, 0, 0), Error);
  // A graph of the wrong size.
  GraphEncoder enc({.node_init = NodeInit::onehot, .onehot_dim = 4, .hidden = {}, .out_dim = 3}, 7, 0, 0);
  const AnimeGraph g = build_anime_graph(tiny_dataset(), {});
  EXPECT_THROW(enc.forward(Tensor(), g.adj, g.edge_attr), Error);
}

// M·T (the sparse averaging matrix) against DropoutNet's per-user mean on the same items.
TEST(GraphAugment, UserMeanMatrixMatchesDropoutNetUserMean) {
  recsys::Csr ui = recsys::Csr::from_triplets(4, 5, {0, 0, 0, 1, 2, 2, 2, 2}, {0, 2, 4, 3, 0, 1, 2, 3},
                                              {9, 7, 9, 5, 1, 8, 8, 3});
  const std::vector<int32_t> node_of_col = {7, 2, 5, 0, 3};  // 5 train items among 8 nodes
  Generator gen(3);
  const Tensor T = randn({8, 6}, gen);
  std::vector<int32_t> cols(node_of_col);
  const Tensor T_cols = index_select(T, from_vector(cols, {5}));
  for (int top_n : {0, 1, 2, 3}) {
    const SparseCsr M = user_mean_matrix(ui, node_of_col, 8, top_n);
    const auto got = spmm(M, T).to_vector();
    const auto want = dropoutnet::user_mean(ui, T_cols, top_n).to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "top_n " << top_n << " @" << i;
  }
}

// The encoder is the layers composed by hand: GCNConv -> ReLU -> GCNConv on the content.
TEST(GraphAugment, EncoderComposesTheLayers) {
  const AnimeGraph g = build_anime_graph(tiny_dataset(), {});
  Generator gen(5);
  const Tensor x = randn({6, 4}, gen);
  EncoderConfig ec;
  ec.hidden = {5};
  ec.out_dim = 3;
  GraphEncoder enc(ec, 6, 4, g.edge_dim(), gen);
  std::map<std::string, Tensor> sd;
  for (const auto& [k, v] : enc.state_dict()) sd[k] = v;
  EXPECT_TRUE(sd.count("conv0.lin.weight") && sd.count("conv1.bias"));
  Generator g2(1);
  GCNConv c0(4, 5, {}, g2), c1(5, 3, {}, g2);
  c0.load_state_dict(std::map<std::string, Tensor>{{"lin.weight", sd.at("conv0.lin.weight")}, {"bias", sd.at("conv0.bias")}});
  c1.load_state_dict(std::map<std::string, Tensor>{{"lin.weight", sd.at("conv1.lin.weight")}, {"bias", sd.at("conv1.bias")}});
  NoGradGuard ng;
  const auto want = c1.forward(relu(c0.forward(x, g.adj)), g.adj).to_vector();
  const auto got = enc.forward(x, g.adj, g.edge_attr).to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]);
}

// Graph-augmented DropoutNet on a synthetic world: both modules get gradients, the onehot
// embeddings of anime in the graph move, and the training loss falls.
TEST(GraphAugment, TrainsEndToEnd) {
  recsys::SyntheticConfig sc;
  sc.items = 200;
  sc.users = 300;
  const recsys::Dataset ds = recsys::make_synthetic(sc);
  for (ConvKind conv : {ConvKind::gcn, ConvKind::gine}) {
    const AnimeGraph g = build_anime_graph(ds, {});
    ASSERT_GT(g.pairs, 10);
    Generator gen(11);
    const int64_t users = 40, items = 60, r = 8;
    const Tensor V = randn({items, r}, gen);
    std::vector<int32_t> node_of_item(static_cast<size_t>(items));
    for (int64_t i = 0; i < items; ++i) node_of_item[static_cast<size_t>(i)] = static_cast<int32_t>(i * 3);
    std::vector<int32_t> ur, uc;
    std::vector<float> uv;
    for (int64_t u = 0; u < users; ++u)
      for (int64_t k = 0; k < 5; ++k) {
        ur.push_back(static_cast<int32_t>(u));
        uc.push_back(static_cast<int32_t>((u * 7 + k * 11) % items));
        uv.push_back(static_cast<float>(1 + k));
      }
    const recsys::Csr ui = recsys::Csr::from_triplets(users, items, ur, uc, uv, true);
    // Users are the mean of their anime, so the relevance is learnable from the graph part
    // alone (each anime has its own embedding row): the content-only regime of dropout_p = 1.
    const Tensor U = dropoutnet::user_mean(ui, V);
    EncoderConfig ec;
    ec.conv = conv;
    ec.node_init = NodeInit::onehot;
    ec.onehot_dim = 8;
    ec.hidden = {8};
    ec.out_dim = 6;
    GraphEncoder enc(ec, g.num_nodes, 0, g.edge_dim(), gen);
    GraphInputs in;
    in.graph = &g;
    in.node_of_item = node_of_item;
    in.user_mean = user_mean_matrix(ui, node_of_item, g.num_nodes, 0);
    dropoutnet::DropoutNetConfig mc;
    mc.rank_in = r;
    mc.user_content_dim = mc.item_content_dim = 6;  // the graph part only
    mc.final_hidden = {16};
    mc.rank_out = 8;
    mc.batch_norm = false;
    mc.init = dropoutnet::Init::torch_default;
    dropoutnet::DropoutNet net(mc, gen);
    std::vector<Tensor> params = net.parameters();
    for (const Tensor& p : enc.parameters()) params.push_back(p);
    AdamOptions ao;
    ao.lr = 0.01;
    Adam opt(params, ao);
    dropoutnet::InputDropoutConfig dc;
    dc.p = 1.0;
    dc.user = dropoutnet::UserInput::zero;
    dropoutnet::BatchMaker maker({U, V, Tensor(), Tensor(), Tensor()}, dc);
    recsys::SamplerConfig sc2;
    sc2.top_n = 10;
    sc2.n_random = 10;
    const auto embedding = [&enc] {
    for (const auto& [k, v] : enc.state_dict())
      if (k == "embedding.weight") return v;
    return Tensor();
  };
  const Tensor emb0 = embedding().clone();
    std::vector<double> losses;
    for (int e = 0; e < 30; ++e) {
      const recsys::Pairs pairs = recsys::sample_epoch(U, V, sc2, static_cast<uint64_t>(e));
      losses.push_back(train_epoch(net, enc, in, opt, maker, pairs, 64, static_cast<uint64_t>(e)).mean_loss);
    }
    EXPECT_LT(losses.back(), 0.8 * losses.front()) << (conv == ConvKind::gcn ? "gcn" : "gine");
    // Embedding rows of nodes that are batch items moved; the encoder trained.
    const auto a = emb0.to_vector(), b = embedding().to_vector();
    double moved = 0;
    for (size_t i = 0; i < 8; ++i) moved += std::abs(a[i] - b[i]);  // node 0 = item 0
    EXPECT_GT(moved, 1e-3);
  }
}

// graph.layer_norm: G's rows come out normalized (mean 0, variance 1 with the initial affine),
// whatever the degree-sized scale of GINE's sums.
TEST(GraphAugment, LayerNormBoundsTheEmbedding) {
  const AnimeGraph g = build_anime_graph(tiny_dataset(), {});
  Generator gen(7);
  const Tensor x = mul(randn({6, 4}, gen), 1000.0);
  EncoderConfig ec;
  ec.conv = ConvKind::gine;
  ec.hidden = {5};
  ec.out_dim = 8;
  ec.layer_norm = true;
  GraphEncoder enc(ec, 6, 4, g.edge_dim(), gen);
  NoGradGuard ng;
  const auto G = enc.forward(x, g.adj, g.edge_attr).to_vector();
  for (int r = 0; r < 6; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < 8; ++c) m += G[static_cast<size_t>(r * 8 + c)] / 8;
    for (int c = 0; c < 8; ++c) v += std::pow(G[static_cast<size_t>(r * 8 + c)] - m, 2) / 8;
    EXPECT_NEAR(m, 0.0, 1e-4) << r;
    EXPECT_NEAR(v, 1.0, 1e-2) << r;  // eps 1e-5 against variances in the thousands
  }
}
