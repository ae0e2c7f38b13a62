// Schema-checked configs: values from nested YAML, overrides, base-file inheritance, exact
// error messages (unknown keys with suggestions, wrong types with file:line:col, bad YAML),
// to_yaml round trips, the Markdown table and the stability / sensitivity of config hashes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "recsys/config.h"

namespace fs = std::filesystem;
using namespace dan;
using namespace dan::recsys;

namespace {

Schema test_schema() {
  Schema s;
  s.add_string("data.dir", "", "dataset directory; empty: the default")
      .add_int("data.min_ratings", 5, "drop users with fewer ratings", {.min = 0})
      .add_int("wmf.factors", 200, "rank of U and V", {.min = 1})
      .add_double("wmf.reg", 0.1, "L2 regularisation", {.min = 0})
      .add_bool("wmf.use_gpu", false, "run ALS on the GPU")
      .add_ints("model.user_hidden", {800, 400}, "hidden sizes of the user tower", {.min = 1})
      .add_doubles("train.milestones", {0.5, 0.75}, "fractions of training where the lr drops",
                   {.min = 0, .max = 1})
      .add_strings("features.kinds", {"tfidf"}, "content features to concatenate")
      .add_enum("train.optimizer", "adam", {"sgd", "adam", "adamw"}, "optimizer")
      .add_int("seed", 0, "global seed");
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dan::Error& e) {
    return e.what();
  }
  return "(no error)";
}

class RecsysConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("dan_config_{}_{}", ::getpid(), info->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  fs::path dir_;
};

}  // namespace

// ---- reading values ----------------------------------------------------------------------------

TEST_F(RecsysConfigFiles, DefaultsWhenNothingIsSet) {
  const Config c = load_config(test_schema(), "");
  EXPECT_EQ(c.get_string("data.dir"), "");
  EXPECT_EQ(c.get_int("wmf.factors"), 200);
  EXPECT_EQ(c.get_double("wmf.reg"), 0.1);
  EXPECT_FALSE(c.get_bool("wmf.use_gpu"));
  EXPECT_EQ(c.get_ints("model.user_hidden"), (std::vector<int64_t>{800, 400}));
  EXPECT_EQ(c.get_doubles("train.milestones"), (std::vector<double>{0.5, 0.75}));
  EXPECT_EQ(c.get_strings("features.kinds"), (std::vector<std::string>{"tfidf"}));
  EXPECT_EQ(c.get_string("train.optimizer"), "adam");
  EXPECT_TRUE(c.is_default("wmf.factors"));
  EXPECT_EQ(c.where("wmf.factors"), "default");
  // An empty file sets nothing either.
  EXPECT_EQ(load_config(test_schema(), write("empty.yaml", "# nothing\n")).get_int("wmf.factors"), 200);
}

TEST_F(RecsysConfigFiles, ReadsNestedMapsAndDottedKeys) {
  const std::string p = write("a.yaml",
                              "data:\n"
                              "  dir: /data/mal\n"
                              "wmf:\n"
                              "  factors: 64\n"
                              "  reg: 1e-2\n"
                              "  use_gpu: true\n"
                              "model.user_hidden: [300, 200, 100]\n"
                              "train:\n"
                              "  milestones: [0.25, 1]\n"
                              "  optimizer: sgd\n"
                              "features:\n"
                              "  kinds: [bert, \"graph emb\"]\n"
                              "seed: -3\n");
  const Config c = load_config(test_schema(), p);
  EXPECT_EQ(c.get_string("data.dir"), "/data/mal");
  EXPECT_EQ(c.get_int("wmf.factors"), 64);
  EXPECT_EQ(c.get_double("wmf.reg"), 0.01);
  EXPECT_TRUE(c.get_bool("wmf.use_gpu"));
  EXPECT_EQ(c.get_ints("model.user_hidden"), (std::vector<int64_t>{300, 200, 100}));
  EXPECT_EQ(c.get_doubles("train.milestones"), (std::vector<double>{0.25, 1.0}));
  EXPECT_EQ(c.get_string("train.optimizer"), "sgd");
  EXPECT_EQ(c.get_strings("features.kinds"), (std::vector<std::string>{"bert", "graph emb"}));
  EXPECT_EQ(c.get_int("seed"), -3);
  EXPECT_EQ(c.get_int("data.min_ratings"), 5);  // not in the file: default
  EXPECT_EQ(c.where("wmf.factors"), p + ":4:12");
  EXPECT_EQ(c.where("model.user_hidden"), p + ":7:20");
  EXPECT_FALSE(c.is_default("wmf.factors"));
}

