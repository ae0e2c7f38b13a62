// dan::Error and the check macros used on every public entry point.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace dan {

// The one exception type of the framework. Messages name the op / file, the offending
// values and what was expected, e.g. "matmul: inner dims differ: a is [32, 384], b is [256, 10]".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace dan

// DAN_CHECK(cond, "fmt {}", args...): throws dan::Error with the formatted message.
#define DAN_CHECK(cond, ...)      \
  do {                            \
    if (!(cond)) {                \
      ::dan::fail(__VA_ARGS__);   \
    }                             \
  } while (0)
