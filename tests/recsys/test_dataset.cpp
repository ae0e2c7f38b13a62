// Tests for recsys/dataset: a small hand-written dataset loaded field by field, one test per
// error class with the exact file/line/column of the message, skip-and-count mode, the data
// directory lookup, and the real mal2023 files against the counts of their README.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "core/error.h"
#include "recsys/csv.h"
#include "recsys/dataset.h"

namespace dan::recsys {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A fresh directory, removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = fs::temp_directory_path() / fmt::format("dan_dataset_{}_{}", tag, ::getpid());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }

 private:
  fs::path path_;
};

// The base dataset: CRLF anime.csv with a quoted title, a synopsis spanning two lines (lines
// 3-4) and a row of empty fields; LF ratings.csv with users 7 and 3 in that order.
const std::map<std::string, std::string> kBase = {
    {"anime.csv",
     "anime_id,title,type,episodes,score,ranked,popularity,members,favorites,genres,themes,"
     "studios,synopsis\r\n"
     "1,Cowboy Bebop,TV,26,8.75,39,43,1745107,77360,Action|Award Winning|Sci-Fi,Adult "
     "Cast|Space,Sunrise,\"Crime is timeless, they say.\"\r\n"
     "5,\"Bebop: \"\"The Movie\"\", part 1\",Movie,1,8.38,191,598,356338,1417,Action|Sci-Fi,,"
     "Bones,\"Another day,\r\nanother bounty.\"\r\n"
     "6,Trigun,,,,,,,,,,,\r\n"},
    {"ratings.csv", "user_id,anime_id,score\n7,5,9\n7,1,8\n3,6,10\n3,1,1\n"},
    {"reviews.csv", "anime_id,score,text\n5,8,\"Great, really.\"\n6,,no score\n"},
    {"recommendations.csv", "anime_id,rec_anime_id,weight\n1,5,90\n6,1,3\n"},
    {"rec_texts.csv", "anime_id,rec_anime_id,text\n1,6,\"Both have \"\"guns\"\".\"\n"},
};

