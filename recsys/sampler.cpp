// Training-pair samplers: chunked scoring of user rows against every item, then per-row partial
// sorts (top-N) or threshold filters, with every random choice drawn from counter-based
// Philox streams so the result is a pure function of (inputs, seed, epoch).
#include "recsys/sampler.h"

#include <algorithm>
#include <numeric>
#include <unordered_set>

#include "core/philox.h"
#include "kernels/kernels.h"

namespace dan::recsys {

namespace {

// Stream numbers within an epoch (stream_key's third argument).
constexpr uint64_t kStreamRandomItems = 1;
constexpr uint64_t kStreamShuffle = 2;
constexpr uint64_t kStreamThreshold = 3;
// Below this many scores per chunk a parallel region costs more than it saves.
constexpr int64_t kParallelScores = 1 << 15;

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Validated CPU f32 contiguous copies (or the tensors themselves) of the factors.
struct Factors {
  Tensor U, V;
  int64_t rank = 0, num_items = 0;
};

Factors check_factors(const Tensor& U, const Tensor& V, const char* what) {
  DAN_CHECK(U.defined() && V.defined(), "{}: U and V must be defined", what);
  DAN_CHECK(U.dim() == 2 && V.dim() == 2 && U.size(1) == V.size(1),
            "{}: expected U [users, r] and V [items, r] with the same r, got U {} and V {}", what,
            shape_str(U.shape()), shape_str(V.shape()));
  DAN_CHECK(U.dtype() == DType::f32 && V.dtype() == DType::f32,
            "{}: U and V must be f32, got {} and {}", what, U.dtype(), V.dtype());
  DAN_CHECK(U.device().is_cpu() && V.device().is_cpu(), "{}: U and V must be on the CPU", what);
  DAN_CHECK(V.size(0) > 0 && V.size(0) <= INT32_MAX, "{}: V must have 1..2^31-1 items, got {}",
            what, V.size(0));
  Factors f;
  f.U = U.is_contiguous() ? U.detach() : raw::contiguous_copy(U, Device::cpu());
  f.V = V.is_contiguous() ? V.detach() : raw::contiguous_copy(V, Device::cpu());
  f.rank = U.size(1);
  f.num_items = V.size(0);
  return f;
}

std::vector<int32_t> resolve_users(const std::vector<int32_t>& users, int64_t num_users,
                                   const char* what) {
  if (users.empty()) {
    std::vector<int32_t> all(static_cast<size_t>(num_users));
    std::iota(all.begin(), all.end(), 0);
    return all;
  }
  for (size_t i = 0; i < users.size(); ++i) {
    DAN_CHECK(users[i] >= 0 && users[i] < num_users,
              "{}: users[{}] = {} is out of range for U with {} rows", what, i, users[i],
              num_users);
  }
  return users;
}

// Dot products of one user row with `m` (1..4) item rows, in a fixed summation order: eight
// lanes over k, a fixed tree over the lanes, then the tail. Every score is computed the same
// way whatever the thread count, the chunking or the item's position in a block of four, so
// the samplers' targets and rankings are bit-identical run to run (BLAS does not promise that:
// its kernels change with the matrix shape and the thread count).
template <int M>
inline __attribute__((always_inline)) void dots(const float* u, const float* const* v, int64_t r,
                                                float* out) {
  float acc[M][8] = {};
  const int64_t r8 = r / 8 * 8;
  for (int64_t k = 0; k < r8; k += 8) {
    for (int j = 0; j < M; ++j) {
      for (int l = 0; l < 8; ++l) acc[j][l] += u[k + l] * v[j][k + l];
    }
  }
  for (int j = 0; j < M; ++j) {
    const float* a = acc[j];
    float s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    for (int64_t k = r8; k < r; ++k) s += u[k] * v[j][k];
    out[j] = s;
  }
}

// All n scores of user row u. Cloned for AVX2 where the CPU has it: the lanes are the same
// IEEE multiplies and adds in both clones (no FMA contraction in this build), so the two give
// the same bits and a machine's choice of clone never changes a result.
__attribute__((target_clones("avx2", "default"))) void score_row(const float* u, const float* V,
                                                                 int64_t r, int64_t n, float* out) {
  const int64_t n4 = n / 4 * 4;
  for (int64_t i = 0; i < n4; i += 4) {
    const float* v[4] = {V + i * r, V + (i + 1) * r, V + (i + 2) * r, V + (i + 3) * r};
    dots<4>(u, v, r, out + i);
  }
  for (int64_t i = n4; i < n; ++i) {
    const float* v[1] = {V + i * r};
    dots<1>(u, v, r, out + i);
  }
}

// Scores S [chunk, items] = U[users[begin:end]] . V^T, rows in parallel.
Tensor chunk_scores(const Factors& f, const std::vector<int32_t>& users, int64_t begin,
                    int64_t end) {
  Tensor S = raw::empty({end - begin, f.num_items}, DType::f32);
  float* s = S.data<float>();
  const float* U = f.U.data<float>();
  const float* V = f.V.data<float>();
  const int64_t r = f.rank, n = f.num_items;
#pragma omp parallel for schedule(static) if ((end - begin) * n >= kParallelScores)
  for (int64_t row = begin; row < end; ++row) {
    score_row(U + static_cast<int64_t>(users[row]) * r, V, r, n, s + (row - begin) * n);
  }
  return S;
}

// Strict total order: higher score first, then lower item index, so the top-N is unique.
struct ByScoreDesc {
  const float* s;
  bool operator()(int32_t a, int32_t b) const { return s[a] > s[b] || (s[a] == s[b] && a < b); }
};

// The n best items of one score row into items/scores (decreasing). scratch holds
// num_items entries.
void top_of_row(const float* s, int64_t num_items, int64_t n, std::vector<int32_t>& scratch,
                int32_t* items, float* scores) {
  std::iota(scratch.begin(), scratch.end(), 0);
  const ByScoreDesc cmp{s};
  if (n < num_items) std::nth_element(scratch.begin(), scratch.begin() + n, scratch.end(), cmp);
  std::sort(scratch.begin(), scratch.begin() + n, cmp);
  for (int64_t j = 0; j < n; ++j) {
    items[j] = scratch[j];
    scores[j] = s[scratch[j]];
  }
}

void check_chunk(int64_t chunk_users, const char* what) {
  DAN_CHECK(chunk_users > 0, "{}: chunk_users must be > 0, got {}", what, chunk_users);
}

void shuffle_pairs(Pairs& p, uint64_t key) {
  philox_shuffle(key, p.size(), [&](int64_t i, int64_t j) {
    std::swap(p.users[i], p.users[j]);
    std::swap(p.items[i], p.items[j]);
    std::swap(p.targets[i], p.targets[j]);
  });
}

Pairs sample_top_random(const Factors& f, const std::vector<int32_t>& users, const SamplerConfig& c,
                        uint64_t epoch) {
  const int64_t n_top = std::min(c.top_n, f.num_items);
  const int64_t per_user = n_top + c.n_random;
  const int64_t nu = static_cast<int64_t>(users.size());
  Pairs p;
  p.users.resize(static_cast<size_t>(nu * per_user));
  p.items.resize(p.users.size());
  p.targets.resize(p.users.size());
  const uint64_t rkey = stream_key(c.seed, epoch, kStreamRandomItems);
  for (int64_t b = 0; b < nu; b += c.chunk_users) {
    const int64_t e = std::min(nu, b + c.chunk_users);
    const Tensor S = chunk_scores(f, users, b, e);
    const float* s = S.data<float>();
#pragma omp parallel if ((e - b) * f.num_items >= kParallelScores)
    {
      std::vector<int32_t> scratch(static_cast<size_t>(f.num_items));
#pragma omp for schedule(dynamic, 4)
      for (int64_t r = b; r < e; ++r) {
        const float* row = s + (r - b) * f.num_items;
        const size_t o = static_cast<size_t>(r * per_user);
        const int32_t u = users[r];
        std::fill_n(p.users.begin() + static_cast<int64_t>(o), per_user, u);
        if (n_top > 0) top_of_row(row, f.num_items, n_top, scratch, &p.items[o], &p.targets[o]);
        // Random items are keyed by the user's row of U, not its position or chunk.
        for (int64_t j = 0; j < c.n_random; ++j) {
          const auto it = static_cast<int32_t>(
              uniform_below(rkey, static_cast<uint64_t>(u) * static_cast<uint64_t>(c.n_random) + j,
                            static_cast<uint64_t>(f.num_items)));
          p.items[o + n_top + j] = it;
          p.targets[o + n_top + j] = row[it];
        }
      }
    }
  }
  return p;
}

Pairs sample_threshold(const Factors& f, const std::vector<int32_t>& users, const SamplerConfig& c,
                       uint64_t epoch) {
  const int64_t nu = static_cast<int64_t>(users.size());
  const float lo = static_cast<float>(c.lo), hi = static_cast<float>(c.hi);
  const auto kept = [lo, hi](float v) { return v < lo || v > hi; };
  // Pass 1: how many pairs each user keeps.
  std::vector<int64_t> count(static_cast<size_t>(nu), 0);
  for (int64_t b = 0; b < nu; b += c.chunk_users) {
    const int64_t e = std::min(nu, b + c.chunk_users);
    const Tensor S = chunk_scores(f, users, b, e);
    const float* s = S.data<float>();
#pragma omp parallel for schedule(static) if ((e - b) * f.num_items >= kParallelScores)
    for (int64_t r = b; r < e; ++r) {
      const float* row = s + (r - b) * f.num_items;
      int64_t k = 0;
      for (int64_t i = 0; i < f.num_items; ++i) k += kept(row[i]) ? 1 : 0;
      count[r] = k;
    }
  }
  std::vector<int64_t> first(static_cast<size_t>(nu) + 1,
                             0);  // rank of each user's first kept pair
  std::partial_sum(count.begin(), count.end(), first.begin() + 1);
  const int64_t total = first.back();
  const int64_t want = c.pairs_per_epoch == 0 ? total : std::min(c.pairs_per_epoch, total);

  // Which ranks (positions in the user-major, item-ascending list of kept pairs) to take:
  // all of them, or Floyd's uniform k-subset drawn from the epoch's stream.
  std::vector<int64_t> chosen;
  if (want == total) {
    chosen.resize(static_cast<size_t>(total));
    std::iota(chosen.begin(), chosen.end(), 0);
  } else {
    const uint64_t key = stream_key(c.seed, epoch, kStreamThreshold);
    std::unordered_set<int64_t> set;
    set.reserve(static_cast<size_t>(want) * 2);
    for (int64_t j = total - want; j < total; ++j) {
      const auto t = static_cast<int64_t>(
          uniform_below(key, static_cast<uint64_t>(j), static_cast<uint64_t>(j) + 1));
      set.insert(set.count(t) ? j : t);
    }
    chosen.assign(set.begin(), set.end());
    std::sort(chosen.begin(), chosen.end());
  }

  Pairs p;
  p.users.resize(chosen.size());
  p.items.resize(chosen.size());
  p.targets.resize(chosen.size());
  // Pass 2: the same chunks scored again (bit-identical), emitting the chosen pairs.
  for (int64_t b = 0; b < nu; b += c.chunk_users) {
    const int64_t e = std::min(nu, b + c.chunk_users);
    const auto lo_it = std::lower_bound(chosen.begin(), chosen.end(), first[b]);
    const auto hi_it = std::lower_bound(chosen.begin(), chosen.end(), first[e]);
    if (lo_it == hi_it) continue;
    const Tensor S = chunk_scores(f, users, b, e);
    const float* s = S.data<float>();
#pragma omp parallel for schedule(dynamic, 4) if ((e - b) * f.num_items >= kParallelScores)
    for (int64_t r = b; r < e; ++r) {
      auto it = std::lower_bound(lo_it, hi_it, first[r]);
      const auto end = std::lower_bound(it, hi_it, first[r + 1]);
      if (it == end) continue;
      const float* row = s + (r - b) * f.num_items;
      int64_t rank = first[r];
      for (int64_t i = 0; i < f.num_items && it != end; ++i) {
        if (!kept(row[i])) continue;
        if (rank == *it) {
          const auto o = static_cast<size_t>(it - chosen.begin());
          p.users[o] = users[r];
          p.items[o] = static_cast<int32_t>(i);
          p.targets[o] = row[i];
          ++it;
        }
        ++rank;
      }
    }
  }
  return p;
}

}  // namespace

SampleStrategy parse_sample_strategy(const std::string& s) {
  if (s == "top_random") return SampleStrategy::top_random;
  if (s == "threshold") return SampleStrategy::threshold;
  fail("sampler: unknown strategy '{}' (expected top_random or threshold)", s);
}

uint64_t stream_key(uint64_t seed, uint64_t epoch, uint64_t stream) {
  // Chained through a bijective mixer: two different triples share a key only by a 64-bit
  // coincidence, however many epochs and streams there are.
  return splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ stream);
}

