// Tests for recsys/synthetic: determinism, the shape of the world (sizes, score range, synopsis
// lengths, genres, edges), the CSV writer round trip through load_dataset (synthetic and, when
// present, the real mal2023 files), and the property the world exists for: on cold items a
// synopsis-word profile of the user ranks the anime they rate above popularity, which is itself
// above chance.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "recsys/split.h"
#include "recsys/synthetic.h"

namespace dan::recsys {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

bool same_number(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// The first difference between two datasets (Dataset::dir and the report aside), "" if none.
std::string first_difference(const Dataset& a, const Dataset& b) {
  if (a.anime.size() != b.anime.size())
    return fmt::format("anime: {} vs {}", a.anime.size(), b.anime.size());
  for (size_t i = 0; i < a.anime.size(); ++i) {
    const Anime &x = a.anime[i], &y = b.anime[i];
    if (x.id != y.id || x.title != y.title || x.type != y.type || x.genres != y.genres ||
        x.themes != y.themes || x.studios != y.studios || x.synopsis != y.synopsis ||
        !same_number(x.episodes, y.episodes) || !same_number(x.score, y.score) ||
        !same_number(x.ranked, y.ranked) || !same_number(x.popularity, y.popularity) ||
        !same_number(x.members, y.members) || !same_number(x.favorites, y.favorites)) {
      return fmt::format("anime {} (id {} vs {}, title '{}' vs '{}')", i, x.id, y.id, x.title,
                         y.title);
    }
  }
  if (a.item_of_id != b.item_of_id) return "item_of_id";
  if (a.user_ids != b.user_ids)
    return fmt::format("user_ids: {} vs {} users", a.user_ids.size(), b.user_ids.size());
  if (a.ratings.size() != b.ratings.size())
    return fmt::format("ratings: {} vs {}", a.ratings.size(), b.ratings.size());
  for (size_t i = 0; i < a.ratings.size(); ++i) {
    const Rating &x = a.ratings[i], &y = b.ratings[i];
    if (x.user != y.user || x.item != y.item || x.score != y.score)
      return fmt::format("rating {}", i);
  }
  if (a.reviews.size() != b.reviews.size())
    return fmt::format("reviews: {} vs {}", a.reviews.size(), b.reviews.size());
  for (size_t i = 0; i < a.reviews.size(); ++i) {
    const Review &x = a.reviews[i], &y = b.reviews[i];
    if (x.item != y.item || !same_number(x.score, y.score) || x.text != y.text)
      return fmt::format("review {}", i);
  }
  if (a.recommendations.size() != b.recommendations.size()) return "recommendation count";
  for (size_t i = 0; i < a.recommendations.size(); ++i) {
    const RecEdge &x = a.recommendations[i], &y = b.recommendations[i];
    if (x.a != y.a || x.b != y.b || x.weight != y.weight)
      return fmt::format("recommendation {}", i);
  }
  if (a.rec_texts.size() != b.rec_texts.size()) return "rec_text count";
  for (size_t i = 0; i < a.rec_texts.size(); ++i) {
    const RecText &x = a.rec_texts[i], &y = b.rec_texts[i];
    if (x.a != y.a || x.b != y.b || x.text != y.text) return fmt::format("rec_text {}", i);
  }
  return "";
}

class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(fs::temp_directory_path() / fmt::format("dan_synthetic_{}_{}", tag, ::getpid())) {
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string w;
  for (const char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      out.push_back(w);
      w.clear();
    }
  }
  return out;
}

TEST(RecsysSynthetic, DeterministicFromTheSeed) {
  SyntheticConfig c;
  c.items = 300;
  c.users = 200;
  EXPECT_EQ(first_difference(make_synthetic(c), make_synthetic(c)), "");
  SyntheticConfig d = c;
  d.seed = 2;
  EXPECT_NE(first_difference(make_synthetic(c), make_synthetic(d)), "");
}

TEST(RecsysSynthetic, DefaultWorldHasTheDesignedShape) {
  const SyntheticConfig c;
  const Dataset ds = make_synthetic(c);
  ASSERT_EQ(ds.num_items(), 2000);
  ASSERT_EQ(ds.num_users(), 3000);
  std::vector<int> per_user(3000, 0);
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    const Rating& r = ds.ratings[i];
    ASSERT_TRUE(r.score >= 1 && r.score <= 10 && r.score == std::floor(r.score)) << r.score;
    if (i > 0) {
      const Rating& p = ds.ratings[i - 1];
      ASSERT_TRUE(p.user < r.user || (p.user == r.user && p.item < r.item)) << "entry " << i;
    }
    ++per_user[static_cast<size_t>(r.user)];
  }
  std::sort(per_user.begin(), per_user.end());
  EXPECT_GE(per_user.front(), 5);
  EXPECT_NEAR(per_user[1500], 60, 6);  // median ratings per user

