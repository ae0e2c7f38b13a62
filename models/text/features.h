// Item content features ("anime2vec", classic variants): a dense [items, d] f32 matrix for every
// anime of a dataset (row = dataset item index), made of a text block (TF-IDF reduced by
// truncated SVD, or mean word2vec vectors) and/or the metadata block, cached on disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/bert/static_features.h"
#include "models/text/corpus.h"
#include "models/text/metadata.h"
#include "models/text/svd.h"
#include "models/text/tfidf.h"
#include "models/text/tokenize.h"
#include "models/text/word2vec.h"
#include "recsys/dataset.h"

namespace dan::text {

enum class ContentKind { none, tfidf, word2vec, bert };
const char* name(ContentKind k);
ContentKind parse_content_kind(const std::string& s);  // "none" | "tfidf" | "word2vec" | "bert"

struct FeatureConfig {
  ContentKind kind = ContentKind::tfidf;
  TextFields fields;          // default: synopsis only
  TokenizerConfig tokenizer;  // default: lower case, English stop words, tokens of >= 2 chars
  // TF-IDF of the text block (also the weights of word2vec_tfidf_weighted). Defaults differ
  // from scikit-learn's: terms in a single anime or in more than half of them carry no
  // similarity signal, and sublinear tf keeps long reviews from dominating.
  TfidfConfig tfidf{DfLimit::count(2), DfLimit::frac(0.5), 0, true, true, true};
  int64_t svd_dims = 300;  // TF-IDF -> truncated SVD to this many dims; 0 = the dense TF-IDF
  SvdConfig svd;
  Word2VecConfig word2vec;
  bool word2vec_tfidf_weighted = false;  // doc vector: TF-IDF-weighted instead of plain mean
  bert::StaticConfig bert;               // kind bert: the pretrained encoder and its pooling
  bool standardize = true;               // z-score the text block's columns
  bool metadata = true;                  // append the metadata block
  MetadataConfig meta;

  // Canonical text of every option that changes the result (not thread counts), with a
  // format version; the cache file name is a hash of it plus the dataset's fingerprint.
  std::string key() const;
};

struct ItemFeatures {
  Tensor x;                               // [items, d] f32
  std::vector<std::string> column_names;  // d names: "svd0".., "w2v0".., "tfidf:<term>", metadata
  bool from_cache = false;
  std::string cache_path;  // "" when caching is off
};

// Builds the features, or loads them from `cache_dir` (created if missing) when a previous run
// with the same key and dataset fingerprint stored them there; cache_dir "" disables the cache.
// A cache file whose stored key does not match (a hash collision) or that cannot be read is
// recomputed and rewritten. Throws when the config selects no features at all.
ItemFeatures build_item_features(const recsys::Dataset& ds, const FeatureConfig& cfg,
                                 const std::string& cache_dir);
// Just the matrix.
Tensor item_features(const recsys::Dataset& ds, const FeatureConfig& cfg,
                     const std::string& cache_dir);

// Identity of a dataset for the cache: item, rating, review and rec-text counts and a hash of
// every anime's id, title and synopsis.
std::string dataset_fingerprint(const recsys::Dataset& ds);
// 64-bit FNV-1a, stable across platforms and runs.
uint64_t fnv1a64(std::string_view s, uint64_t h = 0xcbf29ce484222325ull);

// Process-wide cache counters (for tests and logs).
struct FeatureCacheStats {
  int64_t hits = 0, misses = 0, writes = 0;
};
FeatureCacheStats feature_cache_stats();

}  // namespace dan::text
