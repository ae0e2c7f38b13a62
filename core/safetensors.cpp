#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "core/error.h"

namespace dan::st {
namespace {

using json = nlohmann::json;

constexpr std::array<std::pair<std::string_view, size_t>, 13> kDtypes = {{
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2}, {"BF16", 2},
    {"I32", 4}, {"U32", 4}, {"F32", 4}, {"I64", 8}, {"U64", 8}, {"F64", 8},
}};

// 0 for an unknown name, so callers can phrase their own error.
size_t dtype_size_or_zero(std::string_view dtype) {
  for (const auto& [name, size] : kDtypes) {
    if (name == dtype) return size;
  }
  return 0;
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Keeps error messages readable when an attacker-controlled string is echoed back.
std::string clip(std::string_view s) {
  constexpr size_t kMax = 200;
  return s.size() <= kMax ? std::string(s) : std::string(s.substr(0, kMax)) + "...";
}

// numel(shape) * dtype size, with every overflow reported as an error prefixed by `what`.
uint64_t checked_nbytes(const std::vector<int64_t>& shape, const std::string& dtype,
                        const std::string& what) {
  uint64_t n = 0;
  DAN_CHECK(!__builtin_mul_overflow(checked_numel(shape, what), dtype_size(dtype), &n),
            "{}: shape {} of {} has too many bytes (overflow)", what, shape, dtype);
  return n;
}

// ---------------------------------------------------------------------------------------
// Header parsing. A SAX handler (rather than building a nlohmann DOM) fills TensorInfo
// directly: it rejects anything off-schema at the first offending token, so hostile
// headers (deep nesting, duplicate keys, stray values) cost no more memory than a small
// multiple of the header size, and every message can name the key being parsed.
// ---------------------------------------------------------------------------------------
class HeaderParser final : public nlohmann::json_sax<json> {
 public:
  explicit HeaderParser(const std::string& origin) : origin_(origin) {}

  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;

  bool null() override { return value("null"); }
  bool boolean(bool v) override { return value(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override {
    if (v >= 0) return number_unsigned(static_cast<uint64_t>(v));
    return value(std::to_string(v));
  }
  bool number_unsigned(number_unsigned_t v) override;
  bool number_float(number_float_t, const string_t& s) override { return value(s); }
  bool string(string_t& s) override;
  bool binary(binary_t&) override { return value("binary"); }
  bool start_object(std::size_t) override;
  bool key(string_t& k) override;
  bool end_object() override;
  bool start_array(std::size_t) override;
  bool end_array() override;
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    fail("safetensors: {}: header is not valid JSON: {}", origin_, e.what());
  }

 private:
  // Where the next token lands. Nesting deeper than Shape/Offsets is never valid.
  enum class State { Start, Top, Entry, Metadata, Shape, Offsets, Done };

  [[noreturn]] void bad(const std::string& what) const;
  // Called for any token that is invalid where it appeared (desc: "null", "an array", ...);
  // throws, except for the one allowed case of "__metadata__": null.
  bool value(const std::string& desc);
  const char* expected_here() const;

  const std::string& origin_;
  State state_ = State::Start;
  std::string key_;    // current top-level key: tensor name or "__metadata__"
  std::string field_;  // current key inside an entry or __metadata__
  std::set<std::string> top_keys_, inner_keys_;
  TensorInfo cur_;
  std::vector<uint64_t> offsets_;
};

void HeaderParser::bad(const std::string& what) const {
  if (state_ == State::Start) {
    fail("safetensors: {}: {}", origin_, what);
  }
  if (key_ == "__metadata__") fail("safetensors: {}: __metadata__: {}", origin_, what);
  fail("safetensors: {}: tensor '{}': {}", origin_, clip(key_), what);
}

const char* HeaderParser::expected_here() const {
  switch (state_) {
    case State::Start: return "the header to be a JSON object";
    case State::Top: return key_ == "__metadata__" ? "an object mapping str to str"
                                                   : "an object with dtype, shape, data_offsets";
    case State::Entry:
      return field_ == "dtype" ? "a string" : "an array of non-negative integers";
    case State::Metadata: return "metadata values to be strings";
    case State::Shape:
    case State::Offsets: return "non-negative integers";
    case State::Done: break;
  }
  return "end of header";
}

bool HeaderParser::value(const std::string& desc) {
  // The reference accepts "__metadata__": null as "no metadata".
  if (state_ == State::Top && key_ == "__metadata__" && desc == "null") return true;
  std::string where = state_ == State::Entry || state_ == State::Metadata ? "'" + clip(field_) + "': "
                      : state_ == State::Shape                          ? "shape: "
                      : state_ == State::Offsets                        ? "data_offsets: "
                                                                        : "";
  bad(fmt::format("{}expected {}, got {}", where, expected_here(), clip(desc)));
}

bool HeaderParser::number_unsigned(number_unsigned_t v) {
  if (state_ == State::Offsets) {
    offsets_.push_back(v);
    return true;
  }
  if (state_ == State::Shape) {
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      bad(fmt::format("shape: dimension {} does not fit in int64", v));
    }
    cur_.shape.push_back(static_cast<int64_t>(v));
    return true;
  }
  return value(std::to_string(v));
}

bool HeaderParser::string(string_t& s) {
  if (state_ == State::Metadata) {
    metadata[field_] = std::move(s);
    return true;
  }
  if (state_ == State::Entry && field_ == "dtype") {
    if (dtype_size_or_zero(s) == 0) {
      bad(fmt::format("unknown dtype '{}' (expected one of F16, BF16, F32, F64, I8, I16, I32, "
                      "I64, U8, U16, U32, U64, BOOL)", clip(s)));
    }
    cur_.dtype = std::move(s);
    return true;
  }
  return value("string \"" + clip(s) + "\"");
}

bool HeaderParser::start_object(std::size_t) {
  if (state_ == State::Start) {
    state_ = State::Top;
  } else if (state_ == State::Top) {
    state_ = key_ == "__metadata__" ? State::Metadata : State::Entry;
    inner_keys_.clear();
    cur_ = TensorInfo{};
    cur_.name = key_;
  } else {
    value("an object");
  }
  return true;
}

bool HeaderParser::key(string_t& k) {
  if (state_ == State::Top) {
    if (!top_keys_.insert(k).second) {
      fail("safetensors: {}: duplicate key '{}' in header", origin_, clip(k));
    }
    key_ = std::move(k);
    return true;
  }
  if (state_ == State::Entry && k != "dtype" && k != "shape" && k != "data_offsets") {
    bad(fmt::format("unexpected field '{}' (expected only dtype, shape, data_offsets)", clip(k)));
  }
  if (!inner_keys_.insert(k).second) bad(fmt::format("duplicate field '{}'", clip(k)));
  field_ = std::move(k);
  return true;
}

bool HeaderParser::end_object() {
  if (state_ == State::Entry) {
    for (const char* f : {"dtype", "shape", "data_offsets"}) {
      if (inner_keys_.count(f) == 0) bad(fmt::format("missing field '{}'", f));
    }
    tensors.push_back(std::move(cur_));
    state_ = State::Top;
  } else if (state_ == State::Metadata) {
    state_ = State::Top;
  } else {
    state_ = State::Done;  // the top-level object closed; strict parsing rejects anything after
  }
  return true;
}

bool HeaderParser::start_array(std::size_t) {
  if (state_ == State::Entry && field_ == "shape") {
    state_ = State::Shape;
  } else if (state_ == State::Entry && field_ == "data_offsets") {
    state_ = State::Offsets;
    offsets_.clear();
  } else {
    value("an array");
  }
  return true;
}

bool HeaderParser::end_array() {
  if (state_ == State::Offsets) {
    if (offsets_.size() != 2 || offsets_[0] > offsets_[1]) {
      bad(fmt::format("data_offsets must be [begin, end] with begin <= end, got {}", offsets_));
    }
    cur_.begin = offsets_[0];
    cur_.end = offsets_[1];
  }
  state_ = State::Entry;  // only Shape/Offsets arrays are ever opened
  return true;
}

// ---------------------------------------------------------------------------------------
// Layout checks on the parsed header.
// ---------------------------------------------------------------------------------------

// Like the reference implementation, the tensors must tile the data buffer exactly: sorted
// by offset, each begins where the previous ended and the last ends at the buffer's end.
// Gaps and trailing bytes are rejected ("metadata incomplete buffer"), as are overlaps.
void check_layout(std::vector<TensorInfo>& ts, uint64_t data_size, const std::string& origin) {
  std::sort(ts.begin(), ts.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : ts) {
    const std::string what = fmt::format("safetensors: {}: tensor '{}'", origin, clip(t.name));
    DAN_CHECK(t.end <= data_size, "{}: data_offsets [{}, {}] are out of bounds: the data buffer "
              "has {} bytes", what, t.begin, t.end, data_size);
    const uint64_t need = checked_nbytes(t.shape, t.dtype, what);
    DAN_CHECK(need == t.nbytes(), "{}: shape {} of {} needs {} bytes but data_offsets [{}, {}] "
              "span {}", what, t.shape, t.dtype, need, t.begin, t.end, t.nbytes());
    DAN_CHECK(t.begin >= cursor, "{}: data_offsets [{}, {}] overlap tensor '{}' ending at {}",
              what, t.begin, t.end, prev ? clip(prev->name) : "", cursor);
    DAN_CHECK(t.begin == cursor, "{}: metadata incomplete buffer: gap of {} bytes before "
              "data_offsets [{}, {}] (tensors must cover the data buffer contiguously)",
              what, t.begin - cursor, t.begin, t.end);
    cursor = t.end;
    prev = &t;
  }
  DAN_CHECK(cursor == data_size, "safetensors: {}: metadata incomplete buffer: tensors cover {} "
            "bytes but the data buffer has {} (trailing bytes are not allowed)",
            origin, cursor, data_size);
}

uint64_t read_le_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void append_le_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// ---------------------------------------------------------------------------------------
// POSIX file helpers: errors carry the path and the errno text.
// ---------------------------------------------------------------------------------------

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("safetensors: cannot open '{}': {}", path, errno_text(errno));
  struct Closer { int fd; ~Closer() { ::close(fd); } } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("safetensors: cannot stat '{}': {}", path, errno_text(errno));
  DAN_CHECK(S_ISREG(st.st_mode), "safetensors: '{}' is not a regular file", path);
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("safetensors: cannot read '{}': {}", path, errno_text(errno));
    if (n == 0) fail("safetensors: '{}' shrank while being read ({} of {} bytes)", path, got,
                     bytes.size());
    got += static_cast<size_t>(n);
  }
  return bytes;
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("safetensors: cannot write '{}': {}", path, errno_text(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// The temp file of an atomic write: removed on scope exit unless committed by rename.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("safetensors: cannot create '{}': {}", path_, errno_text(errno));
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // fsync before rename so a crash never exposes a renamed file with missing data.
  void commit_as(const std::string& target) {
    if (::fsync(fd_) != 0) fail("safetensors: cannot sync '{}': {}", path_, errno_text(errno));
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) fail("safetensors: cannot close '{}': {}", path_, errno_text(errno));
    std::error_code ec;
    std::filesystem::rename(path_, target, ec);
    if (ec) fail("safetensors: cannot rename '{}' to '{}': {}", path_, target, ec.message());
    committed_ = true;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

// ---------------------------------------------------------------------------------------
// Writer helpers.
// ---------------------------------------------------------------------------------------

// Validates the entries and returns their indices sorted by name.
std::vector<size_t> checked_order(const std::string& path, const std::vector<WriteEntry>& es) {
  std::vector<size_t> order(es.size());
  for (size_t i = 0; i < es.size(); ++i) {
    const WriteEntry& e = es[i];
    const std::string what = fmt::format("safetensors write '{}': tensor '{}'", path, clip(e.name));
    DAN_CHECK(!e.name.empty(), "safetensors write '{}': tensor names must be non-empty", path);
    DAN_CHECK(e.name != "__metadata__", "{}: the name is reserved for metadata", what);
    DAN_CHECK(dtype_size_or_zero(e.dtype) != 0, "{}: unknown dtype '{}'", what, clip(e.dtype));
    const uint64_t need = checked_nbytes(e.shape, e.dtype, what);
    DAN_CHECK(need == e.nbytes, "{}: nbytes is {} but shape {} of {} needs {}", what, e.nbytes,
              e.shape, e.dtype, need);
    DAN_CHECK(e.data != nullptr || e.nbytes == 0, "{}: data is null", what);
    order[i] = i;
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return es[a].name < es[b].name; });
  for (size_t i = 1; i < order.size(); ++i) {
    DAN_CHECK(es[order[i]].name != es[order[i - 1]].name,
              "safetensors write '{}': duplicate tensor name '{}'", path, clip(es[order[i]].name));
  }
  return order;
}

// The 8-byte length prefix plus the JSON header, padded with spaces to a multiple of 8.
std::string header_bytes(const std::string& path, const std::vector<WriteEntry>& es,
                         const std::vector<size_t>& order,
                         const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  uint64_t offset = 0;
  for (size_t i : order) {
    const WriteEntry& e = es[i];
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.nbytes}}};
    offset += e.nbytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& ex) {  // e.g. a name or metadata string that is not UTF-8
    fail("safetensors write '{}': cannot encode header: {}", path, ex.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  append_le_u64(out, text.size());
  return out + text;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Public API.
// ---------------------------------------------------------------------------------------

size_t dtype_size(const std::string& dtype) {
  const size_t size = dtype_size_or_zero(dtype);
  DAN_CHECK(size != 0, "safetensors: unknown dtype '{}'", clip(dtype));
  return size;
}

uint64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  for (int64_t d : shape) DAN_CHECK(d >= 0, "{}: shape {} has a negative dimension", what, shape);
  // Any zero dimension makes the tensor empty, whatever the other dimensions are.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  uint64_t n = 1;
  for (int64_t d : shape) {
    DAN_CHECK(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n),
              "{}: shape {} has too many elements (overflow)", what, shape);
  }
  return n;
}

