// DropoutNet (Volkovs, Yu, Poutanen, NIPS 2017) as used by DeepAniNet: two sides (users,
// items), each [f_pref(WMF vector) || f_content(content)] -> final MLP -> rank_out, scored by a
// dot product and trained to reconstruct the WMF relevance U_u . V_v; plus the training-time
// input transforms (item dropout, user dropout/transform), the per-user means they need, batch
// assembly from the sampler's pairs and the train/eval loops. See models/dropoutnet/README.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "layers/mlp.h"
#include "layers/optim/optimizer.h"
#include "recsys/csr.h"
#include "recsys/sampler.h"

namespace dan::dropoutnet {

// ---- the model ----------------------------------------------------------------------------

enum class Init {
  truncated_normal,  // the reference: Linear weights ~ N(0, init_std) truncated at 2 std, biases 0
  torch_default,     // the core's Linear init (U(+-1/sqrt(in)) for weight and bias)
};
// "truncated_normal" | "default"; anything else is an error naming the accepted values.
Init parse_init(const std::string& s);

// One tower (f_U, f_V, f_phiU or f_phiV): an MLP in -> hidden... -> out_dim.
struct TowerConfig {
  std::vector<int64_t>
      hidden;           // hidden widths; empty = a single Linear (the paper's "single layer")
  int64_t out_dim = 0;  // 0 = no tower: the input enters the concatenation unchanged
};

struct DropoutNetConfig {
  int64_t rank_in = 0;           // r: width of the WMF inputs U_u and V_v
  int64_t user_content_dim = 0;  // width of phi^U (used when use_user_content)
  int64_t item_content_dim = 0;  // width of phi^V (used when use_item_content)
  bool use_user_content = true;
  bool use_item_content = true;
  // false: the WMF inputs are ignored and each side is final(content) alone — with one Linear
  // as the final module this is the paper's "BERT -> Linear -> dot product" (Fig. 7). Both
  // contents must then be used.
  bool use_pref = true;
  TowerConfig pref_tower;     // f_U and f_V (same shape, separate weights)
  TowerConfig content_tower;  // f_phiU and f_phiV
  // The final module per side on the concatenation: hidden widths, then a Linear to rank_out.
  std::vector<int64_t> final_hidden = {800, 400};
  int64_t rank_out = 200;
  Activation activation = Activation::tanh;            // after every hidden Linear (and its BN)
  Activation tower_out_activation = Activation::none;  // after a tower's output Linear
  bool batch_norm = true;  // BatchNorm1d after every hidden Linear (eps 1e-5, momentum 0.1)
  double dropout = 0.0;    // nn dropout after every hidden activation (not the input dropout)
  Init init = Init::truncated_normal;
  double init_std = 0.01;
};

// The output embeddings of one batch: U_hat [B, rank_out], V_hat [B, rank_out].
struct Embeddings {
  Tensor U_hat, V_hat;
};

// Children, in registration order (state_dict names): user_pref, user_content, user_final,
// item_pref, item_content, item_final; a tower is absent when its out_dim is 0 (or its content
// is unused). Each is a core MLP, so names inside follow torch.nn.Sequential ("0.weight", ...).
class DropoutNet : public Module {
 public:
  // Linear weights are drawn from `gen` in registration order (then re-drawn by `init`).
  explicit DropoutNet(const DropoutNetConfig& cfg, Generator& gen = default_generator());
  std::string type_name() const override { return "DropoutNet"; }
  const DropoutNetConfig& config() const { return cfg_; }
  using Module::forward;

  // Uin [B, r], Vin [B, r], phiU [B, dU], phiV [B, dV] (a phi may be undefined when its
  // content is unused) -> (U_hat, V_hat), recorded on the tape in the current mode.
  Embeddings forward(const Tensor& Uin, const Tensor& Vin, const Tensor& phiU, const Tensor& phiV);
  Tensor user_embedding(const Tensor& Uin, const Tensor& phiU);
  Tensor item_embedding(const Tensor& Vin, const Tensor& phiV);
  // Row-wise U_hat . V_hat -> [B].
  Tensor score(const Tensor& Uin, const Tensor& Vin, const Tensor& phiU, const Tensor& phiV);
  // mean over the batch of (target - score)^2; target [B].
  Tensor loss(const Tensor& Uin, const Tensor& Vin, const Tensor& phiU, const Tensor& phiV,
              const Tensor& target);

  // Inference: eval mode (restored afterwards), no grad, `chunk` rows at a time; the result
  // [N, rank_out] lets a caller score every candidate with one GEMM, U_hat V_hat^T.
  Tensor encode_users(const Tensor& Uin, const Tensor& phiU, int64_t chunk = 4096);
  Tensor encode_items(const Tensor& Vin, const Tensor& phiV, int64_t chunk = 4096);

 private:
  Tensor side(const std::shared_ptr<MLP>& pref, const std::shared_ptr<MLP>& content,
              const std::shared_ptr<MLP>& final, bool use_content, int64_t content_dim,
              const Tensor& x, const Tensor& phi, const char* who);
  Tensor encode(bool users, const Tensor& x, const Tensor& phi, int64_t chunk);

