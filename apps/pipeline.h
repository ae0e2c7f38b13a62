// The DeepAniNet pipeline shared by `train`, `demo` and `recommend`: config -> data -> split ->
// WMF (cached) -> content features (cached) -> DropoutNet inputs, and evaluation of a trained
// model on cold anime beside the baselines.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "apps/finetune.h"
#include "apps/report.h"
#include "models/dropoutnet/dropoutnet.h"
#include "models/gnn/augment.h"
#include "models/text/features.h"
#include "recsys/config.h"
#include "recsys/eval.h"

namespace dan::apps {

struct Prepared {
  recsys::Dataset ds;
  recsys::Split split;
  recsys::Interactions inter;
  Tensor U, V;          // WMF factors: active users x r, train anime x r (CPU)
  text::ItemFeatures features;  // all anime x d (CPU)
  Tensor phiV_train;    // features of the train anime
  Tensor phiU;          // users x d: mean features of each user's train anime (top-N)
  Tensor U_transform;   // users x r: mean V of each user's train anime
  // graph.conv != none: the anime graph and the user averaging matrix for the graph part of phi^U.
  bool has_graph = false;
  gnn::AnimeGraph graph;
  SparseCsr user_mean;  // users x all anime
};

// The trained model: DropoutNet, plus the graph encoder when the run augments the content
// with a graph embedding (phi = [content || G]).
struct Model {
  std::shared_ptr<dropoutnet::DropoutNet> net;
  std::shared_ptr<gnn::GraphEncoder> graph;  // null without graph.conv
  // The run's encoder inputs (node features, graph, maps); valid while the Prepared lives.
  gnn::GraphInputs graph_inputs;
  bool graph_trained = true;  // false: the encoder keeps its initial weights (G computed once)
  // features.bert.finetune_layers > 0: the BERT layers trained inside DropoutNet (null otherwise).
  std::shared_ptr<TextInputs> text;

  // Optimizer groups: DropoutNet at train.lr, the graph encoder at graph.lr (when trained), the
  // fine-tuned BERT layers at features.bert.lr.
  std::vector<ParamGroup> param_groups(const recsys::Config& cfg) const;
  void to(Device d);
};

// DropoutNet (and the graph encoder) for this config and data, weights drawn from gen.
Model build_model(const recsys::Config& cfg, const Prepared& p, Generator& gen);

// The content the model sees: phi_all [all anime, d] and phiU [users, dU], the graph part
// computed by the encoder in eval mode without grad.
struct Content {
  Tensor phi_all, phiU;
};
Content model_content(Model& m, const Prepared& p);

// Loads everything a run needs. The split is read from / written to `split_path`.
Prepared prepare(const recsys::Config& cfg, const std::string& split_path);

recsys::ImplicitConfig implicit_config(const recsys::Config& cfg);
text::FeatureConfig feature_config(const recsys::Config& cfg);
dropoutnet::DropoutNetConfig model_config(const recsys::Config& cfg, int64_t rank_in, int64_t content_dim);
recsys::EvalConfig eval_config(const recsys::Config& cfg);
gnn::GraphConfig graph_config(const recsys::Config& cfg);
gnn::EncoderConfig encoder_config(const recsys::Config& cfg);

// WMF item vectors for anime outside the training set, folded in from their ratings by one
// exact item half-step against the trained U (what WMF would have given them): the target
// relevance U.V of cold anime for validation losses. `ratings`: users x items (scores).
Tensor fold_in_items(const Tensor& U, const recsys::Csr& ratings, const recsys::Config& cfg);

// The user input the model sees at evaluation: the WMF vector U, except after training with
// dropout_p = 1, where every training row had U transformed (or zeroed): then the same.
Tensor user_input(const Prepared& p, const recsys::Config& cfg);

// Model scores (users x candidate anime) for cold candidates (V input = 0).
Tensor cold_scores(Model& model, const Prepared& p, const recsys::Config& cfg,
                   const std::vector<int32_t>& items);
// The same with the model's content already computed (model_content).
Tensor cold_scores(Model& model, const Prepared& p, const recsys::Config& cfg,
                   const std::vector<int32_t>& items, const Content& c);

// The cold test table: random (expected), pop (members), content-kNN, content-kNN + members
// blend, and the model under `model_name` (or only the baselines when model is null).
Table cold_table(const Prepared& p, const recsys::Config& cfg, const std::vector<int32_t>& items,
                 const recsys::Csr& truth, Model* model, const std::string& model_name,
                 const std::string& protocol);

}  // namespace dan::apps
