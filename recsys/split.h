// Item split (train / val / test, the cold-start protocol), the warm hold-out, explicit scores
// -> implicit confidence, and the index maps between dataset indices and matrix rows/columns.
// All randomness comes from Philox (core/philox.h) through PhiloxStream, whose integer draws
// are specified bit for bit here, so a seed gives the same split on every platform.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/philox.h"
#include "recsys/csr.h"
#include "recsys/dataset.h"

namespace dan::recsys {

// A sequential stream of 32-bit words: the four words of Philox block (seed, offset), then of
// block (seed, offset + 1), ... Disjoint offsets give independent streams of one seed.
class PhiloxStream {
 public:
  PhiloxStream(uint64_t seed, uint64_t offset) : seed_(seed), counter_(offset) {}
  uint32_t u32() {
    if (used_ == 4) {
      block_ = philox::block(seed_, counter_++);
      used_ = 0;
    }
    return block_.v[used_++];
  }
  // Uniform integer in [0, n), n >= 1, without bias: Lemire's multiply-and-reject on u32().
  uint32_t below(uint32_t n) {
    uint64_t m = static_cast<uint64_t>(u32()) * n;
    if (static_cast<uint32_t>(m) < n) {
      const uint32_t threshold = (0u - n) % n;
      while (static_cast<uint32_t>(m) < threshold) m = static_cast<uint64_t>(u32()) * n;
    }
    return static_cast<uint32_t>(m >> 32);
  }
  // Uniform in [0, 1) from two words (53 bits), as philox::u64_to_unit_f64.
  double uniform() {
    const uint32_t lo = u32();
    return philox::u64_to_unit_f64(lo, u32());
  }
  // Standard normal by Box-Muller from two uniforms (passes through libm's log/cos).
  double normal();

 private:
  uint64_t seed_, counter_;
  philox::U32x4 block_{};
  int used_ = 4;
};

// Fisher-Yates from the back: for i = n-1 .. 1, swap v[i] with v[s.below(i + 1)].
template <typename T>
void philox_shuffle(std::vector<T>& v, PhiloxStream& s) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[s.below(static_cast<uint32_t>(i))]);
}

enum class Part : int8_t { none = -1, train = 0, val = 1, test = 2 };

struct SplitConfig {
  uint64_t seed = 1;
  double train = 0.8, val = 0.1;  // test = the rest; fractions of the rated anime
  double warm_holdout = 0.1;      // fraction of train-item ratings held out for warm evaluation
};

// Per-item part for every anime (unrated anime: Part::none) plus the warm hold-out.
struct Split {
  SplitConfig config;
  std::vector<Part> item_part;                              // size num_items
  std::vector<int32_t> train_items, val_items, test_items;  // ascending item indices
  std::vector<uint8_t> rating_holdout;  // per Dataset::ratings entry: 1 = held out (warm test)
  uint64_t dataset_fingerprint = 0;     // of the anime ids and ratings it was made for

  const std::vector<int32_t>& items(Part p) const;  // train_items / val_items / test_items

  // safetensors, atomic: tensors item_part (I8), train_items/val_items/test_items (I32),
  // rating_holdout (U8); the config, the dataset's counts and a fingerprint of its anime ids
  // and ratings in the metadata.
  void save(const std::string& path) const;
  // Loads and checks the file against `ds`: same number of anime and ratings and the same
  // dataset fingerprint (else an error saying the split belongs to another dataset), parts
  // consistent with the item lists and with the ratings.
  static Split load(const std::string& path, const Dataset& ds);
  // The same, and the stored config must equal `expect` (seed and fractions).
  static Split load(const std::string& path, const Dataset& ds, const SplitConfig& expect);
};

// The rated anime (>= 1 rating), ascending, are shuffled with philox_shuffle on
// PhiloxStream(seed, 0); the first round(train * n) are train, the next round(val * n) val, the
// rest test. Then, for each user with m ratings of train items, round(warm_holdout * m) of them
// (at most m - 1, so >= 1 stays for fitting) are held out: a partial Fisher-Yates over the
// user's train-item ratings on PhiloxStream(seed, 2^62 + user * 2^32). Unrated anime are
// Part::none. Fractions must satisfy train, val >= 0, train + val <= 1, 0 <= warm_holdout < 1.
Split make_split(const Dataset& ds, const SplitConfig& cfg);

enum class ConfidenceFn { linear, log1p };
struct ImplicitConfig {
  double alpha = 1.0;                      // c = 1 + alpha * f(score)
  ConfidenceFn fn = ConfidenceFn::linear;  // f(s) = s, or log(1 + s)
  double threshold = 0.0;  // a rating counts as a preference only if score >= threshold
};
double confidence(double score, const ImplicitConfig& cfg);

// The matrices a model trains and is evaluated on. Ratings with score < threshold are not
// preferences and appear in none of them. Rows = "active" users (>= 1 fit rating, i.e. a
// preference on a train item that is not held out), ascending dataset user index; columns =
// the items of one part, ascending (column j of `val` is Split::val_items[j]). A user's ratings
// on val/test items, and held-out ones, count only if the user is active.
struct Interactions {
  std::vector<int32_t> users;        // row -> dataset user index
  std::vector<int32_t> user_row;     // dataset user index -> row, -1 if inactive
  std::vector<int32_t> train_items;  // column -> dataset item index (== Split::train_items)
  std::vector<int32_t> item_col;     // dataset item -> column in its part's matrix, -1 if none
  Csr fit;                           // users x train items: confidences of the non-held-out ratings
  Csr fit_score;                     // same pattern, raw scores (for top-N by rating, item-kNN)
  Csr warm_test;                     // users x train items: held-out ratings (score values)
  Csr val;                           // users x Split::val_items: scores
  Csr test;                          // users x Split::test_items: scores
};
Interactions build_interactions(const Dataset& ds, const Split& split, const ImplicitConfig& cfg);

}  // namespace dan::recsys
