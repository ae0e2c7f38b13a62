// BERT's basic tokenization, code point by code point (basic_tokenizer.h): Unicode categories,
// NFD and lower case from utf8proc, corrected to the Unicode versions Hugging Face's tables
// use, plus its whitespace, punctuation and CJK classes.
#include "models/bert/basic_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>

#include "core/error.h"

namespace dan::bert::detail {

namespace {

// Rust's char::is_whitespace (the White_Space property), which both Hugging Face stages use.
// The property is small and has not changed since Unicode 6.3.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Hugging Face's tables come from three Unicode versions: general categories from Unicode 8.0
// (the `unicode_categories` crate), NFD from its normalization crate, lower case from a recent
// Rust. utf8proc has one (Unicode 15 in Debian 12). Where the answers differ in a way that
// changes the output, these tables give Hugging Face's. They were found by running all 1,112,064
// code points through both (the CodePoints test of tests/models/test_bert_tokenizer.cpp checks
// every one). A later utf8proc leaves them valid: they only name code points, never versions.
struct CategoryOverride {
  char32_t lo, hi;
  utf8proc_category_t cat;
};
// Code points given a category (Mn, P*, Cf) after Unicode 8.0 read as unassigned (Cn: kept as
// letters); three whose category changed read as in 8.0. Runs of letters/digits/symbols between
// them are folded into the ranges, which leaves those unchanged.
constexpr utf8proc_category_t kCn = UTF8PROC_CATEGORY_CN;
// clang-format off
constexpr CategoryOverride kCategoryOverrides[] = {
    {0x61D, 0x61D, kCn},        {0x7FD, 0x7FD, kCn},      {0x890, 0x8E2, kCn},
    {0x9FD, 0x9FE, kCn},        {0xA76, 0xA76, kCn},      {0xAFA, 0xAFF, kCn},
    {0xB55, 0xB55, kCn},        {0xC04, 0xC3C, kCn},      {0xC77, 0xC77, kCn},
    {0xC84, 0xC84, kCn},        {0xD00, 0xD00, kCn},      {0xD3B, 0xD3C, kCn},
    {0xD81, 0xD81, kCn},        {0xEBA, 0xEBA, kCn},      {0xECE, 0xECE, kCn},
    {0x166D, 0x166D, UTF8PROC_CATEGORY_PO},               {0x1734, 0x1734, UTF8PROC_CATEGORY_MN},
    {0x180F, 0x1886, kCn},      {0x1ABF, 0x1ACE, kCn},    {0x1B7D, 0x1B7E, kCn},
    {0x1DF6, 0x1DFB, kCn},      {0x2E43, 0x2E5D, kCn},    {0xA82C, 0xA82C, kCn},
    {0xA8C5, 0xA8C5, kCn},      {0xA8FF, 0xA8FF, kCn},    {0xA9BD, 0xA9BD, kCn},
    {0x10D24, 0x10F89, kCn},    {0x11070, 0x11074, kCn},  {0x110C2, 0x110CD, kCn},
    {0x111C9, 0x111C9, UTF8PROC_CATEGORY_PO},             {0x111CF, 0x111CF, kCn},
    {0x1123E, 0x11241, kCn},    {0x1133B, 0x1133B, kCn},  {0x11438, 0x1145E, kCn},
    {0x11660, 0x1166C, kCn},    {0x116B9, 0x116B9, kCn},  {0x1182F, 0x11FFF, kCn},
    {0x12FF1, 0x13455, kCn},    {0x16E97, 0x16F4F, kCn},  {0x16FE2, 0x16FE4, kCn},
    {0x1CF00, 0x1CF46, kCn},    {0x1E000, 0x1E4EF, kCn},  {0x1E944, 0x1E95F, kCn},
};
// clang-format on

utf8proc_category_t category(char32_t c) {
  if (c >= 0x61D) {
    const auto* end = std::end(kCategoryOverrides);
    const auto* it =
        std::upper_bound(std::begin(kCategoryOverrides), end, c,
                         [](char32_t v, const CategoryOverride& o) { return v < o.lo; });
    if (it != std::begin(kCategoryOverrides) && c <= (it - 1)->hi) return (it - 1)->cat;
  }
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

// Upper/lower case pairs newer than utf8proc's Unicode 15 (Unicode 16 and 17 letters).
char32_t to_lower(char32_t c) {
  switch (c) {
    case 0x1C89:
      return 0x1C8A;
    case 0xA7CB:
      return 0x0264;
    case 0xA7CC:
      return 0xA7CD;
    case 0xA7CE:
      return 0xA7CF;
    case 0xA7D2:
      return 0xA7D3;
    case 0xA7D4:
      return 0xA7D5;
    case 0xA7DA:
      return 0xA7DB;
    case 0xA7DC:
      return 0x019B;
    default:
      break;
  }
  if (c >= 0x10D50 && c <= 0x10D65) return c + 0x20;  // Garay
  if (c >= 0x16EA0 && c <= 0x16EB8) return c + 0x1B;  // Beria Erfe
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

// BERT's "control": Cc, Cf, Cs or Co, except the three whitespace controls. Unassigned code
// points (Cn) are kept, as Hugging Face's tables do (they list only assigned ones).
bool is_other(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
      return true;
    default:
      return false;
  }
}

// ASCII punctuation (33-47, 58-64, 91-96, 123-126: includes $ + < = > ^ ` | ~, which Unicode
// files as symbols) or any Unicode P* category.
bool is_punctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
  }
  const auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

// The CJK blocks BERT puts spaces around (the same list as Hugging Face's BertNormalizer).
bool is_chinese(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

}  // namespace

// Normalizes one code point into `out` (at most 32 pieces) and returns the combined kind.
// Hugging Face's order: clean_text, CJK spacing, NFD + drop Mn (strip_accents), lower case.
Kind normalize_cp(char32_t cp, const NormFlags& f, std::vector<Piece>& out) {
  out.clear();
  if (f.clean && (cp == 0 || cp == 0xFFFD || is_other(cp))) return Kind::drop;
  if (is_white_space(cp)) return Kind::space;
  const bool cjk = f.chinese && is_chinese(cp);
  utf8proc_int32_t buf[32];
  utf8proc_ssize_t n = 1;
  buf[0] = static_cast<utf8proc_int32_t>(cp);
  if (f.strip) {
    int boundclass = 0;
    // U+11938's decomposition (Unicode 13) is newer than Hugging Face's NFD table.
    if (cp != 0x11938) {
      n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 32, UTF8PROC_DECOMPOSE,
                                  &boundclass);
      DAN_CHECK(n > 0 && n <= 32, "tokenizer: utf8proc cannot decompose U+{:04X}",
                static_cast<uint32_t>(cp));
    }
  }
  for (utf8proc_ssize_t i = 0; i < n; ++i) {
    char32_t c = static_cast<char32_t>(buf[i]);
    if (f.strip && category(c) == UTF8PROC_CATEGORY_MN) continue;
    if (f.lower) {
      // Rust's full lower-casing differs from the simple mapping only for U+0130, which NFD has
      // already split when accents are stripped.
      if (c == 0x130) {
        out.push_back({'i', Kind::plain});
        out.push_back({0x307, Kind::plain});
        continue;
      }
      c = to_lower(c);
    }
    const Kind k = cjk                 ? Kind::isolate
                   : is_white_space(c) ? Kind::space
                   : is_punctuation(c) ? Kind::isolate
                                       : Kind::plain;
    out.push_back({c, k});
  }
  if (out.empty()) return Kind::drop;
  if (cjk) return Kind::isolate;
  if (out.size() == 1) return out[0].kind;
  for (const Piece& p : out)
    if (p.kind != Kind::plain) return Kind::complex;
  return Kind::plain;
}

}  // namespace dan::bert::detail
