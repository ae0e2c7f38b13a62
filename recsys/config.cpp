// Schema-checked YAML configs: declaration checks, typed values and their bounds, canonical text
// and hashing, Markdown docs. Reading YAML files (with base-file inheritance) and overrides is
// in config_load.cpp.
#include "recsys/config.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "recsys/config_detail.h"

namespace dan::recsys {

const char* config_type_name(ConfigType t) {
  switch (t) {
    case ConfigType::boolean: return "bool";
    case ConfigType::integer: return "int";
    case ConfigType::real: return "double";
    case ConfigType::string: return "string";
    case ConfigType::ints: return "list of int";
    case ConfigType::doubles: return "list of double";
    case ConfigType::strings: return "list of string";
    case ConfigType::choice: return "one of";
  }
  return "?";
}

uint64_t fnv1a64_continue(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t fnv1a64(const std::string& bytes) { return fnv1a64_continue(bytes, 14695981039346656037ull); }

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// ---- value formatting (to_yaml, canonical text, markdown) --------------------------------------

namespace {

std::string format_double(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  std::string s = fmt::format("{}", d);  // shortest representation that round-trips
  if (s.find_first_of(".e") == std::string::npos) s += ".0";  // keep it visibly a double
  return s;
}

// A bound as written in docs and messages: "1", "0.5".
std::string format_bound(double d) { return fmt::format("{}", d); }

bool plain_safe(const std::string& s) {
  if (s.empty()) return false;
  const char c0 = s[0];
  if (!(std::isalpha(static_cast<unsigned char>(c0)) || c0 == '_' || c0 == '/')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' ||
          c == '-')) {
      return false;
    }
  }
  std::string low = s;
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::set<std::string> reserved = {"true", "false", "yes", "no",  "on",
                                                 "off",  "null",  "y",   "n"};
  return reserved.count(low) == 0;
}

std::string format_string(const std::string& s) {
  if (plain_safe(s)) return s;
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

template <typename T, typename F>
std::string format_list(const std::vector<T>& v, F&& f) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += f(v[i]);
  }
  return out + "]";
}

std::string format_value(const ConfigValue& v) {
  struct V {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return format_double(d); }
    std::string operator()(const std::string& s) const { return format_string(s); }
    std::string operator()(const std::vector<int64_t>& l) const {
      return format_list(l, [](int64_t i) { return std::to_string(i); });
    }
    std::string operator()(const std::vector<double>& l) const { return format_list(l, format_double); }
    std::string operator()(const std::vector<std::string>& l) const {
      return format_list(l, format_string);
    }
  };
  return std::visit(V{}, v);
}

std::string type_text(const KeyInfo& k) {
  std::string t = config_type_name(k.type);
  if (k.type == ConfigType::choice) {
    t += " ";
    for (size_t i = 0; i < k.choices.size(); ++i) t += (i ? ", `" : "`") + k.choices[i] + "`";
    return t;
  }
  const bool list = k.type == ConfigType::ints || k.type == ConfigType::doubles;
  const char* each = list ? "each " : "";
  if (k.bounds.min && k.bounds.max) {
    t += fmt::format(" ({}in [{}, {}])", each, format_bound(*k.bounds.min), format_bound(*k.bounds.max));
  } else if (k.bounds.min) {
    t += fmt::format(" ({}>= {})", each, format_bound(*k.bounds.min));
  } else if (k.bounds.max) {
    t += fmt::format(" ({}<= {})", each, format_bound(*k.bounds.max));
  }
  return t;
}

// ---- value checks ------------------------------------------------------------------------------

// Messages are completed by the caller with "<where>: key '<key>': ".
std::optional<std::string> bounds_problem(const Bounds& b, double v) {
  if (b.min && v < *b.min) return fmt::format("{} is below the minimum {}", format_bound(v), format_bound(*b.min));
  if (b.max && v > *b.max) return fmt::format("{} is above the maximum {}", format_bound(v), format_bound(*b.max));
  if (std::isnan(v) && (b.min || b.max)) return std::string("nan is outside the bounds");
  return std::nullopt;
}

std::string join_choices(const std::vector<std::string>& c) { return fmt::format("{}", fmt::join(c, ", ")); }

}  // namespace