  const std::set<std::string> topics = {"Action",  "Adventure", "Comedy", "Drama",
                                        "Fantasy", "Horror",    "Mecha",  "Music",
                                        "Mystery", "Romance",   "Sci-Fi", "Slice of Life"};
  int64_t prev_id = 0, empty_synopsis = 0;
  for (const Anime& a : ds.anime) {
    EXPECT_GT(a.id, prev_id);
    prev_id = a.id;
    ASSERT_TRUE(a.genres.size() == 1 || a.genres.size() == 2) << a.id;
    for (const std::string& g : a.genres) EXPECT_TRUE(topics.count(g)) << g;
    EXPECT_FALSE(a.title.empty());
    EXPECT_GE(a.members, 1);
    if (a.synopsis.empty()) {
      ++empty_synopsis;
      continue;
    }
    const size_t n = words_of(a.synopsis).size();
    EXPECT_GE(n, 40u);
    EXPECT_LE(n, 120u);
  }
  EXPECT_GT(empty_synopsis, 0);
  EXPECT_LT(empty_synopsis, 200);

  EXPECT_GT(ds.recommendations.size(), 500u);
  for (const RecEdge& e : ds.recommendations) {
    EXPECT_NE(e.a, e.b);
    EXPECT_GE(e.weight, 3);
    EXPECT_EQ(ds.anime[static_cast<size_t>(e.a)].genres[0],
              ds.anime[static_cast<size_t>(e.b)].genres[0]);
  }
  EXPECT_EQ(ds.reviews.size(), 300u);
  EXPECT_EQ(ds.rec_texts.size(), 40u);
  const bool some_paragraphs =
      std::any_of(ds.reviews.begin(), ds.reviews.end(),
                  [](const Review& r) { return r.text.find('\n') != std::string::npos; });
  EXPECT_TRUE(some_paragraphs);
}

TEST(RecsysSynthetic, WriteThenLoadGivesTheSameDataset) {
  const Dataset ds = make_synthetic();
  TempDir dir("roundtrip");
  write_dataset_csv(ds, dir.str());
  for (const char* f :
       {"anime.csv", "ratings.csv", "reviews.csv", "recommendations.csv", "rec_texts.csv"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir.str()) / f)) << f;
  }
  const Dataset back = load_dataset(dir.str());
  EXPECT_EQ(back.report.total_skipped(), 0);
  EXPECT_EQ(first_difference(ds, back), "");
}

TEST(RecsysSynthetic, WriterRoundTripsTheRealData) {
  const std::string src = default_data_dir();
  if (src.empty() || !fs::exists(fs::path(src) / "anime.csv")) {
    GTEST_SKIP() << "mal2023 not found (set DEEPANINET_DATA or put it at ../shared/data/mal2023)";
  }
  const Dataset ds = load_dataset(src);
  TempDir dir("real");
  write_dataset_csv(ds, dir.str());
  EXPECT_EQ(first_difference(ds, load_dataset(dir.str())), "");
}

