// `deepaninet recommend --run RUN_DIR --like TITLE [--like TITLE ...] [-k 10]`.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/recommend.h"
#include "apps/schema.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "kernels/als.h"
#include "models/baselines/baselines.h"
#include "recsys/checkpoint.h"
#include "recsys/config.h"

namespace dan::apps {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<Recommendation> top_k(const std::vector<float>& scores, const std::vector<int32_t>& items,
                                  const std::vector<int32_t>& exclude, const std::vector<uint8_t>& is_train,
                                  int k) {
  std::vector<size_t> order;
  for (size_t j = 0; j < items.size(); ++j)
    if (std::find(exclude.begin(), exclude.end(), items[j]) == exclude.end() && std::isfinite(scores[j]))
      order.push_back(j);
  const size_t n = std::min(order.size(), static_cast<size_t>(k));
  std::partial_sort(order.begin(), order.begin() + static_cast<long>(n), order.end(),
                    [&](size_t a, size_t b) { return scores[a] != scores[b] ? scores[a] > scores[b] : items[a] < items[b]; });
  std::vector<Recommendation> out;
  for (size_t i = 0; i < n; ++i) {
    const size_t j = order[i];
    out.push_back({items[j], scores[j], is_train[static_cast<size_t>(items[j])] == 0});
  }
  return out;
}

}  // namespace

int32_t find_title(const recsys::Dataset& ds, const std::string& title) {
  const std::string want = lower(title);
  int32_t best = -1;
  for (size_t i = 0; i < ds.anime.size(); ++i) {
    if (lower(ds.anime[i].title) != want) continue;
    const double m = ds.anime[i].members;
    if (best < 0 || (std::isfinite(m) && !(ds.anime[static_cast<size_t>(best)].members >= m)))
      best = static_cast<int32_t>(i);
  }
  if (best >= 0) return best;
  // Close matches: titles containing the query first, then the smallest edit distances.
  std::vector<std::pair<size_t, size_t>> cand;  // (distance, index)
  for (size_t i = 0; i < ds.anime.size(); ++i) {
    const std::string t = lower(ds.anime[i].title);
    const size_t d = t.find(want) != std::string::npos ? 0 : recsys::edit_distance(t, want) + 1;
    cand.emplace_back(d, i);
  }
  const size_t n = std::min<size_t>(5, cand.size());
  std::partial_sort(cand.begin(), cand.begin() + static_cast<long>(n), cand.end());
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back("'" + ds.anime[cand[i].second].title + "'");
  fail("no anime titled '{}'; close matches: {}", title, fmt::join(names, ", "));
}

