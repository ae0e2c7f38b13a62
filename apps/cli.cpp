#include "apps/cli.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace dan::apps {

namespace {
bool contains(const std::vector<std::string>& v, const std::string& k) {
  return std::find(v.begin(), v.end(), k) != v.end();
}
}  // namespace

std::string Flags::str(const std::string& k, const std::string& def) const {
  auto it = values.find(k);
  return it == values.end() ? def : it->second;
}

long long Flags::integer(const std::string& k, long long def) const {
  auto it = values.find(k);
  return it == values.end() ? def : to_int(k, it->second);
}

double Flags::number(const std::string& k, double def) const {
  auto it = values.find(k);
  return it == values.end() ? def : to_double(k, it->second);
}

const std::vector<std::string>& Flags::all(const std::string& k) const {
  static const std::vector<std::string> none;
  auto it = repeated.find(k);
  return it == repeated.end() ? none : it->second;
}

Flags parse_flags(int argc, char** argv, int start, const std::vector<std::string>& known,
                  const std::vector<std::string>& repeatable,
                  const std::vector<std::string>& boolean) {
  Flags out;
  for (int i = start; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      out.positional.push_back(k);
      continue;
    }
    k = k.substr(2);
    if (contains(boolean, k)) {
      out.values[k] = "1";
      continue;
    }
    const bool rep = contains(repeatable, k);
    if (!rep && !contains(known, k)) {
      std::vector<std::string> all = known;
      all.insert(all.end(), repeatable.begin(), repeatable.end());
      all.insert(all.end(), boolean.begin(), boolean.end());
      fail("unknown option --{} (known: --{})", k, fmt::join(all, ", --"));
    }
    DAN_CHECK(i + 1 < argc, "option --{} needs a value", k);
    if (rep)
      out.repeated[k].push_back(argv[++i]);
    else
      out.values[k] = argv[++i];
  }
  return out;
}

long long to_int(const std::string& key, const std::string& v) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  DAN_CHECK(!v.empty() && *end == '\0', "--{}: expected an integer, got '{}'", key, v);
  return x;
}

double to_double(const std::string& key, const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  DAN_CHECK(!v.empty() && *end == '\0', "--{}: expected a number, got '{}'", key, v);
  return x;
}

}  // namespace dan::apps