namespace detail {

// Checks a value of the right alternative against bounds / choices; returns the problem text.
std::optional<std::string> value_problem(const KeyInfo& k, const ConfigValue& v) {
  switch (k.type) {
    case ConfigType::integer: return bounds_problem(k.bounds, static_cast<double>(std::get<int64_t>(v)));
    case ConfigType::real: return bounds_problem(k.bounds, std::get<double>(v));
    case ConfigType::ints: {
      const auto& l = std::get<std::vector<int64_t>>(v);
      for (size_t i = 0; i < l.size(); ++i)
        if (auto p = bounds_problem(k.bounds, static_cast<double>(l[i]))) return fmt::format("element {}: {}", i, *p);
      return std::nullopt;
    }
    case ConfigType::doubles: {
      const auto& l = std::get<std::vector<double>>(v);
      for (size_t i = 0; i < l.size(); ++i)
        if (auto p = bounds_problem(k.bounds, l[i])) return fmt::format("element {}: {}", i, *p);
      return std::nullopt;
    }
    case ConfigType::choice: {
      const auto& s = std::get<std::string>(v);
      if (std::find(k.choices.begin(), k.choices.end(), s) == k.choices.end())
        return fmt::format("\"{}\" is not one of: {}", s, join_choices(k.choices));
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

bool under_prefix(const std::string& key, const std::string& prefix) {
  return key == prefix || (key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
                           key[prefix.size()] == '.');
}

bool is_reserved(const std::string& top) { return top == "base" || top == "include"; }

}  // namespace detail

namespace {

using detail::is_reserved;
using detail::under_prefix;
using detail::value_problem;

// The variant alternative that holds values of type t.
size_t alternative_of(ConfigType t) {
  switch (t) {
    case ConfigType::boolean: return 0;
    case ConfigType::integer: return 1;
    case ConfigType::real: return 2;
    case ConfigType::string:
    case ConfigType::choice: return 3;
    case ConfigType::ints: return 4;
    case ConfigType::doubles: return 5;
    case ConfigType::strings: return 6;
  }
  return 0;
}

bool valid_key(const std::string& key) {
  if (key.empty()) return false;
  bool part_empty = true;
  for (char c : key) {
    if (c == '.') {
      if (part_empty) return false;
      part_empty = true;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      part_empty = false;
    } else {
      return false;
    }
  }
  return !part_empty;
}

}  // namespace

// ---- Schema ----------------------------------------------------------------------------------

Schema& Schema::add(KeyInfo k) {
  DAN_CHECK(valid_key(k.key),
            "Schema: bad key '{}': expected dotted identifiers ([A-Za-z0-9_]+ separated by '.')", k.key);
  const std::string top = k.key.substr(0, k.key.find('.'));
  DAN_CHECK(!is_reserved(top), "Schema: key '{}': '{}' is reserved for config inheritance", k.key, top);
  DAN_CHECK(!has(k.key), "Schema: key '{}' declared twice", k.key);
  DAN_CHECK(!is_section(k.key), "Schema: key '{}' is already a section (of '{}')", k.key,
            std::find_if(keys_.begin(), keys_.end(),
                         [&](const KeyInfo& o) { return under_prefix(o.key, k.key); })->key);
  for (size_t dot = k.key.find('.'); dot != std::string::npos; dot = k.key.find('.', dot + 1)) {
    DAN_CHECK(!has(k.key.substr(0, dot)), "Schema: key '{}' would make key '{}' a section", k.key,
              k.key.substr(0, dot));
  }
  DAN_CHECK(k.default_value.index() == alternative_of(k.type), "Schema: key '{}': default of the wrong type",
            k.key);
  if (k.type == ConfigType::choice) {
    DAN_CHECK(!k.choices.empty(), "Schema: key '{}': an enum needs allowed values", k.key);
  }
  if (auto p = value_problem(k, k.default_value)) fail("Schema: key '{}': default {}", k.key, *p);
  keys_.push_back(std::move(k));
  return *this;
}

Schema& Schema::add_bool(const std::string& key, bool def, const std::string& doc) {
  return add({key, ConfigType::boolean, def, doc, {}, {}});
}
Schema& Schema::add_int(const std::string& key, int64_t def, const std::string& doc, Bounds b) {
  return add({key, ConfigType::integer, def, doc, {}, b});
}
Schema& Schema::add_double(const std::string& key, double def, const std::string& doc, Bounds b) {
  return add({key, ConfigType::real, def, doc, {}, b});
}
Schema& Schema::add_string(const std::string& key, const std::string& def, const std::string& doc) {
  return add({key, ConfigType::string, def, doc, {}, {}});
}
Schema& Schema::add_ints(const std::string& key, const std::vector<int64_t>& def, const std::string& doc,
                         Bounds b) {
  return add({key, ConfigType::ints, def, doc, {}, b});
}
Schema& Schema::add_doubles(const std::string& key, const std::vector<double>& def,
                            const std::string& doc, Bounds b) {
  return add({key, ConfigType::doubles, def, doc, {}, b});
}
Schema& Schema::add_strings(const std::string& key, const std::vector<std::string>& def,
                            const std::string& doc) {
  return add({key, ConfigType::strings, def, doc, {}, {}});
}
Schema& Schema::add_enum(const std::string& key, const std::string& def,
                         const std::vector<std::string>& allowed, const std::string& doc) {
  return add({key, ConfigType::choice, def, doc, allowed, {}});
}

const KeyInfo* Schema::find(const std::string& key) const {
  for (const auto& k : keys_)
    if (k.key == key) return &k;
  return nullptr;
}

bool Schema::is_section(const std::string& name) const {
  return std::any_of(keys_.begin(), keys_.end(),
                     [&](const KeyInfo& k) { return k.key != name && under_prefix(k.key, name); });
}

std::string Schema::nearest(const std::string& name) const {
  std::string best;
  size_t best_d = SIZE_MAX;
  std::set<std::string> seen;
  auto consider = [&](const std::string& cand) {
    if (!seen.insert(cand).second) return;
    const size_t d = edit_distance(name, cand);
    if (d < best_d) {
      best_d = d;
      best = cand;
    }
  };
  for (const auto& k : keys_) {
    // Sections first (shorter names), then the key itself: "wmff" suggests "wmf".
    for (size_t dot = k.key.find('.'); dot != std::string::npos; dot = k.key.find('.', dot + 1)) {
      consider(k.key.substr(0, dot));
    }
    consider(k.key);
  }
  return best;
}

std::string Schema::markdown(const std::string& prefix) const {
  std::string out = "| key | type | default | doc |\n|---|---|---|---|\n";
  bool any = false;
  for (const auto& k : keys_) {
    if (!prefix.empty() && !under_prefix(k.key, prefix)) continue;
    any = true;
    std::string doc = k.doc, def = format_value(k.default_value);
    for (std::string* s : {&doc, &def}) {
      std::string esc;
      for (char c : *s) esc += c == '|' ? std::string("\\|") : std::string(1, c);
      *s = esc;
    }
    out += fmt::format("| `{}` | {} | `{}` | {} |\n", k.key, type_text(k), def, doc);
  }
  DAN_CHECK(any || prefix.empty(), "Schema::markdown: no key under '{}'", prefix);
  return out;
}

// ---- Config ----------------------------------------------------------------------------------

Config::Config(Schema schema) : schema_(std::move(schema)) {
  for (const auto& k : schema_.keys()) values_.push_back(k.default_value);
  origins_.assign(values_.size(), "");
}

size_t Config::index_of(const std::string& key, const char* getter) const {
  const auto& ks = schema_.keys();
  for (size_t i = 0; i < ks.size(); ++i)
    if (ks[i].key == key) return i;
  fail("Config::{}('{}'): no such key in the schema (nearest: '{}')", getter, key, schema_.nearest(key));
}

template <typename T>
const T& Config::typed(const std::string& key, const char* getter, ConfigType want1,
                       ConfigType want2) const {
  const size_t i = index_of(key, getter);
  const ConfigType t = schema_.keys()[i].type;
  DAN_CHECK(t == want1 || t == want2, "Config::{}('{}'): the key is declared as {}", getter, key,
            config_type_name(t));
  return std::get<T>(values_[i]);
}

bool Config::get_bool(const std::string& key) const {
  return typed<bool>(key, "get_bool", ConfigType::boolean, ConfigType::boolean);
}
int64_t Config::get_int(const std::string& key) const {
  return typed<int64_t>(key, "get_int", ConfigType::integer, ConfigType::integer);
}
double Config::get_double(const std::string& key) const {
  return typed<double>(key, "get_double", ConfigType::real, ConfigType::real);
}
const std::string& Config::get_string(const std::string& key) const {
  return typed<std::string>(key, "get_string", ConfigType::string, ConfigType::choice);
}
const std::vector<int64_t>& Config::get_ints(const std::string& key) const {
  return typed<std::vector<int64_t>>(key, "get_ints", ConfigType::ints, ConfigType::ints);
}
const std::vector<double>& Config::get_doubles(const std::string& key) const {
  return typed<std::vector<double>>(key, "get_doubles", ConfigType::doubles, ConfigType::doubles);
}
const std::vector<std::string>& Config::get_strings(const std::string& key) const {
  return typed<std::vector<std::string>>(key, "get_strings", ConfigType::strings, ConfigType::strings);
}
const ConfigValue& Config::value(const std::string& key) const { return values_[index_of(key, "value")]; }

void Config::set(const std::string& key, ConfigValue v, const std::string& origin) {
  const size_t i = index_of(key, "set");
  const KeyInfo& k = schema_.keys()[i];
  // Integers from code are fine for double keys (and lists of them).
  if (k.type == ConfigType::real && std::holds_alternative<int64_t>(v)) {
    v = static_cast<double>(std::get<int64_t>(v));
  }
  if (k.type == ConfigType::doubles && std::holds_alternative<std::vector<int64_t>>(v)) {
    const auto& l = std::get<std::vector<int64_t>>(v);
    v = std::vector<double>(l.begin(), l.end());
  }
  DAN_CHECK(v.index() == alternative_of(k.type), "Config::set('{}'): the key is declared as {}", key,
            config_type_name(k.type));
  if (auto p = value_problem(k, v)) fail("{}: key '{}': {}", origin, key, *p);
  values_[i] = std::move(v);
  origins_[i] = origin;
}

const std::string& Config::where(const std::string& key) const {
  static const std::string kDefault = "default";
  const std::string& o = origins_[index_of(key, "where")];
  return o.empty() ? kDefault : o;
}

bool Config::is_default(const std::string& key) const { return origins_[index_of(key, "is_default")].empty(); }

std::string Config::to_yaml(bool docs) const {
  // A section tree in first-declaration order; keys cannot also be sections (Schema::add).
  struct Node {
    std::string name;
    int key = -1;
    std::vector<Node> children;
  };
  Node root;
  const auto& ks = schema_.keys();
  for (size_t i = 0; i < ks.size(); ++i) {
    Node* cur = &root;
    size_t start = 0;
    while (true) {
      const size_t dot = ks[i].key.find('.', start);
      const std::string part = ks[i].key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      auto it = std::find_if(cur->children.begin(), cur->children.end(),
                             [&](const Node& c) { return c.name == part; });
      if (it == cur->children.end()) {
        cur->children.push_back(Node{part, -1, {}});
        it = cur->children.end() - 1;
      }
      cur = &*it;
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    cur->key = static_cast<int>(i);
  }
  std::string out;
  auto emit = [&](auto&& self, const Node& n, int depth) -> void {
    const std::string indent(static_cast<size_t>(depth) * 2, ' ');
    if (n.key >= 0) {
      if (docs && !ks[n.key].doc.empty()) {
        std::string doc = ks[n.key].doc;
        std::replace(doc.begin(), doc.end(), '\n', ' ');
        out += indent + "# " + doc + "\n";
      }
      out += indent + n.name + ": " + format_value(values_[n.key]) + "\n";
      return;
    }
    out += indent + n.name + ":\n";
    for (const auto& c : n.children) self(self, c, depth + 1);
  };
  for (const auto& c : root.children) emit(emit, c, 0);
  return out;
}

std::string Config::canonical_text(const std::vector<std::string>& prefixes) const {
  for (const auto& p : prefixes) {
    const bool any = std::any_of(schema_.keys().begin(), schema_.keys().end(),
                                 [&](const KeyInfo& k) { return under_prefix(k.key, p); });
    DAN_CHECK(any, "Config::hash: prefix '{}' matches no key (nearest: '{}')", p, schema_.nearest(p));
  }
  std::vector<std::pair<std::string, size_t>> sel;
  const auto& ks = schema_.keys();
  for (size_t i = 0; i < ks.size(); ++i) {
    const bool take = prefixes.empty() || std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
                        return under_prefix(ks[i].key, p);
                      });
    if (take) sel.emplace_back(ks[i].key, i);
  }
  std::sort(sel.begin(), sel.end());
  std::string out;
  for (const auto& [key, i] : sel) out += key + ": " + format_value(values_[i]) + "\n";
  return out;
}

uint64_t Config::hash(const std::vector<std::string>& prefixes) const {
  return fnv1a64(canonical_text(prefixes));
}

}  // namespace dan::recsys
