// DropoutNet (models/dropoutnet): PyTorch gold trajectories (scripts/gen_dropoutnet_fixture.py),
// architecture and init, inference in chunks, the per-user means, the input transforms and
// batch assembly, and the paper's two sanity checks (dropout_p = 0 fits the training pairs;
// dropout_p = 1 with content that determines V generalizes to cold items).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "core/serialize.h"
#include "layers/optim/adam.h"
#include "layers/optim/sgd.h"
#include "models/dropoutnet/dropoutnet.h"

using namespace dan;
using namespace dan::dropoutnet;

namespace {

using Fixture = std::map<std::string, Tensor>;

const Tensor& at(const Fixture& f, const std::string& k) {
  const auto it = f.find(k);
  if (it == f.end()) fail("fixture has no key '{}'", k);
  return it->second;
}

// |got - want| <= atol + rtol |want| elementwise.
void expect_close(const Tensor& got, const Tensor& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto g = got.to_vector(), w = want.to_vector();
  size_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double err = std::abs(g[i] - w[i]);
    worst = std::max(worst, err / (atol + rtol * std::abs(w[i])));
    if (!(err <= atol + rtol * std::abs(w[i])) && ++bad <= 3) {
      ADD_FAILURE() << what << "[" << i << "]: got " << g[i] << ", want " << w[i];
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": worst error " << worst << " x tolerance";
}

Tensor step_of(const Tensor& t, int64_t s) { return t.select(0, s).contiguous().detach(); }

Tensor randn_t(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g);
}

// The architectures of scripts/gen_dropoutnet_fixture.py.
DropoutNetConfig towers_config() {
  DropoutNetConfig c;
  c.rank_in = 6;
  c.user_content_dim = 5;
  c.item_content_dim = 7;
  c.pref_tower = {{10}, 8};
  c.content_tower = {{}, 4};
  c.final_hidden = {12};
  c.rank_out = 5;
  c.init = Init::torch_default;
  return c;
}

DropoutNetConfig simple_config() {
  DropoutNetConfig c;
  c.rank_in = 6;
  c.use_user_content = false;
  c.item_content_dim = 7;
  c.final_hidden = {12, 9};
  c.rank_out = 5;
  return c;
}

void run_gold(const std::string& file, const DropoutNetConfig& cfg) {
  const Fixture f = load_safetensors(std::string(DAN_FIXTURES_DIR) + "/" + file);
  DropoutNet model(cfg);
  std::map<std::string, Tensor> init;
  for (const auto& [k, t] : f) {
    if (k.rfind("init.", 0) == 0) init[k.substr(5)] = t;
  }
  model.load_state_dict(init);  // strict: our names and shapes are PyTorch's
  SGD opt(model.parameters(), {.lr = 0.05, .momentum = 0.9});
  model.train();
  std::vector<double> losses;
  const bool has_phiU = f.count("phiU") > 0;
  for (int64_t s = 0; s < 10; ++s) {
    const Tensor U = step_of(at(f, "Uin"), s), V = step_of(at(f, "Vin"), s);
    const Tensor pU = has_phiU ? step_of(at(f, "phiU"), s) : Tensor();
    const Tensor pV = step_of(at(f, "phiV"), s);
    opt.zero_grad();
    const Embeddings e = model.forward(U, V, pU, pV);
    if (s == 0) {
      expect_close(e.U_hat, at(f, "step0.U_hat"), 1e-5, 1e-6, file + " step0.U_hat");
      expect_close(e.V_hat, at(f, "step0.V_hat"), 1e-5, 1e-6, file + " step0.V_hat");
    }
    const Tensor loss = mse_loss(rowwise_dot(e.U_hat, e.V_hat), step_of(at(f, "target"), s));
    loss.backward();
    losses.push_back(loss.item());
    opt.step();
  }
  expect_close(from_doubles(losses, {10}), at(f, "losses"), 1e-5, 0, file + " losses");
  for (const auto& [k, t] : model.state_dict()) {
    if (k.ends_with("num_batches_tracked")) {
      EXPECT_EQ(t.item(), 10) << k;
      continue;
    }
    expect_close(t, at(f, "final." + k), 1e-5, 1e-6, file + " final." + k);
  }
  // Inference in chunks of 4 rows, eval mode (running statistics), as torch's eval().
  const Tensor eU = at(f, "eval.Uin"), eV = at(f, "eval.Vin");
  const Tensor epU = has_phiU ? at(f, "eval.phiU") : Tensor();
  expect_close(model.encode_users(eU, epU, 4), at(f, "eval.U_hat"), 1e-5, 1e-6,
               file + " eval.U_hat");
  expect_close(model.encode_items(eV, at(f, "eval.phiV"), 4), at(f, "eval.V_hat"), 1e-5, 1e-6,
               file + " eval.V_hat");
  EXPECT_TRUE(model.is_training());  // encode_* restored the mode
}

// Synthetic WMF world: U [users, r], V = phiV A [items, r] (content determines V), phiU =
// mean of phiV over each user's items.
struct World {
  Tensor U, V, phiV, phiU, Utr;
  recsys::Csr user_items;
};

World make_world(int64_t users, int64_t items, int64_t r, int64_t dv, uint64_t seed) {
  World w;
  w.U = randn_t({users, r}, seed);
  w.phiV = randn_t({items, dv}, seed + 1);
  const Tensor A = randn_t({dv, r}, seed + 2) * (1.0 / std::sqrt(static_cast<double>(dv)));
  w.V = matmul(w.phiV, A).detach();
  // Each user "rated" the items it scores highest among a fixed window.
  std::vector<int32_t> ru, ri;
  std::vector<float> rv;
  for (int32_t u = 0; u < users; ++u) {
    for (int32_t k = 0; k < 5; ++k) {
      ru.push_back(u);
      ri.push_back(static_cast<int32_t>((u * 7 + k * 13) % items));
      rv.push_back(static_cast<float>(1 + (u + k) % 10));
    }
  }
  w.user_items = recsys::Csr::from_triplets(users, items, ru, ri, rv);
  w.phiU = user_content(w.user_items, w.phiV, 0);
  w.Utr = user_transform(w.user_items, w.V);
  return w;
}

// Every (user, item) pair of the given items, with target U_u . V_i, in a seeded order.
recsys::Pairs all_pairs(const World& w, const std::vector<int32_t>& items, uint64_t seed) {
  recsys::Pairs p;
  const auto U = w.U.to_vector(), V = w.V.to_vector();
  const int64_t r = w.U.size(1);
  for (int32_t u = 0; u < w.U.size(0); ++u) {
    for (int32_t i : items) {
      double s = 0;
      for (int64_t k = 0; k < r; ++k) s += U[u * r + k] * V[i * r + k];
      p.users.push_back(u);
      p.items.push_back(i);
      p.targets.push_back(static_cast<float>(s));
    }
  }
  recsys::philox_shuffle(seed, p.size(), [&](int64_t a, int64_t b) {
    std::swap(p.users[a], p.users[b]);
    std::swap(p.items[a], p.items[b]);
    std::swap(p.targets[a], p.targets[b]);
  });
  return p;
}

double mean_square(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return s / static_cast<double>(v.size());
}

}  // namespace

