// DropoutNet: model construction and forward, truncated-normal init, per-user means, the
// Philox-keyed input transforms, batch assembly and the train/eval loops.
#include "models/dropoutnet/dropoutnet.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/philox.h"
#include "kernels/kernels.h"
#include "layers/linear.h"

namespace dan::dropoutnet {

namespace {

// Stream numbers of the transform choices (recsys::stream_key's third argument); batches use
// disjoint stream numbers above these.
constexpr uint64_t kStreamItemRows = 0x1000;
constexpr uint64_t kStreamUserRows = 0x1001;

std::shared_ptr<MLP> make_mlp(int64_t in, const std::vector<int64_t>& hidden, int64_t out,
                              const DropoutNetConfig& c, Activation final_act, Generator& gen) {
  MLPConfig m;
  m.in_dim = in;
  m.hidden = hidden;
  m.out_dim = out;
  m.activation = c.activation;
  m.batch_norm = c.batch_norm;
  m.dropout = c.dropout;
  m.final_activation = final_act;
  return std::make_shared<MLP>(m, gen);
}

void check_config(const DropoutNetConfig& c) {
  DAN_CHECK(c.rank_in > 0, "DropoutNet: rank_in must be > 0, got {}", c.rank_in);
  DAN_CHECK(c.rank_out > 0, "DropoutNet: rank_out must be > 0, got {}", c.rank_out);
  DAN_CHECK(!c.use_user_content || c.user_content_dim > 0,
            "DropoutNet: use_user_content needs user_content_dim > 0, got {}", c.user_content_dim);
  DAN_CHECK(!c.use_item_content || c.item_content_dim > 0,
            "DropoutNet: use_item_content needs item_content_dim > 0, got {}", c.item_content_dim);
  DAN_CHECK(c.pref_tower.out_dim >= 0 && c.content_tower.out_dim >= 0,
            "DropoutNet: tower out_dim must be >= 0 (0 = no tower), got pref {} and content {}",
            c.pref_tower.out_dim, c.content_tower.out_dim);
  DAN_CHECK(c.pref_tower.out_dim > 0 || c.pref_tower.hidden.empty(),
            "DropoutNet: pref_tower has hidden widths [{}] but out_dim 0 (no tower)",
            fmt::join(c.pref_tower.hidden, ", "));
  DAN_CHECK(c.content_tower.out_dim > 0 || c.content_tower.hidden.empty(),
            "DropoutNet: content_tower has hidden widths [{}] but out_dim 0 (no tower)",
            fmt::join(c.content_tower.hidden, ", "));
  DAN_CHECK(c.init_std > 0, "DropoutNet: init_std must be > 0, got {}", c.init_std);
  DAN_CHECK(c.use_pref || (c.use_user_content && c.use_item_content),
            "DropoutNet: use_pref = false needs both user and item content (each side is "
            "final(content) alone)");
  DAN_CHECK(c.use_pref || c.pref_tower.out_dim == 0,
            "DropoutNet: use_pref = false leaves no input for the pref tower (out_dim {})",
            c.pref_tower.out_dim);
}

// Every Linear under m, pre-order (registration order).
void collect_linears(const Module& m, std::vector<const Linear*>& out) {
  for (const auto& [name, child] : m.children()) {
    if (const auto* lin = dynamic_cast<const Linear*>(child.get())) out.push_back(lin);
    collect_linears(*child, out);
  }
}

// Restores a module's training mode when it goes out of scope.
class ModeRestore {
 public:
  explicit ModeRestore(Module& m) : m_(m), was_training_(m.is_training()) {}
  ~ModeRestore() { m_.train(was_training_); }
  ModeRestore(const ModeRestore&) = delete;
  ModeRestore& operator=(const ModeRestore&) = delete;

 private:
  Module& m_;
  bool was_training_;
};

void check_input(const Tensor& t, int64_t width, const char* who, const char* name) {
  DAN_CHECK(t.defined(), "{}: input {} is undefined", who, name);
  DAN_CHECK(t.dim() == 2 && t.size(1) == width, "{}: input {} must be [B, {}], got {}", who, name,
            width, shape_str(t.shape()));
  DAN_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64,
            "{}: input {} must be floating, got {}", who, name, t.dtype());
}

// Uniform k-subset of [0, n) from Philox stream `key`: a partial Fisher-Yates shuffle.
std::vector<int32_t> choose_subset(int64_t n, int64_t k, uint64_t key) {
  std::vector<int32_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = 0; i < k; ++i) {
    const auto j = i + static_cast<int64_t>(recsys::uniform_below(key, static_cast<uint64_t>(i),
                                                                  static_cast<uint64_t>(n - i)));
    std::swap(perm[i], perm[j]);
  }
  perm.resize(static_cast<size_t>(k));
  std::sort(perm.begin(), perm.end());
  return perm;
}

