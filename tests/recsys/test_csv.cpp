// Tests for recsys/csv: RFC 4180 edge cases (quotes, doubled quotes, embedded CR/LF, CRLF and LF
// line ends, empty fields, a missing final newline), line/column reporting, UTF-8 validation,
// header mapping, strict number parsing and the writer helpers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "recsys/csv.h"

namespace dan::recsys {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Rec {
  int64_t line;
  std::vector<std::string> fields;
};

std::vector<Rec> parse_all(const std::string& text) {
  CsvReader r = CsvReader::from_string(text, "t.csv");
  std::vector<Rec> out;
  while (r.next()) {
    Rec rec{r.line(), {}};
    for (size_t i = 0; i < r.num_fields(); ++i) rec.fields.emplace_back(r.raw_field(i));
    out.push_back(rec);
  }
  return out;
}

// Message and reason of the RowError f throws ("" and a failure otherwise).
std::pair<std::string, std::string> row_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const RowError& e) {
    return {e.what(), e.reason()};
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than RowError: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw";
  return {};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const RowError& e) {
    ADD_FAILURE() << "threw a RowError (skippable), expected a fatal Error: " << e.what();
    return e.what();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

TEST(RecsysCsv, PlainRecordsLfAndCrlf) {
  for (const char* eol : {"\n", "\r\n"}) {
    const std::string s = std::string("a,b,c") + eol + "1,22,333" + eol;
    const auto recs = parse_all(s);
    ASSERT_EQ(recs.size(), 2u) << "eol " << (eol[0] == '\r' ? "CRLF" : "LF");
    EXPECT_EQ(recs[0].fields, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(recs[1].fields, (std::vector<std::string>{"1", "22", "333"}));
    EXPECT_EQ(recs[0].line, 1);
    EXPECT_EQ(recs[1].line, 2);
  }
}

TEST(RecsysCsv, QuotedFieldsCommasDoubledQuotesAndEmbeddedNewlines) {
  const std::string s =
      "id,text\r\n"
      "1,\"a, b\"\r\n"
      "2,\"she said \"\"hi\"\"\"\r\n"
      "3,\"line one\nline two\r\nline three\"\r\n"
      "4,\"\"\"\"\r\n"
      "5,after\r\n";
  const auto recs = parse_all(s);
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(recs[1].fields[1], "a, b");
  EXPECT_EQ(recs[2].fields[1], "she said \"hi\"");
  EXPECT_EQ(recs[3].fields[1], "line one\nline two\r\nline three");  // kept verbatim
  EXPECT_EQ(recs[4].fields[1], "\"");
  EXPECT_EQ(recs[5].fields[1], "after");
  // A record spanning lines reports its first line; the next record its own physical line.
  EXPECT_EQ(recs[3].line, 4);
  EXPECT_EQ(recs[4].line, 7);
  EXPECT_EQ(recs[5].line, 8);
}

TEST(RecsysCsv, EmptyFieldsAndMissingFinalNewline) {
  const auto recs = parse_all("a,,c\n,,\n\"\",x,\"\"\nlast,row,\"no newline\"");
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0].fields, (std::vector<std::string>{"a", "", "c"}));
  EXPECT_EQ(recs[1].fields, (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(recs[2].fields, (std::vector<std::string>{"", "x", ""}));
  EXPECT_EQ(recs[3].fields, (std::vector<std::string>{"last", "row", "no newline"}));
  // A trailing comma at the end of the input is an empty last field.
  const auto t = parse_all("a,b,");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].fields, (std::vector<std::string>{"a", "b", ""}));
}

TEST(RecsysCsv, BlankLinesAndByteOrderMark) {
  const auto recs = parse_all("\xEF\xBB\xBFh1,h2\r\n\r\n1,2\n\n\n3,4\n\n");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].fields[0], "h1");
  EXPECT_EQ(recs[1].line, 3);
  EXPECT_EQ(recs[2].line, 6);
  EXPECT_TRUE(parse_all("").empty());
  EXPECT_TRUE(parse_all("\n\r\n").empty());
}

TEST(RecsysCsv, BadQuotingIsARowErrorAndTheReaderResumesOnTheNextLine) {
  CsvReader r = CsvReader::from_string("a,b\n1,x\"y\n2,\"ok\"z\n3,fine\n", "q.csv");
  ASSERT_TRUE(r.next());
  auto [msg, reason] = row_error_of([&] { r.next(); });
  EXPECT_THAT(msg, StartsWith("q.csv: line 2, column 2: quote inside an unquoted field"));
  EXPECT_EQ(reason, "bad quoting");
  std::tie(msg, reason) = row_error_of([&] { r.next(); });
  EXPECT_THAT(msg, StartsWith("q.csv: line 3, column 2: unexpected 'z' after the closing quote"));
  EXPECT_EQ(reason, "bad quoting");
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.line(), 4);
  EXPECT_EQ(r.raw_field(1), "fine");
  EXPECT_FALSE(r.next());
}

