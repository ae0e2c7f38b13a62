// The BERT modules and their forward passes, in the two forms of Kernels (fused ops or the
// composed chain), plus the sentence-embedding pooling helpers.
#include "models/bert/bert.h"

#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "kernels/kernels.h"

namespace dan::bert {

namespace {

// HF's BertPreTrainedModel._init_weights.
constexpr double kInitStd = 0.02;

// A child module `name` of `parent` holding weight [out, in] and bias [out].
Dense add_dense(Module& parent, const std::string& name, int64_t in, int64_t out, bool init,
                Generator& gen) {
  auto m = parent.register_module(name, std::make_shared<Group>("Linear"));
  Dense d;
  // Without init the values come from a checkpoint: no need to touch the memory twice.
  d.weight = m->register_parameter("weight", init ? zeros({out, in}) : empty({out, in}));
  d.bias = m->register_parameter("bias", init ? zeros({out}) : empty({out}));
  if (init) init_normal_(d.weight, 0.0, kInitStd, gen);
  return d;
}

// A child module `name` holding an embedding table weight [num, dim].
Tensor add_table(Module& parent, const std::string& name, int64_t num, int64_t dim, bool init,
                 Generator& gen) {
  auto m = parent.register_module(name, std::make_shared<Group>("Embedding"));
  Tensor w = m->register_parameter("weight", init ? zeros({num, dim}) : empty({num, dim}));
  if (init) init_normal_(w, 0.0, kInitStd, gen);
  return w;
}

// [B, T] integer ids in [0, bound): a clear error here beats index_select's generic one.
void check_ids(const Tensor& ids, int64_t bound, const char* what, int64_t b, int64_t t) {
  DAN_CHECK(ids.dtype() == DType::i32 || ids.dtype() == DType::i64,
            "BertModel: {} must be i32 or i64, got {}", what, ids.dtype());
  DAN_CHECK(ids.dim() == 2 && ids.size(0) == b && ids.size(1) == t,
            "BertModel: {} must be [{}, {}] like input_ids, got {}", what, b, t,
            shape_str(ids.shape()));
  if (!ids.device().is_cpu()) return;  // the CUDA gather checks its indices itself
  const Tensor c = ids.is_contiguous() ? ids : raw::contiguous_copy(ids, Device::cpu());
  DAN_DISPATCH_INDEX(c.dtype(), "BertModel", [&]<typename I>() {
    const I* p = static_cast<const I*>(c.raw_data());
    for (int64_t i = 0; i < c.numel(); ++i) {
      DAN_CHECK(p[i] >= 0 && p[i] < bound, "BertModel: {}[{}, {}] = {} is outside [0, {})", what,
                i / t, i % t, static_cast<int64_t>(p[i]), bound);
    }
  });
}

}  // namespace

// ---- embeddings -----------------------------------------------------------------------------

BertEmbeddings::BertEmbeddings(const BertConfig& cfg, bool init, Generator& gen)
    : dropout_p_(cfg.hidden_dropout_prob), pad_token_id_(cfg.pad_token_id) {
  const int64_t h = cfg.hidden_size;
  word_embeddings = add_table(*this, "word_embeddings", cfg.vocab_size, h, init, gen);
  position_embeddings =
      add_table(*this, "position_embeddings", cfg.max_position_embeddings, h, init, gen);
  token_type_embeddings =
      add_table(*this, "token_type_embeddings", cfg.type_vocab_size, h, init, gen);
  layer_norm = register_module("LayerNorm", std::make_shared<LayerNorm>(h, cfg.layer_norm_eps));
}

Tensor BertEmbeddings::forward(const Tensor& input_ids, const Tensor& token_type_ids,
                               Generator& gen) {
  const int64_t t = input_ids.size(1);
  // Positions are 0..T-1 in every row: a slice of the table broadcast over the batch, not a
  // gather (same values and gradient as HF's position_ids lookup).
  const Tensor& w = word_embeddings;
  Tensor words = embedding(w, input_ids);
  // HF's word embedding has padding_idx = pad_token_id: the pad row is looked up like any
  // other but never receives a gradient.
  if (grad_enabled() && w.requires_grad() && pad_token_id_ >= 0 && pad_token_id_ < w.size(0)) {
    const Tensor is_pad = kernels::compare_scalar(kernels::CompareOp::eq, input_ids,
                                                  static_cast<double>(pad_token_id_));
    words = where(is_pad.unsqueeze(-1), w.select(0, pad_token_id_).detach(), words);
  }
  Tensor x = words + position_embeddings.narrow(0, 0, t);
  if (token_type_ids.defined()) {
    x = x + embedding(token_type_embeddings, token_type_ids);
  } else {
    x = x + token_type_embeddings.select(0, 0);
  }
  return dropout(layer_norm->forward(x), dropout_p_, is_training(), gen);
}

// ---- one layer ------------------------------------------------------------------------------

BertLayer::BertLayer(const BertConfig& cfg, bool init, Generator& gen) : cfg_(cfg) {
  const int64_t h = cfg.hidden_size, inter = cfg.intermediate_size;
  auto attention = register_module("attention", std::make_shared<Group>("BertAttention"));
  auto self = attention->register_module("self", std::make_shared<Group>("BertSelfAttention"));
  query = add_dense(*self, "query", h, h, init, gen);
  key = add_dense(*self, "key", h, h, init, gen);
  value = add_dense(*self, "value", h, h, init, gen);
  auto attn_out = attention->register_module("output", std::make_shared<Group>("BertSelfOutput"));
  attn_out_dense = add_dense(*attn_out, "dense", h, h, init, gen);
  attn_out_norm =
      attn_out->register_module("LayerNorm", std::make_shared<LayerNorm>(h, cfg.layer_norm_eps));
  auto intermediate = register_module("intermediate", std::make_shared<Group>("BertIntermediate"));
  intermediate_dense = add_dense(*intermediate, "dense", h, inter, init, gen);
  auto out = register_module("output", std::make_shared<Group>("BertOutput"));
  out_dense = add_dense(*out, "dense", inter, h, init, gen);
  out_norm = out->register_module("LayerNorm", std::make_shared<LayerNorm>(h, cfg.layer_norm_eps));
}

Tensor BertLayer::attention(const Tensor& x, const Tensor& key_bias, int64_t b, int64_t t,
                            Kernels kernels, Generator& gen) {
  const int64_t nh = cfg_.num_attention_heads, dh = cfg_.head_dim(), h = cfg_.hidden_size;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  const double p = is_training() ? cfg_.attention_probs_dropout_prob : 0.0;
  if (kernels == Kernels::fused) {
    // One GEMM for q, k and v (their weights stacked), then the fused attention reads the
    // heads straight out of the packed [B, T, 3H] result.
    const Tensor w = cat({query.weight, key.weight, value.weight}, 0);
    const Tensor bias = cat({query.bias, key.bias, value.bias}, 0);
    const Tensor qkv = linear(x, w, bias).reshape({b, t, 3 * h});
    return dan::self_attention(qkv, key_bias, nh, scale, p, p > 0, gen).reshape({b * t, h});
  }
  const Tensor q = query(x), k = key(x), v = value(x);
  // [B*T, H] -> [B*nh, T, dh]: batched matmul wants the heads as one batch dim.
  auto heads = [&](const Tensor& z) {
    return z.reshape({b, t, nh, dh}).permute({0, 2, 1, 3}).reshape({b * nh, t, dh});
  };
  Tensor scores = matmul(heads(q), heads(k).transpose(1, 2)).reshape({b, nh, t, t}) * scale;
  if (key_bias.defined()) scores = scores + key_bias.reshape({b, 1, 1, t});
  const Tensor probs = dropout(softmax(scores), p, p > 0, gen);
  return matmul(probs.reshape({b * nh, t, t}), heads(v))
      .reshape({b, nh, t, dh})
      .permute({0, 2, 1, 3})
      .reshape({b * t, h});
}

Tensor BertLayer::forward(const Tensor& x, const Tensor& key_bias, int64_t b, int64_t t,
                          Kernels kernels, Generator& gen) {
  const double p = cfg_.hidden_dropout_prob;
  const bool train = is_training();
  const bool approx = cfg_.hidden_act == HiddenAct::gelu_tanh;
  const Tensor ctx = attention(x, key_bias, b, t, kernels, gen);
  if (kernels == Kernels::fused) {
    const Tensor a =
        add_layer_norm(dropout(attn_out_dense(ctx), p, train, gen), x, attn_out_norm->weight(),
                       attn_out_norm->bias(), cfg_.layer_norm_eps);
    // The intermediate bias goes into the GELU pass instead of a pass of its own.
    const Tensor inter =
        bias_gelu(linear(a, intermediate_dense.weight), intermediate_dense.bias, approx);
    return add_layer_norm(dropout(out_dense(inter), p, train, gen), a, out_norm->weight(),
                          out_norm->bias(), cfg_.layer_norm_eps);
  }
  const Tensor a = attn_out_norm->forward(dropout(attn_out_dense(ctx), p, train, gen) + x);
  const Tensor inter = gelu(intermediate_dense(a), approx);
  return out_norm->forward(dropout(out_dense(inter), p, train, gen) + a);
}

// ---- the model ------------------------------------------------------------------------------

BertModel::BertModel(const BertConfig& cfg, bool add_pooling_layer, Generator& gen,
                     bool init_weights)
    : cfg_(cfg), gen_(&gen) {
  cfg.validate();
  embeddings =
      register_module("embeddings", std::make_shared<BertEmbeddings>(cfg, init_weights, gen));
  auto encoder = register_module("encoder", std::make_shared<Group>("BertEncoder"));
  auto list = encoder->register_module("layer", std::make_shared<Group>("ModuleList"));
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    layers.push_back(list->register_module(std::to_string(i),
                                           std::make_shared<BertLayer>(cfg, init_weights, gen)));
  }
  if (add_pooling_layer) {
    auto pooler = register_module("pooler", std::make_shared<Group>("BertPooler"));
    pooler_dense_ =
        add_dense(*pooler, "dense", cfg.hidden_size, cfg.hidden_size, init_weights, gen);
  }
}