TEST(DropoutNetGold, TowersMatchPyTorch) {
  run_gold("dropoutnet_towers.safetensors", towers_config());
}

TEST(DropoutNetGold, ReferenceFormMatchesPyTorch) {
  run_gold("dropoutnet_simple.safetensors", simple_config());
}

TEST(DropoutNet, ReferenceFormStructure) {
  // The reference implementation: [U || phiU] -> 800 -> 400 -> 200 per side (no towers).
  DropoutNetConfig c;
  c.rank_in = 200;
  c.user_content_dim = 30;
  c.item_content_dim = 300;
  DropoutNet m(c);
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& [k, t] : m.named_parameters()) got.emplace_back(k, t.shape());
  const std::vector<std::pair<std::string, Shape>> want = {
      {"user_final.0.weight", {800, 230}}, {"user_final.0.bias", {800}},
      {"user_final.1.weight", {800}},      {"user_final.1.bias", {800}},
      {"user_final.3.weight", {400, 800}}, {"user_final.3.bias", {400}},
      {"user_final.4.weight", {400}},      {"user_final.4.bias", {400}},
      {"user_final.6.weight", {200, 400}}, {"user_final.6.bias", {200}},
      {"item_final.0.weight", {800, 500}}, {"item_final.0.bias", {800}},
      {"item_final.1.weight", {800}},      {"item_final.1.bias", {800}},
      {"item_final.3.weight", {400, 800}}, {"item_final.3.bias", {400}},
      {"item_final.4.weight", {400}},      {"item_final.4.bias", {400}},
      {"item_final.6.weight", {200, 400}}, {"item_final.6.bias", {200}}};
  EXPECT_EQ(got, want);
  // The paper's single-layer modules: every f a Linear projection.
  DropoutNetConfig s;
  s.rank_in = 8;
  s.user_content_dim = 3;
  s.item_content_dim = 5;
  s.pref_tower = {{}, 6};
  s.content_tower = {{}, 4};
  s.final_hidden = {};
  s.rank_out = 7;
  DropoutNet ms(s);
  std::vector<std::string> names;
  for (const auto& [k, t] : ms.named_parameters()) names.push_back(k + shape_str(t.shape()));
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "user_pref.0.weight[6, 8]", "user_pref.0.bias[6]", "user_content.0.weight[4, 3]",
                "user_content.0.bias[4]", "user_final.0.weight[7, 10]", "user_final.0.bias[7]",
                "item_pref.0.weight[6, 8]", "item_pref.0.bias[6]", "item_content.0.weight[4, 5]",
                "item_content.0.bias[4]", "item_final.0.weight[7, 10]", "item_final.0.bias[7]"}));
}

