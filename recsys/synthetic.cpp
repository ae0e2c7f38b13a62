// The synthetic anime world (generative story in synthetic.h) and the mal2023 CSV writer.
#include "recsys/synthetic.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/error.h"
#include "recsys/csv.h"
#include "recsys/split.h"

namespace dan::recsys {
namespace {

constexpr const char* kTopicNames[] = {"Action",  "Adventure",    "Comedy",   "Drama",
                                       "Fantasy", "Horror",       "Mecha",    "Music",
                                       "Mystery", "Romance",      "Sci-Fi",   "Slice of Life",
                                       "Sports",  "Supernatural", "Suspense", "Historical"};

// The shared vocabulary: frequent words of synopses, most frequent first (Zipf-like draws).
constexpr const char* kGeneral[] = {
    "the",      "a",          "and",       "of",      "to",       "in",       "is",       "his",
    "her",      "their",      "with",      "for",     "on",       "but",      "when",     "who",
    "after",    "as",         "by",        "from",    "this",     "that",     "life",     "world",
    "story",    "day",        "young",     "girl",    "boy",      "friends",  "new",      "old",
    "school",   "town",       "city",      "family",  "father",   "mother",   "sister",   "brother",
    "secret",   "past",       "future",    "journey", "dream",    "power",    "heart",    "night",
    "time",     "love",       "one",       "two",     "must",     "will",     "can",      "finds",
    "meets",    "begins",     "discovers", "decides", "tries",    "becomes",  "lives",    "returns",
    "learns",   "loses",      "starts",    "soon",    "suddenly", "together", "against",  "between",
    "before",   "everything", "nothing",   "only",    "never",    "always",   "true",     "strange",
    "ordinary", "last",       "first",     "group",   "team",     "people",   "someone",  "place",
    "home",     "way",        "fate",      "hope",    "truth",    "promise",  "memories", "days",
    "years",    "everyday",   "chance",    "rival",   "mission",  "fight"};

constexpr const char* kPositive[] = {"great",    "loved",    "beautiful", "masterpiece",
                                     "fun",      "moving",   "brilliant", "charming",
                                     "gripping", "wonderful"};
constexpr const char* kNegative[] = {"boring",      "weak",  "disappointing", "slow",     "messy",
                                     "forgettable", "bland", "rushed",        "annoying", "dull"};
constexpr const char* kThemes[] = {"School",  "Military",    "Space",        "Time Travel",
                                   "Isekai",  "Idols",       "Martial Arts", "Samurai",
                                   "Vampire", "Super Power", "Workplace",    "Mythology"};
constexpr const char* kTypes[] = {"TV", "Movie", "OVA", "ONA", "Special", "Music"};
constexpr double kTypeCdf[] = {0.45, 0.60, 0.75, 0.85, 0.95, 1.0};
constexpr const char* kOnsets[] = {"k", "s", "t", "n", "h",  "m",  "y",  "r", "w", "g",
                                   "z", "d", "b", "p", "ch", "sh", "ts", "f", ""};
constexpr const char* kVowels[] = {"a", "i", "u", "e", "o"};
constexpr int kStudios = 15;

// One Philox stream per purpose (and per user for the ratings), so that each part of the world
// is a function of the seed and its own inputs only.
constexpr uint64_t kStreamWords = uint64_t{1} << 56, kStreamItems = uint64_t{2} << 56,
                   kStreamUsers = uint64_t{3} << 56, kStreamRatings = uint64_t{4} << 56,
                   kStreamReviews = uint64_t{5} << 56, kStreamRecs = uint64_t{6} << 56,
                   kStreamRecTexts = uint64_t{7} << 56;

template <typename T, size_t N>
constexpr uint32_t count_of(const T (&)[N]) {
  return static_cast<uint32_t>(N);
}

// Index in [0, n), small indices more likely (density ~ 1 / sqrt(x)): frequent words first.
size_t zipf(PhiloxStream& s, size_t n) {
  const double u = s.uniform();
  return std::min(n - 1, static_cast<size_t>(static_cast<double>(n) * u * u));
}

std::string capitalized(std::string w) {
  if (!w.empty()) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
  return w;
}

// A pronounceable made-up word of 2-4 syllables, not yet in `used`.
std::string new_word(PhiloxStream& s, std::unordered_set<std::string>& used) {
  for (;;) {
    std::string w;
    const uint32_t syllables = 2 + s.below(3);
    for (uint32_t k = 0; k < syllables; ++k) {
      w += kOnsets[s.below(count_of(kOnsets))];
      w += kVowels[s.below(count_of(kVowels))];
    }
    if (s.uniform() < 0.15) w += 'n';
    if (used.insert(w).second) return w;
  }
}

struct Item {
  int k1 = 0, k2 = -1;    // dominant topics (k2 = -1: one topic)
  double w1 = 1, w2 = 0;  // mixture weights
  double log_pop = 0, quality = 0;
};

double affinity(const std::vector<double>& taste, const Item& it) {
  return taste[static_cast<size_t>(it.k1)] * it.w1 +
         (it.k2 >= 0 ? taste[static_cast<size_t>(it.k2)] * it.w2 : 0.0);
}

std::string topic_name(int t) {
  return t < static_cast<int>(count_of(kTopicNames)) ? kTopicNames[t]
                                                     : fmt::format("Topic {}", t + 1);
}

// One word drawn like a synopsis word: a general word with probability general_share, else a word
// of a topic drawn from the mixture.
std::string word_of(PhiloxStream& s, const Item& it,
                    const std::vector<std::vector<std::string>>& vocab, double general_share) {
  if (s.uniform() < general_share) return kGeneral[zipf(s, count_of(kGeneral))];
  const int t = (it.k2 < 0 || s.uniform() < it.w1) ? it.k1 : it.k2;
  const auto& v = vocab[static_cast<size_t>(t)];
  return v[zipf(s, v.size())];
}

// Sentences of 6-16 words, capitalised, with the odd comma and (rarely) a quoted word.
std::string text_of(PhiloxStream& s, const Item& it,
                    const std::vector<std::vector<std::string>>& vocab, double general_share,
                    int words, const std::vector<std::string>& extra = {}) {
  std::string out;
  int in_sentence = 0;
  uint32_t sentence_len = 6 + s.below(11);
  for (int w = 0; w < words; ++w) {
    std::string word = (!extra.empty() && s.uniform() < 0.15)
                           ? extra[s.below(static_cast<uint32_t>(extra.size()))]
                           : word_of(s, it, vocab, general_share);
    if (s.uniform() < 0.004) word = "\"" + word + "\"";
    if (in_sentence == 0) word = capitalized(std::move(word));
    if (w > 0) out += ' ';
    out += word;
    if (++in_sentence == static_cast<int>(sentence_len) || w == words - 1) {
      out += '.';
      in_sentence = 0;
      sentence_len = 6 + s.below(11);
    } else if (s.uniform() < 0.08) {
      out += ',';
    }
  }
  return out;
}

std::string join_list(const std::vector<std::string>& v, int64_t id, const char* what) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    DAN_CHECK(!v[i].empty() && v[i].find('|') == std::string::npos,
              "write_dataset_csv: anime_id {}: {} entry '{}' cannot be written (entries must be "
              "non-empty and free of '|')",
              id, what, v[i]);
    if (i) out += '|';
    out += v[i];
  }
  return out;
}

