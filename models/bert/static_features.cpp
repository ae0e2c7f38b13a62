#include "models/bert/static_features.h"

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "models/bert/paths.h"
#include "recsys/config.h"

namespace dan::bert {

namespace fs = std::filesystem;

Pooling parse_pooling(const std::string& s) {
  if (s == "mean") return Pooling::mean;
  if (s == "cls") return Pooling::cls;
  fail("bert: unknown pooling '{}' (expected mean or cls)", s);
}

std::string resolve_model_dir(const StaticConfig& cfg) {
  const std::string dir = cfg.model_dir.empty() ? minilm_dir() : cfg.model_dir;
  DAN_CHECK(fs::is_directory(dir), "{}", missing_weights_hint(dir));
  return dir;
}

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  DAN_CHECK(f.good(), "bert: cannot read {}", p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::string model_fingerprint(const std::string& dir) {
  const fs::path d(dir);
  const std::string config = slurp(d / "config.json"), vocab = slurp(d / "vocab.txt");
  const fs::path weights = d / "model.safetensors";
  DAN_CHECK(fs::exists(weights), "bert: {} has no model.safetensors", dir);
  // The weights' bytes too, not just their size: two checkpoints of one architecture (say MLM
  // pre-training for 100 and for 200 steps, written to the same directory) have equal sizes.
  // FNV-1a over the file in 1 MiB reads: about 0.1 s for MiniLM's 91 MB.
  std::ifstream f(weights, std::ios::binary);
  DAN_CHECK(f.good(), "bert: cannot read {}", weights.string());
  uint64_t h = recsys::fnv1a64("");
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = recsys::fnv1a64_continue(std::string_view(buf.data(), static_cast<size_t>(f.gcount())), h);
  }
  return fmt::format("config={}:{:016x};vocab={}:{:016x};weights={}:{:016x}", config.size(),
                     recsys::fnv1a64(config), vocab.size(), recsys::fnv1a64(vocab),
                     fs::file_size(weights), h);
}

std::string StaticConfig::key() const {
  return fmt::format("bert-static-v1;model={};max_length={};pooling={};normalize={}",
                     model_fingerprint(resolve_model_dir(*this)), max_length,
                     pooling == Pooling::mean ? "mean" : "cls", normalize ? 1 : 0);
}

Tensor encode_texts(BertModel& model, const WordPieceTokenizer& tok,
                    const std::vector<std::string>& texts, const StaticConfig& cfg,
                    const std::function<void(int64_t, int64_t)>& on_batch) {
  DAN_CHECK(cfg.batch_size > 0, "bert: batch_size must be > 0, got {}", cfg.batch_size);
  DAN_CHECK(cfg.max_length >= 2 && cfg.max_length <= model.config().max_position_embeddings,
            "bert: max_length {} must be in [2, {}] (the model's max_position_embeddings)", cfg.max_length,
            model.config().max_position_embeddings);
  const auto n = static_cast<int64_t>(texts.size());
  const int64_t hidden = model.config().hidden_size;
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<Encoding> enc = tok.encode_each(texts, cfg.max_length);
  // Longest first: the first batch shows the worst-case memory at once.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return enc[static_cast<size_t>(a)].size() > enc[static_cast<size_t>(b)].size();
  });
  std::vector<float> out(static_cast<size_t>(n * hidden));
  for (int64_t b = 0; b < n; b += cfg.batch_size) {
    const int64_t e = std::min(n, b + cfg.batch_size);
    std::vector<Encoding> rows;
    rows.reserve(static_cast<size_t>(e - b));
    for (int64_t i = b; i < e; ++i) rows.push_back(enc[static_cast<size_t>(order[static_cast<size_t>(i)])]);
    const BatchEncoding be = tok.pad(std::move(rows), Padding::longest, cfg.max_length);
    const BertOutput o = model.forward(be.input_ids, be.attention_mask, be.token_type_ids);
    Tensor v = cfg.pooling == Pooling::mean ? mean_pool(o.last_hidden_state, be.attention_mask)
                                            : cls_pool(o.last_hidden_state);
    if (cfg.normalize) v = l2_normalize(v);
    const std::vector<float> vals = v.contiguous().to_vector_as<float>();
    for (int64_t i = b; i < e; ++i) {
      std::copy_n(vals.begin() + (i - b) * hidden, hidden,
                  out.begin() + order[static_cast<size_t>(i)] * hidden);
    }
    if (on_batch) on_batch(e, n);
  }
  model.train(was_training);
  return from_vector(out, {n, hidden});
}

}  // namespace dan::bert