// ---- errors in files -----------------------------------------------------------------------------

TEST_F(RecsysConfigFiles, UnknownKeyNamesFileLineAndNearestKey) {
  const std::string p = write("a.yaml", "wmf:\n  factors: 3\n  factor: 4\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), p); }),
            p + ":3:3: unknown key 'wmf.factor'; did you mean 'wmf.factors'?");
  // An unknown section suggests the nearest section.
  const std::string q = write("b.yaml", "seed: 1\nwmff:\n  factors: 3\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), q); }),
            q + ":2:1: unknown key 'wmff'; did you mean 'wmf'?");
  const std::string r = write("c.yaml", "train:\n  optimiser: sgd\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), r); }),
            r + ":2:3: unknown key 'train.optimiser'; did you mean 'train.optimizer'?");
}

TEST_F(RecsysConfigFiles, WrongTypeNamesKeyLineExpectedAndFound) {
  const std::string p = write("a.yaml", "seed: 1\nwmf:\n  factors: abc\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), p); }),
            p + ":3:12: key 'wmf.factors': expected int, found \"abc\"");
  const std::string q = write("b.yaml", "wmf:\n  factors: 2.5\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), q); }),
            q + ":2:12: key 'wmf.factors': expected int, found \"2.5\"");
  const std::string quoted = write("c.yaml", "wmf:\n  reg: \"0.1\"\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), quoted); }),
            quoted + ":2:8: key 'wmf.reg': expected double, found \"0.1\" (a quoted string)");
  const std::string b = write("d.yaml", "wmf:\n  use_gpu: 1\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), b); }),
            b + ":2:12: key 'wmf.use_gpu': expected bool (true or false), found \"1\"");
  const std::string el = write("e.yaml", "model:\n  user_hidden: [800, x, 3]\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), el); }),
            el + ":2:22: key 'model.user_hidden' element 1: expected int, found \"x\"");
  const std::string sc = write("f.yaml", "model:\n  user_hidden: 800\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), sc); }),
            sc + ":2:16: key 'model.user_hidden': expected list of int, found \"800\" (write a list: [800])");
  const std::string nul = write("g.yaml", "data:\n  dir:\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), nul); }),
            nul + ":2:3: key 'data.dir': expected string, found nothing (null) (write \"\" for an empty string)");
  const std::string map = write("h.yaml", "wmf:\n  factors: {a: 1}\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), map); }),
            map + ":2:12: key 'wmf.factors': expected int, found a map");
  const std::string sec = write("i.yaml", "wmf: 3\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), sec); }),
            sec + ":1:6: 'wmf' is a section: expected a map of its keys (wmf.factors, wmf.reg, wmf.use_gpu), "
                  "found \"3\"");
}

TEST_F(RecsysConfigFiles, BoundsAndEnumsAreChecked) {
  const std::string p = write("a.yaml", "wmf:\n  factors: 0\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), p); }),
            p + ":2:12: key 'wmf.factors': 0 is below the minimum 1");
  const std::string q = write("b.yaml", "train:\n  milestones: [0.5, 1.5]\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), q); }),
            q + ":2:15: key 'train.milestones': element 1: 1.5 is above the maximum 1");
  const std::string e = write("c.yaml", "train:\n  optimizer: adagrad\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), e); }),
            e + ":2:14: key 'train.optimizer': \"adagrad\" is not one of: sgd, adam, adamw");
}

TEST_F(RecsysConfigFiles, MalformedYamlNamesFileLineAndColumn) {
  // The third line is indented by one space: yaml-cpp reports it at line 3, column 2.
  const std::string p = write("a.yaml", "wmf:\n  factors: 3\n reg: 0.1\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), p); }), p + ":3:2: malformed YAML: end of map not found");
  const std::string q = write("b.yaml", "wmf:\n  factors: [1, 2\nseed: 3\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), q); }),
            q + ":3:5: malformed YAML: end of sequence flow not found");
  const std::string top = write("c.yaml", "- 1\n- 2\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), top); }),
            top + ":1:1: expected a map of config keys at the top level, found a list");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), (dir_ / "missing.yaml").string()); }),
            "cannot read config file '" + (dir_ / "missing.yaml").string() + "'");
}

TEST_F(RecsysConfigFiles, KeySetTwiceInOneFileIsAnError) {
  const std::string p = write("a.yaml", "wmf:\n  factors: 3\nwmf.factors: 4\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), p); }),
            p + ":3:1: key 'wmf.factors' set twice in this file (first at " + p + ":2:3)");
}

