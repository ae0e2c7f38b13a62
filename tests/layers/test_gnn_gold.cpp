// Gold test: GCNConv and GINEConv forward outputs and the gradients of every parameter and
// input against plain-PyTorch implementations of PyG's definitions (tests/fixtures/
// gnn_gold.safetensors, made by scripts/gen_gnn_fixture.py; see tests/fixtures/README.md).
// The graph has explicit self-loops, a duplicated edge and a node with no incoming edge.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "autograd/ops.h"
#include "core/serialize.h"
#include "core/sparse.h"
#include "layers/gcn.h"
#include "layers/gine.h"
#include "layers/mlp.h"

using namespace dan;

namespace {

const std::map<std::string, Tensor>& gold() {
  static const std::map<std::string, Tensor> g =
      load_safetensors(std::string(DAN_FIXTURES_DIR) + "/gnn_gold.safetensors");
  return g;
}

Tensor key(const std::string& k) {
  const auto it = gold().find(k);
  if (it == gold().end()) fail("gnn_gold.safetensors has no key '{}'", k);
  return it->second;
}

Tensor leaf(const std::string& k) {
  Tensor t = raw::contiguous_copy(key(k), Device::cpu());
  t.set_requires_grad(true);
  return t;
}

constexpr int64_t kNodes = 30;

// |got - want| <= 1e-5 + 1e-5 |want| elementwise.
void expect_matches(const Tensor& got, const std::string& k) {
  const Tensor want = key(k);
  ASSERT_TRUE(got.defined()) << k << ": no value (missing gradient?)";
  ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape())) << k;
  const auto g = got.to_vector(), w = want.to_vector();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(g[i], w[i], 1e-5 + 1e-5 * std::abs(w[i])) << k << " element " << i;
    worst = std::max(worst, std::abs(g[i] - w[i]));
  }
  ::testing::Test::RecordProperty(k, fmt::format("{:.3g}", worst));
}

// The module's parameters and buffers from the fixture keys "<prefix>.<name>".
void load_from_fixture(Module& m, const std::string& prefix) {
  std::map<std::string, Tensor> sd;
  for (const auto& [name, t] : m.state_dict()) sd[name] = key(prefix + "." + name);
  m.load_state_dict(sd);
}

void check_gcn(const std::string& prefix, GCNConvOptions opt, bool weighted) {
  SCOPED_TRACE(prefix);
  const SparseCsr adj = SparseCsr::from_edge_index(key("graph.edge_index"), kNodes,
                                                   weighted ? key("graph.edge_weight") : Tensor());
  GCNConv conv(8, 6, opt);
  load_from_fixture(conv, prefix);
  Tensor x = leaf("graph.x");
  Tensor out = conv.forward(x, adj);
  expect_matches(out, prefix + ".out");
  sum(out * key(prefix + ".g")).backward();
  expect_matches(x.grad(), prefix + ".grad.x");
  for (const auto& [name, p] : conv.named_parameters()) {
    expect_matches(p.grad(), prefix + ".grad." + name);
  }
}

void check_gine(const std::string& prefix, MLPConfig mlp, GINEConvOptions opt,
                const std::string& edge_key) {
  SCOPED_TRACE(prefix);
  // One entry per edge (no merging): edge features belong to edges, in edge-list order.
  const SparseCsr adj = SparseCsr::from_edge_index(key("graph.edge_index"), kNodes, Tensor(),
                                                   {.sum_duplicates = false});
  ASSERT_TRUE(adj.has_edge_ids());
  GINEConv conv(std::make_shared<MLP>(mlp), 8, opt);
  load_from_fixture(conv, prefix);
  Tensor x = leaf("graph.x"), ea = leaf(edge_key);
  Tensor out = conv.forward(x, adj, ea);
  expect_matches(out, prefix + ".out");
  sum(out * key(prefix + ".g")).backward();
  expect_matches(x.grad(), prefix + ".grad.x");
  expect_matches(ea.grad(), prefix + ".grad.edge_attr");
  const auto params = conv.named_parameters();
  EXPECT_EQ(params.size(), static_cast<size_t>(mlp.hidden.empty() ? 2 : 4) +
                               (opt.edge_dim > 0 ? 2 : 0) + (opt.train_eps ? 1 : 0));
  for (const auto& [name, p] : params) expect_matches(p.grad(), prefix + ".grad." + name);
}

}  // namespace

