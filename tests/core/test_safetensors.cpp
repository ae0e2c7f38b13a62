// Tests for core/safetensors: round trips, byte layout, half-precision conversions, and
// rejection of malformed files with messages that name the file, the key and the problem.
#include "core/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>

#include "core/error.h"

namespace fs = std::filesystem;
using dan::st::Reader;
using dan::st::TensorInfo;
using dan::st::WriteEntry;

namespace {

// Runs f, which must throw dan::Error, and returns the message ("" + a failure otherwise).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dan::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-dan exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

// Asserts that msg contains every one of `parts`.
void expect_has(const std::string& msg, std::initializer_list<std::string> parts) {
  for (const std::string& p : parts) {
    EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
  }
}

// A file image from a header text and a data buffer (the header is used verbatim).
std::string image(const std::string& header, const std::string& data = "") {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return out + header + data;
}

std::string parse_error(const std::string& header, const std::string& data = "") {
  return error_of([&] { Reader::from_bytes(image(header, data), "bad.st"); });
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A fresh empty directory per test, removed afterwards.
class SafetensorsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("dan_st_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  size_t entries_in_dir() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }
  fs::path dir_;
};

// Distinct bytes per tensor so a mix-up of offsets is caught.
std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 7 * i);
  return v;
}

const TensorInfo* find(const Reader& r, const std::string& name) {
  return r.contains(name) ? &r.info(name) : nullptr;
}

}  // namespace

// ------------------------------------------------------------------ round trips

TEST(SafetensorsDtype, SizesAndUnknown) {
  EXPECT_EQ(dan::st::dtype_size("BOOL"), 1u);
  EXPECT_EQ(dan::st::dtype_size("U8"), 1u);
  EXPECT_EQ(dan::st::dtype_size("I8"), 1u);
  EXPECT_EQ(dan::st::dtype_size("F16"), 2u);
  EXPECT_EQ(dan::st::dtype_size("BF16"), 2u);
  EXPECT_EQ(dan::st::dtype_size("I16"), 2u);
  EXPECT_EQ(dan::st::dtype_size("U16"), 2u);
  EXPECT_EQ(dan::st::dtype_size("F32"), 4u);
  EXPECT_EQ(dan::st::dtype_size("I32"), 4u);
  EXPECT_EQ(dan::st::dtype_size("U32"), 4u);
  EXPECT_EQ(dan::st::dtype_size("F64"), 8u);
  EXPECT_EQ(dan::st::dtype_size("I64"), 8u);
  EXPECT_EQ(dan::st::dtype_size("U64"), 8u);
  expect_has(error_of([] { dan::st::dtype_size("f32"); }), {"unknown dtype 'f32'"});
}

TEST_F(SafetensorsFile, RoundTripEveryDtypeScalarAndEmpty) {
  const std::vector<std::string> dtypes = {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16",
                                           "I32", "U32", "F32", "I64", "U64", "F64"};
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<WriteEntry> entries;
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const size_t n = 2 * 3 * dan::st::dtype_size(dtypes[i]);
    bufs.push_back(pattern(n, static_cast<uint8_t>(i)));
  }
  bufs.push_back(pattern(8, 200));  // scalar I64
  for (size_t i = 0; i < dtypes.size(); ++i) {
    entries.push_back({"t_" + dtypes[i], dtypes[i], {2, 3}, bufs[i].data(), bufs[i].size()});
  }
  entries.push_back({"scalar", "I64", {}, bufs.back().data(), 8});
  entries.push_back({"empty", "F32", {0, 3}, nullptr, 0});
  dan::st::write(path("all.safetensors"), entries);

  const Reader r = Reader::open(path("all.safetensors"));
  ASSERT_EQ(r.tensors().size(), entries.size());
  EXPECT_TRUE(r.metadata().empty());
  for (const WriteEntry& e : entries) {
    const TensorInfo* t = find(r, e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_EQ(t->dtype, e.dtype);
    EXPECT_EQ(t->shape, e.shape);
    ASSERT_EQ(t->nbytes(), e.nbytes) << e.name;
    if (e.nbytes > 0) {
      EXPECT_EQ(std::memcmp(r.data(*t), e.data, e.nbytes), 0) << e.name;
    }
  }
  EXPECT_TRUE(r.info("scalar").shape.empty());
  // tensors() is in data-offset order, which the writer makes equal to name order.
  for (size_t i = 1; i < r.tensors().size(); ++i) {
    EXPECT_LE(r.tensors()[i - 1].end, r.tensors()[i].begin);
    EXPECT_LT(r.tensors()[i - 1].name, r.tensors()[i].name);
  }
}