TEST(RecsysSynthetic, WriterRejectsListEntriesItCannotWrite) {
  Dataset ds = make_synthetic(SyntheticConfig{.items = 20, .users = 5});
  ds.anime[3].genres = {"Action|Drama"};
  TempDir dir("bad");
  try {
    write_dataset_csv(ds, dir.str());
    ADD_FAILURE() << "did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              fmt::format("write_dataset_csv: anime_id {}: genre entry 'Action|Drama' cannot be "
                          "written (entries must be non-empty and free of '|')",
                          ds.anime[3].id));
  }
}

// Mean over users of the AUC of `score` at ranking the test items they rated above those they
// did not rate.
double mean_auc(const Dataset& ds, const Split& s,
                const std::function<double(int32_t, int32_t)>& score) {
  std::vector<std::set<int32_t>> rated(static_cast<size_t>(ds.num_users()));
  for (const Rating& r : ds.ratings) rated[static_cast<size_t>(r.user)].insert(r.item);
  double sum = 0;
  int users = 0;
  for (int32_t u = 0; u < ds.num_users(); ++u) {
    std::vector<double> pos, neg;
    for (const int32_t i : s.test_items)
      (rated[static_cast<size_t>(u)].count(i) ? pos : neg).push_back(score(u, i));
    if (pos.empty() || neg.empty()) continue;
    double wins = 0;
    for (const double p : pos)
      for (const double n : neg) wins += p > n ? 1.0 : p == n ? 0.5 : 0.0;
    sum += wins / static_cast<double>(pos.size() * neg.size());
    ++users;
  }
  return sum / users;
}

TEST(RecsysSynthetic, ContentPredictsColdItemsBetterThanPopularity) {
  SyntheticConfig c;
  c.items = 600;
  c.users = 400;
  c.seed = 9;
  const Dataset ds = make_synthetic(c);
  const Split s = make_split(ds, SplitConfig{});
  // Bag-of-words vectors of the synopses, L2-normalised.
  std::unordered_map<std::string, size_t> vocab;
  std::vector<std::vector<double>> vec(static_cast<size_t>(ds.num_items()));
  std::vector<std::vector<std::string>> toks(vec.size());
  for (size_t i = 0; i < vec.size(); ++i) {
    toks[i] = words_of(ds.anime[i].synopsis);
    for (const auto& w : toks[i]) vocab.emplace(w, vocab.size());
  }
  for (size_t i = 0; i < vec.size(); ++i) {
    vec[i].assign(vocab.size(), 0.0);
    for (const auto& w : toks[i]) vec[i][vocab[w]] += 1;
    double n = 0;
    for (const double x : vec[i]) n += x * x;
    if (n > 0)
      for (double& x : vec[i]) x /= std::sqrt(n);
  }
  // A user's profile: the sum of the vectors of the train anime they rated.
  std::vector<std::vector<double>> profile(static_cast<size_t>(ds.num_users()),
                                           std::vector<double>(vocab.size(), 0.0));
  for (const Rating& r : ds.ratings) {
    if (s.item_part[static_cast<size_t>(r.item)] != Part::train) continue;
    auto& p = profile[static_cast<size_t>(r.user)];
    const auto& v = vec[static_cast<size_t>(r.item)];
    for (size_t k = 0; k < p.size(); ++k) p[k] += v[k];
  }
  const double content = mean_auc(ds, s, [&](int32_t u, int32_t i) {
    const auto& p = profile[static_cast<size_t>(u)];
    const auto& v = vec[static_cast<size_t>(i)];
    double d = 0;
    for (size_t k = 0; k < p.size(); ++k) d += p[k] * v[k];
    return d;
  });
  const double popularity =
      mean_auc(ds, s, [&](int32_t, int32_t i) { return ds.anime[static_cast<size_t>(i)].members; });
  EXPECT_GT(popularity, 0.6) << "popularity should be informative";
  EXPECT_GT(content, popularity + 0.05) << "content " << content << " vs popularity " << popularity;
}

}  // namespace
}  // namespace dan::recsys
