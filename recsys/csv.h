// RFC 4180 CSV reading and writing for the dataset files. The reader loads a whole file in one
// go, validates it as UTF-8 and hands out fields as string_views into its own buffer: quoted
// fields are unescaped in place, so parsing a record allocates nothing. Every problem is
// reported with the file, the physical line where the record starts, the 1-based column and,
// once the header is known, the column's name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dan::recsys {

// A problem confined to one record (bad quoting, invalid UTF-8, wrong column count, a bad
// value). `reason` is a short fixed label ("bad quoting", "wrong column count", ...) that
// loaders use to count skipped rows; what() is the full message.
class RowError : public Error {
 public:
  RowError(const std::string& msg, std::string reason) : Error(msg), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

class CsvReader {
 public:
  // Reads `path` whole. Errors name the path: missing file, unreadable file.
  static CsvReader open(const std::string& path);
  // Parses an in-memory image; `origin` names it in messages (usually a file path).
  static CsvReader from_string(std::string bytes, std::string origin);

  // Reads the first record as the header and maps the expected `columns` onto it. Columns may
  // come in any order; a missing, unknown (extra) or repeated column is an Error naming it.
  // Afterwards every record must have exactly columns.size() fields and field(k) is the
  // field of columns[k].
  void read_header(const std::vector<std::string>& columns);

  // Parses the next record; false at the end of the input. Completely empty lines are
  // skipped. A malformed record (bad quoting, a bare CR, invalid UTF-8, wrong column count)
  // throws RowError after the reader has moved past it, to the end of the physical line where
  // the problem is, so a caller may catch, count and go on. A quoted field left open at the end
  // of the input throws Error: nothing after the opening quote can be trusted.
  bool next();

  // The current record (valid until the next call to next()).
  size_t num_fields() const { return fields_.size(); }
  std::string_view raw_field(size_t i) const { return fields_[i]; }  // i-th field in file order
  std::string_view field(size_t k) const { return fields_[col_of_[k]]; }  // expected column k
  int64_t line() const { return record_line_; }  // physical line where the record starts

  // "origin: line L, column C (name)" for expected column k / for the i-th field in file order.
  std::string where(size_t k) const;
  std::string where_raw(size_t i) const;
  // The same for expected column k of a record that started on `line` (checks done after the
  // whole file is read, such as duplicate keys).
  std::string where_line(int64_t line, size_t k) const;
  // Throws RowError("<where(k)>: <what>", reason).
  [[noreturn]] void fail(size_t k, std::string_view reason, std::string_view what) const;

  const std::string& origin() const { return origin_; }
  size_t size_bytes() const { return buf_.size(); }

 private:
  CsvReader() = default;
  void init();
  void skip_line_from(size_t p);  // resynchronises after a malformed record
  [[noreturn]] void fail_open_quote(size_t field_index) const;
  [[noreturn]] void row_error(size_t field_index, size_t resync_from, std::string_view reason,
                              std::string_view what);

  std::string origin_;
  std::string buf_;
  size_t pos_ = 0;
  int64_t line_ = 1;                     // physical line at pos_
  int64_t record_line_ = 0;              // first line of the current record
  size_t bad_utf8_ = std::string::npos;  // offset of the next invalid UTF-8 byte at/after pos_
  std::vector<std::string_view> fields_;
  std::vector<size_t> field_begin_;   // raw start offset of each field (before unescaping)
  std::vector<std::string> columns_;  // expected names, empty before read_header
  std::vector<size_t> col_of_;        // expected column -> position in the record
  std::vector<int> name_of_pos_;      // position in the record -> expected column
};

// Offset of the first byte of `s` at or after `from` that is not part of well-formed UTF-8
// (overlong forms, surrogates and code points above U+10FFFF are ill-formed), or npos.
size_t find_invalid_utf8(std::string_view s, size_t from = 0);

// Strict number parsing for CSV fields: the whole field must be the number, no spaces.
bool parse_int64(std::string_view s, int64_t* out);
bool parse_double(std::string_view s, double* out);  // finite values only
bool parse_float(std::string_view s, float* out);    // finite values only

// Appends `field` to `out`, quoted (quotes doubled) when it holds a comma, quote, CR or LF.
void append_csv_field(std::string& out, std::string_view field);
// Shortest text that parses back to exactly `x` ("" for NaN); integral values without ".0".
std::string format_number(double x);

// Writes `bytes` to `path` atomically: a temp file in the same directory, synced, renamed over
// `path`. On failure `path` is untouched and Error names it.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace dan::recsys
