// SparseCsr construction and structure operations against hand-worked examples and dense
// references: COO with duplicates, edge ids, transpose, symmetrize, remaining self-loops,
// index dtypes, and the validation errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/sparse.h"

namespace {

using dan::DType;
using dan::SparseCsr;
using dan::Tensor;

Tensor idx(const std::vector<int64_t>& v, DType dt = DType::i64) {
  std::vector<double> d(v.begin(), v.end());
  return dan::from_doubles(d, {static_cast<int64_t>(v.size())}, dt);
}
Tensor vals(const std::vector<double>& v, DType dt = DType::f32) {
  return dan::from_doubles(v, {static_cast<int64_t>(v.size())}, dt);
}
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector_as<int64_t>(); }

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const dan::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SparseCsr, FromCooSortsAndSumsDuplicates) {
  // 3 x 4: (2,1)=1, (0,3)=2, (0,1)=3, (2,1)=4 (duplicate), (1,0)=5.
  const SparseCsr a =
      SparseCsr::from_coo(idx({2, 0, 0, 2, 1}), idx({1, 3, 1, 1, 0}), vals({1, 2, 3, 4, 5}), 3, 4);
  EXPECT_EQ(a.rows(), 3);
  EXPECT_EQ(a.cols(), 4);
  EXPECT_EQ(a.nnz(), 4);
  EXPECT_EQ(a.index_dtype(), DType::i32);
  EXPECT_EQ(ints(a.indptr()), (std::vector<int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(ints(a.indices()), (std::vector<int64_t>{1, 3, 0, 1}));
  EXPECT_EQ(a.values().to_vector(), (std::vector<double>{3, 2, 5, 5}));
  EXPECT_FALSE(a.has_edge_ids());
  EXPECT_EQ(ints(a.row_ids()), (std::vector<int64_t>{0, 0, 1, 2}));
}

TEST(SparseCsr, FromCooKeepsEdgesAndTheirIds) {
  const SparseCsr a = SparseCsr::from_coo(idx({2, 0, 0, 2, 1}), idx({1, 3, 1, 1, 0}),
                                          vals({1, 2, 3, 4, 5}), 3, 4, {.sum_duplicates = false});
  EXPECT_EQ(a.nnz(), 5);
  EXPECT_EQ(ints(a.indices()), (std::vector<int64_t>{1, 3, 0, 1, 1}));
  EXPECT_EQ(a.values().to_vector(), (std::vector<double>{3, 2, 5, 1, 4}));
  // Equal (row, col) keep edge order: edge 0 before edge 3.
  EXPECT_EQ(ints(a.edge_ids()), (std::vector<int64_t>{2, 1, 4, 0, 3}));
  EXPECT_EQ(a.edge_ids().dtype(), DType::i64);
}

TEST(SparseCsr, FromEdgeIndexPutsTargetsInRows) {
  // Edges 0->1, 0->2, 2->1 with weights 1, 2, 3: A[1,0]=1, A[2,0]=2, A[1,2]=3.
  Tensor ei = dan::from_doubles({0, 0, 2, 1, 2, 1}, {2, 3}, DType::i64);
  const SparseCsr a = SparseCsr::from_edge_index(ei, 3, vals({1, 2, 3}));
  EXPECT_EQ(a.to_dense().to_vector(), (std::vector<double>{0, 0, 0, 1, 0, 3, 2, 0, 0}));
  const SparseCsr ones = SparseCsr::from_edge_index(ei, 3);
  EXPECT_EQ(ones.values().to_vector(), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(ones.dtype(), DType::f32);
}

TEST(SparseCsr, TransposeMatchesDenseAndCaches) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int64_t> r(0, 6), c(0, 4);
  std::vector<int64_t> rr, cc;
  std::vector<double> vv;
  for (int i = 0; i < 25; ++i) {
    rr.push_back(r(rng));
    cc.push_back(c(rng));
    vv.push_back(i + 1);
  }
  for (DType it : {DType::i32, DType::i64}) {
    const SparseCsr a =
        SparseCsr::from_coo(idx(rr), idx(cc), vals(vv, DType::f64), 7, 5, {.index_dtype = it});
    const SparseCsr t = a.transposed();
    EXPECT_EQ(t.rows(), 5);
    EXPECT_EQ(t.cols(), 7);
    EXPECT_EQ(t.index_dtype(), it);
    const auto d = a.to_dense().to_vector(), dt = t.to_dense().to_vector();
    for (int64_t i = 0; i < 7; ++i) {
      for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(d[i * 5 + j], dt[j * 7 + i]) << i << "," << j;
    }
    // perm maps the transpose's entries back: values line up.
    const auto perm = ints(a.transpose_perm());
    const auto av = a.values().to_vector(), tv = t.values().to_vector();
    for (size_t k = 0; k < perm.size(); ++k) EXPECT_EQ(tv[k], av[perm[k]]);
    EXPECT_EQ(ints(a.transpose_indptr()), ints(t.indptr()));
    // Cached: the same arrays come back.
    EXPECT_TRUE(a.transposed().indptr().same(t.indptr()));
    EXPECT_TRUE(a.transposed().values().same(t.values()));
    // with_values shares the pattern's transpose but not the transposed values.
    const SparseCsr b = a.with_values(dan::ones({a.nnz()}, DType::f64));
    EXPECT_TRUE(b.transposed().indptr().same(t.indptr()));
    EXPECT_EQ(b.transposed().values().to_vector(), std::vector<double>(a.nnz(), 1.0));
  }
}

TEST(SparseCsr, SymmetrizeIsAPlusATranspose) {
  // 0->1 (w 1), 1->0 (w 2), 1->2 (w 3), 2->2 (w 4).
  const SparseCsr a =
      SparseCsr::from_coo(idx({0, 1, 1, 2}), idx({1, 0, 2, 2}), vals({1, 2, 3, 4}), 3, 3);
  const SparseCsr s = a.symmetrize();
  EXPECT_EQ(s.to_dense().to_vector(), (std::vector<double>{0, 3, 0, 3, 0, 3, 0, 3, 8}));
  EXPECT_EQ(s.nnz(), 5);
  EXPECT_NE(error_of([] {
              SparseCsr::from_coo(idx({0}), idx({1}), Tensor(), 1, 2).symmetrize();
            }).find("must be square"),
            std::string::npos);
}

TEST(SparseCsr, AddRemainingSelfLoopsKeepsExistingOnes) {
  // Row 0: (0,1); row 1: (1,1)=5 (a loop), (1,2); row 2: empty.
  const SparseCsr a = SparseCsr::from_coo(idx({0, 1, 1}), idx({1, 1, 2}), vals({1, 5, 2}), 3, 3);
  const SparseCsr l = a.add_remaining_self_loops(2.0);
  EXPECT_EQ(ints(l.indptr()), (std::vector<int64_t>{0, 2, 4, 5}));
  EXPECT_EQ(ints(l.indices()), (std::vector<int64_t>{0, 1, 1, 2, 2}));  // sorted positions
  EXPECT_EQ(l.values().to_vector(), (std::vector<double>{2, 1, 5, 2, 2}));
  // Idempotent.
  EXPECT_EQ(l.add_remaining_self_loops(7.0).values().to_vector(), l.values().to_vector());
}

TEST(SparseCsr, FromArraysValidates) {
  const Tensor ip = idx({0, 1, 3}, DType::i32), ix = idx({2, 0, 1}, DType::i32);
  const SparseCsr a(2, 3, ip, ix, vals({1, 2, 3}));
  EXPECT_EQ(a.to_dense().to_vector(), (std::vector<double>{0, 0, 1, 2, 3, 0}));
  EXPECT_NE(error_of([&] {
              SparseCsr(2, 2, ip, ix, vals({1, 2, 3}));
            }).find("column index 2 at entry 0 is out of range for 2 columns"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              SparseCsr(2, 3, idx({0, 2, 1}, DType::i32), ix, vals({1, 2, 3}));
            }).find("indptr decreases at row 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              SparseCsr(2, 3, ip, idx({2, 0, 1}), vals({1, 2, 3}));
            }).find("indptr is i32 but indices are i64"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              SparseCsr(2, 3, ip, ix, vals({1, 2}));
            }).find("expected [3] (nnz)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              SparseCsr(3, 3, ip, ix, vals({1, 2, 3}));
            }).find("expected [4] (rows + 1)"),
            std::string::npos);
}

