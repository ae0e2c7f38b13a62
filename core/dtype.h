// Element types and the compile-time dispatch helper used by every kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace dan {

enum class DType : uint8_t { f32, f64, i32, i64, b8 };

inline constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::b8: return 1;
  }
  return 0;
}

inline constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::b8: return "bool";
  }
  return "?";
}

inline constexpr bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }
inline constexpr bool is_integral(DType t) { return t == DType::i32 || t == DType::i64; }

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::b8; };

}  // namespace dan

template <>
struct fmt::formatter<dan::DType> : fmt::formatter<std::string_view> {
  auto format(dan::DType t, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(dan::dtype_name(t), ctx);
  }
};

// DAN_DISPATCH_FLOAT(dtype, "op", [&]<typename T>() { ... }) calls the lambda with T = float or
// double; any other dtype is an error naming the op.
#define DAN_DISPATCH_FLOAT(DT, OPNAME, ...)                                              \
  [&]() {                                                                                \
    switch (DT) {                                                                        \
      case ::dan::DType::f32: return (__VA_ARGS__).template operator()<float>();         \
      case ::dan::DType::f64: return (__VA_ARGS__).template operator()<double>();        \
      default: ::dan::fail("{}: expected a floating dtype (f32, f64), got {}", OPNAME, DT); \
    }                                                                                    \
  }()

#define DAN_DISPATCH_ALL(DT, OPNAME, ...)                                           \
  [&]() {                                                                           \
    switch (DT) {                                                                   \
      case ::dan::DType::f32: return (__VA_ARGS__).template operator()<float>();    \
      case ::dan::DType::f64: return (__VA_ARGS__).template operator()<double>();   \
      case ::dan::DType::i32: return (__VA_ARGS__).template operator()<int32_t>();  \
      case ::dan::DType::i64: return (__VA_ARGS__).template operator()<int64_t>();  \
      case ::dan::DType::b8: return (__VA_ARGS__).template operator()<bool>();      \
    }                                                                               \
    ::dan::fail("{}: unknown dtype", OPNAME);                                       \
  }()

#define DAN_DISPATCH_INDEX(DT, OPNAME, ...)                                          \
  [&]() {                                                                            \
    switch (DT) {                                                                    \
      case ::dan::DType::i32: return (__VA_ARGS__).template operator()<int32_t>();   \
      case ::dan::DType::i64: return (__VA_ARGS__).template operator()<int64_t>();   \
      default: ::dan::fail("{}: expected an index dtype (i32, i64), got {}", OPNAME, DT); \
    }                                                                                \
  }()