BertOutput BertModel::forward(const Tensor& input_ids, const Tensor& attention_mask,
                              const Tensor& token_type_ids) {
  DAN_CHECK(input_ids.defined() && input_ids.dim() == 2,
            "BertModel: input_ids must be [batch, seq], got {}",
            input_ids.defined() ? shape_str(input_ids.shape()) : "an undefined tensor");
  const int64_t b = input_ids.size(0), t = input_ids.size(1);
  DAN_CHECK(b > 0 && t > 0, "BertModel: input_ids {} is empty", shape_str(input_ids.shape()));
  DAN_CHECK(t <= cfg_.max_position_embeddings,
            "BertModel: sequence length {} exceeds max_position_embeddings {}", t,
            cfg_.max_position_embeddings);
  check_ids(input_ids, cfg_.vocab_size, "input_ids", b, t);
  if (token_type_ids.defined())
    check_ids(token_type_ids, cfg_.type_vocab_size, "token_type_ids", b, t);
  Tensor key_bias;
  if (attention_mask.defined()) {
    DAN_CHECK(
        attention_mask.dim() == 2 && attention_mask.size(0) == b && attention_mask.size(1) == t,
        "BertModel: attention_mask must be [{}, {}] like input_ids, got {}", b, t,
        shape_str(attention_mask.shape()));
    key_bias = extended_attention_mask(attention_mask, embeddings->layer_norm->weight().dtype())
                   .to(input_ids.device());
  }
  const int64_t h = cfg_.hidden_size;
  Tensor x = embeddings->forward(input_ids, token_type_ids, *gen_).reshape({b * t, h});
  for (const auto& layer : layers) x = layer->forward(x, key_bias, b, t, kernels_, *gen_);
  BertOutput out;
  out.last_hidden_state = x.reshape({b, t, h});
  if (has_pooler()) out.pooler_output = tanh(pooler_dense_(cls_pool(out.last_hidden_state)));
  return out;
}

