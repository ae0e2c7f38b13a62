#include "apps/finetune.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/core.h>

#include "apps/pipeline.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "models/bert/paths.h"
#include "models/text/corpus.h"

namespace dan::apps {

namespace {

// Per user (row of user_items) its top_n columns by value (ties: lower column first), mapped
// through col_to_anime — the selection of dropoutnet::user_content.
std::vector<std::vector<int32_t>> top_rated(const recsys::Csr& ui, const std::vector<int32_t>& col_to_anime,
                                            int top_n) {
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(ui.rows));
  std::vector<int64_t> order;
  for (int64_t u = 0; u < ui.rows; ++u) {
    const int64_t b = ui.indptr[u], e = ui.indptr[u + 1];
    order.resize(static_cast<size_t>(e - b));
    std::iota(order.begin(), order.end(), b);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return ui.values[x] > ui.values[y]; });
    const int64_t k = top_n > 0 ? std::min<int64_t>(top_n, e - b) : e - b;
    for (int64_t j = 0; j < k; ++j)
      out[static_cast<size_t>(u)].push_back(col_to_anime[static_cast<size_t>(ui.indices[order[j]])]);
  }
  return out;
}

}  // namespace

void standardization(const Tensor& x, std::vector<float>* mean, std::vector<float>* scale) {
  // A quarter of the median std: at most 4x the typical amplification (1% still let the BERT ->
  // Linear -> dot config diverge under SGD within an epoch of 256 steps).
  const double kStdFloor = 0.25;
  DAN_CHECK(x.dim() == 2, "standardization: expected [rows, d], got {}", shape_str(x.shape()));
  const int64_t n = x.size(0), h = x.size(1);
  const std::vector<float> v = x.contiguous().to_vector_as<float>();
  std::vector<double> mu(static_cast<size_t>(h), 0.0), var(static_cast<size_t>(h), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) mu[static_cast<size_t>(j)] += v[static_cast<size_t>(i * h + j)];
  for (double& m : mu) m /= static_cast<double>(std::max<int64_t>(n, 1));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) {
      const double c = v[static_cast<size_t>(i * h + j)] - mu[static_cast<size_t>(j)];
      var[static_cast<size_t>(j)] += c * c;
    }
  std::vector<double> sd;
  for (double& s2 : var) {
    s2 /= static_cast<double>(std::max<int64_t>(n, 1));
    if (s2 > 0) sd.push_back(std::sqrt(s2));
  }
  double floor_sd = 0;
  if (!sd.empty()) {
    std::nth_element(sd.begin(), sd.begin() + static_cast<std::ptrdiff_t>(sd.size() / 2), sd.end());
    floor_sd = kStdFloor * sd[sd.size() / 2];
  }
  mean->assign(static_cast<size_t>(h), 0.0f);
  scale->assign(static_cast<size_t>(h), 0.0f);
  for (int64_t j = 0; j < h; ++j) {
    const double m = mu[static_cast<size_t>(j)], s2 = var[static_cast<size_t>(j)];
    (*mean)[static_cast<size_t>(j)] = static_cast<float>(m);
    if (s2 > 1e-24 + 1e-14 * m * m)
      (*scale)[static_cast<size_t>(j)] = static_cast<float>(1.0 / std::max(std::sqrt(s2), floor_sd));
  }
}

Tensor TextInputs::content(const std::vector<int32_t>& anime) {
  Tensor x = encoder->encode(anime);
  if (mean.defined()) x = (x - mean) * scale;
  if (meta.defined()) {
    const Tensor m = index_select(meta, from_vector(anime, {static_cast<int64_t>(anime.size())}).to(meta.device()));
    x = cat({x, m}, 1);
  }
  return x;
}

void TextInputs::to(Device d) {
  encoder->to(d);
  if (mean.defined()) mean = mean.to(d);
  if (scale.defined()) scale = scale.to(d);
  if (meta.defined()) meta = meta.to(d);
  if (user_table.defined()) user_table = user_table.to(d);
}

