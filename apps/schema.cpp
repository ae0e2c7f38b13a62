#include "apps/schema.h"

namespace dan::apps {

recsys::Schema train_schema() {
  using recsys::Bounds;
  recsys::Schema s;
  const Bounds pos{1, std::nullopt}, nonneg{0, std::nullopt}, unit{0, 1};
  s.add_string("name", "run", "run name: the run folder is <run.dir>/<name>-<timestamp>");
  s.add_int("seed", 0, "seed of model initialization, pair sampling and input dropout", nonneg);
  s.add_enum("device", "cpu", {"cpu", "cuda"}, "device for WMF and DropoutNet");

  s.add_string("data.dir", "",
               "dataset folder in the mal2023 format; '' = $DEEPANINET_DATA or ../shared/data/mal2023 "
               "when present, else the synthetic world; 'synthetic' or 'synthetic:SEED' forces it");
  s.add_int("data.synthetic_items", 2000, "anime in the synthetic world", {10, std::nullopt});
  s.add_int("data.synthetic_users", 3000, "users in the synthetic world", {10, std::nullopt});
  s.add_bool("data.skip_bad_rows", false, "skip and count malformed CSV rows instead of failing");

  s.add_int("split.seed", 1, "seed of the 8:1:1 anime split and the warm hold-out", nonneg);
  s.add_double("split.train", 0.8, "fraction of rated anime used for training", unit);
  s.add_double("split.val", 0.1, "fraction of rated anime for validation (test = the rest)", unit);
  s.add_double("split.warm_holdout", 0.1, "fraction of train-anime ratings held out (warm protocol)", unit);

  s.add_double("implicit.alpha", 1.0, "confidence c = 1 + alpha * f(score)", nonneg);
  s.add_enum("implicit.confidence", "linear", {"linear", "log1p"}, "f in the confidence formula");
  s.add_double("implicit.threshold", 0.0, "ratings below this score are not preferences", nonneg);

  s.add_int("wmf.factors", 64, "WMF rank r (U, V and DropoutNet's inputs)", pos);
  s.add_int("wmf.iterations", 15, "ALS iterations", pos);
  s.add_double("wmf.reg", 0.01, "L2 regularization of the factors", nonneg);
  s.add_enum("wmf.solver", "cg", {"cg", "cholesky"}, "ALS least-squares solver");
  s.add_int("wmf.cg_steps", 3, "conjugate-gradient steps per row and half-iteration", pos);
  s.add_int("wmf.seed", 0, "seed of the initial factors", nonneg);

  s.add_enum("features.kind", "tfidf", {"none", "tfidf", "word2vec", "bert"}, "content encoding (anime2vec)");
  s.add_strings("features.fields", {"synopsis"},
                "text fields: synopsis, reviews, rec_texts, title, genres, themes, studios");
  s.add_bool("features.metadata", true, "append metadata features (members, favorites, score, type, genres, ...)");
  s.add_int("features.svd_dims", 300, "TF-IDF -> randomized SVD to this many dims (0 = dense TF-IDF)", nonneg);
  s.add_bool("features.standardize", true, "z-score the text block's columns");
  s.add_double("features.tfidf.min_df", 2, "minimum document frequency (>= 1: count, < 1: fraction)", nonneg);
  s.add_double("features.tfidf.max_df", 0.5, "maximum document frequency (> 1: count, <= 1: fraction)", nonneg);
  s.add_int("features.tfidf.max_features", 0, "vocabulary cap by corpus frequency (0 = none)", nonneg);
  s.add_bool("features.tfidf.sublinear_tf", true, "tf -> 1 + log(tf)");
  s.add_bool("features.stop_words", true, "drop English stop words");
  s.add_int("features.word2vec.dim", 100, "word2vec vector size", pos);
  s.add_int("features.word2vec.window", 5, "word2vec context window", pos);
  s.add_int("features.word2vec.negative", 5, "negative samples per positive", pos);
  s.add_int("features.word2vec.epochs", 5, "passes over the corpus", pos);
  s.add_int("features.word2vec.min_count", 5, "drop words rarer than this", pos);
  s.add_bool("features.word2vec.tfidf_weighted", false, "document vector: TF-IDF-weighted mean");
  s.add_string("features.bert.model_dir", "",
               "bert: HF BERT or DistilBERT model directory ('' = all-MiniLM-L6-v2 from "
               "scripts/fetch_minilm.sh)");
  s.add_int("features.bert.max_length", 256, "bert: tokens per anime text incl. [CLS]/[SEP]", {2, std::nullopt});
  s.add_int("features.bert.batch_size", 32, "bert: texts per encoder batch", pos);
  s.add_enum("features.bert.pooling", "mean", {"mean", "cls"}, "bert: mean over tokens or the [CLS] state");
  s.add_bool("features.bert.normalize", true, "bert: L2-normalize each anime vector");
  s.add_int("features.bert.finetune_layers", 0,
            "bert: train the last K encoder layers inside DropoutNet (0 = static features)", nonneg);
  s.add_bool("features.bert.user_grad", true,
             "bert fine-tuning: phi^U encoded with gradient at every step (false: from the content at epoch start)");
  s.add_bool("features.bert.prefix_cache", true,
             "bert fine-tuning: keep the frozen layers' outputs in features.cache_dir (GBs: real tokens "
             "x hidden floats) so later runs of the same model and texts skip computing them");
  s.add_double("features.bert.lr", 1e-4, "bert fine-tuning: learning rate of the BERT layers", nonneg);
  s.add_double("features.bert.weight_decay", 0.0, "bert fine-tuning: weight decay of the BERT layers", nonneg);
  s.add_enum("features.bert.schedule", "constant", {"constant", "exponential", "linear"},
             "bert fine-tuning: lr schedule of the BERT layers, stepped per epoch (DropoutNet keeps train.scheduler)");
  s.add_double("features.bert.gamma", 0.9, "bert fine-tuning: exponential decay factor per epoch", nonneg);
  s.add_int("features.bert.decay_epochs", 50, "bert fine-tuning: linear schedule reaches 0 at this epoch", pos);
  s.add_string("features.cache_dir", "runs/cache", "where features and WMF factors are cached by config");

  s.add_ints("model.pref_hidden", {}, "hidden widths of f_U / f_V (with pref_out = 0: no tower)");
  s.add_int("model.pref_out", 0, "output width of f_U / f_V (0 = inputs enter the concat unchanged)", nonneg);
  s.add_ints("model.content_hidden", {}, "hidden widths of f_phiU / f_phiV");
  s.add_int("model.content_out", 0, "output width of f_phiU / f_phiV (0 = no tower)", nonneg);
  s.add_ints("model.hidden", {800, 400}, "hidden widths after the concatenation (paper: module depth)");
  s.add_int("model.rank_out", 200, "width of the output embeddings U^, V^", pos);
  s.add_enum("model.activation", "tanh", {"none", "tanh", "relu", "gelu", "sigmoid"}, "hidden activation");
  s.add_bool("model.batch_norm", true, "BatchNorm1d after each hidden Linear");
  s.add_double("model.dropout", 0.0, "dropout after each hidden activation", unit);
  s.add_enum("model.init", "truncated_normal", {"truncated_normal", "torch_default"}, "weight init");
  s.add_double("model.init_std", 0.01, "std of the truncated-normal init", nonneg);
  s.add_bool("model.user_content", true, "use phi^U (mean content of the user's anime)");
  s.add_bool("model.use_pref", true,
             "feed the WMF vectors U, V (false: each side is final(content) alone, e.g. BERT -> Linear -> dot)");
  s.add_int("model.user_content_top_n", 0, "phi^U over the user's top-N rated anime (0 = all)", nonneg);

  s.add_enum("graph.conv", "none", {"none", "gcn", "gine"},
             "graph-augmented content: phi = [content || GNN over the recommendation graph]");
  s.add_enum("graph.node_init", "content", {"content", "onehot"},
             "GNN node input: the content features, or a learned embedding per anime");
  s.add_int("graph.onehot_dim", 64, "onehot: width of the learned node embedding", pos);
  s.add_ints("graph.hidden", {64}, "widths of the hidden GNN layers (ReLU after each)");
  s.add_int("graph.out_dim", 64, "width of the graph embedding G appended to the content", pos);
  s.add_double("graph.dropout", 0.0, "dropout on each GNN layer's input", {0, 0.99});
  s.add_bool("graph.improved", false, "gcn: self-loop weight 2 instead of 1");
  s.add_bool("graph.train_eps", false, "gine: train epsilon");
  s.add_bool("graph.layer_norm", false, "LayerNorm on the graph embedding (keeps GINE's degree-sized sums in range)");
  s.add_enum("graph.weight", "log1p", {"count", "log1p", "binary"},
             "edge weight from the number of user recommendations: count, ln(1 + count) or 1");
  s.add_int("graph.edge_text_dims", 16, "gine edge features: recommendation-text TF-IDF -> SVD dims", nonneg);
  s.add_bool("graph.train", true, "train the GNN end to end (false: keep its initial weights, G computed once)");
  s.add_double("graph.lr", 0.0, "learning rate of the GNN (0 = train.lr)", nonneg);
  s.add_double("graph.weight_decay", 0.0, "weight decay of the GNN", nonneg);

  s.add_int("train.epochs", 10, "training epochs", pos);
  s.add_int("train.batch_size", 1024, "pairs per forward/backward batch", pos);
  s.add_int("train.accumulate", 1, "batches whose gradients are summed per optimizer step", pos);
  s.add_enum("train.optimizer", "sgd", {"sgd", "adam", "adamw"}, "optimizer");
  s.add_double("train.lr", 0.005, "learning rate", nonneg);
  s.add_double("train.momentum", 0.9, "SGD momentum", unit);
  s.add_double("train.weight_decay", 0.0, "weight decay", nonneg);
  s.add_enum("train.scheduler", "constant", {"constant", "step", "exponential", "linear"},
             "learning-rate schedule, stepped per epoch");
  s.add_int("train.step_size", 10, "step schedule: epochs between decays", pos);
  s.add_double("train.gamma", 0.1, "step/exponential schedule: decay factor", nonneg);
  s.add_double("train.dropout_p", 0.5, "input dropout: fraction of rows with V -> 0 and U transformed", unit);
  s.add_enum("train.user_input", "transform", {"keep", "zero", "transform"},
             "what input dropout does to U: transform = mean of V over the user's anime");
  s.add_enum("train.sampling", "top_random", {"top_random", "threshold"},
             "pairs per epoch: top-N + N random per user, or the paper's threshold strategy");
  s.add_int("train.top_n", 100, "top_random: top items per user by WMF score", nonneg);
  s.add_int("train.random_n", 100, "top_random: random items per user", nonneg);
  s.add_double("train.threshold_lo", -0.1, "threshold: keep pairs with U.V below this ...", {});
  s.add_double("train.threshold_hi", 0.1, "threshold: ... or above this", {});
  s.add_int("train.pairs_per_epoch", 0, "threshold: pairs per epoch (0 = all kept)", nonneg);
  s.add_string("train.select_metric", "recall@50", "validation metric that picks the best epoch");

  s.add_ints("eval.ks", {5, 10, 20, 50, 100}, "cut-offs K of the metrics");
  s.add_int("eval.seed_k", 5, "K of the seed paper's recall metrics", pos);
  s.add_int("eval.sample_users", 100, "users sampled for the seed paper's metrics", pos);
  s.add_int("eval.sample_items", 100, "anime sampled for the seed paper's metrics", pos);
  s.add_int("eval.seed", 0, "seed of that sampling", nonneg);
  s.add_double("eval.blend_weight", 0.5, "weight of content-kNN in the content-kNN + members blend", unit);

  s.add_string("run.dir", "runs", "parent folder of run folders");
  s.add_int("run.checkpoint_every", 1, "epochs between resumable checkpoints", pos);
  return s;
}

}  // namespace dan::apps