Tensor BertModel::forward(const Tensor& input_ids) {
  return forward(input_ids, Tensor(), Tensor()).last_hidden_state;
}

void BertModel::freeze_all_but_last(int64_t k) {
  DAN_CHECK(k >= 0, "BertModel::freeze_all_but_last: k must be >= 0, got {}", k);
  const int64_t n = static_cast<int64_t>(layers.size());
  auto set = [](const Module& m, bool on) {
    for (Tensor p : m.parameters()) p.set_requires_grad(on);
  };
  set(*embeddings, false);
  for (int64_t i = 0; i < n; ++i) set(*layers[static_cast<size_t>(i)], i >= n - k);
  for (Tensor p : {pooler_dense_.weight, pooler_dense_.bias}) {
    if (p.defined()) p.set_requires_grad(true);
  }
}

void BertModel::unfreeze_all() {
  for (Tensor p : parameters()) p.set_requires_grad(true);
}

// ---- pooling ----------------------------------------------------------------------------------

Tensor cls_pool(const Tensor& hidden) {
  DAN_CHECK(hidden.dim() == 3, "cls_pool: expected [batch, seq, hidden], got {}",
            shape_str(hidden.shape()));
  return hidden.select(1, 0);
}

Tensor mean_pool(const Tensor& hidden, const Tensor& attention_mask) {
  DAN_CHECK(hidden.dim() == 3, "mean_pool: expected hidden [batch, seq, hidden], got {}",
            shape_str(hidden.shape()));
  DAN_CHECK(attention_mask.defined() && attention_mask.dim() == 2 &&
                attention_mask.size(0) == hidden.size(0) &&
                attention_mask.size(1) == hidden.size(1),
            "mean_pool: attention_mask must be [{}, {}], got {}", hidden.size(0), hidden.size(1),
            attention_mask.defined() ? shape_str(attention_mask.shape()) : "undefined");
  const Tensor m = kernels::cast(attention_mask, hidden.dtype()).to(hidden.device());
  const Tensor summed = sum(hidden * m.unsqueeze(-1), {1});
  const Tensor count = maximum(sum(m, {1}, true), full({}, 1e-9, hidden.dtype(), hidden.device()));
  return summed / count;
}

Tensor l2_normalize(const Tensor& x, double eps) {
  DAN_CHECK(x.dim() >= 1, "l2_normalize: expected at least 1 dim, got a scalar");
  const Tensor norm = sqrt(sum(square(x), {-1}, true));
  return x / maximum(norm, full({}, eps, x.dtype(), x.device()));
}

Tensor extended_attention_mask(const Tensor& attention_mask, DType dtype) {
  DAN_CHECK(is_floating(dtype), "extended_attention_mask: dtype must be floating, got {}", dtype);
  NoGradGuard no_grad;
  const double lowest = dtype == DType::f32
                            ? static_cast<double>(std::numeric_limits<float>::lowest())
                            : std::numeric_limits<double>::lowest();
  const Tensor m = kernels::cast(attention_mask, dtype);
  return kernels::binary_scalar(kernels::BinaryOp::mul,
                                kernels::binary_scalar(kernels::BinaryOp::sub, m, 1.0, true),
                                lowest, false);
}

}  // namespace dan::bert
