// CPU <-> CUDA parity of the fused self-attention (kernels::attention_forward/backward) for each
// CUDA implementation (DAN_ATTENTION = tiled, naive, materialized): outputs, row stats and
// d qkv against the CPU kernel, on shapes that exercise the tiled kernels' edges (S not a
// multiple of the 64-wide tiles, S = 1, padded batches down to [CLS] alone, head dims 32, 64
// and odd ones, dropout on and off: its mask must be the CPU's, or outputs differ by O(1)).
// DAN_ATTENTION=auto must match too, record one measured choice per shape and direction, and
// return exactly what its chosen implementation returns. Skipped without a CUDA device.
#include "core/cuda/runtime.h"
#include "kernels/attention.h"

#ifdef DAN_WITH_CUDA

#include <cfloat>
#include <cstdlib>

#include "tests/cuda/parity_util.h"

namespace dan::parity {
namespace {

struct AttnCase {
  const char* name;
  int64_t B, S, heads, dh;
  enum Bias { none, random, padded, cls_only } bias;
  double p;
};

// Key bias [B, S]: random values, then padding (the dtype's lowest) after a per-batch length,
// plus one dead key inside the live range; cls_only keeps key 0 alone.
Pair make_bias(const AttnCase& c, uint32_t seed) {
  Pair kb = uniform_pair({c.B, c.S}, seed, -1.0, 1.0);
  if (c.bias == AttnCase::random) return kb;
  std::vector<double> v = kb.cpu.to_vector();
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t keep =
        c.bias == AttnCase::cls_only ? 1 : std::max<int64_t>(1, c.S - 17 * (b + 1));
    for (int64_t j = keep; j < c.S; ++j) v[static_cast<size_t>(b * c.S + j)] = -FLT_MAX;
    if (c.bias == AttnCase::padded && keep > 3) v[static_cast<size_t>(b * c.S + 2)] = -FLT_MAX;
  }
  return on_both(from_doubles(v, {c.B, c.S}, DType::f32));
}

class ScopedAttentionAlgo {
 public:
  explicit ScopedAttentionAlgo(const char* algo) { setenv("DAN_ATTENTION", algo, 1); }
  ~ScopedAttentionAlgo() { unsetenv("DAN_ATTENTION"); }
};

void check_case(const AttnCase& c, const char* algo) {
  SCOPED_TRACE(std::string(c.name) + " [" + algo + "]");
  ScopedAttentionAlgo scoped(algo);
  const int64_t H = c.heads * c.dh;
  const Pair qkv = uniform_pair({c.B, c.S, 3 * H}, 11, -2.0, 2.0);
  const Pair g = uniform_pair({c.B, c.S, H}, 12, -1.0, 1.0);
  const Pair kb = c.bias == AttnCase::none ? Pair{} : make_bias(c, 13);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.dh));
  const uint64_t seed = 20240607, offset = 96;
  const Shape ss = {c.B, c.heads, c.S, 2};
  const Tensor st_c = raw::empty(ss, DType::f32), st_g = raw::empty(ss, DType::f32, Device::cuda());
  const Tensor y_c =
      K::cpu::attention_forward(qkv.cpu, kb.cpu, c.heads, scale, c.p, seed, offset, st_c);
  const Tensor y_g =
      K::cuda::attention_forward(qkv.gpu, kb.gpu, c.heads, scale, c.p, seed, offset, st_g);
  expect_close(y_c, y_g, 1e-4, 1e-5, "out");
  expect_close(st_c, st_g, 1e-5, 1e-6, "stats");
  const Tensor d_c = K::cpu::attention_backward(g.cpu, qkv.cpu, y_c, kb.cpu, st_c, c.heads, scale,
                                                c.p, seed, offset);
  const Tensor d_g = K::cuda::attention_backward(g.gpu, qkv.gpu, y_g, kb.gpu, st_g, c.heads, scale,
                                                 c.p, seed, offset);
  expect_close(d_c, d_g, 1e-4, 1e-4, "d qkv");
}

const std::vector<AttnCase>& cases() {
  static const std::vector<AttnCase> c = {
      {"MiniLM-like: 12 x 32, S 128, padded batch", 3, 128, 12, 32, AttnCase::padded, 0.0},
      {"BERT-base-like: 12 x 64, S 77 (not a tile multiple), random bias", 2, 77, 12, 64,
       AttnCase::random, 0.0},
      {"S = 1", 3, 1, 2, 64, AttnCase::random, 0.0},
      {"S = 1, dropout", 2, 1, 2, 32, AttnCase::none, 0.3},
      {"only [CLS] alive, S 130", 2, 130, 2, 64, AttnCase::cls_only, 0.0},
      {"only [CLS] alive, dropout", 2, 70, 3, 32, AttnCase::cls_only, 0.2},
      {"padded, S 200, dropout 0.1, dh 64", 3, 200, 2, 64, AttnCase::padded, 0.1},
      {"no bias, S 65, dropout 0.5, dh 32", 2, 65, 4, 32, AttnCase::none, 0.5},
      {"odd head dim 20 (scalar loads), padded", 2, 100, 3, 20, AttnCase::padded, 0.0},
      {"head dim 48 (padded to 64), dropout", 1, 129, 2, 48, AttnCase::random, 0.15},
      {"head dim 7", 2, 64, 1, 7, AttnCase::padded, 0.0},
      {"head dim 96 (tiled falls back to naive)", 1, 40, 2, 96, AttnCase::random, 0.1},
  };
  return c;
}