Tensor index_tensor(const int32_t* p, int64_t n) {
  Tensor t = raw::empty({n}, DType::i32);
  std::copy_n(p, n, t.data<int32_t>());
  return t;
}

}  // namespace

// ---- model --------------------------------------------------------------------------------

Init parse_init(const std::string& s) {
  if (s == "truncated_normal") return Init::truncated_normal;
  if (s == "default") return Init::torch_default;
  fail("DropoutNet: unknown init '{}' (expected truncated_normal or default)", s);
}

void init_truncated_normal_(const Tensor& t, double std, Generator& gen) {
  NoGradGuard no_grad;
  DAN_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64,
            "init_truncated_normal_: tensor must be floating, got {}", t.dtype());
  // Draw on the host (the draws are Philox, identical on every device), then copy over.
  const bool wide = t.dtype() == DType::f64;
  const int64_t n = t.numel();
  Tensor host = raw::empty(t.shape(), t.dtype());
  Tensor redraw = raw::empty(t.shape(), t.dtype());
  init_normal_(host, 0.0, 1.0, gen);
  const auto fix = [&]<typename T>() {
    T* h = host.data<T>();
    const T* r = redraw.data<T>();
    // Each round redraws the whole tensor and takes the new value where the old one is out of
    // range; P(out of range) = 4.6%, so a few rounds suffice (a last clamp guards the tail).
    for (int round = 0; round < 32; ++round) {
      bool bad = false;
      for (int64_t i = 0; i < n && !bad; ++i) bad = std::abs(h[i]) >= T(2);
      if (!bad) break;
      kernels::normal_(redraw, gen.seed(), gen.reserve(philox::blocks_for(n, wide)), 0.0, 1.0);
      for (int64_t i = 0; i < n; ++i) {
        if (std::abs(h[i]) >= T(2)) h[i] = r[i];
      }
    }
    for (int64_t i = 0; i < n; ++i) h[i] = std::clamp(h[i], T(-2), T(2)) * static_cast<T>(std);
  };
  if (wide) {
    fix.template operator()<double>();
  } else {
    fix.template operator()<float>();
  }
  raw::copy_(t, host.device() == t.device() ? host : raw::contiguous_copy(host, t.device()));
}

DropoutNet::DropoutNet(const DropoutNetConfig& cfg, Generator& gen) : cfg_(cfg) {
  check_config(cfg);
  const auto build_side = [&](const char* who, int64_t content_dim, bool use_content,
                              std::shared_ptr<MLP>& pref, std::shared_ptr<MLP>& content,
                              std::shared_ptr<MLP>& final) {
    const std::string w = who;
    int64_t concat = 0;
    if (!cfg.use_pref) {
      // no preference part
    } else if (cfg.pref_tower.out_dim > 0) {
      pref = register_module(
          w + "_pref", make_mlp(cfg.rank_in, cfg.pref_tower.hidden, cfg.pref_tower.out_dim, cfg,
                                cfg.tower_out_activation, gen));
      concat += cfg.pref_tower.out_dim;
    } else {
      concat += cfg.rank_in;
    }
    if (use_content) {
      if (cfg.content_tower.out_dim > 0) {
        content = register_module(w + "_content", make_mlp(content_dim, cfg.content_tower.hidden,
                                                           cfg.content_tower.out_dim, cfg,
                                                           cfg.tower_out_activation, gen));
        concat += cfg.content_tower.out_dim;
      } else {
        concat += content_dim;
      }
    }
    final = register_module(
        w + "_final", make_mlp(concat, cfg.final_hidden, cfg.rank_out, cfg, Activation::none, gen));
  };
  build_side("user", cfg.user_content_dim, cfg.use_user_content, user_pref_, user_content_,
             user_final_);
  build_side("item", cfg.item_content_dim, cfg.use_item_content, item_pref_, item_content_,
             item_final_);
  if (cfg.init == Init::truncated_normal) {
    NoGradGuard no_grad;
    std::vector<const Linear*> linears;
    collect_linears(*this, linears);
    for (const Linear* l : linears) {
      init_truncated_normal_(l->weight(), cfg.init_std, gen);
      if (l->bias().defined()) fill_(l->bias(), 0.0);
    }
  }
}

