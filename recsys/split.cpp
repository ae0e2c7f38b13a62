// The item split, its safetensors file, and the implicit-feedback matrices built from it.
#include "recsys/split.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/safetensors.h"

namespace dan::recsys {
namespace {

constexpr uint64_t kHoldoutOffset = uint64_t{1} << 62;
constexpr const char* kFormat = "deepaninet.split.v1";

int64_t round_count(double fraction, size_t n) {
  return static_cast<int64_t>(std::floor(fraction * static_cast<double>(n) + 0.5));
}

void check_config(const SplitConfig& c, const char* what) {
  DAN_CHECK(std::isfinite(c.train) && std::isfinite(c.val) && c.train >= 0 && c.val >= 0 &&
                c.train + c.val <= 1 + 1e-12,
            "{}: train {} and val {} must be fractions >= 0 with train + val <= 1", what, c.train,
            c.val);
  DAN_CHECK(c.warm_holdout >= 0 && c.warm_holdout < 1, "{}: warm_holdout {} must be in [0, 1)",
            what, c.warm_holdout);
}

// FNV-1a over the anime ids and the (user, item, score) of every rating: tells a split made for
// another dataset of the same size apart.
uint64_t fingerprint(const Dataset& ds) {
  uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](uint64_t x) {
    for (int i = 0; i < 8; ++i) {
      h ^= (x >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(static_cast<uint64_t>(ds.anime.size()));
  for (const Anime& a : ds.anime) mix(static_cast<uint64_t>(a.id));
  mix(static_cast<uint64_t>(ds.ratings.size()));
  for (const Rating& r : ds.ratings) {
    mix((static_cast<uint64_t>(static_cast<uint32_t>(r.user)) << 32) |
        static_cast<uint32_t>(r.item));
    mix(static_cast<uint64_t>(static_cast<int64_t>(r.score * 16)));
  }
  return h;
}

std::string meta_of(const std::map<std::string, std::string>& m, const std::string& key,
                    const std::string& path) {
  const auto it = m.find(key);
  DAN_CHECK(it != m.end(), "split file '{}': metadata key '{}' missing (not a split file?)", path,
            key);
  return it->second;
}

template <typename T>
T parse_meta(const std::map<std::string, std::string>& m, const std::string& key,
             const std::string& path) {
  const std::string s = meta_of(m, key, path);
  T v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  DAN_CHECK(r.ec == std::errc() && r.ptr == s.data() + s.size(),
            "split file '{}': metadata '{}' = '{}' is not a number", path, key, s);
  return v;
}

template <typename T>
std::vector<T> read_vec(const st::Reader& r, const std::string& name, const char* dtype,
                        int64_t expect_len, const std::string& path) {
  const st::TensorInfo& t = r.info(name);
  DAN_CHECK(t.dtype == dtype && t.shape.size() == 1,
            "split file '{}': tensor '{}' is {} of rank {}, expected a 1-D {}", path, name, t.dtype,
            t.shape.size(), dtype);
  DAN_CHECK(expect_len < 0 || t.shape[0] == expect_len,
            "split file '{}': tensor '{}' has {} entries, expected {}", path, name, t.shape[0],
            expect_len);
  std::vector<T> v(static_cast<size_t>(t.shape[0]));
  if (!v.empty()) std::memcpy(v.data(), r.data(t), t.nbytes());
  return v;
}

}  // namespace

double PhiloxStream::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
}

const std::vector<int32_t>& Split::items(Part p) const {
  switch (p) {
    case Part::train:
      return train_items;
    case Part::val:
      return val_items;
    case Part::test:
      return test_items;
    case Part::none:
      break;
  }
  fail("Split::items: Part::none has no item list");
}

Split make_split(const Dataset& ds, const SplitConfig& cfg) {
  check_config(cfg, "make_split");
  const size_t n_items = ds.anime.size();
  std::vector<uint8_t> rated(n_items, 0);
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    const Rating& r = ds.ratings[i];
    DAN_CHECK(r.item >= 0 && static_cast<size_t>(r.item) < n_items,
              "make_split: rating {} has item {} outside [0, {})", i, r.item, n_items);
    DAN_CHECK(i == 0 || ds.ratings[i - 1].user <= r.user,
              "make_split: ratings must be sorted by user (entry {})", i);
    rated[static_cast<size_t>(r.item)] = 1;
  }
  std::vector<int32_t> order;
  for (size_t i = 0; i < n_items; ++i) {
    if (rated[i]) order.push_back(static_cast<int32_t>(i));
  }
  PhiloxStream items_rng(cfg.seed, 0);
  philox_shuffle(order, items_rng);
  const size_t n = order.size();
  const auto n_train =
      static_cast<size_t>(std::min<int64_t>(round_count(cfg.train, n), static_cast<int64_t>(n)));
  const auto n_val = static_cast<size_t>(
      std::min<int64_t>(round_count(cfg.val, n), static_cast<int64_t>(n - n_train)));