TEST(DropoutNet, TruncatedNormalInit) {
  DropoutNetConfig c;
  c.rank_in = 64;
  c.user_content_dim = 100;
  c.item_content_dim = 100;
  c.final_hidden = {200};
  c.rank_out = 50;
  Generator g1(5), g2(5);
  DropoutNet a(c, g1), b(c, g2);
  const auto sa = a.state_dict(), sb = b.state_dict();
  for (size_t i = 0; i < sa.size(); ++i) {
    const auto& [name, t] = sa[i];
    EXPECT_EQ(t.to_vector(), sb[i].second.to_vector()) << name << " depends only on the seed";
    const auto v = t.to_vector();
    if (name.ends_with("0.weight") || name.ends_with("3.weight")) {
      double ss = 0;
      for (double x : v) {
        EXPECT_LT(std::abs(x), 0.02 + 1e-7) << name;
        ss += x * x;
      }
      // Truncation at 2 sd leaves sd 0.88 * 0.01.
      EXPECT_NEAR(std::sqrt(ss / static_cast<double>(v.size())), 0.0088, 0.0006) << name;
    } else if (name.ends_with("0.bias") || name.ends_with("3.bias")) {
      for (double x : v) EXPECT_EQ(x, 0.0) << name;
    }
  }
  EXPECT_EQ(parse_init("default"), Init::torch_default);
  EXPECT_THROW(parse_init("xavier"), Error);
}

TEST(DropoutNet, ConfigAndInputErrors) {
  DropoutNetConfig c;
  EXPECT_THROW(DropoutNet{c}, Error);  // rank_in 0
  c.rank_in = 4;
  c.user_content_dim = 0;  // use_user_content without a width
  EXPECT_THROW(DropoutNet{c}, Error);
  c.user_content_dim = 3;
  c.item_content_dim = 2;
  c.pref_tower = {{5}, 0};  // hidden widths without a tower
  EXPECT_THROW(DropoutNet{c}, Error);
  c.pref_tower = {};
  c.final_hidden = {8};
  c.rank_out = 3;
  DropoutNet m(c);
  const Tensor U = randn_t({4, 4}, 1), pU = randn_t({4, 3}, 2), pV = randn_t({4, 2}, 3);
  EXPECT_NO_THROW(m.forward(U, U, pU, pV));
  EXPECT_THROW(m.forward(U, U, Tensor(), pV), Error);             // phiU missing
  EXPECT_THROW(m.forward(U, randn_t({4, 5}, 4), pU, pV), Error);  // wrong rank
  EXPECT_THROW(m.forward(U, randn_t({3, 4}, 4), pU, pV), Error);  // row counts differ
  EXPECT_THROW(m.forward(U, U, pU, randn_t({3, 2}, 4)), Error);   // content rows differ
  EXPECT_THROW(m.loss(U, U, pU, pV, randn_t({5}, 1)), Error);     // target size
}

