// load_dataset: the five CSV files of the mal2023 format -> Dataset, with one clear error per
// bad input (or, in skip mode, a count per file and reason).
#include "recsys/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string_view>

#include "core/error.h"
#include "recsys/csv.h"

namespace dan::recsys {
namespace {

namespace fs = std::filesystem;

// Field text for a message, shortened when long.
std::string shown(std::string_view s) {
  constexpr size_t kMax = 40;
  if (s.size() <= kMax) return std::string(s);
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "...";
}

// Calls row() for every record; in skip mode a RowError (from the reader or from row()) is
// counted and the next record is read. row() must validate every field before it changes any
// state, so a skipped row leaves nothing behind.
template <typename F>
void for_each_row(CsvReader& r, const std::string& file, const LoadOptions& opts,
                  LoadReport& report, F&& row) {
  for (;;) {
    try {
      if (!r.next()) return;
      row();
    } catch (const RowError& e) {
      if (!opts.skip_bad_rows) throw;
      report.add(file, e.reason(), e.what());
    }
  }
}

int64_t get_int(const CsvReader& r, size_t k, const char* what) {
  int64_t v;
  if (!parse_int64(r.field(k), &v)) {
    r.fail(k, "bad number",
           fmt::format("expected an integer {}, got '{}'", what, shown(r.field(k))));
  }
  return v;
}

// Empty -> NaN.
double get_optional_number(const CsvReader& r, size_t k) {
  const std::string_view f = r.field(k);
  if (f.empty()) return Anime::kMissing;
  double v;
  if (!parse_double(f, &v)) {
    r.fail(k, "bad number", fmt::format("expected a number or an empty field, got '{}'", shown(f)));
  }
  return v;
}

// MAL id -> item index for the files that reference anime. MAL ids are small and dense
// enough for a flat table (one load instead of a hash-chain walk per rating row); the hash map
// is the fallback for ids far apart.
class ItemIndex {
 public:
  explicit ItemIndex(const Dataset& ds) : ds_(ds) {
    int64_t lo = 0, hi = -1;
    for (const Anime& a : ds.anime) {
      if (hi < lo) lo = hi = a.id;
      lo = std::min(lo, a.id);
      hi = std::max(hi, a.id);
    }
    if (hi >= lo && hi - lo < 8 * static_cast<int64_t>(ds.anime.size()) + (1 << 20)) {
      base_ = lo;
      table_.assign(static_cast<size_t>(hi - lo + 1), -1);
      for (size_t i = 0; i < ds.anime.size(); ++i) {
        table_[static_cast<size_t>(ds.anime[i].id - lo)] = static_cast<int32_t>(i);
      }
    }
  }
  int32_t find(int64_t id) const {
    if (!table_.empty()) {
      const int64_t k = id - base_;
      return k >= 0 && k < static_cast<int64_t>(table_.size()) ? table_[static_cast<size_t>(k)]
                                                               : -1;
    }
    const auto it = ds_.item_of_id.find(id);
    return it == ds_.item_of_id.end() ? -1 : it->second;
  }