std::shared_ptr<TextInputs> build_text_inputs(const recsys::Config& cfg, const Prepared& p) {
  const text::FeatureConfig fc = feature_config(cfg);
  const int64_t k = cfg.get_int("features.bert.finetune_layers");
  const int top_n = static_cast<int>(cfg.get_int("model.user_content_top_n"));
  DAN_CHECK(fc.kind == text::ContentKind::bert,
            "features.bert.finetune_layers = {} needs features.kind: bert, got {}", k, cfg.get_string("features.kind"));
  DAN_CHECK(!cfg.get_bool("model.user_content") || top_n > 0,
            "features.bert.finetune_layers = {} encodes each user's anime at every step: set "
            "model.user_content_top_n > 0 (the paper used 5), got {}",
            k, top_n);
  const std::string dir = bert::resolve_model_dir(fc.bert);
  const bert::WordPieceTokenizer tok = bert::WordPieceTokenizer::from_dir(dir);
  std::shared_ptr<bert::BertModel> model = bert::BertModel::from_pretrained(dir);
  const std::vector<std::string> docs = text::raw_documents(p.ds, fc.fields);
  bert::TextEncoderConfig tc;
  tc.trainable_layers = k;
  tc.batch_size = fc.bert.batch_size;
  tc.pooling = fc.bert.pooling;
  tc.normalize = fc.bert.normalize;
  if (cfg.get_bool("features.bert.prefix_cache")) {
    tc.cache_dir = cfg.get_string("features.cache_dir");
    tc.model_key = bert::model_fingerprint(dir);
  }
  fmt::print("bert: fine-tuning the last {} of {} layers of {}; caching the frozen part for {} texts\n", k,
             model->layers.size(), dir, docs.size());
  int64_t last = 0;
  auto in = std::make_shared<TextInputs>();
  in->encoder = std::make_shared<bert::TextEncoder>(
      model, tok.encode_each(docs, fc.bert.max_length), tc, [&](int64_t done, int64_t total) {
        if (done - last >= 2000 || done == total) {
          fmt::print("bert: {}/{} texts cached\n", done, total);
          std::fflush(stdout);
          last = done;
        }
      });
  if (in->encoder->loaded_from_file()) {
    fmt::print("bert: frozen part read from {}\n", in->encoder->cache_file());
  } else if (!in->encoder->cache_file().empty()) {
    fmt::print("bert: frozen part saved to {} ({:.2f} GB)\n", in->encoder->cache_file(),
               static_cast<double>(in->encoder->cached_tokens() * in->encoder->hidden()) * 4e-9);
  }
  const int64_t h = in->encoder->hidden();
  DAN_CHECK(p.features.x.size(1) >= h, "bert: the static features have {} columns, fewer than the encoder's {}",
            p.features.x.size(1), h);
  if (fc.standardize) {
    // The column statistics of text::standardize_columns, from the pretrained encoder's vectors.
    const Tensor e = in->encoder->encode_all();
    std::vector<float> mean, scale;
    standardization(e, &mean, &scale);
    in->mean = from_vector(mean, {1, h});
    in->scale = from_vector(scale, {1, h});
  }
  if (p.features.x.size(1) > h) in->meta = p.features.x.narrow(1, h, p.features.x.size(1) - h).contiguous();
  in->anime_of_item = p.inter.train_items;
  in->user_content = cfg.get_bool("model.user_content");
  in->top_n = top_n;
  in->user_grad = cfg.get_bool("features.bert.user_grad");
  if (in->user_content) in->user_top = top_rated(p.inter.fit_score, p.inter.train_items, top_n);
  return in;
}

void text_content_all(TextInputs& in, const Prepared& p, Tensor* phi_all, Tensor* phiU) {
  NoGradGuard ng;
  Tensor x = in.encoder->encode_all();
  if (in.mean.defined()) x = (x - in.mean.to(Device::cpu())) * in.scale.to(Device::cpu());
  if (in.meta.defined()) x = cat({x, in.meta.to(Device::cpu())}, 1);
  *phi_all = x;
  *phiU = Tensor();
  if (in.user_content) {
    const auto n = static_cast<int64_t>(p.inter.train_items.size());
    const Tensor train = index_select(x, from_vector(p.inter.train_items, {n}));
    *phiU = dropoutnet::user_content(p.inter.fit_score, train, in.top_n);
  }
}