Tensor DropoutNet::side(const std::shared_ptr<MLP>& pref, const std::shared_ptr<MLP>& content,
                        const std::shared_ptr<MLP>& final, bool use_content, int64_t content_dim,
                        const Tensor& x, const Tensor& phi, const char* who) {
  std::vector<Tensor> parts;
  if (cfg_.use_pref) {
    check_input(x, cfg_.rank_in, who, "preference vectors");
    parts.push_back(pref ? pref->forward(x) : x);
  }
  if (use_content) {
    check_input(phi, content_dim, who, "content");
    DAN_CHECK(!cfg_.use_pref || phi.size(0) == x.size(0), "{}: {} preference rows but {} content rows",
              who, x.size(0), phi.size(0));
    parts.push_back(content ? content->forward(phi) : phi);
  }
  return final->forward(parts.size() == 1 ? parts[0] : cat(parts, 1));
}

Tensor DropoutNet::user_embedding(const Tensor& Uin, const Tensor& phiU) {
  return side(user_pref_, user_content_, user_final_, cfg_.use_user_content, cfg_.user_content_dim,
              Uin, phiU, "DropoutNet user side");
}

Tensor DropoutNet::item_embedding(const Tensor& Vin, const Tensor& phiV) {
  return side(item_pref_, item_content_, item_final_, cfg_.use_item_content, cfg_.item_content_dim,
              Vin, phiV, "DropoutNet item side");
}

Embeddings DropoutNet::forward(const Tensor& Uin, const Tensor& Vin, const Tensor& phiU,
                               const Tensor& phiV) {
  DAN_CHECK(Uin.defined() && Vin.defined() && Uin.dim() >= 1 && Vin.dim() >= 1 &&
                Uin.size(0) == Vin.size(0),
            "DropoutNet: Uin and Vin must have the same number of rows, got {} and {}",
            Uin.defined() ? shape_str(Uin.shape()) : "undefined",
            Vin.defined() ? shape_str(Vin.shape()) : "undefined");
  return {user_embedding(Uin, phiU), item_embedding(Vin, phiV)};
}

Tensor rowwise_dot(const Tensor& a, const Tensor& b) {
  DAN_CHECK(a.dim() == 2 && a.shape() == b.shape(),
            "rowwise_dot: expected two equal [B, D], got {} and {}", shape_str(a.shape()),
            shape_str(b.shape()));
  return sum(mul(a, b), {1});
}

Tensor DropoutNet::score(const Tensor& Uin, const Tensor& Vin, const Tensor& phiU,
                         const Tensor& phiV) {
  const Embeddings e = forward(Uin, Vin, phiU, phiV);
  return rowwise_dot(e.U_hat, e.V_hat);
}

Tensor DropoutNet::loss(const Tensor& Uin, const Tensor& Vin, const Tensor& phiU,
                        const Tensor& phiV, const Tensor& target) {
  const Tensor s = score(Uin, Vin, phiU, phiV);
  DAN_CHECK(target.defined() && target.shape() == s.shape(),
            "DropoutNet: target must be [{}] (one per row), got {}", s.size(0),
            target.defined() ? shape_str(target.shape()) : "undefined");
  return mse_loss(s, target);
}

Tensor DropoutNet::encode(bool users, const Tensor& x, const Tensor& phi, int64_t chunk) {
  const char* who = users ? "DropoutNet::encode_users" : "DropoutNet::encode_items";
  DAN_CHECK(chunk > 0, "{}: chunk must be > 0, got {}", who, chunk);
  check_input(x, cfg_.rank_in, who, "preference vectors");
  const bool use_content = users ? cfg_.use_user_content : cfg_.use_item_content;
  if (use_content) {
    DAN_CHECK(phi.defined() && phi.dim() == 2 && phi.size(0) == x.size(0),
              "{}: content must be [{}, d], got {}", who, x.size(0),
              phi.defined() ? shape_str(phi.shape()) : "undefined");
  }
  NoGradGuard no_grad;
  ModeRestore restore(*this);
  eval();
  const int64_t n = x.size(0);
  Tensor out = raw::empty({n, cfg_.rank_out}, x.dtype(), x.device());
  for (int64_t b = 0; b < n; b += chunk) {
    const int64_t len = std::min(chunk, n - b);
    const Tensor xs = x.narrow(0, b, len);
    const Tensor ps = use_content ? phi.narrow(0, b, len) : Tensor();
    const Tensor e = users ? user_embedding(xs, ps) : item_embedding(xs, ps);
    kernels::copy_(raw::slice(out, 0, b, b + len, 1), e);
  }
  return out;
}

