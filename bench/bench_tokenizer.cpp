// Benchmark: BERT WordPiece tokenization (models/bert/tokenizer.h, all-MiniLM-L6-v2 vocab) of
// every mal2023 synopsis, [CLS] ... [SEP] truncated at 512 tokens, at 1 thread and all cores:
// tokens/s and MB/s of input text. Peer in the same run: Hugging Face `tokenizers`
// encode_batch (bench/reference/tokenizer_ref.py, interpreter $DAN_TOKENIZERS_PYTHON, default
// /tmp/tokvenv/bin/python) with the same thread count (RAYON_NUM_THREADS); prints the ratios and
// checks that both produced the same number of tokens and the same sum of ids.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/common.h"
#include "core/threads.h"
#include "models/bert/paths.h"
#include "models/bert/tokenizer.h"
#include "recsys/dataset.h"

namespace {

using dan::bench::Clock;
using dan::bench::process_cpu_s;

struct Options {
  std::string data = dan::recsys::default_data_dir();
  std::string model = dan::bert::minilm_dir();
  std::string python, script = std::string(DAN_BENCH_REFERENCE_DIR) + "/tokenizer_ref.py";
  int threads = 0;  // 0: 1 and all cores
  int repeats = 5;
  int64_t max_length = 512;
};

[[noreturn]] void usage() {
  fmt::print(stderr,
             "usage: bench_tokenizer [--data DIR] [--model DIR] [--threads T] [--repeats R] "
             "[--max-length N (-1: none)] [--python PY] [--reference tokenizer_ref.py]\n");
  std::exit(2);
}

struct Timing {
  double wall = 0, cpu = 0;  // medians, seconds
  int64_t tokens = 0, id_sum = 0;
};

Timing time_ours(const dan::bert::WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                 const Options& o) {
  (void)tok.encode_each(texts, o.max_length);  // warm-up
  std::vector<double> walls, cpus;
  Timing t;
  for (int r = 0; r < o.repeats; ++r) {
    const auto w0 = Clock::now();
    const double c0 = process_cpu_s();
    const auto encs = tok.encode_each(texts, o.max_length);
    walls.push_back(dan::bench::seconds_since(w0));
    cpus.push_back(process_cpu_s() - c0);
    t.tokens = t.id_sum = 0;
    for (const auto& e : encs) {
      t.tokens += e.size();
      for (int32_t id : e.ids) t.id_sum += id;
    }
  }
  t.wall = dan::bench::median_high(walls);
  t.cpu = dan::bench::median_high(cpus);
  return t;
}

// Runs the peer; an empty json with "error" set when it cannot.
nlohmann::json run_peer(const Options& o, const std::string& texts_json, int threads) {
  const std::string cmd = fmt::format(
      "RAYON_NUM_THREADS={0} '{1}' '{2}' --texts '{3}' --model-dir '{4}' --max-length {5} "
      "--repeats {6} 2>&1",
      threads, o.python, o.script, texts_json, o.model, o.max_length, o.repeats);
  const dan::bench::CommandOutput r = dan::bench::run_command(cmd);
  if (!r.started) return {{"error", "could not start: " + cmd}};
  const std::string& out = r.text;
  const std::string line = dan::bench::last_json_line(out);
  if (r.status != 0 || line.empty())
    return {{"error", fmt::format("exit {}: {}", r.status, out.substr(0, 400))}};
  try {
    return nlohmann::json::parse(line);
  } catch (const std::exception&) {
    return {{"error", "unreadable output: " + out.substr(0, 400)}};
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.python = dan::bench::env_or("DAN_TOKENIZERS_PYTHON", "/tmp/tokvenv/bin/python");
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (a == "--data")
      o.data = v;
    else if (a == "--model")
      o.model = v;
    else if (a == "--threads")
      o.threads = std::max(1, std::atoi(v.c_str()));
    else if (a == "--repeats")
      o.repeats = std::max(1, std::atoi(v.c_str()));
    else if (a == "--max-length")
      o.max_length = std::atoll(v.c_str());
    else if (a == "--python")
      o.python = v;
    else if (a == "--reference")
      o.script = v;
    else
      usage();
  }
  if (o.data.empty()) {
    fmt::print("bench_tokenizer: no dataset (set DEEPANINET_DATA or pass --data); skipped\n");
    return 0;
  }
  if (!std::filesystem::exists(std::filesystem::path(o.model) / "vocab.txt")) {
    fmt::print("bench_tokenizer: {}; skipped\n", dan::bert::missing_weights_hint(o.model));
    return 0;
  }
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  fmt::print("bench_tokenizer: {} cores, load average {:.2f}\n", cores,
             dan::bench::load_average_1min());

  dan::recsys::LoadOptions lo;
  lo.reviews = lo.recommendations = lo.rec_texts = false;
  const dan::recsys::Dataset ds = dan::recsys::load_dataset(o.data, lo);
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const auto& a : ds.anime) {
    if (a.synopsis.empty()) continue;
    texts.push_back(a.synopsis);
    bytes += a.synopsis.size();
  }
  const auto tok = dan::bert::WordPieceTokenizer::from_dir(o.model);
  fmt::print("{} synopses, {:.2f} MB of UTF-8, vocab {} ({}), max_length {}, median of {}\n",
             texts.size(), static_cast<double>(bytes) / 1e6, tok.vocab().size(), o.model,
             o.max_length, o.repeats);

