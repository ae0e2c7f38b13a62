// `deepaninet pretrain-mlm`: masked-language-model transfer pre-training of a BERT encoder on
// the dataset's own texts (synopses, reviews, recommendation texts), so that the encoder's
// vocabulary use adapts to the domain before it encodes anime. Held-out masked loss before and
// after, an HF BertForMaskedLM directory and mlm_report.json in --out.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/report.h"
#include "core/error.h"
#include "core/threads.h"
#include "layers/optim/adam.h"
#include "layers/optim/clip.h"
#include "layers/optim/scheduler.h"
#include "models/bert/mlm.h"
#include "models/bert/paths.h"
#include "models/text/corpus.h"
#include "recsys/csv.h"

namespace dan::apps {

namespace fs = std::filesystem;
using Chunk = std::vector<int32_t>;

namespace {

// "synopsis,reviews,recommendations" -> TextFields; names as in models/text/corpus.h.
text::TextFields parse_fields(const std::string& spec) {
  text::TextFields t;
  t.synopsis = false;
  std::stringstream ss(spec);
  std::string name;
  while (std::getline(ss, name, ',')) {
    if (name == "title")
      t.title = true;
    else if (name == "synopsis")
      t.synopsis = true;
    else if (name == "reviews")
      t.reviews = true;
    else if (name == "recommendations" || name == "rec_texts")
      t.rec_texts = true;
    else if (name == "genres")
      t.genres = true;
    else if (name == "themes")
      t.themes = true;
    else if (name == "studios")
      t.studios = true;
    else
      fail(
          "--fields: unknown field '{}' (expected a comma-separated list of title, synopsis, "
          "reviews, recommendations, genres, themes, studios)",
          name);
  }
  DAN_CHECK(t.any(), "--fields: no field given in '{}'", spec);
  return t;
}

// Rows padded on the right with [PAD] into i64 [B, T] ids and mask.
std::pair<Tensor, Tensor> collate(const std::vector<const Chunk*>& rows, int32_t pad_id) {
  size_t t = 0;
  for (const Chunk* c : rows) t = std::max(t, c->size());
  const size_t b = rows.size();
  std::vector<int64_t> ids(b * t, pad_id), mask(b * t, 0);
  for (size_t r = 0; r < b; ++r) {
    for (size_t i = 0; i < rows[r]->size(); ++i) {
      ids[r * t + i] = (*rows[r])[i];
      mask[r * t + i] = 1;
    }
  }
  const Shape s{static_cast<int64_t>(b), static_cast<int64_t>(t)};
  return {from_vector(ids, s), from_vector(mask, s)};
}

// A permutation of [0, n) from Philox draws (sorting by a uniform key: no std::shuffle, whose
// result would depend on the standard library).
std::vector<int64_t> permutation(int64_t n, Generator& g) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  if (n == 0) return p;
  const std::vector<double> key = rand({n}, g, DType::f64).to_vector();
  std::stable_sort(p.begin(), p.end(), [&](int64_t a, int64_t b) {
    return key[static_cast<size_t>(a)] < key[static_cast<size_t>(b)];
  });
  return p;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int pretrain_mlm_command(int argc, char** argv) {
  const Flags f = parse_flags(
      argc, argv, 2,
      {"data", "from", "out", "fields", "max-length", "batch-size", "steps", "lr", "weight-decay",
       "warmup", "mask-prob", "heldout", "eval-batches", "seed", "threads", "log-every"},
      {}, {"whole-word"});
  DAN_CHECK(f.positional.empty(), "pretrain-mlm: unexpected argument '{}'",
            f.positional.empty() ? "" : f.positional[0]);
  DAN_CHECK(f.has("out"), "pretrain-mlm: --out DIR is required (where the model is written)");
  if (f.has("threads")) set_num_threads(static_cast<int>(f.integer("threads", 1)));
  const std::string out = f.str("out", "");
  const std::string from = f.str("from", bert::minilm_dir());
  DAN_CHECK(fs::is_directory(from), "pretrain-mlm: --from: {}", bert::missing_weights_hint(from));
  const int64_t max_length = f.integer("max-length", 128);
  const int64_t batch_size = f.integer("batch-size", 16);
  const int64_t steps = f.integer("steps", 200);
  const int64_t eval_batches = f.integer("eval-batches", 8);
  const int64_t log_every = f.integer("log-every", 10);
  const double lr = f.number("lr", 5e-5), weight_decay = f.number("weight-decay", 0.01);
  const double warmup_frac = f.number("warmup", 0.1), heldout = f.number("heldout", 0.02);
  const auto seed = static_cast<uint64_t>(f.integer("seed", 0));
  bert::MaskingOptions mopt;
  mopt.prob = f.number("mask-prob", 0.15);
  mopt.whole_word = f.has("whole-word");
  DAN_CHECK(max_length >= 3, "--max-length: expected >= 3, got {}", max_length);
  DAN_CHECK(batch_size >= 1, "--batch-size: expected >= 1, got {}", batch_size);
  DAN_CHECK(steps >= 0, "--steps: expected >= 0, got {}", steps);
  DAN_CHECK(eval_batches >= 1, "--eval-batches: expected >= 1, got {}", eval_batches);
  DAN_CHECK(log_every >= 1, "--log-every: expected >= 1, got {}", log_every);
  DAN_CHECK(lr > 0 && std::isfinite(lr), "--lr: expected > 0, got {}", lr);
  DAN_CHECK(weight_decay >= 0, "--weight-decay: expected >= 0, got {}", weight_decay);
  DAN_CHECK(warmup_frac >= 0 && warmup_frac < 1, "--warmup: expected a fraction in [0, 1), got {}",
            warmup_frac);
  DAN_CHECK(mopt.prob > 0 && mopt.prob < 1, "--mask-prob: expected a value in (0, 1), got {}",
            mopt.prob);
  DAN_CHECK(heldout > 0 && heldout < 1, "--heldout: expected a fraction in (0, 1), got {}",
            heldout);
  const text::TextFields fields = parse_fields(f.str("fields", "synopsis,reviews,recommendations"));

  const auto t_start = std::chrono::steady_clock::now();
  Generator model_gen(seed);  // head init and dropout
  auto model = bert::BertForMaskedLM::from_pretrained(from, model_gen);
  const bert::BertConfig& cfg = model->config();
  DAN_CHECK(max_length <= cfg.max_position_embeddings,
            "--max-length {} exceeds the model's max_position_embeddings {}", max_length,
            cfg.max_position_embeddings);
  const auto tok = bert::WordPieceTokenizer::from_dir(from);
  DAN_CHECK(tok.vocab().size() == cfg.vocab_size,
            "pretrain-mlm: {}/vocab.txt has {} tokens but config.json says vocab_size {}", from,
            tok.vocab().size(), cfg.vocab_size);
  const bert::MaskVocab mvocab = bert::MaskVocab::from_tokenizer(tok);

  // ---- data: documents -> held-out split -> chunks of max_length tokens ----
  const DataChoice data = choose_data(f.str("data", ""));
  const recsys::Dataset ds = load_data(data);
  const std::vector<std::string> docs = text::raw_documents(ds, fields);
  const auto n_docs = static_cast<int64_t>(docs.size());
  DAN_CHECK(n_docs >= 2, "pretrain-mlm: {} has {} documents, need at least 2", data.describe(),
            n_docs);
  Generator split_gen(seed ^ 0x9e3779b97f4a7c15ULL);
  const std::vector<double> u = rand({n_docs}, split_gen, DType::f64).to_vector();
  std::vector<uint8_t> is_heldout(static_cast<size_t>(n_docs));
  int64_t n_heldout = 0;
  for (size_t i = 0; i < u.size(); ++i) n_heldout += (is_heldout[i] = u[i] < heldout ? 1 : 0);
  if (n_heldout == 0) {  // a tiny dataset: hold out the one with the smallest draw
    is_heldout[static_cast<size_t>(std::min_element(u.begin(), u.end()) - u.begin())] = 1;
    n_heldout = 1;
  }
  DAN_CHECK(n_heldout < n_docs, "--heldout {} leaves no training document", heldout);

  std::vector<Chunk> train_chunks, eval_chunks;
  int64_t train_tokens = 0, empty_docs = 0;
  {
    const std::vector<bert::Encoding> enc = tok.encode_each(docs, -1, /*add_special=*/false);
    for (size_t i = 0; i < enc.size(); ++i) {
      if (enc[i].ids.empty()) ++empty_docs;
      auto chunks = bert::split_into_chunks(enc[i], max_length, tok.cls_id(), tok.sep_id());
      auto& dst = is_heldout[i] ? eval_chunks : train_chunks;
      for (auto& c : chunks) {
        if (!is_heldout[i]) train_tokens += static_cast<int64_t>(c.size());
        dst.push_back(std::move(c));
      }
    }
  }
  DAN_CHECK(!train_chunks.empty() && !eval_chunks.empty(),
            "pretrain-mlm: no text in the {} fields of {} ({} training / {} held-out sequences)",
            fields.key(), data.describe(), train_chunks.size(), eval_chunks.size());
  fmt::print(
      "pretrain-mlm: {} from {}; {} documents ({} empty, {} held out) -> {} training sequences "
      "({} tokens) and {} held-out sequences of <= {} tokens\n",
      data.describe(), from, n_docs, empty_docs, n_heldout, train_chunks.size(), train_tokens,
      eval_chunks.size(), max_length);

  // Held-out batches: a fixed sample, masked once with a fixed seed, so the loss before and
  // after training is measured on the very same predictions.
  std::vector<bert::MlmBatch> eval_set;
  {
    Generator pick(seed ^ 0x5eedULL), mask_gen(seed ^ 0xe7a1ULL);
    const std::vector<int64_t> order = permutation(static_cast<int64_t>(eval_chunks.size()), pick);
    for (size_t at = 0; at < order.size() && static_cast<int64_t>(eval_set.size()) < eval_batches;
         at += static_cast<size_t>(batch_size)) {
      std::vector<const Chunk*> rows;
      for (size_t j = at; j < order.size() && j < at + static_cast<size_t>(batch_size); ++j) {
        rows.push_back(&eval_chunks[static_cast<size_t>(order[j])]);
      }
      const auto [ids, mask] = collate(rows, tok.pad_id());
      const bert::MaskedBatch m = bert::mask_tokens(
          ids, bert::special_tokens_mask(ids, mask, mvocab), mvocab, mopt, mask_gen);
      eval_set.push_back({m.input_ids, mask, m.labels});
    }
  }
  const bert::MlmEval before = bert::evaluate_mlm(*model, eval_set);
  fmt::print(
      "pretrain-mlm: held-out masked loss before {:.4f} (perplexity {:.2f}) on {} tokens in {} "
      "batches\n",
      before.loss, before.perplexity, before.num_predicted, eval_set.size());

  // ---- training: AdamW, linear warmup then linear decay (HF's Trainer defaults) ----
  ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = lr;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  for (const auto& [name, p] : model->named_parameters()) {
    // As HF's Trainer: no weight decay on biases and LayerNorm weights.
    const bool nd = name.ends_with("bias") || name.find("LayerNorm") != std::string::npos;
    (nd ? no_decay : decay).params.push_back(p);
  }
  const std::vector<Tensor> params = model->parameters();
  AdamW opt(std::vector<ParamGroup>{decay, no_decay});
  const auto warmup = static_cast<int64_t>(std::llround(warmup_frac * static_cast<double>(steps)));
  std::unique_ptr<LRScheduler> sched;
  if (steps > 0) {
    sched = std::make_unique<LinearWarmup>(
        opt, warmup, std::make_unique<LinearDecay>(opt, std::max<int64_t>(1, steps - warmup)));
  }

  Generator order_gen(seed ^ 0x0dd5ULL), mask_gen(seed ^ 0x3a5cULL);
  std::vector<int64_t> order;
  size_t cursor = 0;
  int64_t epoch_passes = 0, tokens_seen = 0, predicted = 0, skipped = 0;
  double window_loss = 0;
  int64_t window_n = 0;
  model->train();
  const auto t_train = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= steps; ++step) {
    std::vector<const Chunk*> rows;
    while (static_cast<int64_t>(rows.size()) < batch_size) {
      if (cursor == order.size()) {  // a new pass over the training sequences, reshuffled
        order = permutation(static_cast<int64_t>(train_chunks.size()), order_gen);
        cursor = 0;
        ++epoch_passes;
      }
      rows.push_back(&train_chunks[static_cast<size_t>(order[cursor++])]);
    }
    const auto [ids, mask] = collate(rows, tok.pad_id());
    const bert::MaskedBatch m = bert::mask_tokens(ids, bert::special_tokens_mask(ids, mask, mvocab),
                                                  mvocab, mopt, mask_gen);
    for (const Chunk* c : rows) tokens_seen += static_cast<int64_t>(c->size());
    opt.zero_grad();
    const bert::MlmOutput o = model->forward(m.input_ids, mask, m.labels);
    if (o.num_predicted > 0) {
      o.loss.backward();
      const double norm = clip_grad_norm_(params, 1.0);
      if (std::isfinite(norm)) {
        opt.step();
        window_loss += o.loss.item();
        ++window_n;
        predicted += o.num_predicted;
      } else {
        ++skipped;
      }
    } else {
      ++skipped;
    }
    sched->step();
    if (step % log_every == 0 || step == steps) {
      const double secs = seconds_since(t_train);
      fmt::print("pretrain-mlm: step {:>5}/{}  loss {:.4f}  lr {:.3g}  {:.0f} tokens/s  {:.1f} s\n",
                 step, steps, window_n ? window_loss / static_cast<double>(window_n) : NAN,
                 opt.param_groups()[0].lr, static_cast<double>(tokens_seen) / secs, secs);
      window_loss = 0;
      window_n = 0;
    }
  }
  const double train_secs = seconds_since(t_train);
  const bert::MlmEval after = bert::evaluate_mlm(*model, eval_set);
  fmt::print(
      "pretrain-mlm: held-out masked loss after {:.4f} (perplexity {:.2f}); before {:.4f} "
      "({:.2f})\n",
      after.loss, after.perplexity, before.loss, before.perplexity);

