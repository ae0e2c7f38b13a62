// Run directories: one folder per experiment run holding the resolved config, metrics.jsonl
// (one JSON object per line, appended and synced as training goes), results.json, plots and
// checkpoints. Every whole-file write is atomic (temp file in the same folder, fsync, rename),
// so a crash leaves either the old or the new file, never half of one. See recsys/RUNS.md.
//
//   RunDir run = RunDir::create("runs", "bert-dropoutnet");   // runs/bert-dropoutnet-20261127-142501/
//   run.write_config(cfg);                                    // config.yaml
//   run.append_jsonl("metrics.jsonl", {{"epoch", 1}, {"loss", 0.31}});
//   run.write_json("results.json", results);
//   // resume:
//   RunDir run = RunDir::open("runs/bert-dropoutnet-20261127-142501");
//   run.truncate_jsonl_after_epoch(ckpt_epoch);               // drop lines the checkpoint lacks
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dan::recsys {

class Config;

// Writes `text` to `path` atomically: `path + ".tmp.<pid>"` in the same folder, fsync, rename
// over `path`, fsync of the folder. On failure `path` is untouched, the temp file is removed
// and dan::Error names the file and the system error. The parent folder must exist.
void write_text_atomic(const std::string& path, const std::string& text);
// The JSON pretty-printed (2-space indent) with a final newline, atomically.
void write_json_atomic(const std::string& path, const nlohmann::json& j);
// The whole file; dan::Error naming it if it cannot be read.
std::string read_text_file(const std::string& path);

// JSON lines: appends one compact line + '\n' with O_APPEND, then fsync, so a line that was
// appended survives a crash and lines are never interleaved mid-line.
void append_jsonl(const std::string& path, const nlohmann::json& j);
// Every line as JSON. A last line without '\n' (a write cut short by a crash) is ignored;
// any other unparsable line is an error naming file:line.
std::vector<nlohmann::json> read_jsonl(const std::string& path);

struct TruncateResult {
  size_t kept = 0;     // lines left in the file
  size_t dropped = 0;  // lines removed (a torn last line counts)
};
// Keeps the longest prefix of lines in which every line with an integer "epoch" field has
// epoch <= `epoch` (lines without one inside the prefix are kept), drops the rest and a torn
// last line, and rewrites the file atomically. A missing file is left missing (0 kept).
// Used on resume from a checkpoint taken at the end of `epoch`.
TruncateResult truncate_jsonl_after_epoch(const std::string& path, int64_t epoch);

class RunDir {
 public:
  // Makes <base_dir>/<name>-<YYYYmmdd-HHMMSS> (local time of `now`); when it exists already,
  // <...>-2, -3, ... (claimed with mkdir, so two processes never share one). base_dir is
  // created if needed. `name` must be non-empty, without '/' and not "." or "..".
  static RunDir create(const std::string& base_dir, const std::string& name,
                       std::chrono::system_clock::time_point now = std::chrono::system_clock::now());
  // An existing run directory (to resume or to add results); an error if it is not a folder.
  static RunDir open(const std::string& path);
  // The most recent run of `name` under base_dir (largest timestamp, then suffix), if any.
  static std::optional<std::string> latest(const std::string& base_dir, const std::string& name);

  const std::string& path() const { return path_; }
  // path()/rel; `rel` is relative to the run directory (subfolders allowed, "plots/loss.svg").
  std::string file(const std::string& rel) const;
  bool exists(const std::string& rel) const;

  // Atomic whole-file writes into the run directory; subfolders of `rel` are created.
  void write_text(const std::string& rel, const std::string& text) const;
  void write_json(const std::string& rel, const nlohmann::json& j) const;
  // config.yaml: the resolved config, every key, with a doc comment above each.
  void write_config(const Config& cfg) const;

  void append_jsonl(const std::string& rel, const nlohmann::json& j) const;
  std::vector<nlohmann::json> read_jsonl(const std::string& rel) const;
  TruncateResult truncate_jsonl_after_epoch(int64_t epoch, const std::string& rel = "metrics.jsonl") const;

 private:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace dan::recsys