  // The texts for the peer, as a JSON list.
  const std::string texts_json = (std::filesystem::temp_directory_path() /
                                  ("bench_tokenizer_" + std::to_string(::getpid()) + ".json"))
                                     .string();
  bool peer = std::filesystem::exists(o.python);
  if (peer) {
    std::ofstream(texts_json, std::ios::binary) << nlohmann::json(texts).dump();
  } else {
    fmt::print(
        "peer skipped: {} not found (make a venv with tokenizers, see bench/README.md, "
        "or pass --python / set DAN_TOKENIZERS_PYTHON)\n",
        o.python);
  }

  const std::vector<int> thread_counts =
      o.threads > 0 ? std::vector<int>{o.threads} : dan::bench::default_thread_counts(cores);
  const double mb = static_cast<double>(bytes) / 1e6;
  for (int t : thread_counts) {
    dan::set_num_threads(t);
    const Timing ours = time_ours(tok, texts, o);
    fmt::print(
        "threads {}: ours   {:7.3f} s wall {:7.3f} s cpu  {:6.2f} M tokens/s {:6.1f} MB/s "
        "({} tokens)\n",
        t, ours.wall, ours.cpu, static_cast<double>(ours.tokens) / ours.wall / 1e6, mb / ours.wall,
        ours.tokens);
    if (!peer) continue;
    const nlohmann::json p = run_peer(o, texts_json, t);
    if (p.contains("error")) {
      fmt::print("threads {}: peer failed: {}\n", t, p["error"].get<std::string>());
      peer = false;
      continue;
    }
    const double pw = p["wall_s"], pc = p["cpu_s"];
    const int64_t ptok = p["tokens"], psum = p["id_sum"];
    fmt::print(
        "threads {}: tokenizers {} {:7.3f} s wall {:7.3f} s cpu  {:6.2f} M tokens/s "
        "{:6.1f} MB/s ({} tokens)\n",
        t, p["version"].get<std::string>(), pw, pc, static_cast<double>(ptok) / pw / 1e6, mb / pw,
        ptok);
    fmt::print(
        "threads {}: ratio ours/tokenizers (> 1: we are faster): {:.2f}x wall, {:.2f}x "
        "cpu; same tokens: {}\n",
        t, pw / ours.wall, pc / ours.cpu,
        ptok == ours.tokens && psum == ours.id_sum ? "yes" : "NO (outputs differ)");
  }
  std::filesystem::remove(texts_json);
  return 0;
}
