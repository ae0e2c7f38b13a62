#include "models/bert/text_encoder.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "recsys/config.h"

namespace dan::bert {

namespace {

// [n, T] i32 attention mask (1 for the first len tokens of each row) on the CPU.
Tensor length_mask(const std::vector<int32_t>& lengths, int64_t t) {
  const auto n = static_cast<int64_t>(lengths.size());
  std::vector<int32_t> m(static_cast<size_t>(n * t), 0);
  for (int64_t i = 0; i < n; ++i)
    std::fill_n(m.begin() + i * t, lengths[static_cast<size_t>(i)], 1);
  return from_vector(m, {n, t});
}

// FNV-1a 64 over every text's length and token ids.
uint64_t ids_hash(const std::vector<Encoding>& texts) {
  uint64_t h = recsys::fnv1a64("");
  auto mix = [&](const void* p, size_t n) {
    h = recsys::fnv1a64_continue(std::string_view(static_cast<const char*>(p), n), h);
  };
  for (const Encoding& e : texts) {
    const int64_t n = e.size();
    mix(&n, sizeof(n));
    mix(e.ids.data(), e.ids.size() * sizeof(int32_t));
  }
  return h;
}

}  // namespace

TextEncoder::TextEncoder(std::shared_ptr<BertModel> model, const std::vector<Encoding>& texts,
                         const TextEncoderConfig& cfg,
                         const std::function<void(int64_t, int64_t)>& on_batch)
    : model_(std::move(model)), cfg_(cfg) {
  DAN_CHECK(model_ != nullptr, "TextEncoder: no model");
  const auto layers = static_cast<int64_t>(model_->layers.size());
  DAN_CHECK(cfg.trainable_layers >= 1 && cfg.trainable_layers <= layers,
            "TextEncoder: trainable_layers must be in [1, {}] (the model's layers), got {}", layers,
            cfg.trainable_layers);
  DAN_CHECK(cfg.batch_size > 0, "TextEncoder: batch_size must be > 0, got {}", cfg.batch_size);
  hidden_ = model_->config().hidden_size;
  first_trainable_ = layers - cfg.trainable_layers;
  model_->freeze_all_but_last(cfg.trainable_layers);
  auto list = register_module("layer", std::make_shared<Group>("ModuleList"));
  for (int64_t i = first_trainable_; i < layers; ++i)
    list->register_module(std::to_string(i), model_->layers[static_cast<size_t>(i)]);

  const auto n = static_cast<int64_t>(texts.size());
  length_.resize(static_cast<size_t>(n));
  offset_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const Encoding& e = texts[static_cast<size_t>(i)];
    DAN_CHECK(e.size() > 0, "TextEncoder: text {} has no tokens (expected at least [CLS] [SEP])", i);
    DAN_CHECK(e.size() <= model_->config().max_position_embeddings,
              "TextEncoder: text {} has {} tokens, more than max_position_embeddings {}", i, e.size(),
              model_->config().max_position_embeddings);
    length_[static_cast<size_t>(i)] = static_cast<int32_t>(e.size());
    offset_[static_cast<size_t>(i)] = total_tokens_;
    total_tokens_ += e.size();
  }
  cache_.assign(static_cast<size_t>(total_tokens_ * hidden_), 0.0f);
  std::string key;
  if (!cfg.cache_dir.empty()) {
    key = fmt::format("bert-prefix-v1;{};frozen_layers={};texts={};ids={:016x}", cfg.model_key,
                      first_trainable_, n, ids_hash(texts));
    cache_file_ = (std::filesystem::path(cfg.cache_dir) /
                   fmt::format("bert-prefix-{:016x}.safetensors", recsys::fnv1a64(key)))
                      .string();
    if (load_cache(key)) {
      loaded_from_file_ = true;
      if (on_batch) on_batch(n, n);
      return;
    }
  }

  // The frozen prefix, longest texts first (little padding per batch).
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return length_[static_cast<size_t>(a)] > length_[static_cast<size_t>(b)];
  });
  NoGradGuard ng;
  const bool was = model_->is_training();
  model_->eval();
  const Device dev = model_->embeddings->word_embeddings.device();
  for (int64_t b = 0; b < n; b += cfg.batch_size) {
    const int64_t e = std::min(n, b + cfg.batch_size), rows = e - b;
    const int64_t t = length_[static_cast<size_t>(order[static_cast<size_t>(b)])];
    std::vector<int64_t> ids(static_cast<size_t>(rows * t), 0);
    std::vector<int32_t> lens(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const Encoding& enc = texts[static_cast<size_t>(order[static_cast<size_t>(b + r)])];
      lens[static_cast<size_t>(r)] = static_cast<int32_t>(enc.size());
      for (int64_t j = 0; j < enc.size(); ++j)
        ids[static_cast<size_t>(r * t + j)] = enc.ids[static_cast<size_t>(j)];
    }
    const Tensor input = from_vector(ids, {rows, t}).to(dev);
    const Tensor key_bias = extended_attention_mask(length_mask(lens, t), DType::f32).to(dev);
    Tensor x = model_->embeddings->forward(input, Tensor(), default_generator()).reshape({rows * t, hidden_});
    for (int64_t l = 0; l < first_trainable_; ++l)
      x = model_->layers[static_cast<size_t>(l)]->forward(x, key_bias, rows, t, model_->kernels(),
                                                         default_generator());
    const std::vector<float> h = x.contiguous().to_vector_as<float>();
    for (int64_t r = 0; r < rows; ++r) {
      const auto i = static_cast<size_t>(order[static_cast<size_t>(b + r)]);
      std::copy_n(h.begin() + r * t * hidden_, static_cast<int64_t>(length_[i]) * hidden_,
                  cache_.begin() + offset_[i] * hidden_);
    }
    if (on_batch) on_batch(e, n);
  }
  model_->train(was);
  if (!cache_file_.empty()) save_cache(key);
}