dropoutnet::Batch text_batch(TextInputs& in, const dropoutnet::Batch& b, const int32_t* users,
                             const int32_t* items, int64_t n) {
  std::vector<int32_t> anime;
  anime.reserve(static_cast<size_t>(n) * 6);
  for (int64_t i = 0; i < n; ++i) {
    DAN_CHECK(items[i] >= 0 && static_cast<size_t>(items[i]) < in.anime_of_item.size(),
              "text batch: item row {} outside [0, {})", items[i], in.anime_of_item.size());
    anime.push_back(in.anime_of_item[static_cast<size_t>(items[i])]);
    if (in.user_content && in.user_grad) {
      DAN_CHECK(users[i] >= 0 && static_cast<size_t>(users[i]) < in.user_top.size(),
                "text batch: user row {} outside [0, {})", users[i], in.user_top.size());
      const auto& top = in.user_top[static_cast<size_t>(users[i])];
      anime.insert(anime.end(), top.begin(), top.end());
    }
  }
  std::sort(anime.begin(), anime.end());
  anime.erase(std::unique(anime.begin(), anime.end()), anime.end());
  const auto s = static_cast<int64_t>(anime.size());
  const auto pos = [&](int32_t a) {
    return static_cast<int32_t>(std::lower_bound(anime.begin(), anime.end(), a) - anime.begin());
  };
  const Tensor phi = in.content(anime);
  dropoutnet::Batch out = b;
  std::vector<int32_t> iv(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) iv[static_cast<size_t>(i)] = pos(in.anime_of_item[static_cast<size_t>(items[i])]);
  out.phiV = index_select(phi, from_vector(iv, {n}).to(phi.device()));
  if (in.user_content && !in.user_grad) {
    DAN_CHECK(in.user_table.defined(), "text batch: features.bert.user_grad = false needs the user table");
    out.phiU = index_select(in.user_table, from_vector(std::vector<int32_t>(users, users + n), {n})
                                               .to(in.user_table.device()));
  } else if (in.user_content) {
    // φ^U = W φ with W[i, a] = 1/k over the k top anime of row i's user (a zero row for k = 0).
    std::vector<float> w(static_cast<size_t>(n * s), 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const auto& top = in.user_top[static_cast<size_t>(users[i])];
      for (int32_t a : top)
        w[static_cast<size_t>(i * s + pos(a))] += 1.0f / static_cast<float>(top.size());
    }
    out.phiU = matmul(from_vector(w, {n, s}).to(phi.device()), phi);
  } else {
    out.phiU = Tensor();
  }
  return out;
}

dropoutnet::EpochResult accumulate_epoch(
    dropoutnet::DropoutNet& net, const std::vector<Module*>& train, Optimizer& opt,
    const recsys::Pairs& pairs, int64_t batch_size, int64_t accumulate,
    const std::function<dropoutnet::Batch(int64_t, int64_t, int64_t)>& make,
    const std::function<void(int64_t, double)>& on_batch) {
  DAN_CHECK(batch_size > 0, "train_epoch: batch_size must be > 0, got {}", batch_size);
  DAN_CHECK(accumulate > 0, "train_epoch: train.accumulate must be > 0, got {}", accumulate);
  net.train();
  for (Module* m : train) m->train();
  dropoutnet::EpochResult r;
  double weighted = 0;
  const int64_t nb = pairs.num_batches(batch_size);
  const auto usable = [&](int64_t b) {
    const int64_t rows = std::min(pairs.size(), (b + 1) * batch_size) - b * batch_size;
    return rows >= 2 || !net.config().batch_norm;  // batch norm needs 2 rows
  };
  for (int64_t g = 0; g < nb; g += accumulate) {
    const int64_t ge = std::min(nb, g + accumulate);
    int64_t group_pairs = 0;
    for (int64_t b = g; b < ge; ++b)
      if (usable(b)) group_pairs += std::min(pairs.size(), (b + 1) * batch_size) - b * batch_size;
    if (group_pairs == 0) continue;
    opt.zero_grad();
    for (int64_t b = g; b < ge; ++b) {
      if (!usable(b)) continue;
      const int64_t begin = b * batch_size, end = std::min(pairs.size(), begin + batch_size);
      const dropoutnet::Batch x = make(begin, end, b);
      const Tensor loss = net.loss(x.Uin, x.Vin, x.phiU, x.phiV, x.target);
      const double share = static_cast<double>(end - begin) / static_cast<double>(group_pairs);
      (share == 1.0 ? loss : loss * share).backward();
      const double l = loss.item();
      weighted += l * static_cast<double>(end - begin);
      r.pairs += end - begin;
      ++r.batches;
      if (on_batch) on_batch(b, l);
    }
    opt.step();
  }
  r.mean_loss = r.pairs > 0 ? weighted / static_cast<double>(r.pairs) : 0.0;
  return r;
}

}  // namespace dan::apps