TEST_F(SafetensorsFile, MetadataRoundTrip) {
  const float x[2] = {1.5f, -2.0f};
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"note", "quotes \" and \\ and unicode \xc3\xa9"}, {"empty", ""}};
  dan::st::write(path("m.safetensors"), {{"x", "F32", {2}, x, sizeof x}}, meta);
  const Reader r = Reader::open(path("m.safetensors"));
  EXPECT_EQ(r.metadata(), meta);
  float back[2];
  std::memcpy(back, r.data(r.info("x")), sizeof back);
  EXPECT_EQ(back[0], 1.5f);
  EXPECT_EQ(back[1], -2.0f);
}

TEST_F(SafetensorsFile, HeaderIsPaddedAndSorted) {
  const int32_t a[3] = {1, 2, 3};
  const uint8_t b[1] = {1};
  dan::st::write(path("p.safetensors"),
                 {{"zeta", "I32", {3}, a, sizeof a}, {"alpha", "BOOL", {1}, b, 1}});
  const std::string bytes = slurp(path("p.safetensors"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + sizeof a + sizeof b);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // only spaces after the object
  EXPECT_LT(header.find("\"alpha\""), header.find("\"zeta\""));
  // Buffer laid out in name order: alpha's byte first, then zeta's ints.
  EXPECT_EQ(bytes[8 + n], 1);
  const Reader r = Reader::open(path("p.safetensors"));
  EXPECT_EQ(r.info("alpha").begin, 0u);
  EXPECT_EQ(r.info("zeta").begin, 1u);
}

TEST(SafetensorsRead, AcceptsExtraPaddingAndNullMetadata) {
  const std::string data(4, '\x01');
  const Reader r = Reader::from_bytes(
      image(R"({"__metadata__":null,"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})"
            "                    ",
            data),
      "pad.st");
  EXPECT_TRUE(r.contains("a"));
  EXPECT_FALSE(r.contains("b"));
  EXPECT_TRUE(r.metadata().empty());
}

// ------------------------------------------------------------------ half conversions

TEST(SafetensorsHalf, F16KnownBits) {
  using dan::st::f16_to_f32;
  using dan::st::f32_to_f16;
  const std::pair<float, uint16_t> exact[] = {
      {1.0f, 0x3c00},  {-2.0f, 0xc000},       {65504.0f, 0x7bff}, {0.0f, 0x0000},
      {-0.0f, 0x8000}, {0x1p-24f, 0x0001},    {0x1p-14f, 0x0400}, {0x3ffp-24f, 0x03ff},
      {0.5f, 0x3800},  {-0x1p-24f, 0x8001},
      {std::numeric_limits<float>::infinity(), 0x7c00},
      {-std::numeric_limits<float>::infinity(), 0xfc00},
  };
  for (const auto& [f, h] : exact) {
    EXPECT_EQ(f32_to_f16(f), h) << f;
    EXPECT_EQ(std::bit_cast<uint32_t>(f16_to_f32(h)), std::bit_cast<uint32_t>(f)) << f;
  }
  // Rounding to nearest, ties to even.
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);      // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);   // just below the tie with 2^16
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);   // tie rounds to even = overflow to inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);   // half the smallest subnormal: tie -> 0
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);  // tie between 1 and 2 -> 2
  EXPECT_EQ(f32_to_f16(0x1.01p-25f), 0x0001);   // just above the tie
  EXPECT_EQ(f32_to_f16(1e-10f), 0x0000);
  EXPECT_EQ(f32_to_f16(0x3ffp-24f + 0x1p-25f), 0x0400);  // largest subnormal rounds into normal
  // NaN in both directions.
  const uint16_t hn = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(hn & 0x7c00, 0x7c00);
  EXPECT_NE(hn & 0x3ff, 0);
  EXPECT_NE(f32_to_f16(std::bit_cast<float>(0x7f800001u)) & 0x3ff, 0);  // low-payload NaN
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xfc01)));
  // Every non-NaN half survives a round trip through f32.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) continue;
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(SafetensorsHalf, Bf16KnownBits) {
  using dan::st::bf16_to_f32;
  using dan::st::f32_to_bf16;
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(3.140625f), 0x4049);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x0001), 0x1p-133f);  // smallest bf16 subnormal
  // Ties to even, and rounding past the largest finite value overflows to inf.
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  // NaN preserved, including a NaN whose payload lives only in the dropped low bits.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0xff800001u)))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0) continue;
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