Reader Reader::open(const std::string& path) { return from_bytes(read_file(path), path); }

Reader Reader::from_bytes(std::string bytes, std::string origin) {
  Reader r;
  r.origin_ = std::move(origin);
  r.bytes_ = std::move(bytes);
  const std::string& o = r.origin_;
  const uint64_t size = r.bytes_.size();
  DAN_CHECK(size >= 8, "safetensors: {}: file has {} bytes, shorter than the 8-byte header "
            "length prefix", o, size);
  const uint64_t n = read_le_u64(r.bytes_.data());
  DAN_CHECK(n <= kMaxHeaderBytes, "safetensors: {}: header length {} exceeds the limit of {} "
            "bytes", o, n, kMaxHeaderBytes);
  DAN_CHECK(n <= size - 8, "safetensors: {}: header length {} is larger than the {} bytes that "
            "follow the prefix (truncated file?)", o, n, size - 8);
  const char* h = r.bytes_.data() + 8;
  // The reference rejects headers that do not begin with '{' (no leading whitespace/BOM).
  DAN_CHECK(n > 0 && h[0] == '{', "safetensors: {}: header is not a JSON object (expected it "
            "to start with '{{')", o);

  HeaderParser parser(o);
  json::sax_parse(h, h + n, &parser);  // strict: only whitespace may follow the object
  r.data_start_ = 8 + n;
  check_layout(parser.tensors, size - r.data_start_, o);
  r.tensors_ = std::move(parser.tensors);
  r.metadata_ = std::move(parser.metadata);
  for (size_t i = 0; i < r.tensors_.size(); ++i) r.index_[r.tensors_[i].name] = i;
  return r;
}