TEST(SparseCsr, FromCooErrorsNameThePosition) {
  EXPECT_NE(error_of([] {
              SparseCsr::from_coo(idx({0, 3}), idx({0, 0}), Tensor(), 3, 3);
            }).find("row index 3 at position 1 is out of range for 3 rows"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              SparseCsr::from_coo(idx({0, 1}), idx({0, -1}), Tensor(), 3, 3);
            }).find("column index -1 at position 1"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              SparseCsr::from_coo(idx({0}), idx({0}), Tensor(), 3000000000, 3);
            }).find("does not fit i32 indices"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              SparseCsr::from_edge_index(idx({0, 1}), 3);
            }).find("[2, E]"),
            std::string::npos);
  EXPECT_NE(error_of([] { SparseCsr().nnz(); }).find("undefined"), std::string::npos);
}

TEST(SparseCsr, I64IndicesAndDeviceCopy) {
  const SparseCsr a = SparseCsr::from_coo(idx({1, 0}), idx({0, 1}), vals({4, 5}), 2, 2,
                                          {.index_dtype = DType::i64});
  EXPECT_EQ(a.indptr().dtype(), DType::i64);
  EXPECT_EQ(a.indices().dtype(), DType::i64);
  const SparseCsr b = a.to(dan::Device::cpu());
  EXPECT_EQ(b.to_dense().to_vector(), (std::vector<double>{0, 5, 4, 0}));
  EXPECT_EQ(a.str(), "SparseCsr(2 x 2, nnz 2, i64, f32, cpu)");
}

}  // namespace