// ---- overrides -------------------------------------------------------------------------------

TEST_F(RecsysConfigFiles, OverridesParseScalarsAndFlowLists) {
  const std::string p = write("a.yaml", "wmf:\n  factors: 64\n");
  const Config c = load_config(test_schema(), p,
                               {"wmf.factors=3", "model.user_hidden=[800,400, 200]", "train.milestones=[1e-1, .5]",
                                "features.kinds=[tfidf, bert]", "wmf.use_gpu=true", "wmf.reg=2",
                                "data.dir=/tmp/a b: c#d", "train.optimizer=adamw", "seed=7", "seed=8"});
  EXPECT_EQ(c.get_int("wmf.factors"), 3);
  EXPECT_EQ(c.where("wmf.factors"), "override 'wmf.factors=3'");
  EXPECT_EQ(c.get_ints("model.user_hidden"), (std::vector<int64_t>{800, 400, 200}));
  EXPECT_EQ(c.get_doubles("train.milestones"), (std::vector<double>{0.1, 0.5}));
  EXPECT_EQ(c.get_strings("features.kinds"), (std::vector<std::string>{"tfidf", "bert"}));
  EXPECT_TRUE(c.get_bool("wmf.use_gpu"));
  EXPECT_EQ(c.get_double("wmf.reg"), 2.0);
  EXPECT_EQ(c.get_string("data.dir"), "/tmp/a b: c#d");  // verbatim, no YAML parsing
  EXPECT_EQ(c.get_string("train.optimizer"), "adamw");
  EXPECT_EQ(c.get_int("seed"), 8);  // the last override wins
  EXPECT_EQ(load_config(test_schema(), "", {"model.user_hidden=[]"}).get_ints("model.user_hidden"),
            std::vector<int64_t>{});
  EXPECT_EQ(load_config(test_schema(), "", {"data.dir="}).get_string("data.dir"), "");
}

TEST_F(RecsysConfigFiles, OverrideErrorsNameTheOverride) {
  const Schema s = test_schema();
  EXPECT_EQ(error_of([&] { load_config(s, "", {"wmf.factor=3"}); }),
            "override 'wmf.factor=3': unknown key 'wmf.factor'; did you mean 'wmf.factors'?");
  EXPECT_EQ(error_of([&] { load_config(s, "", {"wmf.factors=3.5"}); }),
            "override 'wmf.factors=3.5': key 'wmf.factors': expected int, found \"3.5\"");
  EXPECT_EQ(error_of([&] { load_config(s, "", {"model.user_hidden=[800,x]"}); }),
            "override 'model.user_hidden=[800,x]': key 'model.user_hidden' element 1: expected int, found \"x\"");
  EXPECT_EQ(error_of([&] { load_config(s, "", {"model.user_hidden=[0]"}); }),
            "override 'model.user_hidden=[0]': key 'model.user_hidden': element 0: 0 is below the minimum 1");
  EXPECT_EQ(error_of([&] { load_config(s, "", {"wmf.factors"}); }), "override 'wmf.factors': expected key=value");
  EXPECT_EQ(error_of([&] { load_config(s, "", {"train.optimizer=adagrad"}); }),
            "override 'train.optimizer=adagrad': key 'train.optimizer': \"adagrad\" is not one of: sgd, adam, adamw");
  EXPECT_EQ(error_of([&] { load_config(s, "", {"wmf=3"}); }),
            "override 'wmf=3': 'wmf' is a section, not a key; its keys: wmf.factors, wmf.reg, wmf.use_gpu");
  const std::string bad = error_of([&] { load_config(s, "", {"model.user_hidden=[1,"}); });
  EXPECT_EQ(bad.rfind("override 'model.user_hidden=[1,': malformed value: ", 0), 0u) << bad;
}

// ---- inheritance -------------------------------------------------------------------------------