  Split s;
  s.config = cfg;
  s.dataset_fingerprint = fingerprint(ds);
  s.item_part.assign(n_items, Part::none);
  for (size_t k = 0; k < n; ++k) {
    const Part p = k < n_train ? Part::train : k < n_train + n_val ? Part::val : Part::test;
    s.item_part[static_cast<size_t>(order[k])] = p;
  }
  for (size_t i = 0; i < n_items; ++i) {
    switch (s.item_part[i]) {
      case Part::train:
        s.train_items.push_back(static_cast<int32_t>(i));
        break;
      case Part::val:
        s.val_items.push_back(static_cast<int32_t>(i));
        break;
      case Part::test:
        s.test_items.push_back(static_cast<int32_t>(i));
        break;
      case Part::none:
        break;
    }
  }

  // Warm hold-out, one independent stream per user.
  s.rating_holdout.assign(ds.ratings.size(), 0);
  std::vector<size_t> mine;
  for (size_t b = 0; b < ds.ratings.size();) {
    const int32_t user = ds.ratings[b].user;
    size_t e = b;
    mine.clear();
    for (; e < ds.ratings.size() && ds.ratings[e].user == user; ++e) {
      if (s.item_part[static_cast<size_t>(ds.ratings[e].item)] == Part::train) mine.push_back(e);
    }
    const size_t m = mine.size();
    if (m > 0) {
      const auto h = static_cast<size_t>(
          std::min<int64_t>(round_count(cfg.warm_holdout, m), static_cast<int64_t>(m) - 1));
      PhiloxStream rng(cfg.seed, kHoldoutOffset + (static_cast<uint64_t>(user) << 32));
      for (size_t k = 0; k < h; ++k) {
        std::swap(mine[k], mine[k + rng.below(static_cast<uint32_t>(m - k))]);
        s.rating_holdout[mine[k]] = 1;
      }
    }
    b = e;
  }
  return s;
}

void Split::save(const std::string& path) const {
  check_config(config, "Split::save");
  DAN_CHECK(train_items.size() + val_items.size() + test_items.size() <= item_part.size(),
            "Split::save '{}': {} listed items for {} anime", path,
            train_items.size() + val_items.size() + test_items.size(), item_part.size());
  const auto entry = [](const char* name, const char* dtype, const void* data, size_t n,
                        size_t elem) {
    return st::WriteEntry{name, dtype, {static_cast<int64_t>(n)}, n ? data : nullptr, n * elem};
  };
  static_assert(sizeof(Part) == 1);
  std::vector<st::WriteEntry> entries = {
      entry("item_part", "I8", item_part.data(), item_part.size(), 1),
      entry("train_items", "I32", train_items.data(), train_items.size(), 4),
      entry("val_items", "I32", val_items.data(), val_items.size(), 4),
      entry("test_items", "I32", test_items.data(), test_items.size(), 4),
      entry("rating_holdout", "U8", rating_holdout.data(), rating_holdout.size(), 1),
  };
  st::write(path, entries,
            {{"format", kFormat},
             {"seed", std::to_string(config.seed)},
             {"train", fmt::format("{}", config.train)},
             {"val", fmt::format("{}", config.val)},
             {"warm_holdout", fmt::format("{}", config.warm_holdout)},
             {"num_items", std::to_string(item_part.size())},
             {"num_ratings", std::to_string(rating_holdout.size())},
             {"dataset_fingerprint", fmt::format("{:016x}", dataset_fingerprint)}});
}

Split Split::load(const std::string& path, const Dataset& ds) {
  const st::Reader r = st::Reader::open(path);
  const auto& meta = r.metadata();
  const std::string format = meta_of(meta, "format", path);
  DAN_CHECK(format == kFormat, "split file '{}': format '{}', expected '{}'", path, format,
            kFormat);
  const auto n_items = parse_meta<int64_t>(meta, "num_items", path);
  const auto n_ratings = parse_meta<int64_t>(meta, "num_ratings", path);
  DAN_CHECK(n_items == ds.num_items() && n_ratings == static_cast<int64_t>(ds.ratings.size()),
            "split file '{}' was made for a dataset with {} anime and {} ratings, but this one "
            "has {} anime and {} ratings",
            path, n_items, n_ratings, ds.num_items(), ds.ratings.size());
  Split s;
  const std::string fp = meta_of(meta, "dataset_fingerprint", path);
  s.dataset_fingerprint = fingerprint(ds);
  DAN_CHECK(fp == fmt::format("{:016x}", s.dataset_fingerprint),
            "split file '{}' was made for another dataset: same counts ({} anime, {} ratings) "
            "but different anime ids or ratings (fingerprint {}, this dataset {:016x})",
            path, n_items, n_ratings, fp, s.dataset_fingerprint);
  s.config.seed = parse_meta<uint64_t>(meta, "seed", path);
  s.config.train = parse_meta<double>(meta, "train", path);
  s.config.val = parse_meta<double>(meta, "val", path);
  s.config.warm_holdout = parse_meta<double>(meta, "warm_holdout", path);
  check_config(s.config, ("split file '" + path + "'").c_str());
  const auto parts = read_vec<int8_t>(r, "item_part", "I8", n_items, path);
  s.train_items = read_vec<int32_t>(r, "train_items", "I32", -1, path);
  s.val_items = read_vec<int32_t>(r, "val_items", "I32", -1, path);
  s.test_items = read_vec<int32_t>(r, "test_items", "I32", -1, path);
  s.rating_holdout = read_vec<uint8_t>(r, "rating_holdout", "U8", n_ratings, path);

  // The parts must be consistent with themselves and with the dataset's ratings.
  s.item_part.resize(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    DAN_CHECK(parts[i] >= -1 && parts[i] <= 2,
              "split file '{}': item_part[{}] = {}, expected -1..2", path, i, parts[i]);
    s.item_part[i] = static_cast<Part>(parts[i]);
  }
  for (const Part p : {Part::train, Part::val, Part::test}) {
    std::vector<int32_t> expect;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (s.item_part[i] == p) expect.push_back(static_cast<int32_t>(i));
    }
    DAN_CHECK(expect == s.items(p), "split file '{}': the {} item list does not match item_part",
              path,
              p == Part::train ? "train"
              : p == Part::val ? "val"
                               : "test");
  }
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    const Rating& x = ds.ratings[i];
    const Part p = s.item_part[static_cast<size_t>(x.item)];
    DAN_CHECK(p != Part::none,
              "split file '{}' does not match the dataset: anime_id {} is rated but has no part "
              "(the split was made for other ratings)",
              path, ds.anime[static_cast<size_t>(x.item)].id);
    DAN_CHECK(s.rating_holdout[i] <= 1 && (s.rating_holdout[i] == 0 || p == Part::train),
              "split file '{}' does not match the dataset: rating {} is held out but its anime is "
              "not a train item",
              path, i);
  }
  return s;
}