// ------------------------------------------------------------------ malformed files

namespace {
const std::string kOne = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
}

TEST(SafetensorsBad, Truncated) {
  expect_has(error_of([] { Reader::from_bytes(std::string("\x05\0\0", 3), "bad.st"); }),
             {"bad.st", "3 bytes", "shorter than the 8-byte"});
  expect_has(error_of([] { Reader::from_bytes("", "bad.st"); }), {"bad.st", "0 bytes"});
  const std::string cut = image(kOne, std::string(8, '\0')).substr(0, 30);
  expect_has(error_of([&] { Reader::from_bytes(cut, "bad.st"); }),
             {"bad.st", "header length 54", "larger than the 22 bytes", "truncated"});
  // Data cut short: the tensor now reaches past the buffer.
  expect_has(parse_error(kOne, std::string(5, '\0')), {"bad.st", "'a'", "out of bounds", "5 bytes"});
}

TEST(SafetensorsBad, EveryPrefixAndByteFlipIsAnErrorNotACrash) {
  const std::string good = image(kOne, std::string(8, '\x11'));
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(error_of([&] { Reader::from_bytes(good.substr(0, n), "cut.st"); }).empty()) << n;
  }
  for (size_t i = 0; i < 8 + kOne.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string b = good;
      b[i] = static_cast<char>(b[i] ^ (1 << bit));
      try {
        Reader::from_bytes(b, "flip.st");
      } catch (const dan::Error&) {
      } catch (...) {
        ADD_FAILURE() << "non-dan exception at byte " << i << " bit " << bit;
      }
    }
  }
}

TEST(SafetensorsBad, HugeHeaderLength) {
  std::string b = image(kOne);
  const uint64_t huge = uint64_t{1} << 62;
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((huge >> (8 * i)) & 0xff);
  expect_has(error_of([&] { Reader::from_bytes(b, "bad.st"); }),
             {"bad.st", "header length 4611686018427387904", "exceeds the limit"});
  b[0] = b[1] = b[2] = b[3] = b[4] = b[5] = b[6] = b[7] = '\xff';
  expect_has(error_of([&] { Reader::from_bytes(b, "bad.st"); }), {"exceeds the limit"});
}

TEST(SafetensorsBad, NotJsonOrNotObject) {
  expect_has(parse_error(R"({"a": )"), {"bad.st", "not valid JSON"});
  expect_has(parse_error(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}} trailing)"), {"bad.st", "not valid JSON"});
  expect_has(parse_error("{\"\xff\":{}}"), {"bad.st", "not valid JSON"});  // invalid UTF-8
  expect_has(parse_error("[1,2]"), {"bad.st", "not a JSON object"});
  expect_has(parse_error("\"str\""), {"bad.st", "not a JSON object"});
  expect_has(parse_error(""), {"bad.st", "not a JSON object"});
  // Deep nesting is rejected at the first unexpected level, without recursion or big allocs.
  expect_has(parse_error(R"({"a":{"shape":)" + std::string(1000000, '[')),
             {"bad.st", "tensor 'a'", "shape", "got an array"});
}