 private:
  const Dataset& ds_;
  int64_t base_ = 0;
  std::vector<int32_t> table_;
};

int32_t get_item(const CsvReader& r, size_t k, const ItemIndex& index) {
  const int64_t id = get_int(r, k, "anime id");
  const int32_t item = index.find(id);
  if (item < 0) r.fail(k, "unknown anime id", fmt::format("anime id {} is not in anime.csv", id));
  return item;
}

// A 1..10 score; non-integer values are rejected only where `integer` (ratings).
float get_score(const CsvReader& r, size_t k, bool integer) {
  const std::string_view f = r.field(k);
  double v;
  if (!parse_double(f, &v)) {
    r.fail(
        k, "bad number",
        fmt::format("expected {} score 1..10, got '{}'", integer ? "an integer" : "a", shown(f)));
  }
  if (integer && v != std::floor(v)) {
    r.fail(k, "bad score", fmt::format("score {} is not an integer (expected 1..10)", shown(f)));
  }
  if (!(v >= 1 && v <= 10)) {
    r.fail(k, "bad score", fmt::format("score {} is outside 1..10", shown(f)));
  }
  return static_cast<float>(v);
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  for (;;) {
    const size_t bar = s.find('|', start);
    out.emplace_back(s.substr(start, bar == std::string_view::npos ? s.npos : bar - start));
    if (bar == std::string_view::npos) break;
    start = bar + 1;
  }
  return out;
}

// ---- anime.csv ---------------------------------------------------------------------------
void load_anime(Dataset& ds, const std::string& path, const LoadOptions& opts) {
  CsvReader r = CsvReader::open(path);
  enum {
    kId,
    kTitle,
    kType,
    kEpisodes,
    kScore,
    kRanked,
    kPopularity,
    kMembers,
    kFavorites,
    kGenres,
    kThemes,
    kStudios,
    kSynopsis
  };
  r.read_header({"anime_id", "title", "type", "episodes", "score", "ranked", "popularity",
                 "members", "favorites", "genres", "themes", "studios", "synopsis"});
  std::vector<int64_t> line_of;  // item -> line, for duplicate messages
  for_each_row(r, "anime.csv", opts, ds.report, [&] {
    Anime a;
    a.id = get_int(r, kId, "anime id");
    a.episodes = get_optional_number(r, kEpisodes);
    a.score = get_optional_number(r, kScore);
    a.ranked = get_optional_number(r, kRanked);
    a.popularity = get_optional_number(r, kPopularity);
    a.members = get_optional_number(r, kMembers);
    a.favorites = get_optional_number(r, kFavorites);
    const auto item = static_cast<int32_t>(ds.anime.size());
    const auto [it, fresh] = ds.item_of_id.try_emplace(a.id, item);
    if (!fresh) {
      r.fail(kId, "duplicate anime_id",
             fmt::format("duplicate anime_id {} (first at line {})", a.id, line_of[it->second]));
    }
    a.title = r.field(kTitle);
    a.type = r.field(kType);
    a.genres = split_list(r.field(kGenres));
    a.themes = split_list(r.field(kThemes));
    a.studios = split_list(r.field(kStudios));
    a.synopsis = r.field(kSynopsis);
    ds.anime.push_back(std::move(a));
    line_of.push_back(r.line());
  });
}

// ---- ratings.csv -------------------------------------------------------------------------
void load_ratings(Dataset& ds, const std::string& path, const LoadOptions& opts) {
  CsvReader r = CsvReader::open(path);
  const ItemIndex index(ds);
  enum { kUser, kAnime, kScore };
  r.read_header({"user_id", "anime_id", "score"});
  struct Row {
    int32_t user, item;
    float score;
    int32_t line;
  };
  std::vector<Row> rows;
  rows.reserve(r.size_bytes() / 12);
  std::unordered_map<int64_t, int32_t> user_of_id;
  // Rows come grouped by user: remember the last one to skip most hash lookups.
  int64_t last_id = 0;
  int32_t last_user = -1;
  for_each_row(r, "ratings.csv", opts, ds.report, [&] {
    const int64_t uid = get_int(r, kUser, "user id");
    const int32_t item = get_item(r, kAnime, index);
    const float score = get_score(r, kScore, true);
    DAN_CHECK(r.line() <= std::numeric_limits<int32_t>::max(), "{}: too many lines", path);
    if (last_user < 0 || uid != last_id) {
      const auto [it, fresh] =
          user_of_id.try_emplace(uid, static_cast<int32_t>(ds.user_ids.size()));
      if (fresh) ds.user_ids.push_back(uid);
      last_id = uid;
      last_user = it->second;
    }
    rows.push_back({last_user, item, score, static_cast<int32_t>(r.line())});
  });

  // Counting sort by user (stable: file order within a user), then each user's rows by item.
  const size_t nu = ds.user_ids.size();
  std::vector<int64_t> start(nu + 1, 0);
  for (const Row& x : rows) ++start[static_cast<size_t>(x.user) + 1];
  for (size_t u = 0; u < nu; ++u) start[u + 1] += start[u];
  std::vector<Row> sorted(rows.size());
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (const Row& x : rows) sorted[static_cast<size_t>(next[static_cast<size_t>(x.user)]++)] = x;
  }
  rows.clear();
  rows.shrink_to_fit();
  ds.ratings.reserve(sorted.size());
  for (size_t u = 0; u < nu; ++u) {
    const auto b = sorted.begin() + start[u], e = sorted.begin() + start[u + 1];
    std::sort(b, e, [](const Row& x, const Row& y) {
      return x.item != y.item ? x.item < y.item : x.line < y.line;
    });
    for (auto it = b; it != e; ++it) {
      if (it != b && it->item == (it - 1)->item) {
        // The first row of a (user, anime) pair wins; later ones are the error.
        const std::string msg =
            fmt::format("{}: duplicate rating of anime_id {} by user_id {} (first at line {})",
                        r.where_line(it->line, kAnime), ds.anime[static_cast<size_t>(it->item)].id,
                        ds.user_ids[u], (it - 1)->line);
        DAN_CHECK(opts.skip_bad_rows, "{}", msg);
        ds.report.add("ratings.csv", "duplicate rating", msg);
        continue;
      }
      ds.ratings.push_back({it->user, it->item, it->score});
    }
  }
}

// ---- the optional files --------------------------------------------------------------------
void load_reviews(Dataset& ds, const std::string& path, const LoadOptions& opts) {
  CsvReader r = CsvReader::open(path);
  const ItemIndex index(ds);
  enum { kAnime, kScore, kText };
  r.read_header({"anime_id", "score", "text"});
  for_each_row(r, "reviews.csv", opts, ds.report, [&] {
    Review v;
    v.item = get_item(r, kAnime, index);
    v.score = r.field(kScore).empty() ? std::numeric_limits<float>::quiet_NaN()
                                      : get_score(r, kScore, false);
    v.text = r.field(kText);
    ds.reviews.push_back(std::move(v));
  });
}

void load_recommendations(Dataset& ds, const std::string& path, const LoadOptions& opts) {
  CsvReader r = CsvReader::open(path);
  const ItemIndex index(ds);
  enum { kA, kB, kWeight };
  r.read_header({"anime_id", "rec_anime_id", "weight"});
  for_each_row(r, "recommendations.csv", opts, ds.report, [&] {
    RecEdge e;
    e.a = get_item(r, kA, index);
    e.b = get_item(r, kB, index);
    if (!parse_float(r.field(kWeight), &e.weight) || e.weight < 0) {
      r.fail(kWeight, "bad number",
             fmt::format("expected a non-negative weight, got '{}'", shown(r.field(kWeight))));
    }
    ds.recommendations.push_back(e);
  });
}

void load_rec_texts(Dataset& ds, const std::string& path, const LoadOptions& opts) {
  CsvReader r = CsvReader::open(path);
  const ItemIndex index(ds);
  enum { kA, kB, kText };
  r.read_header({"anime_id", "rec_anime_id", "text"});
  for_each_row(r, "rec_texts.csv", opts, ds.report, [&] {
    RecText t;
    t.a = get_item(r, kA, index);
    t.b = get_item(r, kB, index);
    t.text = r.field(kText);
    ds.rec_texts.push_back(std::move(t));
  });
}

}  // namespace