TEST(RecsysCsv, BareCarriageReturnIsAnError) {
  CsvReader r = CsvReader::from_string("a,b\rc\n1,2\n", "cr.csv");
  const auto [msg, reason] = row_error_of([&] { r.next(); });
  EXPECT_THAT(msg, StartsWith("cr.csv: line 1, column 2: carriage return not followed"));
  EXPECT_EQ(reason, "bad line end");
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.line(), 2);
}

TEST(RecsysCsv, UnterminatedQuoteIsFatalAndNamesTheRecordStart) {
  CsvReader r = CsvReader::from_string("a,b\n1,\"never\nclosed,\n", "u.csv");
  ASSERT_TRUE(r.next());
  EXPECT_THAT(error_of([&] { r.next(); }),
              StartsWith("u.csv: line 2, column 2: quoted field never closed"));
}

TEST(RecsysCsv, InvalidUtf8NamesLineColumnAndByte) {
  // Valid multi-byte text (2-, 3- and 4-byte sequences) passes.
  const auto ok = parse_all("caf\xC3\xA9,\xE6\x97\xA5\xE6\x9C\xAC,\xF0\x9F\x98\x80\n");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].fields[2], "\xF0\x9F\x98\x80");

  CsvReader r = CsvReader::from_string(
      "id,title,x\n1,ok,ok\n2,\"two\nlines\",b\xFF\n3,fine,\xC3\xA9\n", "bad.csv");
  r.read_header({"id", "title", "x"});
  ASSERT_TRUE(r.next());
  const auto [msg, reason] = row_error_of([&] { r.next(); });
  EXPECT_EQ(msg,
            "bad.csv: line 3, column 3 (x): invalid UTF-8 (byte 0xff at file offset 34; the file "
            "must be UTF-8)");
  EXPECT_EQ(reason, "invalid UTF-8");
  ASSERT_TRUE(r.next());  // the reader goes on after the bad record
  EXPECT_EQ(r.line(), 5);
  EXPECT_EQ(r.field(2), "\xC3\xA9");
}

TEST(RecsysCsv, FindInvalidUtf8RejectsIllFormedSequences) {
  const size_t npos = std::string_view::npos;
  EXPECT_EQ(find_invalid_utf8("plain ascii text that is long enough for the fast path"), npos);
  EXPECT_EQ(find_invalid_utf8("\xC3\xA9\xE2\x82\xAC\xF4\x8F\xBF\xBF"), npos);  // é € U+10FFFF
  EXPECT_EQ(find_invalid_utf8("ab\x80"), 2u);            // lone continuation byte
  EXPECT_EQ(find_invalid_utf8("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(find_invalid_utf8("x\xE0\x80\xAF"), 1u);     // overlong 3-byte
  EXPECT_EQ(find_invalid_utf8("\xED\xA0\x80"), 0u);      // surrogate U+D800
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("abcdefgh\xE6\x97"), 8u);  // truncated at the end
  EXPECT_EQ(find_invalid_utf8("\xFF"), 0u);
  EXPECT_EQ(find_invalid_utf8("\xFF ok \xFE", 1), 5u);  // search starts at `from`
}

TEST(RecsysCsv, HeaderMapsColumnsInAnyOrder) {
  CsvReader r = CsvReader::from_string("score,user_id,anime_id\n9,1,24\n", "h.csv");
  r.read_header({"user_id", "anime_id", "score"});
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.field(0), "1");
  EXPECT_EQ(r.field(1), "24");
  EXPECT_EQ(r.field(2), "9");
  EXPECT_EQ(r.where(2), "h.csv: line 2, column 1 (score)");
  EXPECT_EQ(r.where(0), "h.csv: line 2, column 2 (user_id)");
}

