// Tests for core/serialize: exact values of the PyTorch-written mixed_dtypes fixture (which
// has unaligned data), tensor round trips of every dtype and layout, F16/BF16 widening, and
// the errors for dtypes dan cannot hold.
#include "core/serialize.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>

namespace fs = std::filesystem;
using namespace dan;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

namespace {

const std::string kFixtures = DAN_FIXTURES_DIR;

class SerializeFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           fmt::format("dan_serialize_{}_{}_{}", ::getpid(), info->test_suite_name(), info->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected dan::Error";
  return "";
}

// Row-major element bytes of a CPU tensor, read element by element through its strides.
std::vector<uint8_t> element_bytes(const Tensor& t) {
  const size_t es = dtype_size(t.dtype());
  std::vector<uint8_t> out(static_cast<size_t>(t.numel()) * es);
  const int64_t nd = t.dim();
  std::vector<int64_t> idx(nd, 0);
  const auto* base = static_cast<const uint8_t*>(t.storage()->data());
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t off = t.offset();
    for (int64_t d = 0; d < nd; ++d) off += idx[d] * t.stride(d);
    std::memcpy(out.data() + i * es, base + off * es, es);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < t.size(d)) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

TEST(SerializeFixture, MixedDtypesExactValues) {
  const auto m = load_safetensors(kFixtures + "/mixed_dtypes.safetensors");
  ASSERT_EQ(m.size(), 7u);

  const Tensor& b = m.at("bool");
  EXPECT_EQ(b.dtype(), DType::b8);
  EXPECT_EQ(b.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1, 0, 0, 1, 0, 0}));

  const Tensor& e = m.at("empty");
  EXPECT_EQ(e.dtype(), DType::f32);
  EXPECT_EQ(e.shape(), (Shape{0, 3}));
  EXPECT_EQ(e.numel(), 0);

  const Tensor& f = m.at("f32");
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.shape(), (Shape{2, 3}));
  const float* fp = f.data<float>();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(fp[i], 0.5f * static_cast<float>(i));

  const Tensor& d = m.at("f64");
  EXPECT_EQ(d.dtype(), DType::f64);
  EXPECT_EQ(d.shape(), (Shape{4}));
  const double* dp = d.data<double>();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(dp[i], 0.25 * i - 0.5);

  const Tensor& i32 = m.at("i32");
  EXPECT_EQ(i32.dtype(), DType::i32);
  EXPECT_EQ(i32.shape(), (Shape{3, 2}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(i32.data<int32_t>()[i], i - 3);

  const Tensor& i64 = m.at("i64");
  EXPECT_EQ(i64.dtype(), DType::i64);
  EXPECT_EQ(i64.shape(), (Shape{2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(i64.data<int64_t>()[i], i * (int64_t{1} << 33) - 5);

  const Tensor& s = m.at("scalar");
  EXPECT_EQ(s.dtype(), DType::f32);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 3.5);
}

TEST(SerializeFixture, LoadTensorAndMetadataThroughReader) {
  const st::Reader r = st::Reader::open(kFixtures + "/mixed_dtypes.safetensors");
  EXPECT_EQ(r.metadata().at("format"), "pt");
  const Tensor t = load_tensor(r, "f64");
  EXPECT_EQ(t.to_vector(), (std::vector<double>{-0.5, -0.25, 0.0, 0.25}));
  const std::string msg = error_of([&] { load_tensor(r, "nope"); });
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mixed_dtypes.safetensors"), std::string::npos) << msg;
}

TEST_F(SerializeFile, RoundTripEveryDtypeAndLayout) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float denorm = std::numeric_limits<float>::denorm_min();
  Tensor f32 = from_vector<float>({1.5f, -0.0f, nan, inf, -inf, denorm, 3e38f, -7.25f, 0.1f, 2.f,
                                   4.f, 8.f},
                                  {3, 4});
  Tensor f64 = from_vector<double>({0.1, -1e-300, 1e300, std::nan(""), -0.0}, {5});
  Tensor i32 = from_vector<int32_t>({std::numeric_limits<int32_t>::min(), -1, 0,
                                     std::numeric_limits<int32_t>::max()},
                                    {2, 2});
  Tensor i64 = from_vector<int64_t>({std::numeric_limits<int64_t>::min(), (int64_t{1} << 53) + 1,
                                     std::numeric_limits<int64_t>::max()},
                                    {3, 1});
  Tensor b8 = from_doubles({1, 0, 0, 1, 1}, {5}, DType::b8);
  Tensor transposed = raw::transpose(f32, 0, 1);      // [4, 3], non-contiguous
  Tensor stepped = raw::slice(f32, 1, 0, 4, 3);       // [3, 2], stride 3, offset 0
  Tensor offset_row = raw::select(f32, 0, 2);         // [4], storage offset 8
  Tensor expanded = raw::expand(raw::unsqueeze(from_vector<float>({1.f, 2.f}, {2}), 0), {3, 2});
  Tensor scalar = scalar_tensor(-2.5, DType::f64);
  Tensor empty = zeros({0, 5}, DType::i64);

  const NamedTensors in = {{"f32", f32},          {"f64", f64},         {"i32", i32},
                           {"i64", i64},          {"bool", b8},         {"t", transposed},
                           {"step", stepped},     {"row", offset_row},  {"expanded", expanded},
                           {"scalar", scalar},    {"empty", empty},     {"z.unicode.ü", f32}};
  const std::string p = path("rt.safetensors");
  save_safetensors(p, in, {{"format", "pt"}, {"epoch", "3"}});

  const auto out = load_safetensors(p);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    const Tensor& u = out.at(name);
    EXPECT_EQ(u.dtype(), t.dtype());
    EXPECT_EQ(u.shape(), t.shape());
    EXPECT_TRUE(u.is_contiguous());
    EXPECT_FALSE(u.requires_grad());
    EXPECT_EQ(element_bytes(u), element_bytes(t));  // bit-exact, NaN payloads and -0 included
  }
  const st::Reader r = st::Reader::open(p);
  EXPECT_EQ(r.metadata().at("epoch"), "3");
  EXPECT_EQ(r.info("bool").dtype, "BOOL");
  EXPECT_EQ(r.info("i64").dtype, "I64");
  EXPECT_EQ(r.info("t").shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(r.info("scalar").shape, std::vector<int64_t>{});
}

TEST_F(SerializeFile, RequiresGradTensorIsSavedAsPlainData) {
  Tensor w = from_vector<float>({1.f, 2.f, 3.f}, {3});
  w.set_requires_grad(true);
  save_safetensors(path("w.safetensors"), {{"w", w}});
  const Tensor u = load_safetensors(path("w.safetensors")).at("w");
  EXPECT_EQ(u.to_vector(), (std::vector<double>{1, 2, 3}));
  EXPECT_FALSE(u.requires_grad());
}

TEST_F(SerializeFile, HalfPrecisionIsWidenedToF32EvenUnaligned) {
  // 1.0, -2.0, +inf, smallest subnormal (2^-24), 65504 (max), -0.0
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7C00, 0x0001, 0x7BFF, 0x8000};
  const std::vector<float> f16_want = {1.f, -2.f, std::numeric_limits<float>::infinity(),
                                       std::ldexp(1.f, -24), 65504.f, -0.f};
  // 1.0, -3.0 (0xC040), 1 + 2^-7 (0x3F81), -inf
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x3F81, 0xFF80};
  const std::vector<float> bf16_want = {1.f, -3.f, 1.f + std::ldexp(1.f, -7),
                                        -std::numeric_limits<float>::infinity()};
  const uint8_t pad[3] = {1, 2, 0};  // "a_pad" sorts first: the half data starts at odd offsets
  const std::string p = path("half.safetensors");
  st::write(p, {{"a_pad", "BOOL", {3}, pad, 3},
                {"bf16", "BF16", {2, 2}, bf16.data(), 8},
                {"f16", "F16", {6}, f16.data(), 12}});
  const auto m = load_safetensors(p);
  const Tensor& a = m.at("f16");
  ASSERT_EQ(a.dtype(), DType::f32);
  ASSERT_EQ(a.shape(), (Shape{6}));
  for (size_t i = 0; i < f16_want.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(a.data<float>()[i]), std::bit_cast<uint32_t>(f16_want[i]))
        << "f16 element " << i;
  }
  const Tensor& b = m.at("bf16");
  ASSERT_EQ(b.dtype(), DType::f32);
  ASSERT_EQ(b.shape(), (Shape{2, 2}));
  for (size_t i = 0; i < bf16_want.size(); ++i) EXPECT_EQ(b.data<float>()[i], bf16_want[i]) << i;
  // Bytes other than 0/1 in a BOOL tensor load as true, never as an invalid bool.
  EXPECT_EQ(m.at("a_pad").to_vector(), (std::vector<double>{1, 1, 0}));
}