  DropoutNetConfig cfg_;
  std::shared_ptr<MLP> user_pref_, user_content_, user_final_;
  std::shared_ptr<MLP> item_pref_, item_content_, item_final_;
};

// Row-wise dot product of two [B, D] tensors -> [B] (differentiable).
Tensor rowwise_dot(const Tensor& a, const Tensor& b);

// Fills t in place with N(0, std) truncated to (-2 std, 2 std): out-of-range draws are redrawn
// (as TensorFlow's truncated_normal_initializer, which the reference uses).
void init_truncated_normal_(const Tensor& t, double std, Generator& gen = default_generator());

// ---- per-user inputs -----------------------------------------------------------------------

// Row u = mean of table's rows over the items of user u (user_items is users x items, its
// columns index table's rows). top_n > 0 keeps only the user's top_n items by value (ties:
// lower column first); top_n <= 0 uses all. A user without items gets a zero row. Computed on
// the host in double, not recorded on the tape.
Tensor user_mean(const recsys::Csr& user_items, const Tensor& table, int top_n = 0);
// phi^U_u: mean of phi^V over the user's train items, or over its top_n rated (the paper used 5
// for BERT features); user_items_scores holds the ratings as values.
Tensor user_content(const recsys::Csr& user_items_scores, const Tensor& phiV_train_items,
                    int top_n);
// The user transform's target: mean of V over the user's train items.
Tensor user_transform(const recsys::Csr& user_items, const Tensor& V);

// ---- training-time input transforms --------------------------------------------------------

// What the rows chosen for the user transform receive as U_u.
enum class UserInput {
  keep,       // nothing (no user rows are chosen)
  zero,       // user dropout: U_u -> 0 (the reference implementation)
  transform,  // U_u -> mean of V over the user's train items (the DeepAniNet paper)
};
// "keep" | "zero" | "transform".
UserInput parse_user_input(const std::string& s);

struct InputDropoutConfig {
  double p = 0.5;            // dropout_p: fraction of each batch's rows that is transformed
  bool item_dropout = true;  // floor(p B) rows get V_v -> 0
  UserInput user = UserInput::transform;  // floor(p B) rows, chosen independently, get this
  uint64_t seed = 0;
};

// The rows of a batch of `rows` rows chosen for item dropout and for the user input: each a
// uniform floor(p rows)-subset (without replacement), the two drawn independently from Philox
// streams keyed by (seed, epoch, batch), so a batch's choice depends on nothing else.
struct TransformRows {
  std::vector<int32_t> item_rows, user_rows;
};
TransformRows choose_transform_rows(int64_t rows, const InputDropoutConfig& cfg, uint64_t epoch,
                                    uint64_t batch);

// Per-user and per-item input tables, all f32 on one device, rows indexed like the pairs.
struct Tables {
  Tensor U;            // [users, r] WMF user vectors as the model sees them (e.g. standardized)
  Tensor V;            // [items, r]
  Tensor U_transform;  // [users, r] (user_transform(...)); needed for UserInput::transform
  Tensor phiU;         // [users, dU]; undefined if the model uses no user content
  Tensor phiV;         // [items, dV]; may require grad (a trained encoder's output)
};

// One training batch: the model's four inputs and the target relevances.
struct Batch {
  Tensor Uin, Vin, phiU, phiV, target;
};

// Assembles batches: one gather (index_select) per input from tables extended once with the
// transform rows and a zero row, so dropout and the transform are just different row indices.
class BatchMaker {
 public:
  BatchMaker(const Tables& tables, const InputDropoutConfig& cfg);

  // Rows of the extended tables that row i of the batch reads: u[i] indexes [U; U_transform; 0]
  // (or [U; 0] without transform), v[i] indexes [V; 0].
  struct Rows {
    std::vector<int32_t> u, v;
  };
  Rows rows(const int32_t* users, const int32_t* items, int64_t n, uint64_t epoch,
            uint64_t batch) const;
  Batch make(const int32_t* users, const int32_t* items, const float* targets, int64_t n,
             uint64_t epoch, uint64_t batch) const;
  // Pairs [begin, end) of an epoch as batch number `batch`.
  Batch make(const recsys::Pairs& pairs, int64_t begin, int64_t end, uint64_t epoch,
             uint64_t batch) const;
  // A batch from precomputed extended-table rows (a replayed or hand-made batch).
  Batch make_from_rows(const Rows& r, const int32_t* users, const int32_t* items,
                       const float* targets, int64_t n) const;

  const Tensor& U_extended() const { return U_ext_; }
  const Tensor& V_extended() const { return V_ext_; }
  const InputDropoutConfig& config() const { return cfg_; }
  int64_t num_users() const { return num_users_; }
  int64_t num_items() const { return num_items_; }

 private:
  InputDropoutConfig cfg_;
  int64_t num_users_ = 0, num_items_ = 0;
  Tensor U_ext_, V_ext_, phiU_, phiV_;
};

// ---- training and evaluation loops ---------------------------------------------------------

// zero_grad, loss, backward, step; returns the batch loss.
double train_step(DropoutNet& model, Optimizer& opt, const Batch& b);

struct EpochResult {
  double mean_loss = 0;  // pair-weighted mean of the batch losses
  int64_t batches = 0, pairs = 0;
};
// One pass over `pairs` in batches of batch_size (the last may be smaller; a last batch of
// one row is skipped when the model has batch norm, which needs two). on_batch (may be
// empty) sees (batch index, loss) after each step.
EpochResult train_epoch(DropoutNet& model, Optimizer& opt, const BatchMaker& maker,
                        const recsys::Pairs& pairs, int64_t batch_size, uint64_t epoch,
                        const std::function<void(int64_t, double)>& on_batch = {});
// Mean squared error over `pairs` in eval mode without grad (the maker's transforms apply:
// build it with p = 0 for plain inputs, or with zero V rows for cold items).
double evaluate_loss(DropoutNet& model, const BatchMaker& maker, const recsys::Pairs& pairs,
                     int64_t batch_size = 4096);

}  // namespace dan::dropoutnet
