// The experiment configs: every file in configs/ loads against the runner's schema (so an
// unknown key or a wrong type in a shipped config fails here, not in a user's run), and
// configs/README.md documents exactly the keys the schema declares, with their defaults.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/schema.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST(Configs, EveryShippedConfigLoads) {
  const auto schema = dan::apps::train_schema();
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(DAN_SOURCE_DIR) / "configs")) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW(dan::recsys::load_config(schema, e.path().string()));
    ++n;
  }
  EXPECT_GE(n, 15);
}

TEST(Configs, PaperConfigsChangeWhatTheyClaim) {
  const auto schema = dan::apps::train_schema();
  const fs::path dir = fs::path(DAN_SOURCE_DIR) / "configs" / "paper";
  const auto p0 = dan::recsys::load_config(schema, (dir / "dropout_p0.yaml").string());
  EXPECT_EQ(p0.get_double("train.dropout_p"), 0.0);
  const auto recs = dan::recsys::load_config(schema, (dir / "tfidf_synopsis_reviews_recs.yaml").string());
  EXPECT_EQ(recs.get_strings("features.fields"),
            (std::vector<std::string>{"synopsis", "reviews", "rec_texts"}));
  const auto single = dan::recsys::load_config(schema, (dir / "appendix_d_single_bn.yaml").string());
  EXPECT_TRUE(single.get_ints("model.hidden").empty());
  EXPECT_TRUE(single.get_bool("model.batch_norm"));
  const auto w2v = dan::recsys::load_config(schema, (dir / "word2vec.yaml").string());
  EXPECT_EQ(w2v.get_string("features.kind"), "word2vec");
}

TEST(Configs, ReadmeDocumentsEveryKey) {
  const std::string readme = slurp(fs::path(DAN_SOURCE_DIR) / "configs" / "README.md");
  const std::string table = dan::apps::train_schema().markdown();
  EXPECT_NE(readme.find(table), std::string::npos)
      << "configs/README.md is out of date: regenerate its key table with `deepaninet config-doc`";
}

TEST(Configs, UnknownKeyInOverrideIsNamed) {
  const auto schema = dan::apps::train_schema();
  const fs::path base = fs::path(DAN_SOURCE_DIR) / "configs" / "paper" / "base.yaml";
  try {
    dan::recsys::load_config(schema, base.string(), {"wmf.factor=3"});
    FAIL() << "expected an error";
  } catch (const dan::Error& e) {
    EXPECT_NE(std::string(e.what()).find("wmf.factors"), std::string::npos) << e.what();
  }
}