// Appends one CSV record (CRLF-terminated) of already formatted fields.
void append_row(std::string& out, std::initializer_list<std::string_view> fields) {
  bool first = true;
  for (const std::string_view f : fields) {
    if (!first) out += ',';
    first = false;
    append_csv_field(out, f);
  }
  out += "\r\n";
}

}  // namespace

Dataset make_synthetic(const SyntheticConfig& cfg) {
  DAN_CHECK(cfg.topics >= 1 && cfg.items >= 2 && cfg.users >= 1 && cfg.words_per_topic >= 4,
            "make_synthetic: need topics >= 1, items >= 2, users >= 1, words_per_topic >= 4 (got "
            "{}, {}, {}, {})",
            cfg.topics, cfg.items, cfg.users, cfg.words_per_topic);
  DAN_CHECK(cfg.synopsis_min_words >= 1 && cfg.synopsis_max_words >= cfg.synopsis_min_words,
            "make_synthetic: synopsis length {}..{} is not a range of positive word counts",
            cfg.synopsis_min_words, cfg.synopsis_max_words);
  DAN_CHECK(cfg.median_ratings_per_user >= 1 && cfg.popularity_sigma >= 0 && cfg.reviews >= 0 &&
                cfg.rec_texts >= 0,
            "make_synthetic: median_ratings_per_user must be >= 1, popularity_sigma, reviews and "
            "rec_texts >= 0");
  const auto T = static_cast<size_t>(cfg.topics);
  const auto N = static_cast<size_t>(cfg.items);
  const auto U = static_cast<size_t>(cfg.users);

  // ---- vocabularies ----
  std::unordered_set<std::string> used(std::begin(kGeneral), std::end(kGeneral));
  PhiloxStream ws(cfg.seed, kStreamWords);
  const size_t borrow = T > 1 ? static_cast<size_t>(cfg.words_per_topic) / 4 : 0;
  const size_t own = static_cast<size_t>(cfg.words_per_topic) - borrow;
  std::vector<std::vector<std::string>> vocab(T);
  for (auto& v : vocab)
    for (size_t k = 0; k < own; ++k) v.push_back(new_word(ws, used));
  for (size_t t = 0; t < T; ++t)
    for (size_t k = 0; k < borrow; ++k) vocab[t].push_back(vocab[(t + 1) % T][k]);
  std::vector<std::string> studios;
  for (int k = 0; k < kStudios; ++k) studios.push_back("Studio " + capitalized(new_word(ws, used)));

  // ---- anime ----
  Dataset ds;
  std::vector<Item> items(N);
  ds.anime.resize(N);
  PhiloxStream is(cfg.seed, kStreamItems);
  int64_t id = 0;
  for (size_t i = 0; i < N; ++i) {
    Item& it = items[i];
    Anime& a = ds.anime[i];
    id += 1 + is.below(4);
    a.id = id;
    // Topics are not equally common: topic t has weight 1 / (1 + 0.15 t).
    double total = 0;
    for (size_t t = 0; t < T; ++t) total += 1.0 / (1.0 + 0.15 * static_cast<double>(t));
    double u = is.uniform() * total;
    it.k1 = static_cast<int>(T) - 1;
    for (size_t t = 0; t < T; ++t) {
      u -= 1.0 / (1.0 + 0.15 * static_cast<double>(t));
      if (u < 0) {
        it.k1 = static_cast<int>(t);
        break;
      }
    }
    if (T > 1 && is.uniform() < cfg.second_topic_prob) {
      it.k2 = static_cast<int>(
          (static_cast<size_t>(it.k1) + 1 + is.below(static_cast<uint32_t>(T - 1))) % T);
      it.w1 = 0.55 + 0.3 * is.uniform();
      it.w2 = 1 - it.w1;
    }
    it.log_pop = cfg.popularity_sigma * is.normal();
    it.quality = is.normal();

    const auto& v1 = vocab[static_cast<size_t>(it.k1)];
    const uint32_t title_words = 1 + is.below(3);
    if (is.uniform() < 0.04) {
      a.title = capitalized(v1[zipf(is, v1.size())]) + ", " + capitalized(v1[zipf(is, v1.size())]);
    } else {
      for (uint32_t k = 0; k < title_words; ++k) {
        if (k) a.title += ' ';
        a.title += capitalized(v1[zipf(is, v1.size())]);
      }
    }
    if (is.uniform() < 0.12) {
      constexpr const char* kSuffix[] = {": Season 2", " Movie", " OVA", "!!"};
      a.title += kSuffix[is.below(4)];
    }
    const double ut = is.uniform();
    size_t type = 0;
    while (type + 1 < count_of(kTypes) && ut >= kTypeCdf[type]) ++type;
    a.type = kTypes[type];
    constexpr int kTvEpisodes[] = {12, 13, 24, 25, 26, 50};
    const int episodes = type == 0   ? kTvEpisodes[is.below(6)]
                         : type == 2 ? 1 + static_cast<int>(is.below(6))
                         : type == 3 ? 1 + static_cast<int>(is.below(24))
                         : type == 4 ? 1 + static_cast<int>(is.below(3))
                                     : 1;
    if (is.uniform() >= 0.04) a.episodes = episodes;
    a.members = std::max(1.0, std::round(20000 * std::exp(it.log_pop + 0.3 * is.normal())));
    a.favorites = std::round(a.members * 0.01 * std::exp(0.5 * it.quality + 0.3 * is.normal()));
    const double mal = 7.0 + 0.6 * it.quality + 0.2 * it.log_pop + 0.15 * is.normal();
    if (is.uniform() >= 0.02) a.score = std::round(100 * std::clamp(mal, 1.5, 9.5)) / 100;
    a.genres.push_back(topic_name(it.k1));
    if (it.k2 >= 0) a.genres.push_back(topic_name(it.k2));
    const uint32_t n_themes = is.below(3);
    for (uint32_t k = 0; k < n_themes; ++k) {
      const std::string th = kThemes[is.below(count_of(kThemes))];
      if (std::find(a.themes.begin(), a.themes.end(), th) == a.themes.end()) a.themes.push_back(th);
    }
    a.studios.push_back(studios[zipf(is, studios.size())]);
    const int words =
        cfg.synopsis_min_words + static_cast<int>(is.below(static_cast<uint32_t>(
                                     cfg.synopsis_max_words - cfg.synopsis_min_words + 1)));
    const bool no_synopsis = is.uniform() < 0.03;
    const std::string text = text_of(is, it, vocab, cfg.general_word_share, words);
    if (!no_synopsis) a.synopsis = text;
    ds.item_of_id.emplace(a.id, static_cast<int32_t>(i));
  }
  // MAL ranks: 1 = best score / most members (ties by position).
  {
    std::vector<size_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return ds.anime[x].members > ds.anime[y].members; });
    for (size_t r = 0; r < N; ++r) ds.anime[order[r]].popularity = static_cast<double>(r + 1);
    std::vector<size_t> scored;
    for (size_t i = 0; i < N; ++i)
      if (!std::isnan(ds.anime[i].score)) scored.push_back(i);
    std::stable_sort(scored.begin(), scored.end(),
                     [&](size_t x, size_t y) { return ds.anime[x].score > ds.anime[y].score; });
    for (size_t r = 0; r < scored.size(); ++r)
      ds.anime[scored[r]].ranked = static_cast<double>(r + 1);
  }

  // ---- users ----
  std::vector<std::vector<double>> taste(U, std::vector<double>(T));
  std::vector<size_t> activity(U);
  std::vector<double> bias(U);
  PhiloxStream us(cfg.seed, kStreamUsers);
  const size_t max_ratings = std::max<size_t>(1, std::min<size_t>(N / 3, 500));
  for (size_t u = 0; u < U; ++u) {
    auto& tv = taste[u];
    std::fill(tv.begin(), tv.end(), 0.15 / static_cast<double>(T));
    const uint32_t favourites = std::min<uint32_t>(1 + us.below(3), static_cast<uint32_t>(T));
    std::vector<double> w(favourites);
    std::vector<size_t> picked;
    while (picked.size() < favourites) {
      const size_t t = us.below(static_cast<uint32_t>(T));
      if (std::find(picked.begin(), picked.end(), t) == picked.end()) picked.push_back(t);
    }
    double sum = 0;
    for (auto& x : w) sum += (x = 0.5 + 0.5 * us.uniform());
    for (size_t k = 0; k < favourites; ++k) tv[picked[k]] += 0.85 * w[k] / sum;
    const double n = std::round(cfg.median_ratings_per_user * std::exp(0.7 * us.normal()));
    activity[u] = std::clamp<size_t>(static_cast<size_t>(std::max(n, 1.0)),
                                     std::min<size_t>(5, max_ratings), max_ratings);
    bias[u] = 0.5 * us.normal();
    ds.user_ids.push_back(static_cast<int64_t>(u) + 1);
  }

  // ---- ratings: successive weighted draws without replacement ----
  std::vector<double> pop_w(N);
  for (size_t i = 0; i < N; ++i) pop_w[i] = std::exp(cfg.popularity_weight * items[i].log_pop);
  const double gamma = cfg.taste_weight;
  // affinity^gamma: the usual exponents without a call to pow (this loop runs users x items).
  const auto taste_factor = [gamma](double a) {
    if (gamma == 1.0) return a;
    if (gamma == 1.5) return a * std::sqrt(a);
    if (gamma == 2.0) return a * a;
    return std::pow(a, gamma);
  };
  std::vector<double> aff(N), cum(N), weight(N);
  std::vector<uint8_t> chosen(N, 0);
  std::vector<int32_t> picks;
  for (size_t u = 0; u < U; ++u) {
    PhiloxStream rs(cfg.seed, kStreamRatings + (static_cast<uint64_t>(u) << 32));
    double aff_max = 0, total = 0;
    for (size_t i = 0; i < N; ++i) {
      aff[i] = affinity(taste[u], items[i]);
      aff_max = std::max(aff_max, aff[i]);
      weight[i] = pop_w[i] * taste_factor(aff[i]);
      cum[i] = (total += weight[i]);
    }
    // Draw by inverse CDF, redraw when the item is taken. When taken items hold most of the
    // mass, redraws pile up: then rebuild the CDF without them.
    const size_t n = activity[u];
    picks.clear();
    size_t tries = 0;
    while (picks.size() < n) {
      if (++tries > 16 * n + 64) {
        total = 0;
        for (size_t i = 0; i < N; ++i) cum[i] = (total += chosen[i] ? 0.0 : weight[i]);
        tries = 0;
      }
      const double r = rs.uniform() * total;
      const auto i = std::min<size_t>(
          static_cast<size_t>(std::upper_bound(cum.begin(), cum.end(), r) - cum.begin()), N - 1);
      if (chosen[i]) continue;
      chosen[i] = 1;
      picks.push_back(static_cast<int32_t>(i));
    }
    std::sort(picks.begin(), picks.end());
    for (const int32_t p : picks) {
      const auto i = static_cast<size_t>(p);
      chosen[i] = 0;
      const double s = 5.0 + 4.0 * aff[i] / aff_max + 0.6 * items[i].quality + bias[u] +
                       cfg.score_noise * rs.normal();
      ds.ratings.push_back(
          {static_cast<int32_t>(u), p, static_cast<float>(std::clamp(std::round(s), 1.0, 10.0))});
    }
  }

  // ---- reviews of sampled ratings ----
  {
    PhiloxStream s(cfg.seed, kStreamReviews);
    const size_t want = std::min<size_t>(static_cast<size_t>(cfg.reviews), ds.ratings.size());
    std::set<size_t> picked;
    while (picked.size() < want) picked.insert(s.below(static_cast<uint32_t>(ds.ratings.size())));
    std::vector<size_t> rs(picked.begin(), picked.end());
    std::stable_sort(rs.begin(), rs.end(),
                     [&](size_t x, size_t y) { return ds.ratings[x].item < ds.ratings[y].item; });
    for (const size_t r : rs) {
      const Rating& x = ds.ratings[r];
      const std::vector<std::string> mood =
          x.score >= 7 ? std::vector<std::string>(std::begin(kPositive), std::end(kPositive))
                       : std::vector<std::string>(std::begin(kNegative), std::end(kNegative));
      const int words = 30 + static_cast<int>(s.below(51));
      std::string text = text_of(s, items[static_cast<size_t>(x.item)], vocab,
                                 cfg.general_word_share, words, mood);
      // Some reviews have paragraphs: newlines inside a quoted CSV field.
      if (s.uniform() < 0.1) {
        const size_t dot = text.find(". ");
        if (dot != std::string::npos) text.replace(dot + 1, 1, s.uniform() < 0.5 ? "\n\n" : "\r\n");
      }
      ds.reviews.push_back({x.item, x.score, std::move(text)});
    }
  }

  // ---- recommendation edges between anime of the same dominant topic ----
  {
    PhiloxStream s(cfg.seed, kStreamRecs);
    std::vector<std::vector<int32_t>> by_topic(T);
    for (size_t i = 0; i < N; ++i)
      by_topic[static_cast<size_t>(items[i].k1)].push_back(static_cast<int32_t>(i));
    std::set<std::pair<int32_t, int32_t>> seen;  // unordered pairs
    for (size_t i = 0; i < N; ++i) {
      if (s.uniform() >= cfg.rec_edge_prob) continue;
      const auto& same = by_topic[static_cast<size_t>(items[i].k1)];
      const uint32_t d = 1 + s.below(4);
      for (uint32_t k = 0; k < d; ++k) {
        const int32_t j = same[s.below(static_cast<uint32_t>(same.size()))];
        const auto a = static_cast<int32_t>(i);
        if (j == a || !seen.insert({std::min(a, j), std::max(a, j)}).second) continue;
        const double w =
            3 + std::floor(
                    6 * std::exp(0.5 * (items[i].log_pop + items[static_cast<size_t>(j)].log_pop)) *
                    s.uniform());
        ds.recommendations.push_back({a, j, static_cast<float>(w)});
      }
    }
  }

  // ---- rec texts of sampled edges ----
  if (!ds.recommendations.empty()) {
    PhiloxStream s(cfg.seed, kStreamRecTexts);
    for (int k = 0; k < cfg.rec_texts; ++k) {
      const RecEdge& e =
          ds.recommendations[s.below(static_cast<uint32_t>(ds.recommendations.size()))];
      const Item& it = items[static_cast<size_t>(e.a)];
      const auto& v = vocab[static_cast<size_t>(it.k1)];
      std::string text = fmt::format("If you liked {}, try {}: both have {}, {} and {}.",
                                     ds.anime[static_cast<size_t>(e.a)].title,
                                     ds.anime[static_cast<size_t>(e.b)].title, v[zipf(s, v.size())],
                                     v[zipf(s, v.size())], v[zipf(s, v.size())]);
      text +=
          ' ' + text_of(s, it, vocab, cfg.general_word_share, 10 + static_cast<int>(s.below(20)));
      ds.rec_texts.push_back({e.a, e.b, std::move(text)});
    }
  }
  return ds;
}