RecommendLists recommend(const Prepared& p, const recsys::Config& cfg, Model& model,
                         const std::vector<std::string>& liked_titles, int k) {
  NoGradGuard ng;
  RecommendLists r;
  for (const std::string& t : liked_titles) r.liked.push_back(find_title(p.ds, t));
  const int64_t n_items = p.ds.num_items();
  std::vector<uint8_t> is_train(static_cast<size_t>(n_items), 0);
  std::vector<int32_t> col_of(static_cast<size_t>(n_items), -1);
  for (size_t j = 0; j < p.inter.train_items.size(); ++j) {
    is_train[static_cast<size_t>(p.inter.train_items[j])] = 1;
    col_of[static_cast<size_t>(p.inter.train_items[j])] = static_cast<int32_t>(j);
  }
  // The new user's train anime: the liked ones WMF knows, rated 10.
  std::vector<int32_t> cols;
  for (int32_t i : r.liked)
    if (col_of[static_cast<size_t>(i)] >= 0) cols.push_back(col_of[static_cast<size_t>(i)]);
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  const int64_t rank = p.V.size(1);

  // WMF fold-in: one exact user half-step against the trained V.
  Tensor u = zeros({1, rank});
  if (!cols.empty()) {
    const recsys::ImplicitConfig ic = implicit_config(cfg);
    kernels::CsrTensors c;
    c.rows = 1;
    c.cols = p.V.size(0);
    c.indptr = from_vector(std::vector<int64_t>{0, static_cast<int64_t>(cols.size())}, {2});
    c.indices = from_vector(cols, {static_cast<int64_t>(cols.size())});
    c.values = full({static_cast<int64_t>(cols.size())}, recsys::confidence(10.0, ic));
    const Tensor YtY = matmul(p.V.t(), p.V).contiguous();
    kernels::als_update_cholesky(u, p.V, YtY, c, static_cast<float>(cfg.get_double("wmf.reg")));
  }
  std::vector<int32_t> train_items = p.inter.train_items;
  r.wmf = top_k(matmul(u, p.V.t()).to_vector_as<float>(), train_items, r.liked, is_train, k);

  // item-kNN: the new user appended as one more row of the train matrix.
  recsys::Csr train = p.inter.fit_score;
  train.rows += 1;
  for (int32_t c : cols) {
    train.indices.push_back(c);
    train.values.push_back(10.0f);
  }
  train.indptr.push_back(train.nnz());
  std::vector<int32_t> all_cols(train_items.size());
  std::iota(all_cols.begin(), all_cols.end(), 0);
  const Tensor knn = baselines::item_knn_scores(train, {static_cast<int32_t>(train.rows - 1)}, all_cols);
  r.knn = top_k(knn.to_vector_as<float>(), train_items, r.liked, is_train, k);

  // DeepAniNet: the folded-in WMF vector and the mean content of the liked anime; every anime
  // is a candidate, the ones WMF never saw with V = 0.
  std::vector<int32_t> liked = r.liked;
  const Content content = model_content(model, p);
  const Tensor phi_liked = index_select(content.phi_all, from_vector(liked, {static_cast<int64_t>(liked.size())}));
  const Tensor phiU = mean(phi_liked, {0}, true);
  std::vector<int32_t> all(static_cast<size_t>(n_items));
  std::iota(all.begin(), all.end(), 0);
  std::vector<float> vin(static_cast<size_t>(n_items * rank), 0.0f);
  {
    const std::vector<float> v = p.V.to_vector_as<float>();
    for (size_t j = 0; j < p.inter.train_items.size(); ++j)
      std::copy_n(v.begin() + static_cast<long>(j * static_cast<size_t>(rank)), rank,
                  vin.begin() + static_cast<long>(static_cast<size_t>(p.inter.train_items[j]) * static_cast<size_t>(rank)));
  }
  const Tensor Vin = from_vector(vin, {n_items, rank});
  // The user input as in training (see user_input): after dropout_p = 1 the model only saw
  // transformed users, the mean V of their anime.
  Tensor u_in = u;
  if (cfg.get_double("train.dropout_p") >= 1.0) {
    const std::string mode = cfg.get_string("train.user_input");
    if (mode == "zero") u_in = zeros({1, rank});
    if (mode == "transform" && !cols.empty())
      u_in = mean(index_select(p.V, from_vector(cols, {static_cast<int64_t>(cols.size())})), {0}, true);
  }
  const Tensor U_hat = model.net->encode_users(u_in, phiU);
  const Tensor V_hat = model.net->encode_items(Vin, content.phi_all);
  r.deepaninet = top_k(matmul(U_hat, V_hat.t()).to_vector_as<float>(), all, r.liked, is_train, k);
  return r;
}

std::string format_recommendations(const recsys::Dataset& ds, const RecommendLists& r) {
  auto cell = [&](const std::vector<Recommendation>& v, size_t i) -> std::string {
    if (i >= v.size()) return "";
    std::string t = ds.anime[static_cast<size_t>(v[i].item)].title;
    if (t.size() > 34) t = t.substr(0, 33) + "~";
    return v[i].cold ? t + " *" : t;
  };
  std::string out = fmt::format("{:>3}  {:<36}  {:<36}  {:<36}\n", "#", "WMF (warm)", "item-kNN", "DeepAniNet");
  const size_t n = std::max({r.wmf.size(), r.knn.size(), r.deepaninet.size()});
  for (size_t i = 0; i < n; ++i)
    out += fmt::format("{:>3}  {:<36}  {:<36}  {:<36}\n", i + 1, cell(r.wmf, i), cell(r.knn, i), cell(r.deepaninet, i));
  out += "(* = anime unseen in training: only DeepAniNet can recommend it)\n";
  return out;
}

int recommend_command(int argc, char** argv) {
  const Flags f = parse_flags(argc, argv, 2, {"run", "k", "threads"}, {"like"});
  DAN_CHECK(f.has("run") && !f.all("like").empty(),
            "recommend: usage: deepaninet recommend --run RUN_DIR --like TITLE [--like TITLE ...] [--k 10]");
  const std::string dir = f.str("run", "");
  const recsys::Config cfg = recsys::load_config(train_schema(), dir + "/config.yaml");
  const Prepared p = prepare(cfg, dir + "/split.safetensors");
  Generator gen(0);
  Model model = build_model(cfg, p, gen);
  recsys::TrainState st;
  st.module("model", *model.net);
  if (model.graph) st.module("graph", *model.graph);
  if (model.text) st.module("bert", *model.text->encoder);
  recsys::load_checkpoint(dir + "/best.safetensors", st);
  const RecommendLists r = recommend(p, cfg, model, f.all("like"), static_cast<int>(f.integer("k", 10)));
  std::vector<std::string> names;
  for (int32_t i : r.liked) names.push_back(p.ds.anime[static_cast<size_t>(i)].title);
  fmt::print("\nliked: {}\n\n{}", fmt::join(names, " | "), format_recommendations(p.ds, r));
  return 0;
}

}  // namespace dan::apps
