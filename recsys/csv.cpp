#include "recsys/csv.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace dan::recsys {
namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += v[i];
  }
  return out;
}

// Keeps messages readable when a field is long (synopses, reviews).
std::string clip(std::string_view s) {
  constexpr size_t kMax = 60;
  if (s.size() <= kMax) return std::string(s);
  size_t cut = kMax;  // do not cut a UTF-8 sequence in half
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "...";
}

// A byte for a message: itself when printable ASCII, else its hex code.
std::string describe_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", u);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// UTF-8 and numbers.
// ---------------------------------------------------------------------------------------

size_t find_invalid_utf8(std::string_view s, size_t from) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = from;
  while (i < n) {
    // Text is mostly ASCII: test eight bytes at a time for a set high bit.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Table 3-7 of the Unicode standard: the allowed range of the second byte depends on the
    // first, which excludes overlong forms, surrogates and code points above U+10FFFF.
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3;
      lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3;
      hi = 0x9F;
    } else if (c == 0xF0) {
      len = 4;
      lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4;
      hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

bool parse_int64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_double(std::string_view s, double* out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);
}

bool parse_float(std::string_view s, float* out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);
}

// ---------------------------------------------------------------------------------------
// Reader.
// ---------------------------------------------------------------------------------------

CsvReader CsvReader::open(const std::string& path) {
  std::error_code ec;
  DAN_CHECK(std::filesystem::exists(path, ec), "{}: file not found", path);
  DAN_CHECK(!std::filesystem::is_directory(path, ec), "{}: is a directory, expected a CSV file",
            path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  DAN_CHECK(f != nullptr, "{}: cannot open: {}", path, errno_text(errno));
  // One read of the whole file, then a loop in case it grew (or reports no size, like a pipe).
  std::string bytes;
  struct stat st {};
  if (::fstat(::fileno(f), &st) == 0 && st.st_size > 0) {
    bytes.resize(static_cast<size_t>(st.st_size));
    bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f));
  }
  char chunk[1 << 16];
  for (size_t got; (got = std::fread(chunk, 1, sizeof chunk, f)) > 0;) bytes.append(chunk, got);
  const bool err = std::ferror(f) != 0;
  std::fclose(f);
  DAN_CHECK(!err, "{}: read error", path);
  return from_string(std::move(bytes), path);
}

CsvReader CsvReader::from_string(std::string bytes, std::string origin) {
  CsvReader r;
  r.buf_ = std::move(bytes);
  r.origin_ = std::move(origin);
  r.init();
  return r;
}