void write_dataset_csv(const Dataset& ds, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DAN_CHECK(std::filesystem::is_directory(dir), "write_dataset_csv: cannot create directory '{}'{}",
            dir, ec ? ": " + ec.message() : "");
  const auto path = [&](const char* name) { return (std::filesystem::path(dir) / name).string(); };
  const auto anime_id = [&](int32_t item) {
    DAN_CHECK(item >= 0 && item < ds.num_items(), "write_dataset_csv: item {} outside [0, {})",
              item, ds.num_items());
    return std::to_string(ds.anime[static_cast<size_t>(item)].id);
  };

  std::string out =
      "anime_id,title,type,episodes,score,ranked,popularity,members,favorites,genres,"
      "themes,studios,synopsis\r\n";
  for (const Anime& a : ds.anime) {
    append_row(out, {std::to_string(a.id), a.title, a.type, format_number(a.episodes),
                     format_number(a.score), format_number(a.ranked), format_number(a.popularity),
                     format_number(a.members), format_number(a.favorites),
                     join_list(a.genres, a.id, "genre"), join_list(a.themes, a.id, "theme"),
                     join_list(a.studios, a.id, "studio"), a.synopsis});
  }
  write_file_atomic(path("anime.csv"), out);

  out = "user_id,anime_id,score\r\n";
  out.reserve(ds.ratings.size() * 14);
  for (const Rating& r : ds.ratings) {
    DAN_CHECK(r.user >= 0 && r.user < ds.num_users(), "write_dataset_csv: user {} outside [0, {})",
              r.user, ds.num_users());
    append_row(out, {std::to_string(ds.user_ids[static_cast<size_t>(r.user)]), anime_id(r.item),
                     format_number(r.score)});
  }
  write_file_atomic(path("ratings.csv"), out);

  out = "anime_id,score,text\r\n";
  for (const Review& v : ds.reviews)
    append_row(out, {anime_id(v.item), format_number(v.score), v.text});
  write_file_atomic(path("reviews.csv"), out);

  out = "anime_id,rec_anime_id,weight\r\n";
  for (const RecEdge& e : ds.recommendations) {
    append_row(out, {anime_id(e.a), anime_id(e.b), format_number(e.weight)});
  }
  write_file_atomic(path("recommendations.csv"), out);

  out = "anime_id,rec_anime_id,text\r\n";
  for (const RecText& t : ds.rec_texts) append_row(out, {anime_id(t.a), anime_id(t.b), t.text});
  write_file_atomic(path("rec_texts.csv"), out);
}

}  // namespace dan::recsys
