// Schema-checked YAML configs, loading: YAML → typed values with located errors, base-file
// inheritance and key=value overrides (the Schema and Config themselves are in config.cpp).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "recsys/config.h"
#include "recsys/config_detail.h"

namespace dan::recsys {

namespace fs = std::filesystem;

namespace {

using detail::is_reserved;
using detail::under_prefix;
using detail::value_problem;

// ---- YAML → typed values ---------------------------------------------------------------------

// "found ..." text of an error: the scalar as written (quoted), or the node's kind.
std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar:
      return n.Tag() == "!" ? fmt::format("\"{}\" (a quoted string)", n.Scalar())
                            : fmt::format("\"{}\"", n.Scalar());
    default: return "an undefined value";
  }
}

std::optional<bool> parse_bool(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// Decimal integers only ("3", "-12", "+7"); "3.0" or "1e3" are not ints.
std::optional<int64_t> parse_int(const std::string& s, bool* overflow) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  if (b == e) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec == std::errc::result_out_of_range) {
    *overflow = true;
    return std::nullopt;
  }
  if (ec != std::errc() || p != e) return std::nullopt;
  return v;
}

std::optional<double> parse_double(const std::string& s) {
  static const std::map<std::string, double> special = {
      {".inf", INFINITY},  {".Inf", INFINITY},   {".INF", INFINITY},   {"+.inf", INFINITY},
      {"+.Inf", INFINITY}, {"+.INF", INFINITY},  {"-.inf", -INFINITY}, {"-.Inf", -INFINITY},
      {"-.INF", -INFINITY}, {".nan", NAN},       {".NaN", NAN},        {".NAN", NAN}};
  if (auto it = special.find(s); it != special.end()) return it->second;
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  if (b == e) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(b, e, v, std::chars_format::general);
  if (ec != std::errc() || p != e) return std::nullopt;
  return v;
}

// Where values come from: a file (yaml-cpp marks give line:col) or one override (its text).
struct Source {
  std::string origin;  // the file path, or "override 'k=v'"
  bool marks = true;   // false for overrides: positions inside the value text would mislead
};

// "file:line:col" (1-based) of a node, or the origin alone.
std::string where_of(const Source& src, const YAML::Node& n) {
  if (!src.marks) return src.origin;
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return src.origin;
  return fmt::format("{}:{}:{}", src.origin, m.line + 1, m.column + 1);
}

// What a scalar/list element is checked against; `what` is "key 'k'" or "key 'k' element 2".
struct At {
  std::string where;
  std::string what;
};

[[noreturn]] void type_error(const At& at, const char* expected, const YAML::Node& n,
                             const std::string& hint = "") {
  fail("{}: {}: expected {}, found {}{}", at.where, at.what, expected, describe(n), hint);
}

bool to_bool(const At& at, const YAML::Node& n) {
  if (n.IsScalar() && n.Tag() != "!") {
    if (auto b = parse_bool(n.Scalar())) return *b;
  }
  type_error(at, "bool (true or false)", n);
}

int64_t to_int(const At& at, const YAML::Node& n) {
  if (n.IsScalar() && n.Tag() != "!") {
    bool overflow = false;
    if (auto v = parse_int(n.Scalar(), &overflow)) return *v;
    if (overflow) fail("{}: {}: {} does not fit a 64-bit int", at.where, at.what, n.Scalar());
  }
  type_error(at, "int", n);
}

double to_double(const At& at, const YAML::Node& n) {
  if (n.IsScalar() && n.Tag() != "!") {
    if (auto v = parse_double(n.Scalar())) return *v;
  }
  type_error(at, "double", n);
}

std::string to_string(const At& at, const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  type_error(at, "string", n, n.IsNull() ? " (write \"\" for an empty string)" : "");
}

template <typename T, typename F>
std::vector<T> to_list(const Source& src, const At& at, const YAML::Node& n, const char* expected,
                       F&& elem) {
  if (!n.IsSequence()) {
    type_error(at, expected, n, n.IsScalar() ? fmt::format(" (write a list: [{}])", n.Scalar()) : "");
  }
  std::vector<T> out;
  for (size_t i = 0; i < n.size(); ++i) {
    const YAML::Node e = n[i];
    out.push_back(elem(At{where_of(src, e), fmt::format("{} element {}", at.what, i)}, e));
  }
  return out;
}