TEST_F(RecsysConfigFiles, BaseFileIsInheritedRelativeToTheIncludingFile) {
  const std::string base = write("base.yaml", "wmf:\n  factors: 64\n  reg: 0.5\nseed: 1\n");
  write("paper/mid.yaml", "base: ../base.yaml\nwmf:\n  reg: 0.25\ntrain:\n  optimizer: sgd\n");
  const std::string child = write("paper/exp/child.yaml", "include: ../mid.yaml\nseed: 2\n");
  const Config c = load_config(test_schema(), child, {"wmf.factors=8"});
  EXPECT_EQ(c.get_int("seed"), 2);                      // child
  EXPECT_EQ(c.get_double("wmf.reg"), 0.25);             // mid over base
  EXPECT_EQ(c.get_string("train.optimizer"), "sgd");    // mid
  EXPECT_EQ(c.get_int("wmf.factors"), 8);               // override over base
  EXPECT_EQ(c.get_int("data.min_ratings"), 5);          // default
  const Config m = load_config(test_schema(), (dir_ / "paper/mid.yaml").string());
  EXPECT_EQ(m.get_int("wmf.factors"), 64);
  EXPECT_EQ(m.where("wmf.factors"), (dir_ / "paper/../base.yaml").lexically_normal().string() + ":2:12");

  // Errors inside a base name the base file.
  write("bad_base.yaml", "wmf:\n  factor: 3\n");
  const std::string uses_bad = write("uses_bad.yaml", "base: bad_base.yaml\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), uses_bad); }),
            (dir_ / "bad_base.yaml").string() + ":2:3: unknown key 'wmf.factor'; did you mean 'wmf.factors'?");
  const std::string missing = write("missing_base.yaml", "seed: 1\nbase: nowhere.yaml\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), missing); }),
            missing + ":2:7: base: cannot read config file '" + (dir_ / "nowhere.yaml").string() + "'");
}

TEST_F(RecsysConfigFiles, BaseCyclesAndDoubleBasesAreErrors) {
  write("a.yaml", "base: b.yaml\nseed: 1\n");
  write("b.yaml", "base: a.yaml\n");
  const std::string msg = error_of([&] { load_config(test_schema(), (dir_ / "a.yaml").string()); });
  EXPECT_NE(msg.find("includes itself"), std::string::npos) << msg;
  const std::string two = write("two.yaml", "base: x.yaml\ninclude: y.yaml\n");
  EXPECT_EQ(error_of([&] { load_config(test_schema(), two); }),
            two + ":2:1: 'include' given twice (first at " + two + ":1:1); one base file per config");
}

// ---- programming errors ------------------------------------------------------------------------

TEST(RecsysConfigSchema, GettersRejectUndeclaredKeysAndWrongTypes) {
  const Config c(test_schema());
  EXPECT_EQ(error_of([&] { c.get_int("wmf.factor"); }),
            "Config::get_int('wmf.factor'): no such key in the schema (nearest: 'wmf.factors')");
  EXPECT_EQ(error_of([&] { c.get_double("wmf.factors"); }), "Config::get_double('wmf.factors'): the key is declared as int");
  EXPECT_EQ(error_of([&] { c.get_ints("train.milestones"); }),
            "Config::get_ints('train.milestones'): the key is declared as list of double");
  EXPECT_EQ(c.get_string("train.optimizer"), "adam");  // enums read as strings
}

TEST(RecsysConfigSchema, BadDeclarationsThrow) {
  Schema s = test_schema();
  EXPECT_EQ(error_of([&] { s.add_int("wmf.factors", 1, "again"); }), "Schema: key 'wmf.factors' declared twice");
  EXPECT_EQ(error_of([&] { s.add_int("wmf", 1, "x"); }), "Schema: key 'wmf' is already a section (of 'wmf.factors')");
  EXPECT_EQ(error_of([&] { s.add_int("seed.x", 1, "x"); }), "Schema: key 'seed.x' would make key 'seed' a section");
  EXPECT_EQ(error_of([&] { s.add_int("a.b", 0, "x", {.min = 1}); }), "Schema: key 'a.b': default 0 is below the minimum 1");
  EXPECT_EQ(error_of([&] { s.add_enum("a.c", "z", {"x", "y"}, "x"); }), "Schema: key 'a.c': default \"z\" is not one of: x, y");
  EXPECT_EQ(error_of([&] { s.add_int("base.x", 1, "x"); }), "Schema: key 'base.x': 'base' is reserved for config inheritance");
  EXPECT_NE(error_of([&] { s.add_int("a..b", 1, "x"); }).find("bad key 'a..b'"), std::string::npos);
}

// ---- output: YAML, Markdown, canonical text, hash -------------------------------------------------

