// Corpus construction. Documents are tokenized in parallel, each thread interning into its own
// dictionary over a contiguous range of documents; merging the dictionaries in thread order
// gives every term the id of its first occurrence in document order, whatever the thread count.
#include "models/text/corpus.h"

#include <omp.h>

#include <functional>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "core/threads.h"

namespace dan::text {

namespace {

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Dict = std::unordered_map<std::string, int32_t, SvHash, std::equal_to<>>;

int32_t intern(Dict& dict, std::vector<std::string>& terms, std::string_view t) {
  auto it = dict.find(t);
  if (it != dict.end()) return it->second;
  const auto id = static_cast<int32_t>(terms.size());
  DAN_CHECK(terms.size() < static_cast<size_t>(INT32_MAX), "corpus: more than 2^31 terms");
  terms.emplace_back(t);
  dict.emplace(std::string(t), id);
  return id;
}

// Builds a corpus of `n` documents; `fill(d, add)` calls add(token) for each token of
// document d. Runs fill in parallel over contiguous document ranges.
Corpus build(
    int64_t n,
    const std::function<void(int64_t, const std::function<void(std::string_view)>&)>& fill) {
  Corpus c;
  c.docs.resize(static_cast<size_t>(n));
  const int threads =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads(), n / 64 + 1)));
  std::vector<std::vector<std::string>> local_terms(threads);
  std::vector<int64_t> begin(threads + 1);
  for (int t = 0; t <= threads; ++t) begin[t] = n * t / threads;
  std::string error;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    Dict dict;
    try {
      for (int64_t d = begin[t]; d < begin[t + 1]; ++d) {
        std::vector<int32_t>& doc = c.docs[d];
        fill(d, [&](std::string_view tok) { doc.push_back(intern(dict, local_terms[t], tok)); });
      }
    } catch (const std::exception& e) {
#pragma omp critical(dan_text_corpus_error)
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty()) throw Error(error);
  // Merge in thread order = document order.
  Dict global;
  std::vector<std::vector<int32_t>> remap(threads);
  for (int t = 0; t < threads; ++t) {
    remap[t].resize(local_terms[t].size());
    for (size_t i = 0; i < local_terms[t].size(); ++i)
      remap[t][i] = intern(global, c.terms, local_terms[t][i]);
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int t = 0; t < threads; ++t)
    for (int64_t d = begin[t]; d < begin[t + 1]; ++d)
      for (int32_t& id : c.docs[d]) id = remap[t][id];
  return c;
}

}  // namespace

int64_t Corpus::num_tokens() const {
  int64_t n = 0;
  for (const auto& d : docs) n += static_cast<int64_t>(d.size());
  return n;
}

std::string TextFields::key() const {
  return "fields(title=" + std::to_string(title) + ",synopsis=" + std::to_string(synopsis) +
         ",reviews=" + std::to_string(reviews) + ",rec_texts=" + std::to_string(rec_texts) +
         ",genres=" + std::to_string(genres) + ",themes=" + std::to_string(themes) +
         ",studios=" + std::to_string(studios) + ")";
}

std::string tag_token(const std::string& prefix, const std::string& name) {
  static const Tokenizer plain(TokenizerConfig{true, false, {}, 1});
  std::string out = prefix + ":";
  bool first = true;
  plain.tokenize(name, [&](std::string_view t) {
    if (!first) out += '_';
    out += t;
    first = false;
  });
  return out;
}

Corpus build_corpus(const std::vector<std::string>& docs, const TokenizerConfig& tok) {
  const Tokenizer tokenizer(tok);
  return build(static_cast<int64_t>(docs.size()),
               [&](int64_t d, const std::function<void(std::string_view)>& add) {
                 tokenizer.tokenize(docs[d], add);
               });
}

Corpus corpus_from_tokens(const std::vector<std::vector<std::string>>& docs) {
  return build(static_cast<int64_t>(docs.size()),
               [&](int64_t d, const std::function<void(std::string_view)>& add) {
                 for (const std::string& t : docs[d]) add(t);
               });
}

