// Helpers shared by the BERT tests: element-wise comparison of tensors against gold values,
// error-message checks and a per-test scratch directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "core/tensor.h"

namespace dan::testing {

// max |a - b| over the elements (shapes must agree; a NaN in `a` counts as 1e30).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  const auto x = a.to_vector(), y = b.to_vector();
  double w = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    w = std::max(w, std::isnan(x[i]) ? 1e30 : std::abs(x[i] - y[i]));
  }
  return w;
}

inline double max_abs(const Tensor& a) {
  double w = 0;
  for (double v : a.to_vector()) w = std::max(w, std::abs(v));
  return w;
}

inline void expect_contains(const std::string& msg, const std::string& needle) {
  EXPECT_NE(msg.find(needle), std::string::npos)
      << "error was: " << (msg.empty() ? "(none)" : msg) << "\nexpected to contain: " << needle;
}

// A scratch directory named after the running test (and `tag`), removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "bert") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = fmt::format("dan_{}_{}_{}_{}", tag, ::getpid(), info->test_suite_name(),
                                   info->name());
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path_.string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace dan::testing