TEST(SafetensorsBad, EntryShape) {
  expect_has(parse_error(R"({"a":[1]})"), {"bad.st", "tensor 'a'", "expected an object"});
  expect_has(parse_error(R"({"a":{"dtype":"F32","shape":[0]}})"),
             {"bad.st", "tensor 'a'", "missing field 'data_offsets'"});
  expect_has(parse_error(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}})"),
             {"bad.st", "tensor 'a'", "unexpected field 'x'"});
  expect_has(parse_error(R"({"a":{"dtype":"F32","dtype":"F32"}})"),
             {"bad.st", "tensor 'a'", "duplicate field 'dtype'"});
  expect_has(parse_error(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{}})", "xxxx"),
             {"bad.st", "duplicate key 'a'"});
}

TEST(SafetensorsBad, Dtype) {
  expect_has(parse_error(R"({"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x"),
             {"bad.st", "tensor 'w'", "unknown dtype 'F8'", "F32"});
  expect_has(parse_error(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "xxxx"),
             {"bad.st", "tensor 'w'", "'dtype': expected a string", "got 4"});
}

TEST(SafetensorsBad, ShapeValues) {
  expect_has(parse_error(R"({"w":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,0]}})"),
             {"bad.st", "tensor 'w'", "shape", "non-negative integers", "got -3"});
  expect_has(parse_error(R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "xxxx"),
             {"bad.st", "tensor 'w'", "non-negative integers", "got 1.0"});
  expect_has(parse_error(R"({"w":{"dtype":"F32","shape":3,"data_offsets":[0,12]}})"),
             {"bad.st", "tensor 'w'", "'shape'", "array of non-negative integers"});
  expect_has(parse_error(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,0]}})"),
             {"bad.st", "tensor 'w'", "does not fit in int64"});
  // Element count and byte count overflow are detected, not wrapped.
  expect_has(parse_error(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
             {"bad.st", "tensor 'w'", "overflow"});
  expect_has(parse_error(R"({"w":{"dtype":"F64","shape":[2305843009213693952,4],"data_offsets":[0,0]}})"),
             {"bad.st", "tensor 'w'", "overflow"});
}

TEST(SafetensorsBad, Offsets) {
  expect_has(parse_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", "xx"),
             {"bad.st", "tensor 'w'", "[begin, end]", "[0, 1, 2]"});
  expect_has(parse_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[2,1]}})", "xx"),
             {"bad.st", "tensor 'w'", "begin <= end"});
  expect_has(parse_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", "x"),
             {"bad.st", "tensor 'w'", "data_offsets", "got -1"});
  expect_has(parse_error(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "xx"),
             {"bad.st", "tensor 'w'", "[0, 4]", "out of bounds", "2 bytes"});
}

TEST(SafetensorsBad, SizeMismatchOverlapAndCoverage) {
  expect_has(parse_error(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                         std::string(20, '\0')),
             {"bad.st", "tensor 'w'", "[2, 3]", "needs 24 bytes", "span 20"});
  expect_has(parse_error(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                         std::string(6, '\0')),
             {"bad.st", "tensor 'b'", "overlap tensor 'a'"});
  expect_has(parse_error(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                         R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                         std::string(6, '\0')),
             {"bad.st", "tensor 'b'", "incomplete buffer", "gap of 2 bytes"});
  expect_has(parse_error(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                         std::string(5, '\0')),
             {"bad.st", "incomplete buffer", "cover 2 bytes", "has 5", "trailing"});
}