bool TextEncoder::load_cache(const std::string& key) {
  if (!std::filesystem::exists(cache_file_)) return false;
  try {
    const st::Reader r = st::Reader::open(cache_file_);
    const auto it = r.metadata().find("key");
    if (it == r.metadata().end() || it->second != key || !r.contains("prefix")) return false;
    const st::TensorInfo& t = r.info("prefix");
    if (t.dtype != "F32" || t.shape != std::vector<int64_t>{total_tokens_, hidden_}) return false;
    std::memcpy(cache_.data(), r.data(t), t.nbytes());
    return true;
  } catch (const Error& e) {
    fmt::print(stderr, "bert: ignoring the unreadable prefix cache {} ({}); recomputing\n",
               cache_file_, e.what());
    return false;
  }
}

void TextEncoder::save_cache(const std::string& key) const {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(cache_file_).parent_path(), ec);
  DAN_CHECK(!ec, "bert: cannot create the cache directory of {}: {}", cache_file_, ec.message());
  st::write(cache_file_,
            {{"prefix", "F32", {total_tokens_, hidden_}, cache_.data(), cache_.size() * sizeof(float)}},
            {{"key", key}});
}

Tensor TextEncoder::run_trainable(const std::vector<int32_t>& idx) {
  const auto n = static_cast<int64_t>(idx.size());
  std::vector<int32_t> lens(static_cast<size_t>(n));
  int64_t t = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int32_t i = idx[static_cast<size_t>(r)];
    DAN_CHECK(i >= 0 && i < num_texts(), "TextEncoder: text index {} outside [0, {})", i, num_texts());
    lens[static_cast<size_t>(r)] = length_[static_cast<size_t>(i)];
    t = std::max<int64_t>(t, lens[static_cast<size_t>(r)]);
  }
  // The cached states, zero-padded to the longest text: padded keys are masked, so the real
  // tokens' outputs do not depend on what the padding holds.
  std::vector<float> x0(static_cast<size_t>(n * t * hidden_), 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    const auto i = static_cast<size_t>(idx[static_cast<size_t>(r)]);
    std::copy_n(cache_.begin() + offset_[i] * hidden_, static_cast<int64_t>(length_[i]) * hidden_,
                x0.begin() + r * t * hidden_);
  }
  const Device dev = model_->layers.back()->out_norm->weight().device();
  const Tensor mask = length_mask(lens, t);
  const Tensor key_bias = extended_attention_mask(mask, DType::f32).to(dev);
  Tensor x = from_vector(x0, {n * t, hidden_}).to(dev);
  for (auto l = static_cast<size_t>(first_trainable_); l < model_->layers.size(); ++l)
    x = model_->layers[l]->forward(x, key_bias, n, t, model_->kernels(), default_generator());
  const Tensor h = x.reshape({n, t, hidden_});
  Tensor v = cfg_.pooling == Pooling::mean ? mean_pool(h, mask.to(dev)) : cls_pool(h);
  if (cfg_.normalize) v = l2_normalize(v);
  return v;
}

Tensor TextEncoder::encode(const std::vector<int32_t>& idx) {
  DAN_CHECK(!idx.empty(), "TextEncoder::encode: no texts");
  // Each distinct text once, then a gather back to the requested order.
  std::vector<int32_t> uniq(idx);
  std::sort(uniq.begin(), uniq.end());
  uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
  const Tensor v = run_trainable(uniq);
  if (uniq.size() == idx.size() && std::equal(uniq.begin(), uniq.end(), idx.begin())) return v;
  std::vector<int32_t> pos(idx.size());
  for (size_t r = 0; r < idx.size(); ++r)
    pos[r] = static_cast<int32_t>(std::lower_bound(uniq.begin(), uniq.end(), idx[r]) - uniq.begin());
  return index_select(v, from_vector(pos, {static_cast<int64_t>(pos.size())}).to(v.device()));
}

Tensor TextEncoder::encode_all() {
  NoGradGuard ng;
  const bool was = is_training();
  eval();
  const int64_t n = num_texts();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return length_[static_cast<size_t>(a)] > length_[static_cast<size_t>(b)];
  });
  std::vector<float> out(static_cast<size_t>(n * hidden_));
  for (int64_t b = 0; b < n; b += cfg_.batch_size) {
    const int64_t e = std::min(n, b + cfg_.batch_size);
    std::vector<int32_t> idx;
    for (int64_t r = b; r < e; ++r) idx.push_back(static_cast<int32_t>(order[static_cast<size_t>(r)]));
    const std::vector<float> v = run_trainable(idx).contiguous().to_vector_as<float>();
    for (int64_t r = b; r < e; ++r)
      std::copy_n(v.begin() + (r - b) * hidden_, hidden_,
                  out.begin() + order[static_cast<size_t>(r)] * hidden_);
  }
  train(was);
  return from_vector(out, {n, hidden_});
}

}  // namespace dan::bert
