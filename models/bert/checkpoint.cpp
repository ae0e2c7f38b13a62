// HF checkpoint directories: BertModel::from_pretrained (config.json + model.safetensors, HF
// parameter names) and save_pretrained (the same files, written atomically).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/serialize.h"
#include "models/bert/bert.h"
#include "models/bert/paths.h"

namespace dan::bert {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string quoted(const std::vector<std::string>& v, size_t max_items = 12) {
  std::string s = "[";
  for (size_t i = 0; i < v.size() && i < max_items; ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
  if (v.size() > max_items) s += fmt::format(", ... ({} in all)", v.size());
  return s + "]";
}

// DistilBERT's names inside a layer ("transformer.layer.N." + first) and BERT's
// ("encoder.layer.N." + second); the embeddings share BERT's names.
constexpr std::pair<const char*, const char*> kDistilLayerNames[] = {
    {"attention.q_lin.", "attention.self.query."},
    {"attention.k_lin.", "attention.self.key."},
    {"attention.v_lin.", "attention.self.value."},
    {"attention.out_lin.", "attention.output.dense."},
    {"sa_layer_norm.", "attention.output.LayerNorm."},
    {"ffn.lin1.", "intermediate.dense."},
    {"ffn.lin2.", "output.dense."},
    {"output_layer_norm.", "output.LayerNorm."},
};

// Renames the layer prefix `from` + N + "." to `to` + N + "." and the rest by the table
// (`forward`: DistilBERT -> BERT); names it does not know come back unchanged.
std::string rename_layer(const std::string& name, const std::string& from, const std::string& to,
                         bool forward) {
  if (!starts_with(name, from)) return name;
  const size_t dot = name.find('.', from.size());
  if (dot == std::string::npos) return name;
  const std::string rest = name.substr(dot + 1);
  for (const auto& [distil, bert] : kDistilLayerNames) {
    const std::string a = forward ? distil : bert, b = forward ? bert : distil;
    if (starts_with(rest, a))
      return to + name.substr(from.size(), dot + 1 - from.size()) + b + rest.substr(a.size());
  }
  return name;
}

std::string bert_name_of_distil(const std::string& name) {
  return rename_layer(name, "transformer.layer.", "encoder.layer.", true);
}

// BertModel's name -> the DistilBERT file's name, for errors.
std::string distilbert_name(const std::string& bert_name) {
  return rename_layer(bert_name, "encoder.layer.", "transformer.layer.", false);
}

// The checkpoint's tensors under BertModel's names: "bert." stripped (BertFor* checkpoints),
// old "LayerNorm.gamma/beta" renamed, task heads and the position_ids buffer dropped. Keys
// outside embeddings./encoder./pooler. are heads of some BertFor* model and are ignored, as
// HF does; keys inside them are kept, so a mismatch with the config is reported. DistilBERT
// files ("distilbert." prefix in DistilBertFor*; "transformer.layer.N." inside) are renamed to
// BERT's names and get an all-zero token-type embedding [1, hidden] (adding it changes nothing).
std::map<std::string, Tensor> bert_state_dict(std::map<std::string, Tensor> raw,
                                              const BertConfig& cfg, const std::string& file) {
  const bool distil = cfg.model_type == "distilbert";
  const std::string prefix = distil ? "distilbert." : "bert.";
  bool prefixed = false;
  for (const auto& [k, _] : raw) prefixed = prefixed || starts_with(k, prefix);
  std::map<std::string, Tensor> sd;
  for (auto& [k, t] : raw) {
    std::string name = k;
    if (prefixed) {
      if (!starts_with(name, prefix)) continue;  // cls.*, classifier.*, vocab_projector.*, ...
      name = name.substr(prefix.size());
    }
    if (name == "embeddings.position_ids") continue;
    if (distil) name = bert_name_of_distil(name);
    if (!starts_with(name, "embeddings.") && !starts_with(name, "encoder.") &&
        !starts_with(name, "pooler.") && !(distil && starts_with(name, "transformer."))) {
      continue;
    }
    if (ends_with(name, "LayerNorm.gamma")) name = name.substr(0, name.size() - 5) + "weight";
    if (ends_with(name, "LayerNorm.beta")) name = name.substr(0, name.size() - 4) + "bias";
    DAN_CHECK(is_floating(t.dtype()), "{}: tensor \"{}\" has dtype {}, expected a float type", file,
              k, t.dtype());
    DAN_CHECK(sd.emplace(name, t).second, "{}: two tensors map to \"{}\" (one is \"{}\")", file,
              name, k);
  }
  if (distil) {
    const auto words = sd.find("embeddings.word_embeddings.weight");
    const DType dt = words == sd.end() ? DType::f32 : words->second.dtype();
    sd.emplace("embeddings.token_type_embeddings.weight", zeros({1, cfg.hidden_size}, dt));
  }
  return sd;
}

}  // namespace

std::shared_ptr<BertModel> BertModel::from_pretrained(const std::string& dir, Generator& gen) {
  DAN_CHECK(fs::is_directory(dir), "BertModel::from_pretrained: {}", missing_weights_hint(dir));
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  DAN_CHECK(fs::exists(config_path),
            "BertModel::from_pretrained: {} is missing (expected an HF "
            "model directory with config.json and model.safetensors)",
            config_path);
  const BertConfig cfg = BertConfig::from_json_file(config_path);
  DAN_CHECK(fs::exists(weights_path), "BertModel::from_pretrained: {} is missing{}", weights_path,
            fs::exists(fs::path(dir) / "pytorch_model.bin")
                ? " (only pytorch_model.bin is there: convert it to safetensors first)"
                : "");

  std::map<std::string, Tensor> sd =
      bert_state_dict(load_safetensors(weights_path), cfg, weights_path);
  // Problems are reported under the file's own names.
  const bool distil = cfg.model_type == "distilbert";
  auto shown = [&](const std::string& n) { return distil ? distilbert_name(n) : n; };
  const bool pooler = sd.count("pooler.dense.weight") || sd.count("pooler.dense.bias");
  auto model = std::make_shared<BertModel>(cfg, pooler, gen, /*init_weights=*/false);

  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> expected;
  for (const auto& [name, dst] : model->state_dict()) {
    expected.insert(name);
    const auto it = sd.find(name);
    if (it == sd.end()) {
      missing.push_back(shown(name));
    } else if (it->second.shape() != dst.shape()) {
      mismatched.push_back(fmt::format("\"{}\": checkpoint {}, model {}", shown(name),
                                       shape_str(it->second.shape()), shape_str(dst.shape())));
    } else if (it->second.dtype() != dst.dtype()) {
      it->second = it->second.to(dst.dtype());  // e.g. an F64 export
    }
  }
  for (const auto& [name, _] : sd) {
    if (!expected.count(name)) unexpected.push_back(shown(name));
  }
  std::vector<std::string> problems;
  if (!missing.empty()) problems.push_back("missing keys " + quoted(missing));
  if (!mismatched.empty())
    problems.push_back(fmt::format("shape mismatches [{}]", fmt::join(mismatched, "; ")));
  if (!unexpected.empty())
    problems.push_back("keys the config has no place for " + quoted(unexpected));
  DAN_CHECK(problems.empty(),
            "BertModel::from_pretrained: {} does not match {} ({} layers, hidden "
            "{}, vocab {}): {}",
            weights_path, config_path, cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size,
            fmt::join(problems, "; "));
  model->load_state_dict(sd, /*strict=*/true);
  model->eval();  // as HF's from_pretrained
  return model;
}

void BertModel::save_pretrained(const std::string& dir) const {
  write_pretrained_dir(dir, cfg_.to_json(), state_dict(), {}, "BertModel::save_pretrained");
}

void write_pretrained_dir(const std::string& dir, const nlohmann::json& config,
                          const NamedTensors& tensors, const std::vector<std::string>& copy_files,
                          const std::string& who) {
  const fs::path target(dir);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const fs::path tmp = fs::path(dir + fmt::format(".tmp-{}", getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  {
    std::ofstream f(tmp / "config.json");
    f << config.dump(2) << "\n";
    DAN_CHECK(f.good(), "{}: cannot write {}", who, (tmp / "config.json").string());
  }
  save_safetensors((tmp / "model.safetensors").string(), tensors, {{"format", "pt"}});
  std::vector<std::string> names = {"config.json", "model.safetensors"};
  std::error_code ec;
  for (const std::string& src : copy_files) {
    const fs::path name = fs::path(src).filename();
    fs::copy_file(src, tmp / name, fs::copy_options::overwrite_existing, ec);
    DAN_CHECK(!ec, "{}: cannot copy {} into {}: {}", who, src, tmp.string(), ec.message());
    names.push_back(name.string());
  }
  if (!fs::exists(target)) {
    fs::rename(tmp, target, ec);
    DAN_CHECK(!ec, "{}: cannot rename {} to {}: {}", who, tmp.string(), dir, ec.message());
    return;
  }
  // An existing directory (with a vocab.txt, say) keeps its other files; each of ours
  // replaces the old one by a rename, so readers see either the old or the new file.
  DAN_CHECK(fs::is_directory(target), "{}: {} exists and is not a directory", who, dir);
  for (const std::string& name : names) {
    fs::rename(tmp / name, target / name, ec);
    DAN_CHECK(!ec, "{}: cannot move {} into {}: {}", who, name, dir, ec.message());
  }
  fs::remove_all(tmp);
}

}  // namespace dan::bert