TEST(DropoutNet, EncodeInChunksMatchesEvalForward) {
  DropoutNetConfig c;
  c.rank_in = 5;
  c.user_content_dim = 4;
  c.item_content_dim = 6;
  c.pref_tower = {{7}, 3};
  c.final_hidden = {9};
  c.rank_out = 4;
  c.dropout = 0.3;  // identity in eval mode
  c.init = Init::torch_default;
  DropoutNet m(c);
  // Give batch norm non-trivial running statistics first.
  for (int s = 0; s < 3; ++s) {
    NoGradGuard ng;
    m.forward(randn_t({16, 5}, 10 + s) * 2.0, randn_t({16, 5}, 20 + s), randn_t({16, 4}, 30 + s),
              randn_t({16, 6}, 40 + s) + 1.0);
  }
  const Tensor V = randn_t({23, 5}, 7), pV = randn_t({23, 6}, 8);
  const Tensor all = m.encode_items(V, pV, 1000);
  const Tensor chunked = m.encode_items(V, pV, 5);
  expect_close(chunked, all, 1e-6, 1e-7, "encode_items in chunks of 5");
  EXPECT_FALSE(all.requires_grad());
  EXPECT_TRUE(m.is_training());
  m.eval();
  Tensor want;
  {
    NoGradGuard ng;
    want = m.item_embedding(V, pV);
  }
  expect_close(all, want, 1e-6, 1e-7, "encode_items");
  m.train();
  // Scoring every candidate is one GEMM of the two encodings.
  const Tensor Uh = m.encode_users(randn_t({3, 5}, 9), randn_t({3, 4}, 10));
  EXPECT_EQ(matmul(Uh, all.t()).shape(), (Shape{3, 23}));
}

TEST(DropoutNetInputs, UserMeanTopNAndEmptyUsers) {
  // User 0 rated items 0, 2, 3 with 5, 9, 9; user 1 nothing; user 2 item 1 with 4.
  const recsys::Csr R = recsys::Csr::from_triplets(3, 4, {0, 0, 0, 2}, {0, 2, 3, 1}, {5, 9, 9, 4});
  const Tensor table = from_doubles({1, 10, 2, 20, 3, 30, 4, 40}, {4, 2});
  const Tensor all = user_content(R, table, 0);
  expect_close(all, from_doubles({8.0 / 3, 80.0 / 3, 0, 0, 2, 20}, {3, 2}), 1e-7, 0, "mean");
  // Top 2 by rating: the tie 9, 9 (items 2, 3) beats 5.
  EXPECT_EQ(user_content(R, table, 2).to_vector(), (std::vector<double>{3.5, 35, 0, 0, 2, 20}));
  // Top 1 of a tie: the lower item.
  EXPECT_EQ(user_content(R, table, 1).to_vector(), (std::vector<double>{3, 30, 0, 0, 2, 20}));
  EXPECT_EQ(user_transform(R, table).to_vector(), all.to_vector());
  EXPECT_THROW(user_mean(R, from_doubles({1, 2, 3}, {3, 1})), Error);  // 4 item columns
}