Split Split::load(const std::string& path, const Dataset& ds, const SplitConfig& expect) {
  Split s = load(path, ds);
  const SplitConfig& c = s.config;
  DAN_CHECK(c.seed == expect.seed && c.train == expect.train && c.val == expect.val &&
                c.warm_holdout == expect.warm_holdout,
            "split file '{}' has seed {} train {} val {} warm_holdout {}, expected seed {} train "
            "{} val {} warm_holdout {}",
            path, c.seed, c.train, c.val, c.warm_holdout, expect.seed, expect.train, expect.val,
            expect.warm_holdout);
  return s;
}

double confidence(double score, const ImplicitConfig& cfg) {
  switch (cfg.fn) {
    case ConfidenceFn::linear:
      return 1.0 + cfg.alpha * score;
    case ConfidenceFn::log1p:
      return 1.0 + cfg.alpha * std::log1p(score);
  }
  fail("confidence: unknown ConfidenceFn {}", static_cast<int>(cfg.fn));
}

Interactions build_interactions(const Dataset& ds, const Split& split, const ImplicitConfig& cfg) {
  DAN_CHECK(static_cast<int64_t>(split.item_part.size()) == ds.num_items() &&
                split.rating_holdout.size() == ds.ratings.size(),
            "build_interactions: the split covers {} anime and {} ratings, the dataset has {} "
            "and {}",
            split.item_part.size(), split.rating_holdout.size(), ds.num_items(), ds.ratings.size());
  DAN_CHECK(std::isfinite(cfg.alpha) && cfg.alpha >= 0, "build_interactions: alpha {} must be >= 0",
            cfg.alpha);
  const auto is_fit = [&](size_t i) {
    const Rating& r = ds.ratings[i];
    return r.score >= cfg.threshold && !split.rating_holdout[i] &&
           split.item_part[static_cast<size_t>(r.item)] == Part::train;
  };

  Interactions out;
  out.train_items = split.train_items;
  out.item_col.assign(static_cast<size_t>(ds.num_items()), -1);
  for (const Part p : {Part::train, Part::val, Part::test}) {
    const auto& items = split.items(p);
    for (size_t j = 0; j < items.size(); ++j)
      out.item_col[static_cast<size_t>(items[j])] = static_cast<int32_t>(j);
  }
  out.user_row.assign(static_cast<size_t>(ds.num_users()), -1);
  for (size_t i = 0; i < ds.ratings.size(); ++i) {
    const auto u = static_cast<size_t>(ds.ratings[i].user);
    if (out.user_row[u] < 0 && is_fit(i)) out.user_row[u] = 0;
  }
  for (size_t u = 0; u < out.user_row.size(); ++u) {
    if (out.user_row[u] >= 0) {
      out.user_row[u] = static_cast<int32_t>(out.users.size());
      out.users.push_back(static_cast<int32_t>(u));
    }
  }

  const auto rows = static_cast<int64_t>(out.users.size());
  Csr* all[] = {&out.fit, &out.fit_score, &out.warm_test, &out.val, &out.test};
  const int64_t cols[] = {static_cast<int64_t>(split.train_items.size()),
                          static_cast<int64_t>(split.train_items.size()),
                          static_cast<int64_t>(split.train_items.size()),
                          static_cast<int64_t>(split.val_items.size()),
                          static_cast<int64_t>(split.test_items.size())};
  for (int m = 0; m < 5; ++m) {
    all[m]->rows = rows;
    all[m]->cols = cols[m];
    all[m]->indptr.assign(static_cast<size_t>(rows) + 1, 0);
  }
  const auto put = [](Csr& m, int32_t col, float v) {
    m.indices.push_back(col);
    m.values.push_back(v);
  };
  // Ratings are sorted by (user, item) and each part's columns ascend with the item index, so
  // entries arrive in CSR order: rows ascending, columns ascending within a row.
  for (size_t b = 0; b < ds.ratings.size();) {
    const int32_t user = ds.ratings[b].user;
    size_t e = b;
    while (e < ds.ratings.size() && ds.ratings[e].user == user) ++e;
    const int32_t row = out.user_row[static_cast<size_t>(user)];
    if (row >= 0) {
      for (size_t i = b; i < e; ++i) {
        const Rating& r = ds.ratings[i];
        if (r.score < cfg.threshold) continue;
        const int32_t col = out.item_col[static_cast<size_t>(r.item)];
        switch (split.item_part[static_cast<size_t>(r.item)]) {
          case Part::train:
            if (split.rating_holdout[i]) {
              put(out.warm_test, col, r.score);
            } else {
              put(out.fit, col, static_cast<float>(confidence(r.score, cfg)));
              put(out.fit_score, col, r.score);
            }
            break;
          case Part::val:
            put(out.val, col, r.score);
            break;
          case Part::test:
            put(out.test, col, r.score);
            break;
          case Part::none:
            fail(
                "build_interactions: anime_id {} is rated but the split gives it no part (the "
                "split was made for another dataset)",
                ds.anime[static_cast<size_t>(r.item)].id);
        }
      }
      for (Csr* m : all) m->indptr[static_cast<size_t>(row) + 1] = m->nnz();
    }
    b = e;
  }
  return out;
}

}  // namespace dan::recsys
