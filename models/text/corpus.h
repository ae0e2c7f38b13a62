// The per-anime text corpus: one document per dataset item (row = item index), made of the
// tokens of the configured text fields, with every distinct token interned to an integer id.
// TF-IDF and word2vec both read this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/text/tokenize.h"
#include "recsys/dataset.h"

namespace dan::text {

// Which fields make up an anime's document. Text fields are tokenized in this order: title,
// synopsis, reviews (all of the anime's reviews, in file order), recommendation texts (a text of
// rec_texts.csv belongs to both anime of its pair). Genres, themes and studios are appended as
// one tag token per name ("genre:slice_of_life"), which no tokenized word can collide with.
struct TextFields {
  bool title = false;
  bool synopsis = true;
  bool reviews = false;
  bool rec_texts = false;
  bool genres = false;
  bool themes = false;
  bool studios = false;
  std::string key() const;
  bool any() const {
    return title || synopsis || reviews || rec_texts || genres || themes || studios;
  }
};

struct Corpus {
  std::vector<std::string> terms;          // term id -> token, in order of first occurrence
  std::vector<std::vector<int32_t>> docs;  // token ids of each document, in text order

  int64_t num_docs() const { return static_cast<int64_t>(docs.size()); }
  int64_t num_terms() const { return static_cast<int64_t>(terms.size()); }
  int64_t num_tokens() const;
};

// Tokenizes raw documents (in parallel; the result does not depend on the thread count).
Corpus build_corpus(const std::vector<std::string>& docs, const TokenizerConfig& tok);
// Same from pre-tokenized documents.
Corpus corpus_from_tokens(const std::vector<std::vector<std::string>>& docs);
// One document per anime of `ds` from `fields`. Reviews and recommendation texts that point at
// an item index outside the dataset are an error naming the file and the index.
Corpus build_corpus(const recsys::Dataset& ds, const TextFields& fields,
                    const TokenizerConfig& tok);

// The untokenized text of each anime from `fields`, for encoders with their own tokenizer
// (BERT): the text fields in the order above joined by single spaces, then one sentence per tag
// list ("Genres: Action, Drama."). Index errors as build_corpus.
std::vector<std::string> raw_documents(const recsys::Dataset& ds, const TextFields& fields);

// The tag token of a genre/theme/studio name: prefix + ':' + lower-cased words joined by '_'.
std::string tag_token(const std::string& prefix, const std::string& name);

}  // namespace dan::text
