#include "apps/pipeline.h"

#include <filesystem>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "autograd/ops_sparse.h"
#include "kernels/als.h"
#include "models/baselines/baselines.h"
#include "models/wmf/als.h"

namespace dan::apps {

namespace fs = std::filesystem;

namespace {

wmf::AlsConfig als_config(const recsys::Config& cfg) {
  wmf::AlsConfig a;
  a.factors = cfg.get_int("wmf.factors");
  a.iterations = static_cast<int>(cfg.get_int("wmf.iterations"));
  a.reg = cfg.get_double("wmf.reg");
  a.solver = cfg.get_string("wmf.solver") == "cg" ? wmf::Solver::cg : wmf::Solver::cholesky;
  a.cg_steps = static_cast<int>(cfg.get_int("wmf.cg_steps"));
  a.seed = static_cast<uint64_t>(cfg.get_int("wmf.seed"));
  a.device = Device::parse(cfg.get_string("device"));
  return a;
}

text::DfLimit df_limit(double v, bool is_max) {
  // min_df: >= 1 is a count; max_df: > 1 is a count (scikit-learn's convention).
  const bool count = is_max ? v > 1 : v >= 1;
  return count ? text::DfLimit::count(static_cast<int64_t>(v)) : text::DfLimit::frac(v);
}

std::vector<int32_t> iota(int64_t n) {
  std::vector<int32_t> r(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) r[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  return r;
}

Tensor rows_of(const Tensor& t, const std::vector<int32_t>& rows) {
  return index_select(t, from_vector(rows, {static_cast<int64_t>(rows.size())}));
}

kernels::CsrTensors to_tensors(const recsys::Csr& c) {
  kernels::CsrTensors t;
  t.rows = c.rows;
  t.cols = c.cols;
  t.indptr = from_vector(c.indptr, {static_cast<int64_t>(c.indptr.size())});
  t.indices = from_vector(c.indices, {c.nnz()});
  t.values = from_vector(c.values, {c.nnz()});
  return t;
}

}  // namespace

recsys::ImplicitConfig implicit_config(const recsys::Config& cfg) {
  recsys::ImplicitConfig c;
  c.alpha = cfg.get_double("implicit.alpha");
  c.fn = cfg.get_string("implicit.confidence") == "log1p" ? recsys::ConfidenceFn::log1p
                                                         : recsys::ConfidenceFn::linear;
  c.threshold = cfg.get_double("implicit.threshold");
  return c;
}

text::FeatureConfig feature_config(const recsys::Config& cfg) {
  text::FeatureConfig f;
  f.kind = text::parse_content_kind(cfg.get_string("features.kind"));
  f.fields = text::TextFields{};
  f.fields.synopsis = false;
  for (const std::string& name : cfg.get_strings("features.fields")) {
    if (name == "synopsis") f.fields.synopsis = true;
    else if (name == "reviews") f.fields.reviews = true;
    else if (name == "rec_texts") f.fields.rec_texts = true;
    else if (name == "title") f.fields.title = true;
    else if (name == "genres") f.fields.genres = true;
    else if (name == "themes") f.fields.themes = true;
    else if (name == "studios") f.fields.studios = true;
    else fail("{}: features.fields: unknown field '{}' (expected synopsis, reviews, rec_texts, title, genres, themes, studios)",
              cfg.where("features.fields"), name);
  }
  DAN_CHECK(f.kind == text::ContentKind::none || f.fields.any(), "{}: features.fields is empty",
            cfg.where("features.fields"));
  f.tokenizer.english_stop_words = cfg.get_bool("features.stop_words");
  f.tfidf.min_df = df_limit(cfg.get_double("features.tfidf.min_df"), false);
  f.tfidf.max_df = df_limit(cfg.get_double("features.tfidf.max_df"), true);
  f.tfidf.max_features = cfg.get_int("features.tfidf.max_features");
  f.tfidf.sublinear_tf = cfg.get_bool("features.tfidf.sublinear_tf");
  f.svd_dims = cfg.get_int("features.svd_dims");
  f.standardize = cfg.get_bool("features.standardize");
  f.metadata = cfg.get_bool("features.metadata");
  f.word2vec.dim = cfg.get_int("features.word2vec.dim");
  f.word2vec.window = static_cast<int>(cfg.get_int("features.word2vec.window"));
  f.word2vec.negative = static_cast<int>(cfg.get_int("features.word2vec.negative"));
  f.word2vec.epochs = static_cast<int>(cfg.get_int("features.word2vec.epochs"));
  f.word2vec.min_count = cfg.get_int("features.word2vec.min_count");
  f.word2vec_tfidf_weighted = cfg.get_bool("features.word2vec.tfidf_weighted");
  f.bert.model_dir = cfg.get_string("features.bert.model_dir");
  f.bert.max_length = cfg.get_int("features.bert.max_length");
  f.bert.batch_size = cfg.get_int("features.bert.batch_size");
  f.bert.pooling = bert::parse_pooling(cfg.get_string("features.bert.pooling"));
  f.bert.normalize = cfg.get_bool("features.bert.normalize");
  DAN_CHECK(f.kind != text::ContentKind::none || f.metadata,
            "features.kind = none with features.metadata = false leaves no content features");
  return f;
}

dropoutnet::DropoutNetConfig model_config(const recsys::Config& cfg, int64_t rank_in, int64_t content_dim) {
  dropoutnet::DropoutNetConfig m;
  m.rank_in = rank_in;
  m.user_content_dim = content_dim;
  m.item_content_dim = content_dim;
  m.use_user_content = cfg.get_bool("model.user_content");
  m.use_item_content = true;
  m.use_pref = cfg.get_bool("model.use_pref");
  m.pref_tower.hidden = cfg.get_ints("model.pref_hidden");
  m.pref_tower.out_dim = cfg.get_int("model.pref_out");
  m.content_tower.hidden = cfg.get_ints("model.content_hidden");
  m.content_tower.out_dim = cfg.get_int("model.content_out");
  m.final_hidden = cfg.get_ints("model.hidden");
  m.rank_out = cfg.get_int("model.rank_out");
  m.activation = parse_activation(cfg.get_string("model.activation"));
  m.batch_norm = cfg.get_bool("model.batch_norm");
  m.dropout = cfg.get_double("model.dropout");
  m.init = dropoutnet::parse_init(cfg.get_string("model.init"));
  m.init_std = cfg.get_double("model.init_std");
  return m;
}

recsys::EvalConfig eval_config(const recsys::Config& cfg) {
  recsys::EvalConfig e;
  e.ks.clear();
  for (int64_t k : cfg.get_ints("eval.ks")) e.ks.push_back(static_cast<int>(k));
  e.seed_k = static_cast<int>(cfg.get_int("eval.seed_k"));
  e.sample_users = static_cast<int>(cfg.get_int("eval.sample_users"));
  e.sample_items = static_cast<int>(cfg.get_int("eval.sample_items"));
  e.seed = static_cast<uint64_t>(cfg.get_int("eval.seed"));
  return e;
}

Prepared prepare(const recsys::Config& cfg, const std::string& split_path) {
  Prepared p;
  recsys::LoadOptions lo;
  lo.skip_bad_rows = cfg.get_bool("data.skip_bad_rows");
  DataChoice dc = choose_data(cfg.get_string("data.dir"));
  dc.synthetic_items = static_cast<int>(cfg.get_int("data.synthetic_items"));
  dc.synthetic_users = static_cast<int>(cfg.get_int("data.synthetic_users"));
  p.ds = load_data(dc, lo);

  recsys::SplitConfig sc;
  sc.seed = static_cast<uint64_t>(cfg.get_int("split.seed"));
  sc.train = cfg.get_double("split.train");
  sc.val = cfg.get_double("split.val");
  sc.warm_holdout = cfg.get_double("split.warm_holdout");
  DAN_CHECK(sc.train > 0 && sc.val > 0 && sc.train + sc.val < 1,
            "split.train ({}) and split.val ({}) must be > 0 and leave a test part", sc.train, sc.val);
  p.split = load_or_make_split(p.ds, sc, split_path);
  p.inter = recsys::build_interactions(p.ds, p.split, implicit_config(cfg));

  // WMF, cached by everything it depends on.
  const std::string cache_dir = cfg.get_string("features.cache_dir");
  fs::create_directories(cache_dir);
  const uint64_t key = text::fnv1a64(cfg.canonical_text({"data", "split", "implicit", "wmf"}) +
                                     text::dataset_fingerprint(p.ds));
  const std::string wmf_path = fmt::format("{}/wmf-{:016x}.safetensors", cache_dir, key);
  if (fs::exists(wmf_path)) {
    wmf::Factors f = wmf::load_factors(wmf_path);
    DAN_CHECK(f.users == p.inter.users && f.items == p.inter.train_items,
              "{}: cached factors do not match this split (delete the file)", wmf_path);
    p.U = f.U;
    p.V = f.V;
    fmt::print("wmf: cached {}\n", wmf_path);
  } else {
    const wmf::AlsConfig ac = als_config(cfg);
    fmt::print("wmf: {} users x {} train anime, {} ratings, {} factors\n", p.inter.fit.rows,
               p.inter.fit.cols, p.inter.fit.nnz(), ac.factors);
    wmf::AlsResult r = wmf::fit_als(p.inter.fit, ac, [&](const wmf::IterationStats& s) {
      if (s.iteration == 1 || s.iteration == ac.iterations || s.iteration % 5 == 0)
        fmt::print("wmf: iteration {:>3}/{}  loss {:.6f}  {:.2f} s\n", s.iteration, ac.iterations,
                   s.loss, s.seconds);
    });
    wmf::save_factors(wmf_path, r, p.inter.users, p.inter.train_items);
    p.U = r.U;
    p.V = r.V;
  }

  // Content features of every anime, cached by their config.
  p.features = text::build_item_features(p.ds, feature_config(cfg), cache_dir);
  fmt::print("features: {} x {}{}\n", p.features.x.size(0), p.features.x.size(1),
             p.features.from_cache ? " (cached)" : "");

  NoGradGuard ng;
  p.phiV_train = rows_of(p.features.x, p.inter.train_items);
  p.phiU = dropoutnet::user_content(p.inter.fit_score, p.phiV_train,
                                    static_cast<int>(cfg.get_int("model.user_content_top_n")));
  p.U_transform = dropoutnet::user_transform(p.inter.fit, p.V);

  // The anime graph (recommendations.csv) when the content is graph-augmented.
  if (cfg.get_string("graph.conv") != "none") {
    p.has_graph = true;
    p.graph = gnn::build_anime_graph(p.ds, graph_config(cfg));
    p.user_mean = gnn::user_mean_matrix(p.inter.fit_score, p.inter.train_items, p.ds.num_items(),
                                        static_cast<int>(cfg.get_int("model.user_content_top_n")));
    fmt::print("graph: {}\n", p.graph.summary());
  }
  return p;
}

gnn::GraphConfig graph_config(const recsys::Config& cfg) {
  gnn::GraphConfig g;
  g.weight = gnn::parse_edge_weight(cfg.get_string("graph.weight"));
  g.edge_text_dims = cfg.get_int("graph.edge_text_dims");
  g.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  return g;
}

gnn::EncoderConfig encoder_config(const recsys::Config& cfg) {
  gnn::EncoderConfig e;
  e.conv = gnn::parse_conv_kind(cfg.get_string("graph.conv"));
  e.node_init = gnn::parse_node_init(cfg.get_string("graph.node_init"));
  e.onehot_dim = cfg.get_int("graph.onehot_dim");
  e.hidden = cfg.get_ints("graph.hidden");
  e.out_dim = cfg.get_int("graph.out_dim");
  e.dropout = cfg.get_double("graph.dropout");
  e.improved = cfg.get_bool("graph.improved");
  e.train_eps = cfg.get_bool("graph.train_eps");
  e.layer_norm = cfg.get_bool("graph.layer_norm");
  return e;
}

Model build_model(const recsys::Config& cfg, const Prepared& p, Generator& gen) {
  Model m;
  int64_t content_dim = p.features.x.size(1);
  if (p.has_graph) {
    const gnn::EncoderConfig ec = encoder_config(cfg);
    // The encoder is drawn first, from its own stream, so that DropoutNet's weights are the same
    // with or without a graph at one seed.
    Generator ggen(static_cast<uint64_t>(cfg.get_int("seed")) ^ 0x6e6e67726170ULL);
    m.graph = std::make_shared<gnn::GraphEncoder>(ec, p.ds.num_items(), p.features.x.size(1),
                                                  p.graph.edge_dim(), ggen);
    m.graph_trained = cfg.get_bool("graph.train");
    m.graph_inputs.graph = &p.graph;
    if (ec.node_init == gnn::NodeInit::content) m.graph_inputs.x = p.features.x;
    m.graph_inputs.node_of_item = p.inter.train_items;
    m.graph_inputs.user_mean = p.user_mean;
    m.graph_inputs.user_content = cfg.get_bool("model.user_content");
    content_dim += ec.out_dim;
  }
  if (cfg.get_int("features.bert.finetune_layers") > 0) {
    DAN_CHECK(!p.has_graph, "features.bert.finetune_layers > 0 and graph.conv: {} cannot be combined",
              cfg.get_string("graph.conv"));
    m.text = build_text_inputs(cfg, p);
  }
  m.net = std::make_shared<dropoutnet::DropoutNet>(model_config(cfg, p.U.size(1), content_dim), gen);
  return m;
}

std::vector<ParamGroup> Model::param_groups(const recsys::Config& cfg) const {
  std::vector<ParamGroup> groups;
  ParamGroup g;
  g.params = net->parameters();
  g.lr = cfg.get_double("train.lr");
  g.weight_decay = cfg.get_double("train.weight_decay");
  groups.push_back(g);
  if (graph && graph_trained) {
    ParamGroup e;
    e.params = graph->parameters();
    const double lr = cfg.get_double("graph.lr");
    e.lr = lr > 0 ? lr : g.lr;
    e.weight_decay = cfg.get_double("graph.weight_decay");
    groups.push_back(e);
  }
  if (text) {
    ParamGroup b;
    for (const Tensor& t : text->encoder->parameters())
      if (t.requires_grad()) b.params.push_back(t);
    b.lr = cfg.get_double("features.bert.lr");
    b.weight_decay = cfg.get_double("features.bert.weight_decay");
    groups.push_back(b);
  }
  return groups;
}

void Model::to(Device d) {
  net->to(d);
  if (graph) {
    graph->to(d);
    if (graph_inputs.x.defined()) graph_inputs.x = graph_inputs.x.to(d);
    graph_inputs.user_mean = graph_inputs.user_mean.to(d);
  }
  if (text) text->to(d);
}

Content model_content(Model& m, const Prepared& p) {
  Content c{p.features.x, p.phiU};
  if (m.text) {
    text_content_all(*m.text, p, &c.phi_all, &c.phiU);
    return c;
  }
  if (!m.graph) return c;
  NoGradGuard ng;
  const bool was = m.graph->is_training();
  m.graph->eval();
  // Graph inputs live on the model's device; the tables here are CPU.
  const Tensor G = gnn::embed(*m.graph, m.graph_inputs).to(Device::cpu());
  m.graph->train(was);
  c.phi_all = cat({p.features.x, G}, 1);
  const Tensor GU = spmm(p.user_mean, G);
  c.phiU = p.phiU.defined() ? cat({p.phiU, GU}, 1) : GU;
  return c;
}

Tensor fold_in_items(const Tensor& U, const recsys::Csr& ratings, const recsys::Config& cfg) {
  const recsys::ImplicitConfig ic = implicit_config(cfg);
  recsys::Csr c = ratings.transpose();  // items x users
  for (float& v : c.values) v = static_cast<float>(recsys::confidence(v, ic));
  NoGradGuard ng;
  Tensor X = zeros({c.rows, U.size(1)});
  const Tensor YtY = matmul(U.t(), U).contiguous();
  kernels::als_update_cholesky(X, U.contiguous(), YtY, to_tensors(c),
                               static_cast<float>(cfg.get_double("wmf.reg")));
  return X;
}

Tensor user_input(const Prepared& p, const recsys::Config& cfg) {
  if (cfg.get_double("train.dropout_p") < 1.0) return p.U;
  const std::string mode = cfg.get_string("train.user_input");
  if (mode == "transform") return p.U_transform;
  if (mode == "zero") return zeros_like(p.U);
  return p.U;
}

Tensor cold_scores(Model& model, const Prepared& p, const recsys::Config& cfg,
                   const std::vector<int32_t>& items) {
  return cold_scores(model, p, cfg, items, model_content(model, p));
}

Tensor cold_scores(Model& model, const Prepared& p, const recsys::Config& cfg,
                   const std::vector<int32_t>& items, const Content& c) {
  NoGradGuard ng;
  model.net->eval();
  const Tensor phi = rows_of(c.phi_all, items);
  const Tensor Vin = zeros({static_cast<int64_t>(items.size()), p.V.size(1)});
  const Tensor users = model.net->encode_users(user_input(p, cfg), c.phiU);
  const Tensor its = model.net->encode_items(Vin, phi);
  return matmul(users, its.t()).contiguous();
}

Table cold_table(const Prepared& p, const recsys::Config& cfg, const std::vector<int32_t>& items,
                 const recsys::Csr& truth, Model* model, const std::string& model_name,
                 const std::string& protocol) {
  const recsys::EvalConfig ecfg = eval_config(cfg);
  const recsys::Csr none;
  Table t;
  t.protocol = protocol;
  t.description = fmt::format("{} users x {} anime unseen in training, truth = {} ratings", truth.rows,
                              truth.cols, truth.nnz());
  const std::vector<int32_t> rows = iota(truth.rows);
  const std::vector<float> members = members_signal(p.ds);
  const Tensor pop = baselines::metadata_scores(members, truth.rows, items);
  // Content-kNN profiles come from the user's train anime; its train matrix has one column per
  // anime of the dataset so feature rows and columns line up.
  recsys::Csr train_all = p.inter.fit_score;
  train_all.cols = p.ds.num_items();
  for (int32_t& c : train_all.indices) c = p.inter.train_items[static_cast<size_t>(c)];
  const Tensor cknn = baselines::content_knn_scores(p.features.x, train_all, rows, items);
  t.columns.emplace_back("pop (members)", all_metrics(pop, truth, none, ecfg));
  t.columns.emplace_back("content-kNN", all_metrics(cknn, truth, none, ecfg));
  t.columns.emplace_back("content-kNN + members",
                         all_metrics(baselines::blend(cknn, pop, cfg.get_double("eval.blend_weight")), truth,
                                     none, ecfg));
  if (model != nullptr) t.columns.emplace_back(model_name, all_metrics(cold_scores(*model, p, cfg, items), truth, none, ecfg));
  t.columns.insert(t.columns.begin(), {"random", random_column(truth, none, ecfg, t.columns.back().second)});
  return t;
}

}  // namespace dan::apps
