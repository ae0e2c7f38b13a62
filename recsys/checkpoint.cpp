// Training checkpoints on top of core/serialize.h: key layout, metadata, and a load that
// checks everything it can before changing anything.
#include "recsys/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "core/error.h"
#include "core/serialize.h"

namespace dan::recsys {

namespace {

constexpr const char* kVersion = "1";
const char* const kKinds[] = {"module", "optimizer", "scheduler", "generator"};

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::optional<uint64_t> parse_u64(const std::string& s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<int64_t> parse_i64(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// "module:model,optimizer:optim" <-> kind -> names.
std::string encode_parts(const TrainState& s) {
  std::vector<std::string> items;
  for (const auto& [n, m] : s.modules) items.push_back("module:" + n);
  for (const auto& [n, o] : s.optimizers) items.push_back("optimizer:" + n);
  for (const auto& [n, c] : s.schedulers) items.push_back("scheduler:" + n);
  for (const auto& [n, g] : s.generators) items.push_back("generator:" + n);
  return fmt::format("{}", fmt::join(items, ","));
}

std::map<std::string, std::vector<std::string>> decode_parts(const std::string& text, const std::string& path) {
  std::map<std::string, std::vector<std::string>> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    const size_t colon = item.find(':');
    DAN_CHECK(colon != std::string::npos, "checkpoint '{}': bad \"dan.parts\" entry '{}'", path, item);
    out[item.substr(0, colon)].push_back(item.substr(colon + 1));
    start = comma + 1;
  }
  return out;
}

const std::string& meta(const std::map<std::string, std::string>& md, const std::string& key,
                        const std::string& path) {
  const auto it = md.find(key);
  DAN_CHECK(it != md.end(), "checkpoint '{}': metadata \"{}\" is missing", path, key);
  return it->second;
}

st::Reader open_checkpoint(const std::string& path) {
  st::Reader r = st::Reader::open(path);
  const auto it = r.metadata().find("dan.checkpoint");
  DAN_CHECK(it != r.metadata().end(),
            "'{}' is not a training checkpoint (no \"dan.checkpoint\" metadata); a weights file is "
            "read with Module::load",
            path);
  DAN_CHECK(it->second == kVersion, "checkpoint '{}': format version {} (this build reads {})", path,
            it->second, kVersion);
  return r;
}

}  // namespace

// ---- TrainState --------------------------------------------------------------------------------

void TrainState::check_name(const std::string& name) const {
  DAN_CHECK(!name.empty() && std::all_of(name.begin(), name.end(),
                                         [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }),
            "TrainState: bad name '{}': expected [A-Za-z0-9_]+", name);
  DAN_CHECK(name != "extra", "TrainState: the name 'extra' is reserved for the extra tensors");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& p) { return p.first == name; });
  };
  DAN_CHECK(!taken(modules) && !taken(optimizers) && !taken(schedulers) && !taken(generators),
            "TrainState: name '{}' registered twice", name);
}

TrainState& TrainState::module(const std::string& name, Module& m) {
  check_name(name);
  modules.emplace_back(name, &m);
  return *this;
}
TrainState& TrainState::optimizer(const std::string& name, Optimizer& o) {
  check_name(name);
  optimizers.emplace_back(name, &o);
  return *this;
}
TrainState& TrainState::scheduler(const std::string& name, LRScheduler& s) {
  check_name(name);
  schedulers.emplace_back(name, &s);
  return *this;
}
TrainState& TrainState::generator(const std::string& name, Generator& g) {
  check_name(name);
  generators.emplace_back(name, &g);
  return *this;
}

// ---- save ----------------------------------------------------------------------------------------

