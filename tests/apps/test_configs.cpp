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
  // The BERT rows: static (no trained layer), fine-tuned last layer with the Fig. 10 decays,
  // Linear -> dot without the WMF inputs, the MLM checkpoint with Fig. 11's schedules.
  const auto load = [&](const char* f) { return dan::recsys::load_config(schema, (dir / f).string()); };
  EXPECT_EQ(load("bert_static.yaml").get_int("features.bert.finetune_layers"), 0);
  EXPECT_EQ(load("bert_static.yaml").get_int("model.user_content_top_n"), 5);
  for (const auto& [f, g] : std::vector<std::pair<const char*, double>>{
           {"bert_finetune.yaml", 0.99}, {"bert_finetune_decay09.yaml", 0.9}, {"bert_finetune_decay01.yaml", 0.1}}) {
    const auto c = load(f);
    EXPECT_EQ(c.get_int("features.bert.finetune_layers"), 1) << f;
    EXPECT_EQ(c.get_string("features.bert.schedule"), "exponential") << f;
    EXPECT_EQ(c.get_double("features.bert.gamma"), g) << f;
    EXPECT_EQ(c.get_double("train.lr"), 1e-4) << f;
    EXPECT_EQ(c.get_string("train.sampling"), "threshold") << f;
    EXPECT_EQ(c.get_int("train.batch_size"), 4) << f;
  }
  const auto dot = load("bert_linear_dot.yaml");
  EXPECT_FALSE(dot.get_bool("model.use_pref"));
  EXPECT_TRUE(dot.get_ints("model.hidden").empty());
  EXPECT_EQ(dot.get_double("train.dropout_p"), 1.0);
  EXPECT_EQ(load("bert_mlm_static_p0.yaml").get_double("train.dropout_p"), 0.0);
  EXPECT_EQ(load("bert_mlm_static_p05.yaml").get_string("features.bert.model_dir"), "runs/mlm-minilm");
  EXPECT_EQ(load("bert_mlm_finetune.yaml").get_string("features.bert.schedule"), "linear");
  EXPECT_EQ(load("bert_mlm_finetune.yaml").get_int("features.bert.decay_epochs"), 50);
  EXPECT_EQ(load("bert_mlm_finetune_fixed.yaml").get_string("features.bert.schedule"), "constant");
  EXPECT_EQ(load("bert_mlm_finetune_exp09.yaml").get_double("features.bert.gamma"), 0.9);
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