Corpus build_corpus(const recsys::Dataset& ds, const TextFields& fields,
                    const TokenizerConfig& tok) {
  const int64_t n = ds.num_items();
  std::vector<std::vector<int32_t>> reviews_of(fields.reviews ? n : 0);
  if (fields.reviews)
    for (size_t i = 0; i < ds.reviews.size(); ++i) {
      const int32_t it = ds.reviews[i].item;
      DAN_CHECK(it >= 0 && it < n,
                "build_corpus: reviews.csv entry {} has item index {}, expected [0, {})", i, it, n);
      reviews_of[it].push_back(static_cast<int32_t>(i));
    }
  std::vector<std::vector<int32_t>> recs_of(fields.rec_texts ? n : 0);
  if (fields.rec_texts)
    for (size_t i = 0; i < ds.rec_texts.size(); ++i) {
      const recsys::RecText& r = ds.rec_texts[i];
      DAN_CHECK(r.a >= 0 && r.a < n && r.b >= 0 && r.b < n,
                "build_corpus: rec_texts.csv entry {} has item indices ({}, {}), expected [0, {})",
                i, r.a, r.b, n);
      recs_of[r.a].push_back(static_cast<int32_t>(i));
      if (r.b != r.a) recs_of[r.b].push_back(static_cast<int32_t>(i));
    }
  // Tag tokens, computed once per distinct name.
  std::unordered_map<std::string, std::string> tags;
  auto collect = [&](bool on, const char* prefix, auto member) {
    if (!on) return;
    for (const recsys::Anime& a : ds.anime)
      for (const std::string& name : a.*member) {
        const std::string key = std::string(prefix) + '\x1f' + name;
        if (!tags.count(key)) tags.emplace(key, tag_token(prefix, name));
      }
  };
  collect(fields.genres, "genre", &recsys::Anime::genres);
  collect(fields.themes, "theme", &recsys::Anime::themes);
  collect(fields.studios, "studio", &recsys::Anime::studios);

  const Tokenizer tokenizer(tok);
  return build(n, [&](int64_t d, const std::function<void(std::string_view)>& add) {
    const recsys::Anime& a = ds.anime[d];
    if (fields.title) tokenizer.tokenize(a.title, add);
    if (fields.synopsis) tokenizer.tokenize(a.synopsis, add);
    if (fields.reviews)
      for (int32_t r : reviews_of[d]) tokenizer.tokenize(ds.reviews[r].text, add);
    if (fields.rec_texts)
      for (int32_t r : recs_of[d]) tokenizer.tokenize(ds.rec_texts[r].text, add);
    auto add_tags = [&](bool on, const char* prefix, const std::vector<std::string>& names) {
      if (!on) return;
      for (const std::string& name : names) add(tags.at(std::string(prefix) + '\x1f' + name));
    };
    add_tags(fields.genres, "genre", a.genres);
    add_tags(fields.themes, "theme", a.themes);
    add_tags(fields.studios, "studio", a.studios);
  });
}

std::vector<std::string> raw_documents(const recsys::Dataset& ds, const TextFields& fields) {
  const int64_t n = ds.num_items();
  std::vector<std::string> docs(static_cast<size_t>(n));
  const auto append = [](std::string& d, std::string_view t) {
    if (t.empty()) return;
    if (!d.empty()) d += ' ';
    d += t;
  };
  for (int64_t i = 0; i < n; ++i) {
    const recsys::Anime& a = ds.anime[static_cast<size_t>(i)];
    if (fields.title) append(docs[static_cast<size_t>(i)], a.title);
    if (fields.synopsis) append(docs[static_cast<size_t>(i)], a.synopsis);
  }
  if (fields.reviews)
    for (size_t r = 0; r < ds.reviews.size(); ++r) {
      const int32_t it = ds.reviews[r].item;
      DAN_CHECK(it >= 0 && it < n, "raw_documents: reviews.csv entry {} has item index {}, expected [0, {})", r, it, n);
      append(docs[static_cast<size_t>(it)], ds.reviews[r].text);
    }
  if (fields.rec_texts)
    for (size_t r = 0; r < ds.rec_texts.size(); ++r) {
      const recsys::RecText& t = ds.rec_texts[r];
      DAN_CHECK(t.a >= 0 && t.a < n && t.b >= 0 && t.b < n,
                "raw_documents: rec_texts.csv entry {} has item indices ({}, {}), expected [0, {})", r, t.a, t.b, n);
      append(docs[static_cast<size_t>(t.a)], t.text);
      if (t.b != t.a) append(docs[static_cast<size_t>(t.b)], t.text);
    }
  const auto tags = [&](bool on, const char* label, auto member) {
    if (!on) return;
    for (int64_t i = 0; i < n; ++i) {
      const std::vector<std::string>& names = ds.anime[static_cast<size_t>(i)].*member;
      if (names.empty()) continue;
      std::string s = std::string(label) + ": ";
      for (size_t k = 0; k < names.size(); ++k) s += (k ? ", " : "") + names[k];
      append(docs[static_cast<size_t>(i)], s + ".");
    }
  };
  tags(fields.genres, "Genres", &recsys::Anime::genres);
  tags(fields.themes, "Themes", &recsys::Anime::themes);
  tags(fields.studios, "Studios", &recsys::Anime::studios);
  return docs;
}

}  // namespace dan::text