  model->save_pretrained(out, from);
  nlohmann::json rep;
  rep["from"] = from;
  rep["data"] = data.describe();
  rep["fields"] = fields.key();
  rep["max_length"] = max_length;
  rep["batch_size"] = batch_size;
  rep["steps"] = steps;
  rep["steps_skipped"] = skipped;
  rep["lr"] = lr;
  rep["weight_decay"] = weight_decay;
  rep["warmup_steps"] = warmup;
  rep["mask_prob"] = mopt.prob;
  rep["whole_word"] = mopt.whole_word;
  rep["seed"] = seed;
  rep["documents"] = n_docs;
  rep["heldout_documents"] = n_heldout;
  rep["train_sequences"] = train_chunks.size();
  rep["train_sequence_tokens"] = train_tokens;
  rep["passes_started"] = epoch_passes;
  rep["tokens_seen"] = tokens_seen;
  rep["tokens_predicted"] = predicted;
  rep["heldout"] = {{"sequences", eval_chunks.size()},          {"batches", eval_set.size()},
                    {"predicted_tokens", before.num_predicted}, {"loss_before", before.loss},
                    {"perplexity_before", before.perplexity},   {"loss_after", after.loss},
                    {"perplexity_after", after.perplexity}};
  rep["train_seconds"] = train_secs;
  rep["total_seconds"] = seconds_since(t_start);
  recsys::write_file_atomic((fs::path(out) / "mlm_report.json").string(), rep.dump(2) + "\n");
  fmt::print(
      "pretrain-mlm: {:.1f} s training, {:.1f} s in all; model -> {}, report -> "
      "{}/mlm_report.json\n",
      train_secs, seconds_since(t_start), out, out);
  return 0;
}

}  // namespace dan::apps