TEST(GnnGold, GCNConv) { check_gcn("gcn", {}, false); }

TEST(GnnGold, GCNConvImprovedWeighted) { check_gcn("gcn_improved", {.improved = true}, true); }

// No self-loops added: node 29 has in-degree 0 (d^-1/2 = inf -> 0), the explicit loops stay.
TEST(GnnGold, GCNConvNoSelfLoops) { check_gcn("gcn_noloops", {.add_self_loops = false}, true); }

TEST(GnnGold, GCNConvCachedReusesNormalization) {
  const SparseCsr adj = SparseCsr::from_edge_index(key("graph.edge_index"), kNodes);
  GCNConv conv(8, 6, {.cached = true});
  load_from_fixture(conv, "gcn");
  const Tensor x = key("graph.x");
  expect_matches(conv.forward(x, adj), "gcn.out");
  // The cache wins over whatever graph comes next (PyG's cached semantics).
  const SparseCsr empty = SparseCsr::from_edge_index(zeros({2, 0}, DType::i64), kNodes);
  expect_matches(conv.forward(x, empty), "gcn.out");
  conv.reset_cache();
  const Tensor self_only = conv.forward(x, empty);  // only self-loops: out = x W^T + b
  const Tensor want = linear(x, conv.lin().weight(), conv.bias());
  const auto a = self_only.to_vector(), b = want.to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << i;
}

TEST(GnnGold, GINEConvTrainEpsEdgeDim) {
  check_gine("gine", {.in_dim = 8, .hidden = {16}, .out_dim = 6, .activation = Activation::relu},
             {.eps = 0.1, .train_eps = true, .edge_dim = 5}, "graph.edge_attr");
}

TEST(GnnGold, GINEConvFixedEpsNoEdgeLinear) {
  check_gine("gine_plain", {.in_dim = 8, .hidden = {}, .out_dim = 6}, {}, "graph.edge_attr8");
}

TEST(GnnGold, StateDictNamesFollowPyG) {
  GCNConv gcn(8, 6);
  std::vector<std::string> names;
  for (const auto& [n, t] : gcn.state_dict()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"bias", "lin.weight"}));
  GINEConv gine(std::make_shared<MLP>(MLPConfig{
                    .in_dim = 8, .hidden = {16}, .out_dim = 6, .activation = Activation::relu}),
                8, {.edge_dim = 5});
  names.clear();
  for (const auto& [n, t] : gine.state_dict()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"eps", "nn.0.weight", "nn.0.bias", "nn.2.weight",
                                             "nn.2.bias", "lin.weight", "lin.bias"}));
  EXPECT_FALSE(gine.eps().requires_grad());  // a buffer unless train_eps
}

TEST(GnnGold, BadInputsNameTheProblem) {
  const SparseCsr adj = SparseCsr::from_edge_index(key("graph.edge_index"), kNodes);
  GCNConv gcn(8, 6);
  try {
    gcn.forward(zeros({kNodes, 7}), adj);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[N, 8]"), std::string::npos) << e.what();
  }
  GINEConv gine(std::make_shared<MLP>(MLPConfig{.in_dim = 8, .hidden = {}, .out_dim = 6}), 8,
                {.edge_dim = 5});
  try {
    gine.forward(zeros({kNodes, 8}), adj, zeros({adj.nnz(), 4}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("edge_attr must be"), std::string::npos) << e.what();
  }
}