// A YAML node as the declared type of k; bounds and choices checked. `value_node` locates it.
ConfigValue convert(const KeyInfo& k, const YAML::Node& n, const Source& src, const std::string& where) {
  const At at{where, fmt::format("key '{}'", k.key)};
  ConfigValue v;
  switch (k.type) {
    case ConfigType::boolean: v = to_bool(at, n); break;
    case ConfigType::integer: v = to_int(at, n); break;
    case ConfigType::real: v = to_double(at, n); break;
    case ConfigType::string:
    case ConfigType::choice: v = to_string(at, n); break;
    case ConfigType::ints: v = to_list<int64_t>(src, at, n, "list of int", to_int); break;
    case ConfigType::doubles: v = to_list<double>(src, at, n, "list of double", to_double); break;
    case ConfigType::strings: v = to_list<std::string>(src, at, n, "list of string", to_string); break;
  }
  if (auto p = value_problem(k, v)) fail("{}: {}: {}", at.where, at.what, *p);
  return v;
}

// ---- loading ---------------------------------------------------------------------------------

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.line >= 0) fail("{}:{}:{}: malformed YAML: {}", origin, e.mark.line + 1, e.mark.column + 1, e.msg);
    fail("{}: malformed YAML: {}", origin, e.msg);
  }
}