TEST_F(SerializeFile, UnsupportedDtypeNamesFileAndKey) {
  const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  for (const char* dt : {"U8", "I8", "I16", "U16", "U32", "U64"}) {
    SCOPED_TRACE(dt);
    const size_t n = st::dtype_size(dt);
    const std::string p = path(fmt::format("{}.safetensors", dt));
    st::write(p, {{"ok", "F32", {1}, bytes, 4}, {"pixels", dt, {static_cast<int64_t>(8 / n)}, bytes, 8}});
    const std::string msg = error_of([&] { load_safetensors(p); });
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("pixels"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dt), std::string::npos) << msg;
    // The supported tensor of the same file still loads on its own.
    EXPECT_EQ(load_tensor(st::Reader::open(p), "ok").numel(), 1);
  }
}

TEST_F(SerializeFile, SaveErrors) {
  const std::string p = path("bad.safetensors");
  std::string msg = error_of([&] { save_safetensors(p, {{"x", Tensor()}}); });
  EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
  msg = error_of([&] { save_safetensors(p, {{"x", zeros({2})}, {"x", ones({2})}}); });
  EXPECT_NE(msg.find("duplicate"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(p));
  msg = error_of([&] { load_safetensors(path("missing.safetensors")); });
  EXPECT_NE(msg.find("missing.safetensors"), std::string::npos) << msg;
}