void save_checkpoint(const std::string& path, const TrainState& s) {
  NamedTensors all;
  for (const auto& [name, m] : s.modules)
    for (auto& [k, t] : m->state_dict()) all.emplace_back(name + "." + k, t);
  for (const auto& [name, o] : s.optimizers)
    for (auto& kv : o->state_dict(name + ".")) all.push_back(kv);
  for (const auto& [name, c] : s.schedulers)
    for (auto& kv : c->state_dict(name + ".")) all.push_back(kv);
  for (const auto& [k, t] : s.extra) {
    DAN_CHECK(t.defined(), "save_checkpoint '{}': extra tensor '{}' is undefined", path, k);
    all.emplace_back("extra." + k, t);
  }

  std::map<std::string, std::string> md;
  for (const auto& [k, v] : s.metadata) {
    DAN_CHECK(!starts_with(k, "dan.") && k != "format",
              "save_checkpoint '{}': metadata key '{}' is reserved (\"dan.*\", \"format\")", path, k);
    md[k] = v;
  }
  md["format"] = "pt";  // what safetensors.torch writes; lets torch tools accept the file
  md["dan.checkpoint"] = kVersion;
  md["dan.epoch"] = std::to_string(s.epoch);
  md["dan.step"] = std::to_string(s.step);
  md["dan.parts"] = encode_parts(s);
  for (const auto& [name, g] : s.generators) {
    md["dan.generator." + name + ".seed"] = std::to_string(g->seed());
    md["dan.generator." + name + ".offset"] = std::to_string(g->offset());
  }
  save_safetensors(path, all, md);
}

// ---- load ----------------------------------------------------------------------------------------