void CsvReader::init() {
  // A UTF-8 byte order mark (written by some spreadsheet programs) is not part of the data.
  if (buf_.size() >= 3 && buf_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;
  bad_utf8_ = find_invalid_utf8(buf_, pos_);
}

std::string CsvReader::where_raw(size_t i) const {
  if (i < name_of_pos_.size() && name_of_pos_[i] >= 0) {
    return fmt::format("{}: line {}, column {} ({})", origin_, record_line_, i + 1,
                       columns_[static_cast<size_t>(name_of_pos_[i])]);
  }
  return fmt::format("{}: line {}, column {}", origin_, record_line_, i + 1);
}

std::string CsvReader::where(size_t k) const { return where_raw(col_of_[k]); }

std::string CsvReader::where_line(int64_t line, size_t k) const {
  return fmt::format("{}: line {}, column {} ({})", origin_, line, col_of_[k] + 1, columns_[k]);
}

void CsvReader::fail(size_t k, std::string_view reason, std::string_view what) const {
  throw RowError(fmt::format("{}: {}", where(k), what), std::string(reason));
}

void CsvReader::skip_line_from(size_t p) {
  const size_t n = buf_.size();
  const void* nl = p < n ? std::memchr(buf_.data() + p, '\n', n - p) : nullptr;
  if (nl) {
    pos_ = static_cast<size_t>(static_cast<const char*>(nl) - buf_.data()) + 1;
    ++line_;
  } else {
    pos_ = n;
  }
}

void CsvReader::row_error(size_t field_index, size_t resync_from, std::string_view reason,
                          std::string_view what) {
  std::string msg = fmt::format("{}: {}", where_raw(field_index), what);
  if (resync_from != std::string::npos) skip_line_from(resync_from);
  if (bad_utf8_ < pos_) bad_utf8_ = find_invalid_utf8(buf_, pos_);
  throw RowError(msg, std::string(reason));
}

bool CsvReader::next() {
  fields_.clear();
  field_begin_.clear();
  const size_t n = buf_.size();
  char* b = buf_.data();
  // Completely empty lines carry no record.
  while (pos_ < n) {
    if (b[pos_] == '\n') {
      ++pos_;
      ++line_;
    } else if (b[pos_] == '\r' && pos_ + 1 < n && b[pos_ + 1] == '\n') {
      pos_ += 2;
      ++line_;
    } else {
      break;
    }
  }
  if (pos_ >= n) return false;
  record_line_ = line_;
  size_t p = pos_;
  for (;;) {
    const size_t fi = fields_.size();
    field_begin_.push_back(p);
    if (p < n && b[p] == '"') {
      // Quoted: copy the content down over the doubled quotes as we go (write cursor w trails
      // the read cursor r), so the field stays a view into the buffer.
      const size_t content = p + 1;
      size_t w = content, r = content;
      for (;;) {
        const void* q = std::memchr(b + r, '"', n - r);
        if (q == nullptr) {
          fail_open_quote(fi);
        }
        const size_t qi = static_cast<size_t>(static_cast<const char*>(q) - b);
        line_ += std::count(b + r, b + qi, '\n');
        if (w != r) std::memmove(b + w, b + r, qi - r);
        w += qi - r;
        if (qi + 1 < n && b[qi + 1] == '"') {
          b[w++] = '"';
          r = qi + 2;
        } else {
          r = qi + 1;
          break;
        }
      }
      fields_.emplace_back(b + content, w - content);
      p = r;
      if (p < n && b[p] != ',' && b[p] != '\n' &&
          !(b[p] == '\r' && p + 1 < n && b[p + 1] == '\n')) {
        row_error(fi, p, "bad quoting",
                  fmt::format("unexpected {} after the closing quote (expected a comma or the "
                              "end of the line; quotes inside a field are doubled)",
                              describe_byte(b[p])));
      }
    } else {
      size_t q = p;
      while (q < n) {
        const char c = b[q];
        if (c == ',' || c == '\n' || c == '\r' || c == '"') break;
        ++q;
      }
      if (q < n && b[q] == '"') {
        row_error(fi, q, "bad quoting",
                  "quote inside an unquoted field (a field holding quotes must be enclosed in "
                  "quotes and its quotes doubled)");
      }
      if (q < n && b[q] == '\r' && !(q + 1 < n && b[q + 1] == '\n')) {
        row_error(fi, q, "bad line end",
                  "carriage return not followed by a line feed (expected CRLF or LF line ends)");
      }
      fields_.emplace_back(b + p, q - p);
      p = q;
    }
    if (p >= n) break;
    if (b[p] == ',') {
      ++p;
      continue;
    }
    p += b[p] == '\r' ? 2 : 1;
    ++line_;
    break;
  }
  pos_ = p;

  if (bad_utf8_ < pos_) {
    size_t fi = 0;
    while (fi + 1 < field_begin_.size() && field_begin_[fi + 1] <= bad_utf8_) ++fi;
    const auto byte = static_cast<unsigned char>(buf_[bad_utf8_]);
    const size_t off = bad_utf8_;
    row_error(fi, std::string::npos, "invalid UTF-8",
              fmt::format("invalid UTF-8 (byte 0x{:02x} at file offset {}; the file must be UTF-8)",
                          byte, off));
  }
  if (!columns_.empty() && fields_.size() != columns_.size()) {
    const size_t got = fields_.size(), want = columns_.size();
    if (got > want) {
      row_error(want, std::string::npos, "wrong column count",
                fmt::format("extra field: the record has {} fields, expected {} ({})", got, want,
                            join(columns_)));
    }
    row_error(got, std::string::npos, "wrong column count",
              fmt::format("missing field: the record has {} field{}, expected {} ({})", got,
                          got == 1 ? "" : "s", want, join(columns_)));
  }
  return true;
}

void CsvReader::fail_open_quote(size_t field_index) const {
  dan::fail(
      "{}: quoted field never closed (the opening quote has no closing quote before the "
      "end of the file)",
      where_raw(field_index));
}

void CsvReader::read_header(const std::vector<std::string>& columns) {
  DAN_CHECK(!columns.empty(), "{}: read_header needs at least one column", origin_);
  DAN_CHECK(columns_.empty(), "{}: header already read", origin_);
  if (!next()) dan::fail("{}: empty file, expected a header row: {}", origin_, join(columns));
  std::vector<size_t> col_of(columns.size(), std::string::npos);
  std::vector<int> name_of(fields_.size(), -1);
  for (size_t i = 0; i < fields_.size(); ++i) {
    const auto it = std::find(columns.begin(), columns.end(), fields_[i]);
    DAN_CHECK(it != columns.end(),
              "{}: line {}, column {}: unexpected header column '{}' (expected the columns {})",
              origin_, record_line_, i + 1, clip(fields_[i]), join(columns));
    const auto k = static_cast<size_t>(it - columns.begin());
    DAN_CHECK(col_of[k] == std::string::npos,
              "{}: line {}, column {}: header column '{}' repeated (first at column {})", origin_,
              record_line_, i + 1, columns[k], col_of[k] + 1);
    col_of[k] = i;
    name_of[i] = static_cast<int>(k);
  }
  for (size_t k = 0; k < columns.size(); ++k) {
    DAN_CHECK(col_of[k] != std::string::npos,
              "{}: line {}: missing header column '{}' (expected the columns {})", origin_,
              record_line_, columns[k], join(columns));
  }
  columns_ = columns;
  col_of_ = std::move(col_of);
  name_of_pos_ = std::move(name_of);
}

// ---------------------------------------------------------------------------------------
// Writing.
// ---------------------------------------------------------------------------------------

void append_csv_field(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(field);
    return;
  }
  out.push_back('"');
  for (const char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

std::string format_number(double x) {
  if (std::isnan(x)) return "";
  if (x == std::floor(x) && std::fabs(x) < 1e15) return fmt::format("{:.0f}", x);
  return fmt::format("{}", x);  // shortest representation that reads back exactly
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DAN_CHECK(fd >= 0, "{}: cannot create '{}': {}", path, tmp, errno_text(errno));
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      dan::fail("{}: cannot write '{}': {}", path, tmp, errno_text(err));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  // Sync before the rename so a crash never leaves a renamed file with missing data.
  const bool synced = ::fsync(fd) == 0;
  const int sync_err = errno;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed) {
    ::unlink(tmp.c_str());
    dan::fail("{}: cannot sync/close '{}': {}", path, tmp, errno_text(synced ? errno : sync_err));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    dan::fail("{}: cannot rename '{}' into place: {}", path, tmp, ec.message());
  }
}

}  // namespace dan::recsys