std::string read_text(const std::string& path, const std::string& context) {
  std::ifstream f(path, std::ios::binary);
  DAN_CHECK(f.good(), "{}cannot read config file '{}'", context, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  DAN_CHECK(!f.bad(), "{}cannot read config file '{}'", context, path);
  return ss.str();
}

std::string keys_of_section(const Schema& s, const std::string& section) {
  std::vector<std::string> ks;
  for (const auto& k : s.keys())
    if (under_prefix(k.key, section)) ks.push_back(k.key);
  return fmt::format("{}", fmt::join(ks, ", "));
}

class Loader {
 public:
  explicit Loader(Config& cfg) : cfg_(cfg) {}

  // Loads `text` (from `origin`), its bases first. `chain` holds the files being loaded.
  void load_text(const std::string& text, const std::string& origin, std::vector<std::string>& chain) {
    const YAML::Node root = parse_yaml(text, origin);
    if (root.IsNull()) return;  // an empty file: nothing set
    DAN_CHECK(root.IsMap(), "{}: expected a map of config keys at the top level, found {}",
              where_of(Source{origin}, root), describe(root));
    const Source src{origin, true};

    // The base first, so this file's keys override it.
    std::optional<YAML::Node> base_key;
    YAML::Node base_val;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar() || !is_reserved(it->first.Scalar())) continue;
      DAN_CHECK(!base_key, "{}: '{}' given twice (first at {}); one base file per config",
                where_of(src, it->first), it->first.Scalar(), base_key ? where_of(src, *base_key) : "");
      base_key = it->first;
      base_val = it->second;
    }
    if (base_key) {
      DAN_CHECK(base_val.IsScalar() && !base_val.Scalar().empty(),
                "{}: '{}' expects a file path (relative to this file), found {}",
                where_of(src, base_val.IsNull() ? *base_key : base_val), base_key->Scalar(), describe(base_val));
      fs::path p = base_val.Scalar();
      if (p.is_relative()) p = fs::path(origin).parent_path() / p;
      const std::string bp = p.lexically_normal().string();
      std::error_code ec;
      const fs::path canon = fs::weakly_canonical(p, ec);
      const std::string id = ec ? bp : canon.string();
      DAN_CHECK(std::find(chain.begin(), chain.end(), id) == chain.end(),
                "{}: base file '{}' includes itself (chain: {} -> {})", where_of(src, base_val), bp,
                fmt::join(chain, " -> "), id);
      DAN_CHECK(chain.size() < 16, "{}: base files nested deeper than 16", where_of(src, base_val));
      chain.push_back(id);
      const std::string text_b = read_text(bp, where_of(src, base_val) + ": base: ");
      load_text(text_b, bp, chain);
      chain.pop_back();
    }

    std::map<std::string, std::string> set_here;  // key -> where, to reject duplicates
    walk(root, "", src, set_here);
  }

  void apply_override(const std::string& ov) {
    const std::string origin = fmt::format("override '{}'", ov);
    const size_t eq = ov.find('=');
    DAN_CHECK(eq != std::string::npos, "{}: expected key=value", origin);
    auto trim = [](std::string s) {
      const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    const std::string key = trim(ov.substr(0, eq));
    const std::string text = ov.substr(eq + 1);
    const Schema& s = cfg_.schema();
    const KeyInfo* k = s.find(key);
    if (!k) {
      DAN_CHECK(!key.empty(), "{}: empty key", origin);
      DAN_CHECK(!is_reserved(key), "{}: '{}' can only be given in a config file", origin, key);
      DAN_CHECK(!s.is_section(key), "{}: '{}' is a section, not a key; its keys: {}", origin, key,
                keys_of_section(s, key));
      fail("{}: unknown key '{}'; did you mean '{}'?", origin, key, s.nearest(key));
    }
    ConfigValue v;
    if (k->type == ConfigType::string || k->type == ConfigType::choice) {
      v = text;  // verbatim: paths and names need no YAML quoting on a command line
      if (auto p = value_problem(*k, v)) fail("{}: key '{}': {}", origin, key, *p);
    } else {
      YAML::Node n;
      try {
        n = YAML::Load(text);
      } catch (const YAML::Exception& e) {
        fail("{}: malformed value: {}", origin, e.msg);
      }
      v = convert(*k, n, Source{origin, false}, origin);
    }
    cfg_.set(key, std::move(v), origin);
  }

 private:
  void walk(const YAML::Node& map, const std::string& prefix, const Source& src,
            std::map<std::string, std::string>& set_here) {
    const Schema& s = cfg_.schema();
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node kn = it->first;
      const YAML::Node vn = it->second;
      DAN_CHECK(kn.IsScalar(), "{}: config keys must be names, found {}", where_of(src, kn), describe(kn));
      if (prefix.empty() && is_reserved(kn.Scalar())) continue;  // handled by load_text
      const std::string path = prefix.empty() ? kn.Scalar() : prefix + "." + kn.Scalar();
      const std::string kw = where_of(src, kn);
      if (const KeyInfo* k = s.find(path)) {
        auto [pos, fresh] = set_here.emplace(path, kw);
        DAN_CHECK(fresh, "{}: key '{}' set twice in this file (first at {})", kw, path, pos->second);
        const std::string vw = where_of(src, vn.IsNull() ? kn : vn);
        cfg_.set(path, convert(*k, vn, src, vw), vw);
      } else if (s.is_section(path)) {
        if (vn.IsNull()) continue;  // "wmf:" with nothing under it
        DAN_CHECK(vn.IsMap(), "{}: '{}' is a section: expected a map of its keys ({}), found {}",
                  where_of(src, vn), path, keys_of_section(s, path), describe(vn));
        walk(vn, path, src, set_here);
      } else {
        fail("{}: unknown key '{}'; did you mean '{}'?", kw, path, s.nearest(path));
      }
    }
  }

  Config& cfg_;
};

}  // namespace

Config load_config_string(const Schema& schema, const std::string& yaml_text, const std::string& origin,
                          const std::vector<std::string>& overrides) {
  Config cfg(schema);
  Loader loader(cfg);
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(origin, ec);
  std::vector<std::string> chain{ec ? origin : canon.string()};
  loader.load_text(yaml_text, origin, chain);
  for (const auto& ov : overrides) loader.apply_override(ov);
  return cfg;
}

Config load_config(const Schema& schema, const std::string& yaml_path, const std::vector<std::string>& overrides) {
  if (yaml_path.empty()) {
    Config cfg(schema);
    Loader loader(cfg);
    for (const auto& ov : overrides) loader.apply_override(ov);
    return cfg;
  }
  return load_config_string(schema, read_text(yaml_path, ""), yaml_path, overrides);
}

}  // namespace dan::recsys