Tensor DropoutNet::encode_users(const Tensor& Uin, const Tensor& phiU, int64_t chunk) {
  return encode(true, Uin, phiU, chunk);
}

Tensor DropoutNet::encode_items(const Tensor& Vin, const Tensor& phiV, int64_t chunk) {
  return encode(false, Vin, phiV, chunk);
}

// ---- per-user inputs -----------------------------------------------------------------------

Tensor user_mean(const recsys::Csr& user_items, const Tensor& table, int top_n) {
  user_items.validate("user_mean: user_items");
  DAN_CHECK(table.defined() && table.dim() == 2, "user_mean: table must be [items, d], got {}",
            table.defined() ? shape_str(table.shape()) : "undefined");
  DAN_CHECK(table.size(0) == user_items.cols,
            "user_mean: user_items has {} item columns but the table has {} rows", user_items.cols,
            table.size(0));
  const Tensor t = raw::cast(raw::contiguous_copy(table.detach(), Device::cpu()), DType::f64);
  const double* tp = t.data<double>();
  const int64_t d = table.size(1), users = user_items.rows;
  std::vector<double> out(static_cast<size_t>(users * d), 0.0);
#pragma omp parallel if (user_items.nnz() * d >= (1 << 15))
  {
    std::vector<int64_t> order;
#pragma omp for schedule(dynamic, 16)
    for (int64_t u = 0; u < users; ++u) {
      const int64_t b = user_items.indptr[u], e = user_items.indptr[u + 1];
      if (b == e) continue;
      order.resize(static_cast<size_t>(e - b));
      std::iota(order.begin(), order.end(), b);
      int64_t k = e - b;
      if (top_n > 0 && top_n < k) {
        // Columns are sorted within a row, so "lower column first" is "lower position first".
        std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
          return user_items.values[x] > user_items.values[y];
        });
        k = top_n;
      }
      double* o = out.data() + u * d;
      for (int64_t j = 0; j < k; ++j) {
        const double* row = tp + static_cast<int64_t>(user_items.indices[order[j]]) * d;
        for (int64_t c = 0; c < d; ++c) o[c] += row[c];
      }
      const double inv = 1.0 / static_cast<double>(k);
      for (int64_t c = 0; c < d; ++c) o[c] *= inv;
    }
  }
  return raw::cast(from_vector(out, {users, d}), table.dtype()).to(table.device());
}

Tensor user_content(const recsys::Csr& user_items_scores, const Tensor& phiV_train_items,
                    int top_n) {
  return user_mean(user_items_scores, phiV_train_items, top_n);
}

Tensor user_transform(const recsys::Csr& user_items, const Tensor& V) {
  return user_mean(user_items, V, 0);
}

// ---- training-time transforms --------------------------------------------------------------

UserInput parse_user_input(const std::string& s) {
  if (s == "keep") return UserInput::keep;
  if (s == "zero") return UserInput::zero;
  if (s == "transform") return UserInput::transform;
  fail("DropoutNet: unknown user input transform '{}' (expected keep, zero or transform)", s);
}

TransformRows choose_transform_rows(int64_t rows, const InputDropoutConfig& cfg, uint64_t epoch,
                                    uint64_t batch) {
  DAN_CHECK(cfg.p >= 0 && cfg.p <= 1, "input dropout: p must be in [0, 1], got {}", cfg.p);
  DAN_CHECK(rows >= 0 && rows <= INT32_MAX, "input dropout: bad batch size {}", rows);
  // The reference drops exactly floor(p B) rows (np.random.permutation(B)[:floor(p B)]).
  const auto k = static_cast<int64_t>(std::floor(cfg.p * static_cast<double>(rows)));
  TransformRows t;
  if (k == 0) return t;
  if (cfg.item_dropout) {
    t.item_rows = choose_subset(
        rows, k, recsys::stream_key(cfg.seed, epoch, kStreamItemRows + 2 * (batch + 1)));
  }
  if (cfg.user != UserInput::keep) {
    t.user_rows = choose_subset(
        rows, k, recsys::stream_key(cfg.seed, epoch, kStreamUserRows + 2 * (batch + 1)));
  }
  return t;
}

