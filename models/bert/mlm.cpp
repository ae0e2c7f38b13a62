// BertForMaskedLM (model, head on the labelled rows only, HF checkpoints), token masking with
// HF's 80/10/10 rule on Philox draws, and the held-out masked loss.
#include "models/bert/mlm.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "core/philox.h"
#include "core/safetensors.h"
#include "core/serialize.h"
#include "models/bert/paths.h"

namespace dan::bert {

namespace fs = std::filesystem;

namespace {

constexpr double kInitStd = 0.02;  // HF's initializer_range

// The head's keys in an HF file, the older names some checkpoints use for them, and the names
// in DistilBertForMaskedLM files (the same head: dense, GELU, LayerNorm, tied decoder + bias).
struct HeadKey {
  const char* name;
  const char* alias;  // nullptr: none
  const char* distil;
};
constexpr HeadKey kHeadKeys[] = {
    {"cls.predictions.transform.dense.weight", nullptr, "vocab_transform.weight"},
    {"cls.predictions.transform.dense.bias", nullptr, "vocab_transform.bias"},
    {"cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.gamma",
     "vocab_layer_norm.weight"},
    {"cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.beta",
     "vocab_layer_norm.bias"},
    // Files from before the decoder bias was tied hold it (also) under the decoder's name.
    {"cls.predictions.bias", "cls.predictions.decoder.bias", "vocab_projector.bias"},
};

std::vector<int64_t> as_i64(const Tensor& t) {
  const std::vector<double> v = t.to_vector();
  return std::vector<int64_t>(v.begin(), v.end());
}

}  // namespace

// ---- the model ------------------------------------------------------------------------------

BertForMaskedLM::BertForMaskedLM(const BertConfig& cfg, Generator& gen, bool init_weights) {
  const int64_t h = cfg.hidden_size;
  // HF's BertForMaskedLM builds its BertModel without the pooler (add_pooling_layer=False).
  bert = register_module("bert", std::make_shared<BertModel>(cfg, false, gen, init_weights));
  cls_ = register_module("cls", std::make_shared<Group>("BertOnlyMLMHead"));
  auto pred = cls_->register_module("predictions", std::make_shared<Group>("BertLMPredictionHead"));
  decoder_bias = pred->register_parameter("bias", zeros({cfg.vocab_size}));
  auto transform =
      pred->register_module("transform", std::make_shared<Group>("BertPredictionHeadTransform"));
  auto dense = transform->register_module("dense", std::make_shared<Group>("Linear"));
  transform_weight = dense->register_parameter("weight", zeros({h, h}));
  transform_bias = dense->register_parameter("bias", zeros({h}));
  // Always drawn: the head is small, and an encoder-only checkpoint leaves it to this init.
  init_normal_(transform_weight, 0.0, kInitStd, gen);
  transform_norm =
      transform->register_module("LayerNorm", std::make_shared<LayerNorm>(h, cfg.layer_norm_eps));
  // Tied: the same tensor (impl) as the input table, not a registered copy.
  decoder_weight = bert->embeddings->word_embeddings;
}

Tensor BertForMaskedLM::predict(const Tensor& hidden_rows) const {
  const bool approx = config().hidden_act == HiddenAct::gelu_tanh;
  const Tensor t = gelu(linear(hidden_rows, transform_weight, transform_bias), approx);
  return linear(transform_norm->forward(t), decoder_weight, decoder_bias);
}

MlmOutput BertForMaskedLM::forward(const Tensor& input_ids, const Tensor& attention_mask,
                                   const Tensor& labels, const Tensor& token_type_ids) {
  const BertOutput o = bert->forward(input_ids, attention_mask, token_type_ids);
  const int64_t b = input_ids.size(0), t = input_ids.size(1), h = config().hidden_size;
  const int64_t vocab = config().vocab_size;
  const Tensor rows = o.last_hidden_state.reshape({b * t, h});
  MlmOutput out;
  if (!labels.defined()) {
    out.logits = predict(rows);
    out.num_predicted = b * t;
    return out;
  }
  DAN_CHECK(is_integral(labels.dtype()) && labels.dim() == 2 && labels.size(0) == b &&
                labels.size(1) == t,
            "BertForMaskedLM: labels must be i32/i64 [{}, {}] like input_ids, got {} {}", b, t,
            labels.dtype(), shape_str(labels.shape()));
  const std::vector<int64_t> lab = as_i64(labels);
  std::vector<int64_t> index, target;
  for (int64_t i = 0; i < b * t; ++i) {
    const int64_t y = lab[static_cast<size_t>(i)];
    if (y == kIgnoreLabel) continue;
    DAN_CHECK(y >= 0 && y < vocab,
              "BertForMaskedLM: labels[{}, {}] = {} is neither {} nor in [0, {})", i / t, i % t, y,
              kIgnoreLabel, vocab);
    index.push_back(i);
    target.push_back(y);
  }
  const auto n = static_cast<int64_t>(index.size());
  out.num_predicted = n;
  out.targets = from_vector(target, {n}, input_ids.device());
  if (n == 0) {
    out.logits = zeros({0, vocab}, rows.dtype(), rows.device());
    return out;
  }
  // Gather first: the [N, hidden] x [hidden, vocab] projection then costs N rows, not B * T.
  out.logits = predict(index_select(rows, from_vector(index, {n}, rows.device())));
  out.loss = cross_entropy(out.logits, out.targets, kIgnoreLabel);
  return out;
}

std::shared_ptr<BertForMaskedLM> BertForMaskedLM::from_pretrained(const std::string& dir,
                                                                  Generator& gen) {
  DAN_CHECK(fs::is_directory(dir), "BertForMaskedLM::from_pretrained: {}",
            missing_weights_hint(dir));
  // The encoder (names, old gamma/beta, every error) is BertModel's loader; its pooler, if
  // the file has one, has no place in BertForMaskedLM and is dropped as HF drops it.
  std::shared_ptr<BertModel> base = BertModel::from_pretrained(dir, gen);
  auto model = std::make_shared<BertForMaskedLM>(base->config(), gen, /*init_weights=*/false);
  {
    std::map<std::string, Tensor> enc;
    for (const auto& [k, v] : base->state_dict()) {
      if (k.rfind("pooler.", 0) != 0) enc.emplace(k, v);
    }
    model->bert->load_state_dict(enc, /*strict=*/true);
  }
  base.reset();

  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  const st::Reader r = st::Reader::open(weights);
  const int64_t h = model->config().hidden_size, vocab = model->config().vocab_size;
  std::map<std::string, Tensor> head;
  std::vector<std::string> missing, problems;
  const bool distil = model->config().model_type == "distilbert";
  const std::string decoder = distil ? "vocab_projector.weight" : "cls.predictions.decoder.weight";
  for (const HeadKey& k : kHeadKeys) {
    const char* found = distil ? (r.contains(k.distil) ? k.distil : nullptr)
                        : r.contains(k.name)                          ? k.name
                        : (k.alias != nullptr && r.contains(k.alias)) ? k.alias
                                                                      : nullptr;
    if (found == nullptr) {
      missing.push_back(distil ? k.distil : k.name);
      continue;
    }
    head.emplace(std::string(k.name).substr(4), load_tensor(r, found));  // strip "cls."
  }
  if (head.empty()) {
    model->eval();  // an encoder-only checkpoint: the head keeps its fresh init
    return model;
  }
  DAN_CHECK(missing.empty(),
            "BertForMaskedLM::from_pretrained: {} has part of an MLM head but lacks [{}]", weights,
            fmt::join(missing, ", "));
  // The decoder weight is the word embedding; a file that stores it too must agree in shape.
  if (r.contains(decoder)) {
    const Shape s = r.info(decoder).shape;
    if (s != Shape{vocab, h}) {
      problems.push_back(fmt::format("\"{}\": checkpoint {}, model {}", decoder, shape_str(s),
                                     shape_str(Shape{vocab, h})));
    }
  }
  Module* cls = model->cls_.get();
  std::map<std::string, Tensor> expected;
  for (const auto& [k, v] : cls->state_dict()) expected.emplace(k, v);
  for (auto& [k, v] : head) {
    const Tensor& dst = expected.at(k);
    if (v.shape() != dst.shape()) {
      problems.push_back(fmt::format("\"cls.{}\": checkpoint {}, model {}", k, shape_str(v.shape()),
                                     shape_str(dst.shape())));
    } else if (v.dtype() != dst.dtype()) {
      v = v.to(dst.dtype());
    }
  }
  DAN_CHECK(problems.empty(), "BertForMaskedLM::from_pretrained: {} does not match the config: {}",
            weights, fmt::join(problems, "; "));
  cls->load_state_dict(head, /*strict=*/true);
  model->eval();
  return model;
}

void BertForMaskedLM::save_pretrained(const std::string& dir,
                                      const std::string& tokenizer_dir) const {
  nlohmann::json cfg = config().to_json();
  cfg["architectures"] = nlohmann::json::array({"BertForMaskedLM"});
  std::vector<std::string> copy;
  if (!tokenizer_dir.empty()) {
    for (const char* name :
         {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      const fs::path p = fs::path(tokenizer_dir) / name;
      if (fs::exists(p)) copy.push_back(p.string());
    }
  }
  write_pretrained_dir(dir, cfg, state_dict(), copy, "BertForMaskedLM::save_pretrained");
}

// ---- masking --------------------------------------------------------------------------------

MaskVocab MaskVocab::from_tokenizer(const WordPieceTokenizer& tok) {
  MaskVocab v;
  v.size = tok.vocab().size();
  v.mask_id = tok.mask_id();
  v.special_ids = {tok.cls_id(), tok.sep_id(), tok.pad_id(), tok.mask_id(), tok.unk_id()};
  const std::string& prefix = tok.options().continuing_subword_prefix;
  v.continuation.resize(static_cast<size_t>(v.size));
  for (int64_t i = 0; i < v.size; ++i) {
    v.continuation[static_cast<size_t>(i)] =
        tok.vocab().token(static_cast<int32_t>(i)).rfind(prefix, 0) == 0 ? 1 : 0;
  }
  return v;
}

Tensor special_tokens_mask(const Tensor& input_ids, const Tensor& attention_mask,
                           const MaskVocab& vocab) {
  DAN_CHECK(input_ids.defined() && input_ids.dim() == 2 && is_integral(input_ids.dtype()),
            "special_tokens_mask: input_ids must be i32/i64 [batch, seq]");
  const std::vector<int64_t> ids = as_i64(input_ids);
  std::vector<double> m;
  if (attention_mask.defined()) {
    DAN_CHECK(attention_mask.shape() == input_ids.shape(),
              "special_tokens_mask: attention_mask {} must have input_ids' shape {}",
              shape_str(attention_mask.shape()), shape_str(input_ids.shape()));
    m = attention_mask.to_vector();
  }
  std::vector<uint8_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    bool s = !m.empty() && m[i] == 0;
    for (int32_t sid : vocab.special_ids) s = s || ids[i] == sid;
    out[i] = s ? 1 : 0;
  }
  Tensor t = empty(input_ids.shape(), DType::b8);
  std::copy(out.begin(), out.end(), static_cast<uint8_t*>(t.raw_data()));
  return t;
}

MaskedBatch mask_tokens(const Tensor& input_ids, const Tensor& special, const MaskVocab& vocab,
                        const MaskingOptions& opt, Generator& gen) {
  DAN_CHECK(input_ids.defined() && input_ids.dim() == 2 && is_integral(input_ids.dtype()),
            "mask_tokens: input_ids must be i32/i64 [batch, seq], got {}",
            input_ids.defined() ? shape_str(input_ids.shape()) : "an undefined tensor");
  DAN_CHECK(special.defined() && special.shape() == input_ids.shape(),
            "mask_tokens: special must have input_ids' shape {}", shape_str(input_ids.shape()));
  DAN_CHECK(opt.prob >= 0 && opt.prob <= 1, "mask_tokens: prob must be in [0, 1], got {}",
            opt.prob);
  DAN_CHECK(opt.mask_fraction >= 0 && opt.mask_fraction <= 1,
            "mask_tokens: mask_fraction must be in [0, 1], got {}", opt.mask_fraction);
  DAN_CHECK(vocab.size > 0 && vocab.mask_id >= 0 && vocab.mask_id < vocab.size,
            "mask_tokens: vocab size {} / mask id {} invalid", vocab.size, vocab.mask_id);
  DAN_CHECK(!opt.whole_word || static_cast<int64_t>(vocab.continuation.size()) == vocab.size,
            "mask_tokens: whole_word needs MaskVocab::continuation for all {} ids (has {})",
            vocab.size, vocab.continuation.size());
  const int64_t b = input_ids.size(0), t = input_ids.size(1), n = b * t;
  const std::vector<int64_t> ids = as_i64(input_ids);
  const std::vector<double> sp = special.to_vector();
  std::vector<int64_t> out = ids, labels(static_cast<size_t>(n), kIgnoreLabel);
  // One Philox block (4 words) per position: select, [MASK] or not, random or kept, random id.
  const uint64_t seed = gen.seed(), offset = gen.reserve(static_cast<uint64_t>(n));
  const auto unit = [](uint32_t w) { return static_cast<double>(philox::u32_to_unit_f32(w)); };
  MaskedBatch res;
  for (int64_t r = 0; r < b; ++r) {
    bool selected = false, prev_eligible = false;
    for (int64_t c = 0; c < t; ++c) {
      const int64_t i = r * t + c;
      const int64_t id = ids[static_cast<size_t>(i)];
      if (sp[static_cast<size_t>(i)] != 0) {
        prev_eligible = false;  // a special token ends a word
        continue;
      }
      DAN_CHECK(id >= 0 && id < vocab.size,
                "mask_tokens: input_ids[{}, {}] = {} is outside [0, {})", r, c, id, vocab.size);
      const philox::U32x4 w = philox::block(seed, offset + static_cast<uint64_t>(i));
      // A "##" piece continues the word before it (when that token was eligible); any other
      // token starts a word. Without whole_word every token is its own word.
      const bool starts_word =
          !opt.whole_word || !prev_eligible || vocab.continuation[static_cast<size_t>(id)] == 0;
      if (starts_word) selected = unit(w.v[0]) < opt.prob;
      prev_eligible = true;
      if (!selected) continue;
      labels[static_cast<size_t>(i)] = id;
      ++res.num_selected;
      if (unit(w.v[1]) < opt.mask_fraction) {
        out[static_cast<size_t>(i)] = vocab.mask_id;
      } else if (unit(w.v[2]) < 0.5) {
        // Multiply-shift maps the 32-bit word onto [0, size) without a modulo.
        out[static_cast<size_t>(i)] = static_cast<int64_t>(
            (static_cast<uint64_t>(w.v[3]) * static_cast<uint64_t>(vocab.size)) >> 32);
      }
    }
  }
  res.input_ids = from_vector(out, input_ids.shape());
  res.labels = from_vector(labels, input_ids.shape());
  return res;
}

// ---- long documents ----------------------------------------------------------------------

std::vector<std::vector<int32_t>> split_into_chunks(const Encoding& e, int64_t max_length,
                                                    int32_t cls_id, int32_t sep_id) {
  DAN_CHECK(max_length >= 3, "split_into_chunks: max_length must be >= 3, got {}", max_length);
  DAN_CHECK(e.word_ids.size() == e.ids.size(),
            "split_into_chunks: the encoding has {} ids but {} word ids", e.ids.size(),
            e.word_ids.size());
  const int64_t n = e.size(), room = max_length - 2;
  std::vector<std::vector<int32_t>> out;
  for (int64_t start = 0; start < n;) {
    int64_t end = std::min(n, start + room);
    if (end < n) {
      // Back up to the start of the word the cut would split (not past `start`).
      int64_t cut = end;
      while (cut > start && e.word_ids[static_cast<size_t>(cut)] >= 0 &&
             e.word_ids[static_cast<size_t>(cut)] == e.word_ids[static_cast<size_t>(cut - 1)]) {
        --cut;
      }
      if (cut > start) end = cut;
    }
    std::vector<int32_t> c;
    c.reserve(static_cast<size_t>(end - start + 2));
    c.push_back(cls_id);
    c.insert(c.end(), e.ids.begin() + start, e.ids.begin() + end);
    c.push_back(sep_id);
    out.push_back(std::move(c));
    start = end;
  }
  return out;
}

// ---- evaluation -----------------------------------------------------------------------------

MlmEval evaluate_mlm(BertForMaskedLM& model, const std::vector<MlmBatch>& batches) {
  NoGradGuard no_grad;
  struct ModeGuard {
    BertForMaskedLM& m;
    bool was;
    ~ModeGuard() { m.train(was); }
  } guard{model, model.is_training()};
  model.eval();
  double total = 0;
  MlmEval e;
  for (const MlmBatch& batch : batches) {
    const MlmOutput o = model.forward(batch.input_ids, batch.attention_mask, batch.labels);
    if (o.num_predicted == 0) continue;
    total += o.loss.item() * static_cast<double>(o.num_predicted);
    e.num_predicted += o.num_predicted;
  }
  DAN_CHECK(e.num_predicted > 0, "evaluate_mlm: the {} batches have no predicted token",
            batches.size());
  e.loss = total / static_cast<double>(e.num_predicted);
  e.perplexity = std::exp(e.loss);
  return e;
}

}  // namespace dan::bert
