// The dataset: anime metadata, ratings, reviews and the recommendation graph, loaded from a
// directory in the mal2023 format (see ../shared/data/mal2023/README.md and recsys/README.md).
// Anime and users are addressed by dense indices; the original ids are kept for output.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace dan::recsys {

struct Anime {
  static constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
  int64_t id = 0;  // MyAnimeList anime id
  std::string title, type;
  // Numbers are NaN where the CSV field is empty.
  double episodes = kMissing, score = kMissing, ranked = kMissing, popularity = kMissing,
         members = kMissing, favorites = kMissing;
  std::vector<std::string> genres, themes, studios;  // '|'-separated lists in the CSV
  std::string synopsis;
};

struct Rating {
  int32_t user = 0;  // dense user index
  int32_t item = 0;  // dense anime index (position in Dataset::anime)
  float score = 0;   // 1..10, an integer
};

struct Review {
  int32_t item = 0;
  float score = 0;  // NaN if empty, else 1..10
  std::string text;
};

struct RecEdge {  // recommendations.csv
  int32_t a = 0, b = 0;
  float weight = 0;
};

struct RecText {  // rec_texts.csv
  int32_t a = 0, b = 0;
  std::string text;
};

// Rows skipped per (file, reason) when LoadOptions::skip_bad_rows is set. Files are named by
// their base name ("ratings.csv"); reasons are short fixed labels ("bad number",
// "unknown anime id", "duplicate rating", ...).
struct LoadReport {
  std::map<std::string, std::map<std::string, int64_t>> skipped;    // file -> reason -> count
  std::map<std::string, std::map<std::string, std::string>> first;  // file -> reason -> message
  void add(const std::string& file, const std::string& reason, const std::string& message);
  int64_t total_skipped() const;
  // One line per file/reason with the count and the first such row's message, "" when nothing
  // was skipped.
  std::string str() const;
};

struct LoadOptions {
  bool skip_bad_rows = false;  // false: the first bad row is an error naming file/line/column
  bool reviews = true, recommendations = true, rec_texts = true;  // optional files, if present
};

struct Dataset {
  std::string dir;
  std::vector<Anime> anime;                         // anime.csv row order; item index = position
  std::unordered_map<int64_t, int32_t> item_of_id;  // MAL id -> item index
  std::vector<int64_t> user_ids;                    // user index -> user_id of ratings.csv
  std::vector<Rating> ratings;                      // sorted by (user, item), unique pairs
  std::vector<Review> reviews;                      // file order
  std::vector<RecEdge> recommendations;             // file order
  std::vector<RecText> rec_texts;                   // file order
  LoadReport report;

  int64_t num_items() const { return static_cast<int64_t>(anime.size()); }
  int64_t num_users() const { return static_cast<int64_t>(user_ids.size()); }
  std::string summary() const;  // counts, one line
};

// Loads DIR/anime.csv and DIR/ratings.csv (required) and, when present and enabled,
// reviews.csv, recommendations.csv and rec_texts.csv (an absent optional file leaves its
// vector empty; a present one must be well formed). User indices are dense, in order of first
// appearance in ratings.csv. Every error names the file, the line the record starts on, the
// column (1-based, with its name) and what was expected: bad quoting, invalid UTF-8, wrong
// column count, a missing or unknown header column, a non-numeric number, a rating score that is
// not an integer in 1..10, an anime id unknown to anime.csv, a duplicate anime_id, a duplicate
// (user_id, anime_id) rating, a missing directory or required file. With
// opts.skip_bad_rows, bad rows are dropped and counted in Dataset::report instead (problems
// with a whole file -- missing, bad header, a quote never closed -- are errors either way).
Dataset load_dataset(const std::string& dir, const LoadOptions& opts = {});

// $DEEPANINET_DATA if set (returned even when it does not exist, so that the loader's error
// names it), else the first existing directory of <cwd>/../shared/data/mal2023,
// <cwd>/../../shared/data/mal2023 and <repository root>/../shared/data/mal2023; "" when none.
std::string default_data_dir();

}  // namespace dan::recsys