uint64_t uniform_below(uint64_t key, uint64_t i, uint64_t n) {
  const philox::U32x4 b = philox::block(key, i);
  const uint64_t x = (static_cast<uint64_t>(b.v[1]) << 32) | b.v[0];
  return x % n;  // n <= 2^40 in practice: the modulo bias is below 2^-24
}

TopN top_n_items(const Tensor& U, const Tensor& V, int64_t n, const std::vector<int32_t>& users,
                 int64_t chunk_users) {
  const Factors f = check_factors(U, V, "top_n_items");
  check_chunk(chunk_users, "top_n_items");
  DAN_CHECK(n >= 0, "top_n_items: n must be >= 0, got {}", n);
  const std::vector<int32_t> us = resolve_users(users, U.size(0), "top_n_items");
  TopN t;
  t.n = std::min(n, f.num_items);
  const int64_t nu = static_cast<int64_t>(us.size());
  t.items.resize(static_cast<size_t>(nu * t.n));
  t.scores.resize(t.items.size());
  if (t.n == 0) return t;
  for (int64_t b = 0; b < nu; b += chunk_users) {
    const int64_t e = std::min(nu, b + chunk_users);
    const Tensor S = chunk_scores(f, us, b, e);
    const float* s = S.data<float>();
#pragma omp parallel if ((e - b) * f.num_items >= kParallelScores)
    {
      std::vector<int32_t> scratch(static_cast<size_t>(f.num_items));
#pragma omp for schedule(dynamic, 4)
      for (int64_t r = b; r < e; ++r) {
        top_of_row(s + (r - b) * f.num_items, f.num_items, t.n, scratch, &t.items[r * t.n],
                   &t.scores[r * t.n]);
      }
    }
  }
  return t;
}

Pairs sample_epoch(const Tensor& U, const Tensor& V, const SamplerConfig& c, uint64_t epoch,
                   const std::vector<int32_t>& users) {
  const Factors f = check_factors(U, V, "sample_epoch");
  check_chunk(c.chunk_users, "sample_epoch");
  const std::vector<int32_t> us = resolve_users(users, U.size(0), "sample_epoch");
  Pairs p;
  if (c.strategy == SampleStrategy::top_random) {
    DAN_CHECK(c.top_n >= 0 && c.n_random >= 0,
              "sample_epoch: top_n and n_random must be >= 0, got {} and {}", c.top_n, c.n_random);
    p = sample_top_random(f, us, c, epoch);
  } else {
    DAN_CHECK(c.lo <= c.hi, "sample_epoch: threshold needs lo <= hi, got lo = {}, hi = {}", c.lo,
              c.hi);
    DAN_CHECK(c.pairs_per_epoch >= 0, "sample_epoch: pairs_per_epoch must be >= 0, got {}",
              c.pairs_per_epoch);
    p = sample_threshold(f, us, c, epoch);
  }
  if (c.shuffle) shuffle_pairs(p, stream_key(c.seed, epoch, kStreamShuffle));
  return p;
}

}  // namespace dan::recsys