// Writes the base files with `changes` applied (an empty text removes the file).
void write_files(const TempDir& dir, const std::map<std::string, std::string>& changes = {}) {
  for (const auto& [name, text] : kBase) {
    const auto it = changes.find(name);
    if (it == changes.end()) {
      dir.write(name, text);
    } else if (!it->second.empty()) {
      dir.write(name, it->second);
    }
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

// The message of loading the base files with `changes`, the directory's path replaced by DIR.
std::string load_error(const std::map<std::string, std::string>& changes, const std::string& tag) {
  TempDir dir(tag);
  write_files(dir, changes);
  std::string msg = error_of([&] { load_dataset(dir.str()); });
  for (size_t at; (at = msg.find(dir.str())) != std::string::npos;)
    msg.replace(at, dir.str().size(), "DIR");
  return msg;
}

const std::string kRatingsHeader = "user_id,anime_id,score\n";

TEST(RecsysDataset, LoadsEveryFieldOfTheBaseFiles) {
  TempDir dir("base");
  write_files(dir);
  const Dataset ds = load_dataset(dir.str());
  EXPECT_EQ(ds.dir, dir.str());
  ASSERT_EQ(ds.num_items(), 3);
  const Anime& a = ds.anime[0];
  EXPECT_EQ(a.id, 1);
  EXPECT_EQ(a.title, "Cowboy Bebop");
  EXPECT_EQ(a.type, "TV");
  EXPECT_EQ(a.episodes, 26);
  EXPECT_EQ(a.score, 8.75);
  EXPECT_EQ(a.ranked, 39);
  EXPECT_EQ(a.popularity, 43);
  EXPECT_EQ(a.members, 1745107);
  EXPECT_EQ(a.favorites, 77360);
  EXPECT_EQ(a.genres, (std::vector<std::string>{"Action", "Award Winning", "Sci-Fi"}));
  EXPECT_EQ(a.themes, (std::vector<std::string>{"Adult Cast", "Space"}));
  EXPECT_EQ(a.studios, (std::vector<std::string>{"Sunrise"}));
  EXPECT_EQ(a.synopsis, "Crime is timeless, they say.");
  EXPECT_EQ(ds.anime[1].title, "Bebop: \"The Movie\", part 1");
  EXPECT_EQ(ds.anime[1].synopsis, "Another day,\r\nanother bounty.");
  EXPECT_TRUE(ds.anime[1].themes.empty());
  const Anime& t = ds.anime[2];
  EXPECT_EQ(t.title, "Trigun");
  EXPECT_EQ(t.type, "");
  for (const double x : {t.episodes, t.score, t.ranked, t.popularity, t.members, t.favorites}) {
    EXPECT_TRUE(std::isnan(x));
  }
  EXPECT_TRUE(t.genres.empty() && t.themes.empty() && t.studios.empty() && t.synopsis.empty());
  EXPECT_EQ(ds.item_of_id.at(1), 0);
  EXPECT_EQ(ds.item_of_id.at(5), 1);
  EXPECT_EQ(ds.item_of_id.at(6), 2);

  // Users dense in order of first appearance; ratings sorted by (user, item).
  EXPECT_EQ(ds.user_ids, (std::vector<int64_t>{7, 3}));
  ASSERT_EQ(ds.ratings.size(), 4u);
  const std::vector<std::tuple<int, int, float>> want = {
      {0, 0, 8}, {0, 1, 9}, {1, 0, 1}, {1, 2, 10}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(ds.ratings[i].user, std::get<0>(want[i])) << i;
    EXPECT_EQ(ds.ratings[i].item, std::get<1>(want[i])) << i;
    EXPECT_EQ(ds.ratings[i].score, std::get<2>(want[i])) << i;
  }
  ASSERT_EQ(ds.reviews.size(), 2u);
  EXPECT_EQ(ds.reviews[0].item, 1);
  EXPECT_EQ(ds.reviews[0].score, 8.0f);
  EXPECT_EQ(ds.reviews[0].text, "Great, really.");
  EXPECT_TRUE(std::isnan(ds.reviews[1].score));
  ASSERT_EQ(ds.recommendations.size(), 2u);
  EXPECT_EQ(ds.recommendations[0].a, 0);
  EXPECT_EQ(ds.recommendations[0].b, 1);
  EXPECT_EQ(ds.recommendations[0].weight, 90.0f);
  EXPECT_EQ(ds.recommendations[1].a, 2);
  EXPECT_EQ(ds.recommendations[1].b, 0);
  ASSERT_EQ(ds.rec_texts.size(), 1u);
  EXPECT_EQ(ds.rec_texts[0].a, 0);
  EXPECT_EQ(ds.rec_texts[0].b, 2);
  EXPECT_EQ(ds.rec_texts[0].text, "Both have \"guns\".");
  EXPECT_EQ(ds.report.total_skipped(), 0);
  EXPECT_EQ(ds.report.str(), "");
  EXPECT_EQ(ds.summary(),
            "3 anime, 2 users, 4 ratings, 2 reviews, 2 recommendation edges, 1 rec texts");
}

TEST(RecsysDataset, OptionalFilesMayBeAbsentOrDisabled) {
  TempDir dir("optional");
  write_files(dir, {{"reviews.csv", ""}, {"rec_texts.csv", ""}});
  Dataset ds = load_dataset(dir.str());
  EXPECT_TRUE(ds.reviews.empty());
  EXPECT_TRUE(ds.rec_texts.empty());
  EXPECT_EQ(ds.recommendations.size(), 2u);
  // A disabled file is not read at all, even when malformed.
  dir.write("recommendations.csv", "not,a,valid\nheader\n");
  LoadOptions o;
  o.recommendations = false;
  ds = load_dataset(dir.str(), o);
  EXPECT_TRUE(ds.recommendations.empty());
  EXPECT_THAT(error_of([&] { load_dataset(dir.str()); }),
              StartsWith(dir.file("recommendations.csv") +
                         ": line 1, column 1: unexpected header column 'not'"));
}

TEST(RecsysDataset, BadQuoting) {
  const std::string msg =
      load_error({{"ratings.csv", kRatingsHeader + "7,5,9\n7,1,8\"\n"}}, "quote");
  EXPECT_EQ(msg,
            "DIR/ratings.csv: line 3, column 3 (score): quote inside an unquoted field (a "
            "field holding quotes must be enclosed in quotes and its quotes doubled)");
}

TEST(RecsysDataset, WrongColumnCount) {
  const std::string msg =
      load_error({{"ratings.csv", kRatingsHeader + "7,5,9\n7,1,8\n3,6,10,4\n"}}, "cols");
  EXPECT_EQ(msg,
            "DIR/ratings.csv: line 4, column 4: extra field: the record has 4 fields, "
            "expected 3 (user_id,anime_id,score)");
}

TEST(RecsysDataset, NonNumericNumberFields) {
  std::string anime = kBase.at("anime.csv");
  anime.replace(anime.find(",TV,26,"), 7, ",TV,twelve,");
  EXPECT_EQ(load_error({{"anime.csv", anime}}, "num1"),
            "DIR/anime.csv: line 2, column 4 (episodes): expected a number or an empty field, "
            "got 'twelve'");
  EXPECT_EQ(load_error({{"ratings.csv", kRatingsHeader + "7,5,9\nu7,1,8\n"}}, "num2"),
            "DIR/ratings.csv: line 3, column 1 (user_id): expected an integer user id, got 'u7'");
  EXPECT_EQ(load_error({{"ratings.csv", kRatingsHeader + "7,5,high\n"}}, "num3"),
            "DIR/ratings.csv: line 2, column 3 (score): expected an integer score 1..10, got "
            "'high'");
  EXPECT_EQ(load_error({{"recommendations.csv", "anime_id,rec_anime_id,weight\n1,5,-2\n"}}, "num4"),
            "DIR/recommendations.csv: line 2, column 3 (weight): expected a non-negative "
            "weight, got '-2'");
}

TEST(RecsysDataset, ErrorInAMultiLineRecordNamesItsFirstLine) {
  std::string anime = kBase.at("anime.csv");
  anime.replace(anime.find(",Movie,1,"), 9, ",Movie,one,");
  EXPECT_EQ(load_error({{"anime.csv", anime}}, "multi"),
            "DIR/anime.csv: line 3, column 4 (episodes): expected a number or an empty field, "
            "got 'one'");
  // ... and the record after it keeps its physical line number.
  anime = kBase.at("anime.csv");
  anime.replace(anime.find("6,Trigun"), 8, "6x,Trigun");
  EXPECT_EQ(load_error({{"anime.csv", anime}}, "multi2"),
            "DIR/anime.csv: line 5, column 1 (anime_id): expected an integer anime id, got "
            "'6x'");
}

TEST(RecsysDataset, RatingScoreOutOfRangeOrNotAnInteger) {
  EXPECT_EQ(load_error({{"ratings.csv", kRatingsHeader + "7,5,9\n7,1,11\n"}}, "s1"),
            "DIR/ratings.csv: line 3, column 3 (score): score 11 is outside 1..10");
  EXPECT_EQ(load_error({{"ratings.csv", kRatingsHeader + "7,5,0\n"}}, "s2"),
            "DIR/ratings.csv: line 2, column 3 (score): score 0 is outside 1..10");
  EXPECT_EQ(load_error({{"ratings.csv", kRatingsHeader + "7,5,7.5\n"}}, "s3"),
            "DIR/ratings.csv: line 2, column 3 (score): score 7.5 is not an integer (expected "
            "1..10)");
  EXPECT_EQ(load_error({{"reviews.csv", "anime_id,score,text\n5,12,x\n"}}, "s4"),
            "DIR/reviews.csv: line 2, column 2 (score): score 12 is outside 1..10");
}

TEST(RecsysDataset, UnknownAnimeIdInEveryReferencingFile) {
  EXPECT_EQ(load_error({{"ratings.csv", kRatingsHeader + "7,5,9\n7,99,5\n"}}, "u1"),
            "DIR/ratings.csv: line 3, column 2 (anime_id): anime id 99 is not in anime.csv");
  EXPECT_EQ(load_error({{"reviews.csv", "anime_id,score,text\n4,5,x\n"}}, "u2"),
            "DIR/reviews.csv: line 2, column 1 (anime_id): anime id 4 is not in anime.csv");
  EXPECT_EQ(
      load_error({{"recommendations.csv", "anime_id,rec_anime_id,weight\n1,5,9\n1,77,3\n"}}, "u3"),
      "DIR/recommendations.csv: line 3, column 2 (rec_anime_id): anime id 77 is not in "
      "anime.csv");
  // Columns in another order: the column number is the file's, the name the header's.
  EXPECT_EQ(load_error({{"rec_texts.csv", "text,rec_anime_id,anime_id\nhi,6,8\n"}}, "u4"),
            "DIR/rec_texts.csv: line 2, column 3 (anime_id): anime id 8 is not in anime.csv");
}

TEST(RecsysDataset, DuplicateKeys) {
  EXPECT_EQ(load_error({{"anime.csv", kBase.at("anime.csv") + "1,Again,TV,,,,,,,,,,\r\n"}}, "d1"),
            "DIR/anime.csv: line 6, column 1 (anime_id): duplicate anime_id 1 (first at line 2)");
  EXPECT_EQ(
      load_error({{"ratings.csv", kRatingsHeader + "7,5,9\n7,1,8\n3,6,10\n3,1,1\n7,5,3\n"}}, "d2"),
      "DIR/ratings.csv: line 6, column 2 (anime_id): duplicate rating of anime_id 5 by user_id "
      "7 (first at line 2)");
}

TEST(RecsysDataset, MissingFilesAndHeaderColumns) {
  EXPECT_EQ(load_error({{"ratings.csv", ""}}, "m1"),
            "load_dataset: DIR/ratings.csv: required file not found");
  EXPECT_EQ(load_error({{"anime.csv", ""}}, "m2"),
            "load_dataset: DIR/anime.csv: required file not found");
  EXPECT_EQ(error_of([] { load_dataset("/no/such/data/dir"); }),
            "load_dataset: data directory '/no/such/data/dir' not found");
  EXPECT_THAT(error_of([] { load_dataset(""); }), StartsWith("load_dataset: no data directory"));
  EXPECT_EQ(load_error({{"ratings.csv", "user_id,anime_id\n7,5\n"}}, "m3"),
            "DIR/ratings.csv: line 1: missing header column 'score' (expected the columns "
            "user_id,anime_id,score)");
  EXPECT_EQ(load_error({{"reviews.csv", "anime_id,score,text,author\n"}}, "m4"),
            "DIR/reviews.csv: line 1, column 4: unexpected header column 'author' (expected the "
            "columns anime_id,score,text)");
}

TEST(RecsysDataset, InvalidUtf8) {
  std::string anime = kBase.at("anime.csv");
  anime.replace(anime.find("Trigun"), 6, "Tri\xC3gun");
  EXPECT_THAT(load_error({{"anime.csv", anime}}, "utf8"),
              StartsWith("DIR/anime.csv: line 5, column 2 (title): invalid UTF-8 (byte 0xc3"));
}

TEST(RecsysDataset, SkipModeDropsAndCountsBadRows) {
  TempDir dir("skip");
  write_files(dir,
              {{"ratings.csv", kRatingsHeader + "7,5,9\n"   // 2 ok
                                                "7,1,8\n"   // 3 ok
                                                "9,1,x\n"   // 4 bad number (user 9 must not appear)
                                                "3,6,10\n"  // 5 ok
                                                "3,1,11\n"  // 6 bad score
                                                "3,77,5\n"  // 7 unknown anime id
                                                "7,5,2\n"   // 8 duplicate rating (line 2 kept)
                                                "3,1,\"1\"x\n"  // 9 bad quoting
                                                "3,1\n"         // 10 wrong column count
                                                "3,1,1\n"       // 11 ok
                                                "3,5,0\n"},     // 12 bad score
               {"anime.csv", kBase.at("anime.csv") + "1,Again,TV,,,,,,,,,,\r\n"
                                                     "8,Bad,TV,many,,,,,,,,,\r\n"}});
  LoadOptions o;
  o.skip_bad_rows = true;
  const Dataset ds = load_dataset(dir.str(), o);
  EXPECT_EQ(ds.num_items(), 3);
  EXPECT_EQ(ds.anime[0].title, "Cowboy Bebop");  // the first anime_id 1 is kept
  EXPECT_EQ(ds.user_ids, (std::vector<int64_t>{7, 3}));
  ASSERT_EQ(ds.ratings.size(), 4u);
  EXPECT_EQ(ds.ratings[1].score, 9.0f);  // (7, anime 5) from line 2, not line 8
  const std::map<std::string, int64_t> want_ratings = {
      {"bad number", 1},       {"bad score", 2},   {"unknown anime id", 1},
      {"duplicate rating", 1}, {"bad quoting", 1}, {"wrong column count", 1}};
  EXPECT_EQ(ds.report.skipped.at("ratings.csv"), want_ratings);
  const std::map<std::string, int64_t> want_anime = {{"duplicate anime_id", 1}, {"bad number", 1}};
  EXPECT_EQ(ds.report.skipped.at("anime.csv"), want_anime);
  EXPECT_EQ(ds.report.total_skipped(), 9);
  EXPECT_THAT(ds.report.str(),
              HasSubstr("ratings.csv: skipped 2 rows (bad score); first: " + dir.str() +
                        "/ratings.csv: line 6, column 3 (score): score 11 is outside 1..10\n"));
  EXPECT_THAT(ds.report.str(),
              HasSubstr("anime.csv: skipped 1 row (duplicate anime_id); first: " + dir.str() +
                        "/anime.csv: line 6, column 1 (anime_id): duplicate anime_id 1 (first at "
                        "line 2)\n"));
  EXPECT_THAT(ds.summary(), HasSubstr("(9 bad rows skipped)"));
}

TEST(RecsysDataset, SkipModeStillFailsOnWholeFileProblems) {
  TempDir dir("skipfatal");
  write_files(dir, {{"ratings.csv", kRatingsHeader + "7,5,9\n7,1,\"8\n"}});
  LoadOptions o;
  o.skip_bad_rows = true;
  EXPECT_EQ(error_of([&] { load_dataset(dir.str(), o); }),
            dir.str() +
                "/ratings.csv: line 3, column 3 (score): quoted field never closed (the "
                "opening quote has no closing quote before the end of the file)");
  write_files(dir, {{"ratings.csv", "user,anime_id,score\n"}});
  EXPECT_THAT(error_of([&] { load_dataset(dir.str(), o); }),
              HasSubstr("unexpected header column 'user'"));
}

TEST(RecsysDataset, DefaultDataDirHonoursTheEnvironment) {
  const char* old = std::getenv("DEEPANINET_DATA");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  ::setenv("DEEPANINET_DATA", "/no/such/mal2023", 1);
  EXPECT_EQ(default_data_dir(), "/no/such/mal2023");
  EXPECT_EQ(error_of([] { load_dataset(default_data_dir()); }),
            "load_dataset: data directory '/no/such/mal2023' not found");
  ::unsetenv("DEEPANINET_DATA");
  const std::string found = default_data_dir();
  EXPECT_TRUE(found.empty() || fs::is_directory(found)) << found;
  if (saved) ::setenv("DEEPANINET_DATA", saved->c_str(), 1);
}

// The real data, against the numbers in its README (skips when absent).
TEST(RecsysDataset, RealMal2023MatchesItsReadme) {
  const std::string dir = default_data_dir();
  if (dir.empty() || !fs::exists(fs::path(dir) / "anime.csv")) {
    GTEST_SKIP() << "mal2023 not found (set DEEPANINET_DATA or put it at ../shared/data/mal2023)";
  }
  const Dataset ds = load_dataset(dir);
  EXPECT_EQ(ds.num_items(), 15878);
  EXPECT_EQ(ds.ratings.size(), 315069u);
  EXPECT_EQ(ds.num_users(), 1907);
  EXPECT_EQ(ds.recommendations.size(), 7578u);
  EXPECT_EQ(ds.rec_texts.size(), 652u);
  EXPECT_EQ(ds.reviews.size(), 4926u);
  EXPECT_EQ(ds.report.total_skipped(), 0);

  size_t with_synopsis = 0;
  for (const Anime& a : ds.anime) with_synopsis += !a.synopsis.empty();
  EXPECT_EQ(with_synopsis, 13834u);
  // user_id is 1..N in order of first appearance, so dense index = user_id - 1.
  for (int64_t u = 0; u < ds.num_users(); ++u)
    ASSERT_EQ(ds.user_ids[static_cast<size_t>(u)], u + 1);

  std::vector<int64_t> hist(11, 0), per_user(static_cast<size_t>(ds.num_users()), 0),
      per_item(static_cast<size_t>(ds.num_items()), 0);
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    const Rating& r = ds.ratings[i];
    if (i > 0) {
      const Rating& p = ds.ratings[i - 1];
      ASSERT_TRUE(p.user < r.user || (p.user == r.user && p.item < r.item)) << "entry " << i;
    }
    ++hist[static_cast<size_t>(r.score)];
    ++per_user[static_cast<size_t>(r.user)];
    ++per_item[static_cast<size_t>(r.item)];
  }
  EXPECT_EQ(hist, (std::vector<int64_t>{0, 2037, 2561, 4888, 8705, 19111, 35931, 72450, 81412,
                                        52310, 35664}));
  int64_t rated = 0, rated5 = 0, rated1 = 0, rated_syn = 0;
  for (size_t i = 0; i < per_item.size(); ++i) {
    rated += per_item[i] > 0;
    rated5 += per_item[i] >= 5;
    rated1 += per_item[i] == 1;
    rated_syn += per_item[i] > 0 && !ds.anime[i].synopsis.empty();
  }
  EXPECT_EQ(rated, 11043);
  EXPECT_EQ(rated5, 6055);
  EXPECT_EQ(rated1, 2284);
  EXPECT_EQ(rated_syn, 9339);
  std::vector<int64_t> sorted = per_user;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted.front(), 1);
  EXPECT_EQ(sorted[sorted.size() / 2], 92);  // 1907 users: the median is one value
  EXPECT_EQ(std::count_if(per_user.begin(), per_user.end(), [](int64_t n) { return n >= 5; }),
            1706);

  std::set<int32_t> edge_anime, reviewed;
  for (const RecEdge& e : ds.recommendations) {
    edge_anime.insert(e.a);
    edge_anime.insert(e.b);
  }
  for (const Review& r : ds.reviews) reviewed.insert(r.item);
  EXPECT_EQ(edge_anime.size(), 2244u);
  EXPECT_EQ(reviewed.size(), 2013u);
  // First row of ratings.csv: user 1 gave anime 24 a 9.
  const int32_t item24 = ds.item_of_id.at(24);
  const auto first = std::find_if(ds.ratings.begin(), ds.ratings.end(),
                                  [&](const Rating& r) { return r.user == 0 && r.item == item24; });
  ASSERT_NE(first, ds.ratings.end());
  EXPECT_EQ(first->score, 9.0f);
  EXPECT_EQ(ds.anime[0].title, "Cowboy Bebop");
}

}  // namespace
}  // namespace dan::recsys