TEST(SafetensorsBad, Metadata) {
  expect_has(parse_error(R"({"__metadata__":{"k":1}})"),
             {"bad.st", "__metadata__", "'k'", "strings", "got 1"});
  expect_has(parse_error(R"({"__metadata__":["x"]})"), {"bad.st", "__metadata__", "str to str"});
  expect_has(parse_error(R"({"__metadata__":{"k":{}}})"), {"bad.st", "__metadata__", "got an object"});
  expect_has(parse_error(R"({"__metadata__":{"k":"a","k":"b"}})"),
             {"bad.st", "__metadata__", "duplicate field 'k'"});
}

TEST_F(SafetensorsFile, MissingKeyAndMissingFile) {
  const Reader r = Reader::from_bytes(image(kOne, std::string(8, '\0')), "mem.st");
  expect_has(error_of([&] { r.info("b"); }), {"mem.st", "no tensor named 'b'"});
  expect_has(error_of([&] { Reader::open(path("nope.safetensors")); }),
             {"nope.safetensors", "No such file or directory"});
  expect_has(error_of([&] { Reader::open(dir_.string()); }), {"not a regular file"});
}

// ------------------------------------------------------------------ writer errors

TEST_F(SafetensorsFile, WriterRejectsBadEntries) {
  const float x[6] = {};
  const std::string p = path("w.safetensors");
  expect_has(error_of([&] { dan::st::write(p, {{"x", "F32", {2, 3}, x, 20}}); }),
             {p, "tensor 'x'", "nbytes is 20", "[2, 3]", "needs 24"});
  expect_has(error_of([&] { dan::st::write(p, {{"x", "F32", {1}, x, 4}, {"x", "F32", {1}, x, 4}}); }),
             {p, "duplicate tensor name 'x'"});
  expect_has(error_of([&] { dan::st::write(p, {{"", "F32", {1}, x, 4}}); }), {p, "non-empty"});
  expect_has(error_of([&] { dan::st::write(p, {{"__metadata__", "F32", {1}, x, 4}}); }),
             {p, "reserved"});
  expect_has(error_of([&] { dan::st::write(p, {{"x", "F12", {1}, x, 4}}); }),
             {p, "unknown dtype 'F12'"});
  expect_has(error_of([&] { dan::st::write(p, {{"x", "F32", {-1}, x, 4}}); }),
             {p, "tensor 'x'", "negative"});
  expect_has(error_of([&] { dan::st::write(p, {{"x", "F32", {1}, nullptr, 4}}); }),
             {p, "data is null"});
  expect_has(error_of([&] { dan::st::write(p, {{"\xff", "F32", {1}, x, 4}}); }),
             {p, "cannot encode header"});
  EXPECT_EQ(entries_in_dir(), 0u);  // nothing was created by any of the failures
}

TEST_F(SafetensorsFile, WriteToMissingDirectoryLeavesNothing) {
  const float x = 1.0f;
  const std::string p = path("no/such/dir/w.safetensors");
  expect_has(error_of([&] { dan::st::write(p, {{"x", "F32", {}, &x, 4}}); }),
             {p, "No such file or directory"});
  EXPECT_EQ(entries_in_dir(), 0u);
}

TEST_F(SafetensorsFile, FailedWriteKeepsExistingFileAndLeavesNoTemp) {
  const std::string p = path("keep.safetensors");
  const float x[2] = {3.0f, 4.0f};
  dan::st::write(p, {{"x", "F32", {2}, x, sizeof x}});
  const std::string before = slurp(p);

  // Validation failure: nothing touched.
  EXPECT_FALSE(error_of([&] { dan::st::write(p, {{"x", "F32", {3}, x, sizeof x}}); }).empty());
  EXPECT_EQ(slurp(p), before);
  EXPECT_EQ(entries_in_dir(), 1u);

  // I/O failure at rename time (the target is a directory): the temp file is removed.
  const std::string d = path("a_dir");
  fs::create_directory(d);
  std::ofstream(fs::path(d) / "inside") << "x";
  expect_has(error_of([&] { dan::st::write(d, {{"x", "F32", {2}, x, sizeof x}}); }),
             {"cannot rename", d});
  EXPECT_EQ(entries_in_dir(), 2u);  // keep.safetensors and a_dir, no *.tmp.*
  EXPECT_EQ(slurp(p), before);

  // A successful overwrite replaces the content and leaves no temp either.
  const float y[1] = {5.0f};
  dan::st::write(p, {{"y", "F32", {1}, y, sizeof y}});
  EXPECT_TRUE(Reader::open(p).contains("y"));
  EXPECT_EQ(entries_in_dir(), 2u);
}

