// Item feature assembly and its on-disk cache (safetensors; the file name is a hash of the
// config key and the dataset fingerprint, and the file repeats both in its metadata so a hash
// collision or a stale file is detected, never silently used).
#include "models/text/features.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/serialize.h"
#include "kernels/kernels.h"

namespace dan::text {

namespace {

std::atomic<int64_t> g_hits{0}, g_misses{0}, g_writes{0};

constexpr const char* kFormat = "anime2vec-classic-v1";

}  // namespace

const char* name(ContentKind k) {
  switch (k) {
    case ContentKind::none:
      return "none";
    case ContentKind::tfidf:
      return "tfidf";
    case ContentKind::word2vec:
      return "word2vec";
    case ContentKind::bert:
      return "bert";
  }
  return "?";
}

ContentKind parse_content_kind(const std::string& s) {
  if (s == "none") return ContentKind::none;
  if (s == "tfidf") return ContentKind::tfidf;
  if (s == "word2vec") return ContentKind::word2vec;
  if (s == "bert") return ContentKind::bert;
  fail("features: unknown content kind '{}', expected one of none, tfidf, word2vec, bert", s);
}

std::string FeatureConfig::key() const {
  std::string k = std::string(kFormat) + "|kind=" + name(kind);
  if (kind != ContentKind::none) {
    k += "|" + fields.key();
    if (kind != ContentKind::bert) k += "|" + tokenizer.key();
    if (kind == ContentKind::bert) {
      k += "|" + bert.key();
    } else if (kind == ContentKind::tfidf) {
      k += "|" + tfidf.key() + fmt::format("|svd_dims={}", svd_dims);
      if (svd_dims > 0) k += "|" + svd.key();
    } else {
      k += "|" + word2vec.key() + fmt::format("|w2v_tfidf_weighted={}", word2vec_tfidf_weighted);
      if (word2vec_tfidf_weighted) k += "|" + tfidf.key();
    }
    k += fmt::format("|standardize={}", standardize);
  }
  k += fmt::format("|metadata={}", metadata);
  if (metadata) k += "|" + meta.key();
  return k;
}

uint64_t fnv1a64(std::string_view s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string dataset_fingerprint(const recsys::Dataset& ds) {
  uint64_t h = fnv1a64("");
  auto mix = [&](std::string_view s) {
    h = fnv1a64(s, h);
    h = fnv1a64(std::string_view("\x1f", 1), h);
  };
  auto mix_num = [&](double x) {
    char b[sizeof(double)];
    std::memcpy(b, &x, sizeof b);
    mix(std::string_view(b, sizeof b));
  };
  for (const recsys::Anime& a : ds.anime) {
    mix(std::to_string(a.id));
    mix(a.title);
    mix(a.type);
    mix(a.synopsis);
    for (double x : {a.episodes, a.score, a.members, a.favorites}) mix_num(x);
    for (const auto* list : {&a.genres, &a.themes, &a.studios}) {
      for (const std::string& s : *list) mix(s);
      mix("|");
    }
  }
  for (const recsys::Review& r : ds.reviews) {
    mix(std::to_string(r.item));
    mix(r.text);
  }
  for (const recsys::RecText& r : ds.rec_texts) {
    mix(std::to_string(r.a) + "," + std::to_string(r.b));
    mix(r.text);
  }
  return fmt::format("items={},ratings={},reviews={},rec_texts={},content={:016x}", ds.num_items(),
                     ds.ratings.size(), ds.reviews.size(), ds.rec_texts.size(), h);
}

FeatureCacheStats feature_cache_stats() {
  return {g_hits.load(), g_misses.load(), g_writes.load()};
}

namespace {

FeatureBlock text_block(const recsys::Dataset& ds, const FeatureConfig& cfg) {
  FeatureBlock b;
  DAN_CHECK(cfg.fields.any(), "features: kind {} needs at least one text field", name(cfg.kind));
  if (cfg.kind == ContentKind::bert) {
    const std::string dir = bert::resolve_model_dir(cfg.bert);
    const bert::WordPieceTokenizer tok = bert::WordPieceTokenizer::from_dir(dir);
    const std::shared_ptr<bert::BertModel> model = bert::BertModel::from_pretrained(dir);
    const std::vector<std::string> docs = raw_documents(ds, cfg.fields);
    fmt::print("features: encoding {} anime texts with {} (max {} tokens)\n", docs.size(), dir,
               cfg.bert.max_length);
    int64_t last = 0;
    b.x = bert::encode_texts(*model, tok, docs, cfg.bert, [&](int64_t done, int64_t total) {
      if (done - last >= 2000 || done == total) {
        fmt::print("features: {}/{} texts encoded\n", done, total);
        std::fflush(stdout);
        last = done;
      }
    });
    for (int64_t j = 0; j < b.x.size(1); ++j) b.columns.push_back(fmt::format("bert{}", j));
    if (cfg.standardize) b.x = standardize_columns(b.x);
    return b;
  }
  const Corpus corpus = build_corpus(ds, cfg.fields, cfg.tokenizer);
  if (cfg.kind == ContentKind::tfidf) {
    DAN_CHECK(cfg.svd_dims >= 0, "features: svd_dims must be >= 0, got {}", cfg.svd_dims);
    const Tfidf tf = tfidf(corpus, cfg.tfidf);
    if (cfg.svd_dims > 0) {
      b.x = randomized_svd(tf.matrix, cfg.svd_dims, cfg.svd).transform();
      for (int64_t j = 0; j < cfg.svd_dims; ++j) b.columns.push_back(fmt::format("svd{}", j));
    } else {
      const recsys::Csr& m = tf.matrix;
      DAN_CHECK(m.rows * m.cols <= (int64_t{1} << 28),
                "features: a dense TF-IDF matrix of {} items x {} terms is too large (limit 2^28 "
                "values); set tfidf.max_features or svd_dims > 0",
                m.rows, m.cols);
      b.x = zeros({m.rows, m.cols});
      float* x = b.x.data<float>();
      for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t k = m.indptr[i]; k < m.indptr[i + 1]; ++k)
          x[i * m.cols + m.indices[k]] = m.values[k];
      for (const std::string& t : tf.vocabulary) b.columns.push_back("tfidf:" + t);
    }
  } else {
    const Word2Vec model = train_word2vec(corpus, cfg.word2vec);
    if (cfg.word2vec_tfidf_weighted) {
      const Tfidf tf = tfidf(corpus, cfg.tfidf);
      b.x = doc_vectors(model, corpus, &tf);
    } else {
      b.x = doc_vectors(model, corpus);
    }
    for (int64_t j = 0; j < cfg.word2vec.dim; ++j) b.columns.push_back(fmt::format("w2v{}", j));
  }
  if (cfg.standardize) b.x = standardize_columns(b.x);
  return b;
}

ItemFeatures compute(const recsys::Dataset& ds, const FeatureConfig& cfg) {
  std::vector<Tensor> parts;
  ItemFeatures out;
  if (cfg.kind != ContentKind::none) {
    FeatureBlock b = text_block(ds, cfg);
    parts.push_back(b.x);
    out.column_names = std::move(b.columns);
  }
  if (cfg.metadata) {
    FeatureBlock b = metadata_features(ds, cfg.meta);
    parts.push_back(b.x);
    out.column_names.insert(out.column_names.end(), b.columns.begin(), b.columns.end());
  }
  DAN_CHECK(!parts.empty(), "features: kind none with metadata off selects no features");
  out.x = parts.size() == 1 ? parts[0] : kernels::cat(parts, 1);
  return out;
}

bool try_load(const std::string& path, const std::string& key, const std::string& fingerprint,
              int64_t items, ItemFeatures* out) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  try {
    const st::Reader r = st::Reader::open(path);
    const auto& md = r.metadata();
    auto k = md.find("key"), d = md.find("dataset"), c = md.find("columns");
    if (k == md.end() || k->second != key || d == md.end() || d->second != fingerprint ||
        c == md.end())
      return false;
    Tensor x = load_tensor(r, "features");
    auto cols = nlohmann::json::parse(c->second).get<std::vector<std::string>>();
    if (x.dim() != 2 || x.dtype() != DType::f32 || x.size(0) != items ||
        x.size(1) != static_cast<int64_t>(cols.size()))
      return false;
    out->x = x;
    out->column_names = std::move(cols);
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable or truncated: recompute and overwrite
  }
}

}  // namespace