BatchMaker::BatchMaker(const Tables& t, const InputDropoutConfig& cfg) : cfg_(cfg) {
  DAN_CHECK(cfg.p >= 0 && cfg.p <= 1, "BatchMaker: p must be in [0, 1], got {}", cfg.p);
  DAN_CHECK(t.U.defined() && t.V.defined() && t.U.dim() == 2 && t.V.dim() == 2 &&
                t.U.size(1) == t.V.size(1),
            "BatchMaker: expected U [users, r] and V [items, r], got {} and {}",
            t.U.defined() ? shape_str(t.U.shape()) : "undefined",
            t.V.defined() ? shape_str(t.V.shape()) : "undefined");
  num_users_ = t.U.size(0);
  num_items_ = t.V.size(0);
  DAN_CHECK(2 * num_users_ + 1 <= INT32_MAX && num_items_ + 1 <= INT32_MAX,
            "BatchMaker: too many users/items for 32-bit row indices");
  const Tensor Ud = t.U.detach(), Vd = t.V.detach();
  const Tensor zero_row = zeros({1, t.U.size(1)}, t.U.dtype(), t.U.device());
  if (cfg.user == UserInput::transform) {
    DAN_CHECK(t.U_transform.defined() && t.U_transform.shape() == t.U.shape(),
              "BatchMaker: the user transform needs U_transform of U's shape {}, got {}",
              shape_str(t.U.shape()),
              t.U_transform.defined() ? shape_str(t.U_transform.shape()) : "undefined");
    U_ext_ = kernels::cat({Ud, t.U_transform.detach(), zero_row}, 0);
  } else {
    U_ext_ = kernels::cat({Ud, zero_row}, 0);
  }
  V_ext_ = kernels::cat({Vd, zeros({1, t.V.size(1)}, t.V.dtype(), t.V.device())}, 0);
  if (t.phiU.defined()) {
    DAN_CHECK(t.phiU.dim() == 2 && t.phiU.size(0) == num_users_,
              "BatchMaker: phiU must be [{} users, dU], got {}", num_users_,
              shape_str(t.phiU.shape()));
    phiU_ = t.phiU;
  }
  if (t.phiV.defined()) {
    DAN_CHECK(t.phiV.dim() == 2 && t.phiV.size(0) == num_items_,
              "BatchMaker: phiV must be [{} items, dV], got {}", num_items_,
              shape_str(t.phiV.shape()));
    phiV_ = t.phiV;
  }
}

BatchMaker::Rows BatchMaker::rows(const int32_t* users, const int32_t* items, int64_t n,
                                  uint64_t epoch, uint64_t batch) const {
  Rows r;
  r.u.resize(static_cast<size_t>(n));
  r.v.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    DAN_CHECK(users[i] >= 0 && users[i] < num_users_,
              "BatchMaker: user {} (batch row {}) is out of range for {} users", users[i], i,
              num_users_);
    DAN_CHECK(items[i] >= 0 && items[i] < num_items_,
              "BatchMaker: item {} (batch row {}) is out of range for {} items", items[i], i,
              num_items_);
    r.u[i] = users[i];
    r.v[i] = items[i];
  }
  const TransformRows t = choose_transform_rows(n, cfg_, epoch, batch);
  const auto zero_u = static_cast<int32_t>(U_ext_.size(0) - 1);
  for (int32_t i : t.user_rows) {
    r.u[i] =
        cfg_.user == UserInput::transform ? static_cast<int32_t>(users[i] + num_users_) : zero_u;
  }
  for (int32_t i : t.item_rows) r.v[i] = static_cast<int32_t>(num_items_);
  return r;
}