TEST(CudaParity, AttentionTiledMatchesCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const AttnCase& c : cases()) check_case(c, "tiled");
}

TEST(CudaParity, AttentionNaiveMatchesCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const AttnCase& c : cases()) check_case(c, "naive");
}

TEST(CudaParity, AttentionMaterializedMatchesCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const AttnCase& c : cases()) check_case(c, "materialized");
}

// The tiled backward has one owner per output element and no atomics: bitwise repeatable.
TEST(CudaParity, AttentionTiledIsDeterministic) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const AttnCase c{"repeat", 2, 150, 4, 64, AttnCase::padded, 0.1};
  const Pair qkv = uniform_pair({c.B, c.S, 3 * c.heads * c.dh}, 21);
  const Pair g = uniform_pair({c.B, c.S, c.heads * c.dh}, 22);
  const Pair kb = make_bias(c, 23);
  const Tensor st = raw::empty({c.B, c.heads, c.S, 2}, DType::f32, Device::cuda());
  const Tensor y = K::cuda::attention_forward(qkv.gpu, kb.gpu, c.heads, 0.125, c.p, 5, 0, st);
  const Tensor d1 =
      K::cuda::attention_backward(g.gpu, qkv.gpu, y, kb.gpu, st, c.heads, 0.125, c.p, 5, 0);
  const Tensor d2 =
      K::cuda::attention_backward(g.gpu, qkv.gpu, y, kb.gpu, st, c.heads, 0.125, c.p, 5, 0);
  expect_bitwise(d1, d2, "d qkv run to run");
}

// The decision recorded for "<direction> <shape>: " (the text after it up to " ("), or "".
std::string decided(const std::string& head) {
  for (const std::string& line : K::cuda::attention_decisions())
    if (line.find(head) != std::string::npos) {
      const size_t from = line.find(head) + head.size();
      return line.substr(from, line.find(" (", from) - from);
    }
  return {};
}

TEST(CudaParity, AttentionAutoMatchesCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const size_t before = K::cuda::attention_decisions().size();
  for (const AttnCase& c : cases()) check_case(c, "auto");
  // One new decision per case and direction (the cases' shapes are distinct), each naming a
  // real implementation; head dim 96 cannot choose the tiled kernels (they stop at 64).
  const std::vector<std::string> log = K::cuda::attention_decisions();
  EXPECT_EQ(log.size() - before, 2 * cases().size());
  for (const std::string& line : log) {
    SCOPED_TRACE(line);
    EXPECT_NE(line.find("materialized "), std::string::npos) << "every candidate's time";
  }
  for (const char* dir : {"forward", "backward"}) {
    const std::string pick = decided(std::string(dir) + " B=1 S=40 heads=2 dh=96 mask dropout: ");
    EXPECT_TRUE(pick == "naive" || pick == "materialized") << dir << ": '" << pick << "'";
  }
}

// What auto returns is bit for bit what its chosen implementation returns.
TEST(CudaParity, AttentionAutoReturnsTheChosenResult) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const AttnCase c{"auto vs chosen", 3, 91, 4, 32, AttnCase::padded, 0.1};
  const Pair qkv = uniform_pair({c.B, c.S, 3 * c.heads * c.dh}, 41);
  const Pair g = uniform_pair({c.B, c.S, c.heads * c.dh}, 42);
  const Pair kb = make_bias(c, 43);
  const Shape ss = {c.B, c.heads, c.S, 2};
  auto run = [&](const std::string& algo) {
    ScopedAttentionAlgo scoped(algo.c_str());
    const Tensor st = raw::empty(ss, DType::f32, Device::cuda());
    const Tensor y = K::cuda::attention_forward(qkv.gpu, kb.gpu, c.heads, 0.25, c.p, 9, 4, st);
    const Tensor d =
        K::cuda::attention_backward(g.gpu, qkv.gpu, y, kb.gpu, st, c.heads, 0.25, c.p, 9, 4);
    return std::vector<Tensor>{y, st, d};
  };
  const std::vector<Tensor> a = run("auto");
  const std::vector<std::string> log = K::cuda::attention_decisions();
  const std::string fwd = decided("forward B=3 S=91 heads=4 dh=32 mask dropout: ");
  const std::string bwd = decided("backward B=3 S=91 heads=4 dh=32 mask dropout: ");
  ASSERT_FALSE(fwd.empty() || bwd.empty());
  const std::vector<Tensor> f = run(fwd);
  expect_bitwise(a[0], f[0], "out vs " + fwd);
  expect_bitwise(a[1], f[1], "stats vs " + fwd);
  // The backward reads the forward's out and stats: rerun it on auto's own forward results.
  ScopedAttentionAlgo scoped(bwd.c_str());
  const Tensor d =
      K::cuda::attention_backward(g.gpu, qkv.gpu, a[0], kb.gpu, a[1], c.heads, 0.25, c.p, 9, 4);
  expect_bitwise(a[2], d, "d qkv vs " + bwd);
  // A second auto call of the same shape measures nothing new.
  run("auto");
  EXPECT_EQ(K::cuda::attention_decisions(), log);
}

TEST(CudaParity, AttentionRejectsUnknownAlgorithm) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ScopedAttentionAlgo scoped("flash9");
  const Pair qkv = uniform_pair({1, 4, 6}, 31);
  try {
    K::cuda::attention_forward(qkv.gpu, Tensor(), 1, 1.0, 0.0, 0, 0, Tensor());
    ADD_FAILURE() << "no error for DAN_ATTENTION=flash9";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("DAN_ATTENTION"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dan::parity

#endif  // DAN_WITH_CUDA