TEST(DropoutNetInputs, TransformRowsExactFractionDeterministic) {
  InputDropoutConfig c;
  c.p = 0.5;
  c.seed = 3;
  const TransformRows a = choose_transform_rows(101, c, 2, 7);
  EXPECT_EQ(a.item_rows.size(), 50u);  // floor(0.5 * 101)
  EXPECT_EQ(a.user_rows.size(), 50u);
  for (const auto* rows : {&a.item_rows, &a.user_rows}) {
    EXPECT_TRUE(std::is_sorted(rows->begin(), rows->end()));
    EXPECT_EQ(std::set<int32_t>(rows->begin(), rows->end()).size(), rows->size());
    EXPECT_GE(rows->front(), 0);
    EXPECT_LT(rows->back(), 101);
  }
  EXPECT_NE(a.item_rows, a.user_rows);  // drawn independently
  const TransformRows again = choose_transform_rows(101, c, 2, 7);
  EXPECT_EQ(a.item_rows, again.item_rows);
  EXPECT_EQ(a.user_rows, again.user_rows);
  EXPECT_NE(a.item_rows, choose_transform_rows(101, c, 2, 8).item_rows);
  EXPECT_NE(a.item_rows, choose_transform_rows(101, c, 3, 7).item_rows);
  // Each row is chosen about p of the time over many batches.
  std::vector<int> hits(10, 0);
  c.p = 0.3;
  for (uint64_t b = 0; b < 2000; ++b) {
    for (int32_t r : choose_transform_rows(10, c, 0, b).item_rows) ++hits[r];
  }
  for (int h : hits) EXPECT_NEAR(h, 600, 80);
  c.p = 0;
  EXPECT_TRUE(choose_transform_rows(10, c, 0, 0).item_rows.empty());
  c.p = 1;
  EXPECT_EQ(choose_transform_rows(4, c, 0, 0).user_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  c.user = UserInput::keep;
  c.item_dropout = false;
  const TransformRows none = choose_transform_rows(4, c, 0, 0);
  EXPECT_TRUE(none.item_rows.empty() && none.user_rows.empty());
  c.p = 1.5;
  EXPECT_THROW(choose_transform_rows(4, c, 0, 0), Error);
  EXPECT_EQ(parse_user_input("zero"), UserInput::zero);
  EXPECT_THROW(parse_user_input("drop"), Error);
}

TEST(DropoutNetInputs, BatchMakerGathersTransformsAndZeros) {
  const World w = make_world(6, 9, 3, 4, 1);
  for (const UserInput mode : {UserInput::transform, UserInput::zero}) {
    InputDropoutConfig c;
    c.p = 0.5;
    c.user = mode;
    c.seed = 5;
    const BatchMaker maker({w.U, w.V, w.Utr, w.phiU, w.phiV}, c);
    const std::vector<int32_t> users = {0, 5, 2, 2, 1, 3, 4, 0};
    const std::vector<int32_t> items = {8, 0, 3, 3, 7, 1, 2, 6};
    const std::vector<float> targets = {1, 2, 3, 4, 5, 6, 7, 8};
    const Batch b = maker.make(users.data(), items.data(), targets.data(), 8, 1, 4);
    const TransformRows t = choose_transform_rows(8, c, 1, 4);
    const std::set<int32_t> tu(t.user_rows.begin(), t.user_rows.end());
    const std::set<int32_t> tv(t.item_rows.begin(), t.item_rows.end());
    ASSERT_EQ(tu.size(), 4u);
    for (int64_t i = 0; i < 8; ++i) {
      for (int64_t k = 0; k < 3; ++k) {
        const double want_u = !tu.count(static_cast<int32_t>(i)) ? w.U.at({users[i], k})
                              : mode == UserInput::transform     ? w.Utr.at({users[i], k})
                                                                 : 0.0;
        EXPECT_EQ(b.Uin.at({i, k}), want_u) << i;
        EXPECT_EQ(b.Vin.at({i, k}),
                  tv.count(static_cast<int32_t>(i)) ? 0.0 : w.V.at({items[i], k}));
      }
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_EQ(b.phiU.at({i, k}), w.phiU.at({users[i], k}));
        EXPECT_EQ(b.phiV.at({i, k}), w.phiV.at({items[i], k}));
      }
      EXPECT_EQ(b.target.at({i}), targets[i]);
    }
  }
  InputDropoutConfig c;
  EXPECT_THROW(BatchMaker({w.U, w.V, Tensor(), w.phiU, w.phiV}, c), Error);  // transform, no table
  c.user = UserInput::zero;
  const BatchMaker m({w.U, w.V, Tensor(), w.phiU, w.phiV}, c);
  const int32_t bad_user = 6, item = 0;
  const float tg = 0;
  EXPECT_THROW(m.make(&bad_user, &item, &tg, 1, 0, 0), Error);
}