void load_checkpoint(const std::string& path, TrainState& s) {
  const st::Reader r = open_checkpoint(path);
  const auto& md = r.metadata();
  std::map<std::string, Tensor> sd;
  for (const auto& info : r.tensors()) sd.emplace(info.name, load_tensor(r, info.name));

  std::vector<std::string> problems;
  const auto file_parts = decode_parts(meta(md, "dan.parts", path), path);
  std::map<std::string, std::string> registered;  // name -> kind
  for (const auto& [n, m] : s.modules) registered[n] = "module";
  for (const auto& [n, o] : s.optimizers) registered[n] = "optimizer";
  for (const auto& [n, c] : s.schedulers) registered[n] = "scheduler";
  for (const auto& [n, g] : s.generators) registered[n] = "generator";
  std::map<std::string, std::string> in_file;  // name -> kind
  for (const auto& [kind, names] : file_parts)
    for (const auto& n : names) in_file[n] = kind;
  for (const auto& [n, kind] : registered) {
    const auto it = in_file.find(n);
    if (it == in_file.end()) {
      problems.push_back(fmt::format("{} '{}': not in the checkpoint", kind, n));
    } else if (it->second != kind) {
      problems.push_back(fmt::format("'{}': a {} in the checkpoint, a {} here", n, it->second, kind));
    }
  }
  for (const auto& [n, kind] : in_file) {
    if (!registered.count(n)) problems.push_back(fmt::format("{} '{}': in the checkpoint but not registered", kind, n));
  }

  // Tensor keys nobody claims (a checkpoint edited by hand or by another program).
  for (const auto& [k, t] : sd) {
    const std::string head = k.substr(0, k.find('.'));
    const bool claimed = head == "extra" || (registered.count(head) && registered[head] != "generator");
    if (!claimed && (!in_file.count(head))) problems.push_back(fmt::format("{}: unexpected tensor", k));
  }

  // Modules: keys, shapes and dtypes against their state_dict.
  std::vector<std::map<std::string, Tensor>> module_sd(s.modules.size());
  for (size_t mi = 0; mi < s.modules.size(); ++mi) {
    const auto& [name, m] = s.modules[mi];
    if (!in_file.count(name)) continue;
    const std::string pre = name + ".";
    std::set<std::string> expected;
    for (const auto& [k, t] : m->state_dict()) {
      expected.insert(k);
      const auto it = sd.find(pre + k);
      if (it == sd.end()) {
        problems.push_back(fmt::format("{}{}: missing from the checkpoint", pre, k));
        continue;
      }
      const Tensor& c = it->second;
      if (c.shape() != t.shape()) {
        problems.push_back(fmt::format("{}{}: shape {} in the checkpoint, {} here", pre, k, shape_str(c.shape()),
                                       shape_str(t.shape())));
      } else if (c.dtype() != t.dtype()) {
        problems.push_back(fmt::format("{}{}: dtype {} in the checkpoint, {} here", pre, k, c.dtype(), t.dtype()));
      }
      module_sd[mi].emplace(k, c);
    }
    for (const auto& [k, t] : sd) {
      if (starts_with(k, pre) && !expected.count(k.substr(pre.size()))) {
        problems.push_back(fmt::format("{}: in the checkpoint, not in module '{}' ({})", k, name, m->type_name()));
      }
    }
  }
  // Schedulers: one non-negative i64 epoch each.
  for (const auto& [name, c] : s.schedulers) {
    if (!in_file.count(name)) continue;
    const auto it = sd.find(name + ".epoch");
    if (it == sd.end()) {
      problems.push_back(fmt::format("{}.epoch: missing from the checkpoint", name));
    } else if (it->second.numel() != 1 || it->second.dtype() != DType::i64 || it->second.item() < 0) {
      problems.push_back(fmt::format("{}.epoch: expected a non-negative i64 scalar, found {} {}", name,
                                     it->second.dtype(), shape_str(it->second.shape())));
    }
  }
  // Generators and counters from the metadata.
  std::vector<GeneratorState> gen_states(s.generators.size());
  for (size_t gi = 0; gi < s.generators.size(); ++gi) {
    const std::string& name = s.generators[gi].first;
    if (!in_file.count(name)) continue;
    for (const char* field : {"seed", "offset"}) {
      const std::string key = "dan.generator." + name + "." + field;
      const auto it = md.find(key);
      const auto v = it == md.end() ? std::nullopt : parse_u64(it->second);
      if (!v) {
        problems.push_back(fmt::format("metadata \"{}\": {}", key, it == md.end() ? "missing" : "not a u64: " + it->second));
      } else {
        (std::string(field) == "seed" ? gen_states[gi].seed : gen_states[gi].offset) = *v;
      }
    }
  }
  const auto epoch = parse_i64(meta(md, "dan.epoch", path));
  const auto step = parse_i64(meta(md, "dan.step", path));
  if (!epoch) problems.push_back("metadata \"dan.epoch\": not an integer");
  if (!step) problems.push_back("metadata \"dan.step\": not an integer");

  if (!problems.empty()) {
    fail("load_checkpoint '{}': {} problem{}:\n  {}", path, problems.size(), problems.size() == 1 ? "" : "s",
         fmt::join(problems, "\n  "));
  }

  // Optimizers validate their own state; they go first so that their failure leaves the
  // modules untouched.
  for (const auto& [name, o] : s.optimizers) {
    try {
      o->load_state_dict(sd, name + ".");
    } catch (const Error& e) {
      fail("load_checkpoint '{}': optimizer '{}': {}", path, name, e.what());
    }
  }
  for (const auto& [name, c] : s.schedulers) c->load_state_dict(sd, name + ".");
  for (size_t mi = 0; mi < s.modules.size(); ++mi) s.modules[mi].second->load_state_dict(module_sd[mi], true);
  for (size_t gi = 0; gi < s.generators.size(); ++gi) s.generators[gi].second->set_state(gen_states[gi]);
  s.epoch = *epoch;
  s.step = *step;
  s.extra.clear();
  for (const auto& [k, t] : sd)
    if (starts_with(k, "extra.")) s.extra.emplace(k.substr(6), t);
  s.metadata.clear();
  for (const auto& [k, v] : md)
    if (!starts_with(k, "dan.") && k != "format") s.metadata.emplace(k, v);
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  const st::Reader r = open_checkpoint(path);
  const auto& md = r.metadata();
  CheckpointInfo info;
  const auto epoch = parse_i64(meta(md, "dan.epoch", path));
  const auto step = parse_i64(meta(md, "dan.step", path));
  DAN_CHECK(epoch && step, "checkpoint '{}': \"dan.epoch\" / \"dan.step\" are not integers", path);
  info.epoch = *epoch;
  info.step = *step;
  info.parts = decode_parts(meta(md, "dan.parts", path), path);
  for (const char* kind : kKinds) info.parts.try_emplace(kind);
  for (const auto& [k, v] : md)
    if (!starts_with(k, "dan.") && k != "format") info.metadata.emplace(k, v);
  for (const auto& t : r.tensors()) info.tensor_names.push_back(t.name);
  std::sort(info.tensor_names.begin(), info.tensor_names.end());
  return info;
}

}  // namespace dan::recsys
