// CPU <-> CUDA parity of the sparse kernels (both SpMM algorithms: cuSPARSE and the row-split
// kernel, and the automatic choice), bitwise run-to-run determinism on the GPU, and GCNConv /
// GINEConv forward + backward on CUDA against the CPU. Skipped without a CUDA device.
#include <gtest/gtest.h>

#include "core/cuda/runtime.h"

TEST(SparseCuda, DeviceAvailable) {
  if (!dan::cuda::is_built()) GTEST_SKIP() << "built without CUDA: sparse CUDA parity not run";
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  SUCCEED();
}

#ifdef DAN_WITH_CUDA

#include <cstring>
#include <random>

#include "autograd/ops.h"
#include "autograd/ops_sparse.h"
#include "core/sparse.h"
#include "kernels/sparse.h"
#include "layers/gcn.h"
#include "layers/gine.h"
#include "layers/mlp.h"
#include "tests/cuda/parity_util.h"

namespace dan::parity {
namespace {

constexpr double kRtol = 1e-4, kAtol = 1e-5;

// A skewed random graph (a few hub rows, some empty rows) on the CPU.
SparseCsr graph(int64_t rows, int64_t cols, int64_t nnz, uint32_t seed, DType idt,
                bool sum_dup = true) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> r(0, rows - 1), c(0, cols - 1);
  std::uniform_real_distribution<double> v(-1.0, 1.0);
  std::vector<double> rr, cc, vv;
  for (int64_t e = 0; e < nnz; ++e) {
    rr.push_back(static_cast<double>(e % 4 == 0 ? r(rng) % 5 : r(rng)));
    cc.push_back(static_cast<double>(c(rng)));
    vv.push_back(v(rng));
  }
  return SparseCsr::from_coo(from_doubles(rr, {nnz}, DType::i64),
                             from_doubles(cc, {nnz}, DType::i64), from_doubles(vv, {nnz}), rows,
                             cols, {.sum_duplicates = sum_dup, .index_dtype = idt});
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ha = raw::contiguous_copy(a, Device::cpu()),
               hb = raw::contiguous_copy(b, Device::cpu());
  return ha.shape() == hb.shape() && std::memcmp(ha.raw_data(), hb.raw_data(), ha.nbytes()) == 0;
}

TEST(SparseCuda, SpmmBothAlgorithmsMatchCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1;
  for (DType idt : {DType::i32, DType::i64}) {
    for (int64_t F : {1, 6, 32, 64, 100, 256}) {
      const SparseCsr a = graph(700, 500, 6000, seed++, idt);
      const SparseCsr ag = a.to(Device::cuda());
      const Pair x = uniform_pair({500, F}, seed++);
      const Tensor want = K::spmm(a, x.cpu);
      for (K::SpmmAlgo algo :
           {K::SpmmAlgo::cusparse, K::SpmmAlgo::row_split, K::SpmmAlgo::automatic}) {
        const Tensor got = K::cuda::csr_spmm(ag.indptr(), ag.indices(), ag.values(), x.gpu, algo);
        expect_close(want, got, kRtol, kAtol,
                     fmt::format("spmm {} {} F={}", K::name(algo), idt, F));
        // Deterministic: a second run gives the same bits.
        EXPECT_TRUE(
            same_bits(got, K::cuda::csr_spmm(ag.indptr(), ag.indices(), ag.values(), x.gpu, algo)))
            << K::name(algo) << " F=" << F;
      }
      const Pair g = uniform_pair({700, F}, seed++);
      expect_close(K::spmm_transposed(a, g.cpu), K::spmm_transposed(ag, g.gpu), kRtol, kAtol,
                   fmt::format("spmm_transposed {} F={}", idt, F));
      expect_close(K::sddmm(a, g.cpu, x.cpu), K::sddmm(ag, g.gpu, x.gpu), kRtol, kAtol,
                   fmt::format("sddmm {} F={}", idt, F));
    }
  }
  EXPECT_FALSE(K::cuda::spmm_decisions().empty());
  for (const std::string& d : K::cuda::spmm_decisions()) std::printf("  %s\n", d.c_str());
}

TEST(SparseCuda, SegmentSumsGcnNormGineMatchCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 100;
  for (DType idt : {DType::i32, DType::i64}) {
    for (int64_t F : {3, 16, 64}) {
      const SparseCsr a = graph(400, 400, 3000, seed++, idt, false);
      const SparseCsr ag = a.to(Device::cuda());
      const Pair src = uniform_pair({a.nnz(), F}, seed++);
      const Pair x = uniform_pair({400, F}, seed++), g = uniform_pair({400, F}, seed++);
      const std::string what = fmt::format("{} F={}", idt, F);
      expect_close(K::segment_sum(a, src.cpu), K::segment_sum(ag, src.gpu), kRtol, kAtol,
                   "segment_sum " + what);
      expect_close(K::segment_sum_cols(a, src.cpu), K::segment_sum_cols(ag, src.gpu), kRtol, kAtol,
                   "segment_sum_cols " + what);
      expect_close(K::gine_aggregate(a, x.cpu, src.cpu), K::gine_aggregate(ag, x.gpu, src.gpu),
                   kRtol, kAtol, "gine_aggregate " + what);
      expect_close(K::gine_aggregate_backward(a, g.cpu, x.cpu, src.cpu),
                   K::gine_aggregate_backward(ag, g.gpu, x.gpu, src.gpu), 0, 0,
                   "gine_aggregate_backward " + what);
      EXPECT_TRUE(same_bits(K::segment_sum_cols(ag, src.gpu), K::segment_sum_cols(ag, src.gpu)));
    }
    const SparseCsr w = graph(300, 300, 2000, seed++, idt).add_remaining_self_loops(1.0);
    const SparseCsr pos = w.with_values(K::unary(K::UnaryOp::abs, w.values()));
    expect_close(K::gcn_norm(pos).values(), K::gcn_norm(pos.to(Device::cuda())).values(), 1e-5,
                 1e-7, fmt::format("gcn_norm {}", idt));
  }
}

TEST(SparseCuda, GcnAndGineLayersMatchCpu) {
  if (!dan::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const SparseCsr adj = graph(200, 200, 1500, 7, DType::i32, false);
  const SparseCsr adj_g = adj.to(Device::cuda());
  Generator gen(3);
  GCNConv gcn(16, 8, {}, gen);
  GINEConv gine(
      std::make_shared<MLP>(
          MLPConfig{.in_dim = 16, .hidden = {32}, .out_dim = 8, .activation = Activation::relu},
          gen),
      16, {.eps = 0.2, .train_eps = true, .edge_dim = 4}, gen);
  const Pair x = uniform_pair({200, 16}, 8), ea = uniform_pair({adj.nnz(), 4}, 9);
  const Pair proj = uniform_pair({200, 8}, 10);
  auto run = [&](Module& m, bool cuda) {
    m.zero_grad();
    m.to(cuda ? Device::cuda() : Device::cpu());
    Tensor xi = (cuda ? x.gpu : x.cpu).detach();
    xi.set_requires_grad(true);
    Tensor out =
        dynamic_cast<GCNConv*>(&m) != nullptr
            ? static_cast<GCNConv&>(m).forward(xi, cuda ? adj_g : adj)
            : static_cast<GINEConv&>(m).forward(xi, cuda ? adj_g : adj, cuda ? ea.gpu : ea.cpu);
    sum(out * (cuda ? proj.gpu : proj.cpu)).backward();
    std::vector<Tensor> res = {out.detach(), xi.grad()};
    for (const Tensor& p : m.parameters())
      res.push_back(raw::contiguous_copy(p.grad(), Device::cpu()));
    return res;
  };
  for (Module* m : std::vector<Module*>{&gcn, &gine}) {
    const auto c = run(*m, false);
    const auto g = run(*m, true);
    ASSERT_EQ(c.size(), g.size());
    expect_close(c[0], g[0], kRtol, kAtol, m->type_name() + " out");
    expect_close(c[1], g[1], kRtol, kAtol, m->type_name() + " grad x");
    for (size_t i = 2; i < c.size(); ++i) {
      expect_close(c[i], raw::contiguous_copy(g[i], Device::cuda()), 1e-3, 1e-4,
                   m->type_name() + " grad param " + std::to_string(i - 2));
    }
    m->to(Device::cpu());
  }
}

}  // namespace
}  // namespace dan::parity

#endif  // DAN_WITH_CUDA