TEST(DropoutNetInputs, EpochLoopBatchesAndModes) {
  const World w = make_world(6, 9, 3, 4, 1);
  recsys::Pairs p;
  for (int32_t i = 0; i < 5; ++i) {
    p.users.push_back(i);
    p.items.push_back(i + 1);
    p.targets.push_back(0.5f * static_cast<float>(i));
  }
  InputDropoutConfig d;
  d.p = 0.5;
  d.user = UserInput::zero;
  const BatchMaker maker({w.U, w.V, Tensor(), w.phiU, w.phiV}, d);
  for (const bool bn : {true, false}) {
    DropoutNetConfig c;
    c.rank_in = 3;
    c.user_content_dim = 4;
    c.item_content_dim = 4;
    c.final_hidden = {5};
    c.rank_out = 2;
    c.batch_norm = bn;
    DropoutNet m(c);
    SGD opt(m.parameters(), {.lr = 0.1});
    std::vector<int64_t> seen;
    const EpochResult r =
        train_epoch(m, opt, maker, p, 2, 0, [&](int64_t b, double) { seen.push_back(b); });
    // Batches [0, 2), [2, 4), [4, 5): batch norm cannot train on the last one (one row).
    EXPECT_EQ(r.batches, bn ? 2 : 3);
    EXPECT_EQ(r.pairs, bn ? 4 : 5);
    EXPECT_EQ(seen, bn ? (std::vector<int64_t>{0, 1}) : (std::vector<int64_t>{0, 1, 2}));
    EXPECT_TRUE(std::isfinite(r.mean_loss));
    EXPECT_TRUE(m.is_training());
    EXPECT_GE(evaluate_loss(m, maker, p, 2), 0.0);
    EXPECT_TRUE(m.is_training());  // restored
  }
}

TEST(DropoutNetSanity, NoDropoutFitsTheTrainingPairs) {
  // dropout_p = 0: the model only has to reproduce U_u . V_v from its inputs, so the training
  // loss goes to ~0 (the paper's implementation check).
  const World w = make_world(48, 64, 8, 6, 11);
  std::vector<int32_t> items(64);
  std::iota(items.begin(), items.end(), 0);
  const recsys::Pairs pairs = all_pairs(w, items, 1);
  DropoutNetConfig c;
  c.rank_in = 8;
  c.user_content_dim = 6;
  c.item_content_dim = 6;
  c.pref_tower = {{}, 8};  // the paper's single-layer modules
  c.content_tower = {{}, 4};
  c.final_hidden = {};
  c.rank_out = 8;
  c.init = Init::torch_default;
  Generator gen(1);
  DropoutNet model(c, gen);
  InputDropoutConfig d;
  d.p = 0;
  const BatchMaker maker({w.U, w.V, w.Utr, w.phiU, w.phiV}, d);
  Adam opt(model.parameters(), {.lr = 1e-2});
  const double initial = evaluate_loss(model, maker, pairs);
  double last = initial;
  for (int epoch = 0; epoch < 40 && last > 0.01 * initial; ++epoch) {
    train_epoch(model, opt, maker, pairs, 128, static_cast<uint64_t>(epoch));
    last = evaluate_loss(model, maker, pairs);
  }
  EXPECT_LT(last, 0.01 * initial) << "initial " << initial;
  RecordProperty("loss_ratio", fmt::format("{:.2e}", last / initial));
  fmt::print("no dropout: loss {:.3e} -> {:.3e}\n", initial, last);
}

TEST(DropoutNetSanity, NoDropoutReferenceFormFitsToo) {
  // The same check through the reference architecture ([U || phiU] -> 64 -> 8, BatchNorm +
  // tanh): Adam with the lr cut twice. Measured on the eval-mode loss (running statistics);
  // the train-mode loss keeps batch-norm noise of ~1% at these batch sizes.
  const World w = make_world(48, 64, 8, 6, 11);
  std::vector<int32_t> items(64);
  std::iota(items.begin(), items.end(), 0);
  const recsys::Pairs pairs = all_pairs(w, items, 1);
  DropoutNetConfig c;
  c.rank_in = 8;
  c.user_content_dim = 6;
  c.item_content_dim = 6;
  c.final_hidden = {64};
  c.rank_out = 8;
  c.init = Init::torch_default;
  Generator gen(1);
  DropoutNet model(c, gen);
  InputDropoutConfig d;
  d.p = 0;
  const BatchMaker maker({w.U, w.V, w.Utr, w.phiU, w.phiV}, d);
  Adam opt(model.parameters(), {.lr = 1e-2});
  const double initial = evaluate_loss(model, maker, pairs);
  for (int epoch = 0; epoch < 24; ++epoch) {
    if (epoch == 12) opt.set_lr(1e-3);
    if (epoch == 18) opt.set_lr(1e-4);
    train_epoch(model, opt, maker, pairs, 128, static_cast<uint64_t>(epoch));
  }
  const double last = evaluate_loss(model, maker, pairs);
  fmt::print("reference form, no dropout: loss {:.3e} -> {:.3e}\n", initial, last);
  EXPECT_LT(last, 0.01 * initial) << "initial " << initial;
}