TEST(RecsysConfigOutput, ToYamlListsEveryKeyInDeclarationOrderAndRoundTrips) {
  Config c = load_config(test_schema(), "",
                         {"data.dir=my dir: x", "wmf.reg=1e-2", "features.kinds=[bert, \"true\", \"a,b\"]"});
  const std::string expected =
      "data:\n"
      "  dir: \"my dir: x\"\n"
      "  min_ratings: 5\n"
      "wmf:\n"
      "  factors: 200\n"
      "  reg: 0.01\n"
      "  use_gpu: false\n"
      "model:\n"
      "  user_hidden: [800, 400]\n"
      "train:\n"
      "  milestones: [0.5, 0.75]\n"
      "  optimizer: adam\n"
      "features:\n"
      "  kinds: [bert, \"true\", \"a,b\"]\n"
      "seed: 0\n";
  EXPECT_EQ(c.to_yaml(), expected);
  const Config back = load_config_string(test_schema(), c.to_yaml(true), "resolved.yaml");
  EXPECT_EQ(back.canonical_text(), c.canonical_text());
  EXPECT_EQ(back.get_string("data.dir"), "my dir: x");
  EXPECT_EQ(back.get_strings("features.kinds"), (std::vector<std::string>{"bert", "true", "a,b"}));
  EXPECT_NE(c.to_yaml(true).find("  # rank of U and V\n  factors: 200\n"), std::string::npos);
  // A double that happens to be whole stays visibly a double.
  c.set("wmf.reg", 2.0);
  EXPECT_NE(c.to_yaml().find("  reg: 2.0\n"), std::string::npos);
}

TEST(RecsysConfigOutput, MarkdownTableHasOneRowPerKey) {
  Schema s;
  s.add_int("wmf.factors", 200, "rank of U and V", {.min = 1})
      .add_doubles("train.milestones", {0.5}, "lr drops at | these fractions", {.min = 0, .max = 1})
      .add_enum("train.optimizer", "adam", {"sgd", "adam"}, "optimizer")
      .add_string("data.dir", "", "dataset directory");
  EXPECT_EQ(s.markdown(),
            "| key | type | default | doc |\n"
            "|---|---|---|---|\n"
            "| `wmf.factors` | int (>= 1) | `200` | rank of U and V |\n"
            "| `train.milestones` | list of double (each in [0, 1]) | `[0.5]` | lr drops at \\| these fractions |\n"
            "| `train.optimizer` | one of `sgd`, `adam` | `adam` | optimizer |\n"
            "| `data.dir` | string | `\"\"` | dataset directory |\n");
  EXPECT_EQ(s.markdown("wmf"),
            "| key | type | default | doc |\n|---|---|---|---|\n| `wmf.factors` | int (>= 1) | `200` | rank of U and V |\n");
}

TEST(RecsysConfigHash, IsFnv1aOfTheCanonicalText) {
  // Reference values of 64-bit FNV-1a (offset basis and the published test vector for "a").
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  const Config c(test_schema());
  EXPECT_EQ(c.canonical_text({"wmf"}), "wmf.factors: 200\nwmf.reg: 0.1\nwmf.use_gpu: false\n");
  // FNV-1a 64 of that text, computed independently (Python: h ^= byte; h *= 0x100000001b3 mod 2^64).
  EXPECT_EQ(c.hash({"wmf"}), 0x9b06ebd7fd005fe1ull);
  EXPECT_EQ(c.hash({"wmf"}), fnv1a64(c.canonical_text({"wmf"})));
}

TEST(RecsysConfigHash, ChangesOnlyWithTheHashedSections) {
  const Schema s = test_schema();
  const Config a(s);
  const Config b = load_config(s, "", {"wmf.reg=0.2"});
  const Config same = load_config(s, "", {"wmf.reg=1e-1", "train.optimizer=sgd", "seed=5"});
  EXPECT_NE(a.hash({"wmf"}), b.hash({"wmf"}));
  EXPECT_NE(a.hash({"data", "wmf"}), b.hash({"data", "wmf"}));
  EXPECT_EQ(a.hash({"data"}), b.hash({"data"}));
  EXPECT_EQ(a.hash({"wmf"}), same.hash({"wmf"}));  // 1e-1 == 0.1; other sections ignored
  EXPECT_NE(a.hash(), same.hash());                 // everything
  EXPECT_EQ(a.hash({"wmf.factors"}), load_config(s, "", {"wmf.reg=9"}).hash({"wmf.factors"}));
  // Declaration order does not matter.
  Schema r;
  r.add_bool("wmf.use_gpu", false, "").add_double("wmf.reg", 0.1, "").add_int("wmf.factors", 200, "");
  EXPECT_EQ(Config(r).hash({"wmf"}), a.hash({"wmf"}));
  // "wmf" is a section prefix, not a string prefix; unknown prefixes are errors.
  EXPECT_EQ(error_of([&] { a.hash({"wm"}); }), "Config::hash: prefix 'wm' matches no key (nearest: 'wmf')");
}