TEST(RecsysCsv, HeaderErrorsNameTheColumn) {
  const std::vector<std::string> cols = {"user_id", "anime_id", "score"};
  const auto header_error = [&](const std::string& text) {
    return error_of([&] { CsvReader::from_string(text, "h.csv").read_header(cols); });
  };
  EXPECT_EQ(header_error("user_id,anime_id\n1,2\n"),
            "h.csv: line 1: missing header column 'score' (expected the columns "
            "user_id,anime_id,score)");
  EXPECT_EQ(header_error("user_id,anime_id,score,extra\n"),
            "h.csv: line 1, column 4: unexpected header column 'extra' (expected the columns "
            "user_id,anime_id,score)");
  EXPECT_EQ(header_error("user_id,anime_id,user_id,score\n"),
            "h.csv: line 1, column 3: header column 'user_id' repeated (first at column 1)");
  EXPECT_EQ(header_error(""), "h.csv: empty file, expected a header row: user_id,anime_id,score");
}

TEST(RecsysCsv, WrongColumnCountNamesTheColumn) {
  CsvReader r = CsvReader::from_string("a,b,c\n1,2,3,4\n1,2\n1,2,3\n", "w.csv");
  r.read_header({"a", "b", "c"});
  auto [msg, reason] = row_error_of([&] { r.next(); });
  EXPECT_EQ(msg,
            "w.csv: line 2, column 4: extra field: the record has 4 fields, expected 3 (a,b,c)");
  EXPECT_EQ(reason, "wrong column count");
  std::tie(msg, reason) = row_error_of([&] { r.next(); });
  EXPECT_EQ(msg,
            "w.csv: line 3, column 3 (c): missing field: the record has 2 fields, expected 3 "
            "(a,b,c)");
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.field(2), "3");
  EXPECT_FALSE(r.next());
}

TEST(RecsysCsv, StrictNumbers) {
  int64_t i = 0;
  EXPECT_TRUE(parse_int64("-42", &i));
  EXPECT_EQ(i, -42);
  for (const char* bad :
       {"", " 1", "1 ", "+1", "1.0", "1e3", "0x10", "abc", "99999999999999999999"}) {
    EXPECT_FALSE(parse_int64(bad, &i)) << bad;
  }
  double d = 0;
  EXPECT_TRUE(parse_double("8.75", &d));
  EXPECT_EQ(d, 8.75);
  EXPECT_TRUE(parse_double("1e3", &d));
  EXPECT_EQ(d, 1000.0);
  for (const char* bad : {"", "nan", "inf", "-inf", "1.5x", " 2", "1,5", "1e999"}) {
    EXPECT_FALSE(parse_double(bad, &d)) << bad;
  }
  float f = 0;
  EXPECT_TRUE(parse_float("0.1", &f));
  EXPECT_EQ(f, 0.1f);
  EXPECT_FALSE(parse_float("nan", &f));
}

TEST(RecsysCsv, WriterQuotingRoundTripsThroughTheReader) {
  const std::vector<std::string> fields = {
      "plain", "with, comma", "say \"hi\"", "two\nlines", "crlf\r\nhere", "", "\"", "caf\xC3\xA9"};
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) line += ',';
    append_csv_field(line, fields[i]);
  }
  EXPECT_EQ(line.substr(0, 36), "plain,\"with, comma\",\"say \"\"hi\"\"\",\"tw");
  const auto recs = parse_all(line + "\r\n");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].fields, fields);
}

TEST(RecsysCsv, FormatNumberIsShortestAndExact) {
  EXPECT_EQ(format_number(26), "26");
  EXPECT_EQ(format_number(1745107), "1745107");
  EXPECT_EQ(format_number(8.75), "8.75");
  EXPECT_EQ(format_number(0.1), "0.1");
  EXPECT_EQ(format_number(-3), "-3");
  EXPECT_EQ(format_number(std::numeric_limits<double>::quiet_NaN()), "");
  for (const double x : {1.0 / 3, 6.02e23, 1e-300, 123456.789}) {
    double back = 0;
    ASSERT_TRUE(parse_double(format_number(x), &back)) << format_number(x);
    EXPECT_EQ(back, x);
  }
}

TEST(RecsysCsv, WriteFileAtomicReplacesAndLeavesNoTempFile) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("dan_csv_atomic_{}", ::getpid());
  fs::create_directories(dir);
  const std::string p = (dir / "x.csv").string();
  write_file_atomic(p, "first");
  write_file_atomic(p, "second,1\r\n");
  std::ifstream in(p, std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "second,1\r\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  EXPECT_THAT(error_of([&] { write_file_atomic((dir / "no" / "such" / "x.csv").string(), "x"); }),
              HasSubstr("cannot create"));
  fs::remove_all(dir);
}

TEST(RecsysCsv, OpenNamesAMissingFile) {
  EXPECT_EQ(error_of([] { CsvReader::open("/nonexistent/dir/anime.csv"); }),
            "/nonexistent/dir/anime.csv: file not found");
}

}  // namespace
}  // namespace dan::recsys