ItemFeatures build_item_features(const recsys::Dataset& ds, const FeatureConfig& cfg,
                                 const std::string& cache_dir) {
  if (cache_dir.empty()) {
    g_misses.fetch_add(1);
    return compute(ds, cfg);
  }
  const std::string key = cfg.key();
  const std::string fingerprint = dataset_fingerprint(ds);
  const std::string path =
      (std::filesystem::path(cache_dir) /
       fmt::format("anime2vec-{:016x}.safetensors", fnv1a64(key + "\n" + fingerprint)))
          .string();
  ItemFeatures out;
  if (try_load(path, key, fingerprint, ds.num_items(), &out)) {
    g_hits.fetch_add(1);
    out.from_cache = true;
    out.cache_path = path;
    return out;
  }
  g_misses.fetch_add(1);
  out = compute(ds, cfg);
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  DAN_CHECK(!ec, "features: cannot create cache directory '{}': {}", cache_dir, ec.message());
  save_safetensors(
      path, {{"features", out.x}},
      {{"key", key},
       {"dataset", fingerprint},
       {"columns", nlohmann::json(out.column_names)
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)}});
  g_writes.fetch_add(1);
  out.cache_path = path;
  return out;
}

Tensor item_features(const recsys::Dataset& ds, const FeatureConfig& cfg,
                     const std::string& cache_dir) {
  return build_item_features(ds, cfg, cache_dir).x;
}

}  // namespace dan::text