TEST(DropoutNetSanity, FullDropoutLearnsColdItemsFromContent) {
  // dropout_p = 1 with V = phiV A: trained with every item vector zeroed, the model must score
  // from content alone, so held-out items (V = 0 at test time) are scored well too. The same
  // model trained without input dropout leans on V and fails on them.
  const World w = make_world(48, 100, 6, 10, 21);
  std::vector<int32_t> train_items, cold_items;
  for (int32_t i = 0; i < 100; ++i) (i % 5 == 0 ? cold_items : train_items).push_back(i);
  const recsys::Pairs train = all_pairs(w, train_items, 2);
  const recsys::Pairs cold = all_pairs(w, cold_items, 3);
  DropoutNetConfig c;
  c.rank_in = 6;
  c.use_user_content = false;
  c.item_content_dim = 10;
  c.final_hidden = {};
  c.rank_out = 6;
  c.init = Init::torch_default;
  // Cold items have no WMF vector: their V rows are zero at evaluation.
  Tensor Vcold = w.V.clone();
  {
    NoGradGuard ng;
    for (int32_t i : cold_items) fill_(Vcold.select(0, i), 0.0);
  }
  InputDropoutConfig plain;
  plain.p = 0;
  const BatchMaker eval_maker({w.U, Vcold, w.Utr, Tensor(), w.phiV}, plain);
  const double variance = mean_square(cold.targets);
  double cold_loss[2];
  for (int full = 0; full < 2; ++full) {
    Generator gen(2);
    DropoutNet model(c, gen);
    InputDropoutConfig d;
    d.p = full ? 1.0 : 0.0;
    d.user = UserInput::keep;
    const BatchMaker maker({w.U, w.V, w.Utr, Tensor(), w.phiV}, d);
    Adam opt(model.parameters(), {.lr = 1e-2});
    for (int epoch = 0; epoch < 30; ++epoch) {
      train_epoch(model, opt, maker, train, 128, static_cast<uint64_t>(epoch));
    }
    cold_loss[full] = evaluate_loss(model, eval_maker, cold);
  }
  fmt::print("cold items: mean square {:.3e}, loss p=1 {:.3e}, p=0 {:.3e}\n", variance,
             cold_loss[1], cold_loss[0]);
  EXPECT_LT(cold_loss[1], 0.05 * variance) << "target mean square " << variance;
  EXPECT_GT(cold_loss[0], 5 * cold_loss[1]) << "without dropout " << cold_loss[0];
}

// use_pref = false (BERT -> Linear -> dot, Fig. 7): each side is its final module on the content
// alone — the WMF inputs change nothing and a single final Linear gives x W^T + b.
TEST(DropoutNet, ContentOnlySidesIgnoreWmfInputs) {
  DropoutNetConfig c;
  c.rank_in = 4;
  c.user_content_dim = 3;
  c.item_content_dim = 3;
  c.use_pref = false;
  c.final_hidden = {};
  c.rank_out = 2;
  c.batch_norm = false;
  DropoutNet m(c);
  const Tensor U = randn_t({5, 4}, 1), V = randn_t({5, 4}, 2), pU = randn_t({5, 3}, 3), pV = randn_t({5, 3}, 4);
  const Tensor s1 = m.score(U, V, pU, pV), s2 = m.score(zeros({5, 4}), randn_t({5, 4}, 9), pU, pV);
  EXPECT_EQ(s1.to_vector(), s2.to_vector());
  // By hand from the two Linear layers' parameters (user_final.0, item_final.0).
  std::map<std::string, Tensor> p;
  for (const auto& [k, t] : m.named_parameters()) p[k] = t;
  ASSERT_TRUE(p.count("user_final.0.weight") && p.count("item_final.0.weight")) << p.size();
  NoGradGuard ng;
  const Tensor u = matmul(pU, p["user_final.0.weight"].t()) + p["user_final.0.bias"];
  const Tensor v = matmul(pV, p["item_final.0.weight"].t()) + p["item_final.0.bias"];
  const auto want = sum(u * v, {1}).to_vector(), got = s1.to_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << i;
  c.use_user_content = false;
  EXPECT_THROW(DropoutNet{c}, Error);  // nothing left on the user side
}