// ------------------------------------------------------------------ cross-implementation sample

// Writes $DAN_ST_COMPAT_OUT/st_compat_sample.safetensors for the Python checker. Contents:
//   f32  F32  [2,3] = 0, 1.5, -2, 3.25, -0.125, 1024
//   f64  F64  [3]   = 0.1, -2.5, 1e300
//   i32  I32  [4]   = 0, -1, 2147483647, -2147483648
//   i64  I64  [2,2] = 0, -1, 9223372036854775807, -9223372036854775808
//   bool BOOL [5]   = 1, 0, 1, 1, 0
//   f16  F16  [4]   = 1, -2, 65504, 2^-24          (bits 3c00 c000 7bff 0001)
//   bf16 BF16 [3]   = 1, -2, 3.140625              (bits 3f80 c000 4049)
//   scalar F32 []   = 42;   empty F32 [0,3]
//   __metadata__ = {"format": "dan", "note": "st_compat_sample"}
TEST(SafetensorsCompat, WriteSampleForPython) {
  const char* out = std::getenv("DAN_ST_COMPAT_OUT");
  if (out == nullptr || *out == '\0') GTEST_SKIP() << "DAN_ST_COMPAT_OUT not set";
  const float f32[6] = {0.0f, 1.5f, -2.0f, 3.25f, -0.125f, 1024.0f};
  const double f64[3] = {0.1, -2.5, 1e300};
  const int32_t i32[4] = {0, -1, std::numeric_limits<int32_t>::max(),
                          std::numeric_limits<int32_t>::min()};
  const int64_t i64[4] = {0, -1, std::numeric_limits<int64_t>::max(),
                          std::numeric_limits<int64_t>::min()};
  const uint8_t bools[5] = {1, 0, 1, 1, 0};
  uint16_t f16[4], bf16[3];
  const float f16_src[4] = {1.0f, -2.0f, 65504.0f, 0x1p-24f};
  const float bf16_src[3] = {1.0f, -2.0f, 3.140625f};
  for (int i = 0; i < 4; ++i) f16[i] = dan::st::f32_to_f16(f16_src[i]);
  for (int i = 0; i < 3; ++i) bf16[i] = dan::st::f32_to_bf16(bf16_src[i]);
  const float scalar = 42.0f;
  const std::string p = (fs::path(out) / "st_compat_sample.safetensors").string();
  dan::st::write(p,
                 {{"f32", "F32", {2, 3}, f32, sizeof f32},
                  {"f64", "F64", {3}, f64, sizeof f64},
                  {"i32", "I32", {4}, i32, sizeof i32},
                  {"i64", "I64", {2, 2}, i64, sizeof i64},
                  {"bool", "BOOL", {5}, bools, sizeof bools},
                  {"f16", "F16", {4}, f16, sizeof f16},
                  {"bf16", "BF16", {3}, bf16, sizeof bf16},
                  {"scalar", "F32", {}, &scalar, sizeof scalar},
                  {"empty", "F32", {0, 3}, nullptr, 0}},
                 {{"format", "dan"}, {"note", "st_compat_sample"}});
  const Reader r = Reader::open(p);
  EXPECT_EQ(r.tensors().size(), 9u);
  EXPECT_EQ(r.metadata().at("format"), "dan");
  uint16_t back[4];
  std::memcpy(back, r.data(r.info("f16")), sizeof back);
  EXPECT_EQ(back[0], 0x3c00);
  EXPECT_EQ(back[2], 0x7bff);
  EXPECT_EQ(back[3], 0x0001);
}
