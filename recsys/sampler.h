// Training-pair samplers for DropoutNet: which (user, item) pairs an epoch trains on, with
// their target relevance U_u . V_v from the WMF factors. Every draw is a Philox function of
// (seed, epoch, what is drawn), so an epoch's pairs never depend on the thread count, the
// chunking or the order the work is done in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dan::recsys {

enum class SampleStrategy {
  // DropoutNet's reference: per user the top_n items by U_u . V plus n_random uniform items.
  top_random,
  // Pairs whose target lies outside [lo, hi] (the confident positives and negatives), a
  // uniform sample of pairs_per_epoch of them without replacement.
  threshold,
};
// "top_random" | "threshold"; anything else is an error naming the accepted values.
SampleStrategy parse_sample_strategy(const std::string& s);

struct SamplerConfig {
  SampleStrategy strategy = SampleStrategy::top_random;
  int64_t top_n = 100;          // top_random: highest-scoring items per user (capped at #items)
  int64_t n_random = 100;       // top_random: uniform items per user, with replacement
  double lo = -0.1, hi = 0.1;   // threshold: keep pairs with target < lo or target > hi
  int64_t pairs_per_epoch = 0;  // threshold: pairs drawn per epoch (0 = every kept pair)
  bool shuffle = true;          // shuffle the epoch so consecutive pairs form random batches
  uint64_t seed = 0;
  int64_t chunk_users = 256;  // users scored at a time (memory: chunk_users x #items floats)
};

// One epoch of training pairs, in training order; targets[i] = U_users[i] . V_items[i] in
// float32, summed in a fixed order (bit-identical for any thread count and chunking).
struct Pairs {
  std::vector<int32_t> users;  // rows of U
  std::vector<int32_t> items;  // rows of V
  std::vector<float> targets;
  int64_t size() const { return static_cast<int64_t>(users.size()); }
  int64_t num_batches(int64_t batch_size) const { return (size() + batch_size - 1) / batch_size; }
};

// Samples epoch `epoch` for the users `users` (rows of U; empty = every row, in order).
// U [users, r] and V [items, r] are f32 on the CPU. top_random gives, per user, its top_n
// items in decreasing score (ties: lower item first) followed by its n_random draws; the
// epoch is then shuffled (Fisher-Yates) unless config.shuffle is false.
Pairs sample_epoch(const Tensor& U, const Tensor& V, const SamplerConfig& config, uint64_t epoch,
                   const std::vector<int32_t>& users = {});

// Per user the n highest U_u . V items, decreasing, ties broken by the lower item index:
// items/scores are [users.size() x n] row-major (n capped at V's rows). Computed chunk_users
// rows of U at a time: all scores of a row (OpenMP over rows), then a partial sort of it.
struct TopN {
  int64_t n = 0;
  std::vector<int32_t> items;
  std::vector<float> scores;
};
TopN top_n_items(const Tensor& U, const Tensor& V, int64_t n,
                 const std::vector<int32_t>& users = {}, int64_t chunk_users = 256);

// A Philox key for one named stream of one epoch: different (seed, epoch, stream) give
// unrelated streams; counters within a stream start at 0. Shared by the samplers here and the
// training-time transforms of models/dropoutnet.
uint64_t stream_key(uint64_t seed, uint64_t epoch, uint64_t stream);
// Uniform integer in [0, n), n > 0, from counter i of the stream `key` (64 random bits mod n).
uint64_t uniform_below(uint64_t key, uint64_t i, uint64_t n);
// In-place Fisher-Yates shuffle of the index range [0, n) applied through `swap(i, j)`,
// drawing from stream `key`.
template <typename Swap>
void philox_shuffle(uint64_t key, int64_t n, Swap&& swap) {
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(
        uniform_below(key, static_cast<uint64_t>(i), static_cast<uint64_t>(i) + 1));
    if (j != i) swap(i, j);
  }
}

}  // namespace dan::recsys
