// Command-line option parsing shared by the subcommands: "--key value" pairs, checked against
// the subcommand's known keys, and typed conversions whose errors name the option.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace dan::apps {

// Options of one subcommand: "--key value" pairs, plus repeatable keys (e.g. --like) collected
// in order. Unknown keys and missing values are errors naming them.
struct Flags {
  std::map<std::string, std::string> values;
  std::map<std::string, std::vector<std::string>> repeated;
  std::vector<std::string> positional;

  bool has(const std::string& k) const { return values.count(k) != 0; }
  std::string str(const std::string& k, const std::string& def) const;
  long long integer(const std::string& k, long long def) const;
  double number(const std::string& k, double def) const;
  const std::vector<std::string>& all(const std::string& k) const;
};

// argv[start..] -> Flags. `known` are "--key value" options, `repeatable` may occur many times,
// `boolean` take no value ("1" when present). Anything not starting with "--" is positional.
Flags parse_flags(int argc, char** argv, int start, const std::vector<std::string>& known,
                  const std::vector<std::string>& repeatable = {},
                  const std::vector<std::string>& boolean = {});

long long to_int(const std::string& key, const std::string& v);
double to_double(const std::string& key, const std::string& v);

}  // namespace dan::apps