const TensorInfo& Reader::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail("safetensors: {}: no tensor named '{}'", origin_, clip(name));
  return tensors_[it->second];
}

const uint8_t* Reader::data(const TensorInfo& t) const {
  // Guards against a TensorInfo from another Reader (or hand-made) reaching outside the buffer.
  DAN_CHECK(t.begin <= t.end && t.end <= bytes_.size() - data_start_,
            "safetensors: {}: tensor '{}': data_offsets [{}, {}] are outside the data buffer",
            origin_, clip(t.name), t.begin, t.end);
  return reinterpret_cast<const uint8_t*>(bytes_.data() + data_start_ + t.begin);
}

void write(const std::string& path, const std::vector<WriteEntry>& entries,
           const std::map<std::string, std::string>& metadata) {
  const std::vector<size_t> order = checked_order(path, entries);
  const std::string header = header_bytes(path, entries, order, metadata);
  TempFile tmp(path + ".tmp." + std::to_string(::getpid()));
  write_all(tmp.fd(), header.data(), header.size(), tmp.path());
  for (size_t i : order) write_all(tmp.fd(), entries[i].data, entries[i].nbytes, tmp.path());
  tmp.commit_as(path);
}

// ---------------------------------------------------------------------------------------
// Half-precision conversions.
// ---------------------------------------------------------------------------------------

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000 | (mant << 13));  // inf / nan
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24 is exact in f32.
  const float mag = static_cast<float>(mant) * 0x1p-24f;
  return sign ? -mag : mag;
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | static_cast<uint16_t>((a >> 13) & 0x3ff);  // quiet nan
  // 65520 (0x477ff000) is halfway between 65504 and 2^16 and ties to the even 2^16 -> inf.
  if (a >= 0x477ff000) return sign | 0x7c00;
  uint32_t mant, shift, base;
  if (a >= 0x38800000) {  // normal half: rebias exponent, drop 13 mantissa bits
    base = ((a >> 23) - 112) << 10;
    mant = a & 0x7fffff;
    shift = 13;
  } else {  // subnormal half (or zero): units of 2^-24, implicit bit made explicit
    const uint32_t e = a >> 23;
    if (e < 102) return sign;  // below 2^-25: rounds to zero
    base = 0;
    mant = (a & 0x7fffff) | 0x800000;
    shift = 126 - e;  // 14..24
  }
  uint32_t h = base + (mant >> shift);
  const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) ++h;  // a carry correctly bumps the exponent
  return sign | static_cast<uint16_t>(h);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x0040);
  const uint32_t rounded = x + 0x7fff + ((x >> 16) & 1);  // ties to even; may carry into inf
  return static_cast<uint16_t>(rounded >> 16);
}

}  // namespace dan::st