Batch BatchMaker::make_from_rows(const Rows& r, const int32_t* users, const int32_t* items,
                                 const float* targets, int64_t n) const {
  DAN_CHECK(static_cast<int64_t>(r.u.size()) == n && static_cast<int64_t>(r.v.size()) == n,
            "BatchMaker: {} and {} table rows for a batch of {}", r.u.size(), r.v.size(), n);
  Batch b;
  // Index vectors go to the tables' devices (host copies for CPU tables).
  const auto idx = [n](const int32_t* p, const Tensor& table) {
    const Tensor t = index_tensor(p, n);
    return table.device().is_cpu() ? t : t.to(table.device());
  };
  // Inputs from fixed tables do not take part in autograd: gather with the kernel directly.
  b.Uin = kernels::index_select(U_ext_, idx(r.u.data(), U_ext_));
  b.Vin = kernels::index_select(V_ext_, idx(r.v.data(), V_ext_));
  // Content may be a trained encoder's output: the differentiable gather records onto it.
  if (phiU_.defined()) b.phiU = index_select(phiU_, idx(users, phiU_));
  if (phiV_.defined()) b.phiV = index_select(phiV_, idx(items, phiV_));
  Tensor tg = raw::empty({n}, DType::f32);
  std::copy_n(targets, n, tg.data<float>());
  b.target = U_ext_.dtype() == DType::f32 ? tg : raw::cast(tg, U_ext_.dtype());
  if (!U_ext_.device().is_cpu()) b.target = b.target.to(U_ext_.device());
  return b;
}

Batch BatchMaker::make(const int32_t* users, const int32_t* items, const float* targets, int64_t n,
                       uint64_t epoch, uint64_t batch) const {
  return make_from_rows(rows(users, items, n, epoch, batch), users, items, targets, n);
}

Batch BatchMaker::make(const recsys::Pairs& pairs, int64_t begin, int64_t end, uint64_t epoch,
                       uint64_t batch) const {
  DAN_CHECK(0 <= begin && begin <= end && end <= pairs.size(),
            "BatchMaker: pair range [{}, {}) outside [0, {})", begin, end, pairs.size());
  return make(pairs.users.data() + begin, pairs.items.data() + begin, pairs.targets.data() + begin,
              end - begin, epoch, batch);
}

// ---- loops ---------------------------------------------------------------------------------

double train_step(DropoutNet& model, Optimizer& opt, const Batch& b) {
  opt.zero_grad();
  const Tensor loss = model.loss(b.Uin, b.Vin, b.phiU, b.phiV, b.target);
  loss.backward();
  opt.step();
  return loss.item();
}

EpochResult train_epoch(DropoutNet& model, Optimizer& opt, const BatchMaker& maker,
                        const recsys::Pairs& pairs, int64_t batch_size, uint64_t epoch,
                        const std::function<void(int64_t, double)>& on_batch) {
  DAN_CHECK(batch_size > 0, "train_epoch: batch_size must be > 0, got {}", batch_size);
  model.train();
  EpochResult r;
  double weighted = 0;
  const int64_t nb = pairs.num_batches(batch_size);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t begin = b * batch_size, end = std::min(pairs.size(), begin + batch_size);
    if (end - begin < 2 && model.config().batch_norm) continue;  // batch norm needs 2 rows
    const double loss =
        train_step(model, opt, maker.make(pairs, begin, end, epoch, static_cast<uint64_t>(b)));
    weighted += loss * static_cast<double>(end - begin);
    r.pairs += end - begin;
    ++r.batches;
    if (on_batch) on_batch(b, loss);
  }
  r.mean_loss = r.pairs > 0 ? weighted / static_cast<double>(r.pairs) : 0.0;
  return r;
}

double evaluate_loss(DropoutNet& model, const BatchMaker& maker, const recsys::Pairs& pairs,
                     int64_t batch_size) {
  DAN_CHECK(batch_size > 0, "evaluate_loss: batch_size must be > 0, got {}", batch_size);
  NoGradGuard no_grad;
  ModeRestore restore(model);
  model.eval();
  double sse = 0;
  for (int64_t begin = 0, b = 0; begin < pairs.size(); begin += batch_size, ++b) {
    const int64_t end = std::min(pairs.size(), begin + batch_size);
    const Batch x = maker.make(pairs, begin, end, 0, static_cast<uint64_t>(b));
    sse += model.loss(x.Uin, x.Vin, x.phiU, x.phiV, x.target).item() *
           static_cast<double>(end - begin);
  }
  return pairs.size() > 0 ? sse / static_cast<double>(pairs.size()) : 0.0;
}

}  // namespace dan::dropoutnet