void LoadReport::add(const std::string& file, const std::string& reason,
                     const std::string& message) {
  if (skipped[file][reason]++ == 0) first[file][reason] = message;
}

int64_t LoadReport::total_skipped() const {
  int64_t n = 0;
  for (const auto& [file, reasons] : skipped)
    for (const auto& [reason, count] : reasons) n += count;
  return n;
}

std::string LoadReport::str() const {
  std::string out;
  for (const auto& [file, reasons] : skipped) {
    for (const auto& [reason, count] : reasons) {
      const auto f = first.find(file);
      const std::string* msg = nullptr;
      if (f != first.end()) {
        const auto m = f->second.find(reason);
        if (m != f->second.end()) msg = &m->second;
      }
      out += fmt::format("{}: skipped {} row{} ({}){}{}\n", file, count, count == 1 ? "" : "s",
                         reason, msg ? "; first: " : "", msg ? *msg : "");
    }
  }
  return out;
}

std::string Dataset::summary() const {
  std::string s = fmt::format(
      "{} anime, {} users, {} ratings, {} reviews, {} recommendation edges, {} rec texts",
      anime.size(), user_ids.size(), ratings.size(), reviews.size(), recommendations.size(),
      rec_texts.size());
  if (const int64_t n = report.total_skipped(); n > 0)
    s += fmt::format(" ({} bad rows skipped)", n);
  return s;
}

Dataset load_dataset(const std::string& dir, const LoadOptions& opts) {
  DAN_CHECK(!dir.empty(),
            "load_dataset: no data directory given (set DEEPANINET_DATA to the mal2023 "
            "directory)");
  std::error_code ec;
  DAN_CHECK(fs::is_directory(dir, ec), "load_dataset: data directory '{}' not found", dir);
  const auto file = [&](const char* name) { return (fs::path(dir) / name).string(); };
  for (const char* required : {"anime.csv", "ratings.csv"}) {
    DAN_CHECK(fs::exists(file(required), ec), "load_dataset: {}: required file not found",
              file(required));
  }
  Dataset ds;
  ds.dir = dir;
  load_anime(ds, file("anime.csv"), opts);
  load_ratings(ds, file("ratings.csv"), opts);
  if (opts.reviews && fs::exists(file("reviews.csv"), ec))
    load_reviews(ds, file("reviews.csv"), opts);
  if (opts.recommendations && fs::exists(file("recommendations.csv"), ec)) {
    load_recommendations(ds, file("recommendations.csv"), opts);
  }
  if (opts.rec_texts && fs::exists(file("rec_texts.csv"), ec)) {
    load_rec_texts(ds, file("rec_texts.csv"), opts);
  }
  return ds;
}

std::string default_data_dir() {
  if (const char* env = std::getenv("DEEPANINET_DATA"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  std::vector<fs::path> candidates;
  const fs::path cwd = fs::current_path(ec);
  if (!ec) {
    candidates.push_back(cwd / ".." / "shared" / "data" / "mal2023");
    candidates.push_back(cwd / ".." / ".." / "shared" / "data" / "mal2023");
  }
#ifdef DAN_SOURCE_DIR
  candidates.push_back(fs::path(DAN_SOURCE_DIR) / ".." / "shared" / "data" / "mal2023");
#endif
  for (const fs::path& c : candidates) {
    if (fs::is_directory(c, ec)) return c.lexically_normal().string();
  }
  return "";
}

}  // namespace dan::recsys
