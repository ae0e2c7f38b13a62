// Typed, schema-checked experiment configs: code declares every key once (type, default, one
// line of doc) in a Schema; load_config reads a YAML file (optionally inheriting a base file),
// applies `key=value` command-line overrides and rejects anything the schema does not know,
// with the file, line and a suggestion. See recsys/RUNS.md for the file format.
//
//   Schema s;
//   s.add_string("data.dir", "", "dataset directory (mal2023 format); empty: the default");
//   s.add_int("wmf.factors", 200, "rank of the user and item factors", {.min = 1});
//   s.add_double("wmf.reg", 0.1, "L2 regularisation of ALS", {.min = 0});
//   s.add_ints("model.user_hidden", {800, 400}, "hidden sizes of the user tower", {.min = 1});
//   s.add_enum("train.optimizer", "adam", {"sgd", "adam", "adamw"}, "optimizer");
//   Config cfg = load_config(s, "configs/paper/bert.yaml", {"wmf.factors=100"});
//   int64_t r = cfg.get_int("wmf.factors");
//   uint64_t key = cfg.hash({"data", "wmf"});  // cache key of the WMF factors
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace dan::recsys {

enum class ConfigType { boolean, integer, real, string, ints, doubles, strings, choice };

// "bool", "int", "double", "string", "list of int", "list of double", "list of string",
// "one of" (the names used in error messages and in Schema::markdown).
const char* config_type_name(ConfigType t);

// A value of any declared type. `choice` keys hold a std::string.
using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>,
                                 std::vector<double>, std::vector<std::string>>;

// Inclusive bounds for int / double keys and for every element of int / double lists.
struct Bounds {
  std::optional<double> min = std::nullopt;
  std::optional<double> max = std::nullopt;
};

struct KeyInfo {
  std::string key;  // dotted: "wmf.factors"
  ConfigType type = ConfigType::integer;
  ConfigValue default_value;
  std::string doc;
  std::vector<std::string> choices;  // for ConfigType::choice
  Bounds bounds;
};

// The declared keys of a config, in declaration order. Declaring is done by code, once, so a
// bad declaration (duplicate key, a key that is also a section, a default outside its bounds
// or choices, a reserved name) throws dan::Error immediately: it is a programming error.
//
// Keys are dotted paths of identifiers ([A-Za-z0-9_], at least one character per part); the
// parts before the last are sections ("model.user_hidden" lives in section "model"). A name
// cannot be both a key and a section. The top-level names "base" and "include" are reserved
// for inheritance (see load_config).
class Schema {
 public:
  Schema& add_bool(const std::string& key, bool def, const std::string& doc);
  Schema& add_int(const std::string& key, int64_t def, const std::string& doc, Bounds b = {});
  Schema& add_double(const std::string& key, double def, const std::string& doc, Bounds b = {});
  Schema& add_string(const std::string& key, const std::string& def, const std::string& doc);
  Schema& add_ints(const std::string& key, const std::vector<int64_t>& def, const std::string& doc,
                   Bounds b = {});
  Schema& add_doubles(const std::string& key, const std::vector<double>& def,
                      const std::string& doc, Bounds b = {});
  Schema& add_strings(const std::string& key, const std::vector<std::string>& def,
                      const std::string& doc);
  // A string restricted to `allowed` (e.g. an optimizer name); `def` must be one of them.
  Schema& add_enum(const std::string& key, const std::string& def,
                   const std::vector<std::string>& allowed, const std::string& doc);

  const std::vector<KeyInfo>& keys() const { return keys_; }
  const KeyInfo* find(const std::string& key) const;  // nullptr if not declared
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // True for a proper prefix of a declared key ("model" for "model.user_hidden").
  bool is_section(const std::string& name) const;

  // The declared key or section nearest to `name` by edit distance (ties: declaration order),
  // for "did you mean" suggestions; "" for an empty schema.
  std::string nearest(const std::string& name) const;

  // A Markdown table, one row per key in declaration order:
  //   | key | type | default | doc |
  //   |---|---|---|---|
  //   | `wmf.factors` | int (>= 1) | `200` | rank of the user and item factors |
  // With a prefix, only the keys of that section (prefix "wmf" → "wmf.*"), so a README can
  // put one table under each section heading.
  std::string markdown(const std::string& prefix = "") const;

 private:
  Schema& add(KeyInfo k);

  std::vector<KeyInfo> keys_;
};

// A resolved config: every key of the schema has a value (its default unless set). Values are
// read with the typed getters; asking for an undeclared key, or with the wrong getter, throws
// dan::Error (a programming error, not a user one).
class Config {
 public:
  // Every key at its default.
  explicit Config(Schema schema);

  const Schema& schema() const { return schema_; }

  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;  // string and enum keys
  const std::vector<int64_t>& get_ints(const std::string& key) const;
  const std::vector<double>& get_doubles(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  const ConfigValue& value(const std::string& key) const;

  // Sets a value from code (type-checked and bounds-checked like a file value); `origin`
  // is what where() reports for it.
  void set(const std::string& key, ConfigValue v, const std::string& origin = "set from code");

  // Where a key's value came from: "configs/x.yaml:12:3", "override 'wmf.factors=3'" or
  // "default". Lets later semantic checks point at the line to fix:
  //   DAN_CHECK(k < n, "{}: wmf.factors = {} must be below the number of items {}",
  //             cfg.where("wmf.factors"), k, n);
  const std::string& where(const std::string& key) const;
  bool is_default(const std::string& key) const;

  // The resolved config as YAML: nested maps, sections and keys in declaration order, every
  // key (defaults included). load_config of this text gives back the same values. With
  // `docs`, each key is preceded by a "# doc" comment line.
  std::string to_yaml(bool docs = false) const;

  // One "key: value" line per key under `prefixes`, keys sorted, values formatted as in
  // to_yaml (doubles in shortest round-trip form): independent of declaration order and of
  // how a value was written ("1e-2" and "0.01" give the same text). A prefix names a section
  // or a key ("wmf" matches "wmf" and "wmf.*", not "wmf2.*"); an empty list means every key;
  // a prefix that matches no key throws (a typo would otherwise hash nothing).
  std::string canonical_text(const std::vector<std::string>& prefixes = {}) const;
  // FNV-1a 64 of canonical_text(prefixes): a stable cache key for artifacts that depend only
  // on those sections (e.g. WMF factors on "data", "split" and "wmf"). It changes when any
  // value under the prefixes changes, or a key is added there; not when keys elsewhere change.
  uint64_t hash(const std::vector<std::string>& prefixes = {}) const;

 private:
  size_t index_of(const std::string& key, const char* getter) const;
  template <typename T>
  const T& typed(const std::string& key, const char* getter, ConfigType want1,
                 ConfigType want2) const;

  Schema schema_;
  std::vector<ConfigValue> values_;   // parallel to schema_.keys()
  std::vector<std::string> origins_;  // "" = default
};

// Reads `yaml_path` (nested maps of the schema's sections; a dotted key such as
// "wmf.factors: 3" is accepted too), then applies `overrides` in order, each "key=value" with
// a dotted key and a YAML value ("wmf.factors=3", "model.user_hidden=[800,400]",
// "train.lr=1e-3"; string and enum keys take the text after '=' verbatim, without YAML
// parsing, so paths need no quoting). An empty yaml_path means defaults plus overrides.
//
// Inheritance: a top-level `base: other.yaml` (or its synonym `include:`) loads that file
// first, its path relative to the including file's directory; the including file's keys then
// override it, key by key (lists are replaced, not merged). A base may itself have a base
// (cycles are an error).
//
// Every error is a dan::Error with one message that names where and what:
//   configs/a.yaml:4:3: unknown key 'wmf.factor'; did you mean 'wmf.factors'?
//   configs/a.yaml:5:12: key 'wmf.reg': expected double, found "abc"
//   configs/a.yaml:6:20: key 'train.optimizer': "adagrad" is not one of: sgd, adam, adamw
//   configs/a.yaml:7:5: malformed YAML: ...           (yaml-cpp's message, 1-based line:col)
//   override 'wmf.factor=3': unknown key 'wmf.factor'; did you mean 'wmf.factors'?
// A key set twice in one file is an error too (YAML would silently keep one).
Config load_config(const Schema& schema, const std::string& yaml_path,
                   const std::vector<std::string>& overrides = {});

// As load_config, from YAML text; `origin` names it in errors and is the path bases are
// resolved against.
Config load_config_string(const Schema& schema, const std::string& yaml_text,
                          const std::string& origin,
                          const std::vector<std::string>& overrides = {});

// FNV-1a 64 of a byte string (the hash of Config::hash), exposed for other cache keys.
uint64_t fnv1a64(const std::string& bytes);
// FNV-1a 64 continued over more bytes from the hash h of what came before (h = fnv1a64("")
// to start), for inputs hashed in pieces: fnv1a64(a + b) == fnv1a64_continue(b, fnv1a64(a)).
uint64_t fnv1a64_continue(std::string_view bytes, uint64_t h);

// Levenshtein distance (used for the suggestions; exposed for the runner's own).
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace dan::recsys
