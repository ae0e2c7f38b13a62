// Benchmark: the BERT encoder (all-MiniLM-L6-v2, or random weights of its shape) on a batch
// of 32 x 128 tokens: inference forward and a training step (forward in training mode with
// dropout, loss = sum(h * W), backward), ours (fused and composed kernels) against PyTorch
// (bench/reference/bert_ref.py, a subprocess: transformers' BertModel when it imports, else a
// plain-PyTorch BERT) with the same weights, inputs and thread count.
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/bert_inputs.h"
#include "bench/common.h"
#include "core/serialize.h"
#include "core/threads.h"
#include "models/bert/bert.h"
#include "models/bert/paths.h"

namespace {

using dan::Tensor;
namespace bert = dan::bert;
namespace fs = std::filesystem;
using dan::bench::median_high;
using dan::bench::PeerResult;
using Timing = dan::bench::WallCpu;  // medians, seconds

struct Options {
  std::vector<int> threads;  // empty: 1 and all cores
  int64_t batch = 32, seq = 128;
  int repeats = 5;
  int rounds = 3;  // ours and the peer alternate this many times; medians over rounds
  bool padded = false, train = true, peer = true;
  std::string weights;  // empty: minilm_dir() when present, else random
  std::string kernels = "both";
  std::string python;  // empty: /tmp/hfvenv/bin/python when present, else /usr/bin/python3
  std::string script = std::string(DAN_BENCH_REFERENCE_DIR) + "/bert_ref.py";
  std::string impl = "auto";
};

[[noreturn]] void usage(const char* argv0) {
  fmt::print(stderr,
             "usage: {} [--threads T] [--batch B] [--seq T] [--repeats N] [--rounds R] [--padded]\n"
             "  [--weights DIR|random] [--kernels fused|composed|both] [--no-train] [--no-peer]\n"
             "  [--python PATH] [--reference bert_ref.py] [--impl auto|hf|plain]\n",
             argv0);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--padded") {
      o.padded = true;
      continue;
    }
    if (a == "--no-train") {
      o.train = false;
      continue;
    }
    if (a == "--no-peer") {
      o.peer = false;
      continue;
    }
    if (i + 1 >= argc) usage(argv[0]);
    const std::string v = argv[++i];
    if (a == "--threads")
      o.threads.push_back(std::max(1, std::atoi(v.c_str())));
    else if (a == "--batch")
      o.batch = std::max(1L, std::atol(v.c_str()));
    else if (a == "--seq")
      o.seq = std::max(2L, std::atol(v.c_str()));
    else if (a == "--repeats")
      o.repeats = std::max(1, std::atoi(v.c_str()));
    else if (a == "--rounds")
      o.rounds = std::max(1, std::atoi(v.c_str()));
    else if (a == "--weights")
      o.weights = v;
    else if (a == "--kernels")
      o.kernels = v;
    else if (a == "--python")
      o.python = v;
    else if (a == "--reference")
      o.script = v;
    else if (a == "--impl")
      o.impl = v;
    else
      usage(argv[0]);
  }
  if (o.kernels != "fused" && o.kernels != "composed" && o.kernels != "both") usage(argv[0]);
  return o;
}

// Median wall and process-CPU time of f() over `n` runs after one warm-up run.
Timing time_it(int n, const std::function<void()>& f) {
  return dan::bench::time_wall_cpu(1, n, f, median_high);
}

PeerResult run_peer(const Options& o, const std::string& python, const std::string& file,
                    const std::string& model_dir, int threads) {
  return dan::bench::run_peer(fmt::format(
      "{0} '{1}' '{2}' '{3}' --model-dir '{4}' --threads {5} --repeats {6} --impl {7}{8} 2>&1",
      dan::bench::peer_thread_env(threads), python, o.script, file, model_dir, threads, o.repeats,
      o.impl, o.train ? "" : " --no-train"));
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows in a log as it happens
  Options o = parse(argc, argv);
  if (o.threads.empty())
    o.threads =
        dan::bench::default_thread_counts(static_cast<int>(std::thread::hardware_concurrency()));
  std::string python = o.python;
  if (python.empty())
    python = fs::exists("/tmp/hfvenv/bin/python") ? "/tmp/hfvenv/bin/python" : "/usr/bin/python3";

  fmt::print("bench_bert: BERT encoder, ours vs PyTorch\n");
  fmt::print("machine cores: {}   load average: {}\n", std::thread::hardware_concurrency(),
             dan::bench::load_average());

  // The model: MiniLM's weights, or random ones of its shape saved for the peer.
  const std::string tmp_dir = fmt::format("/tmp/bench_bert_{}", getpid());
  fs::create_directories(tmp_dir);
  std::string model_dir = o.weights;
  if (model_dir.empty()) model_dir = fs::exists(bert::minilm_dir()) ? bert::minilm_dir() : "random";
  std::shared_ptr<bert::BertModel> model;
  dan::Generator gen(11);
  if (model_dir == "random") {
    model =
        std::make_shared<bert::BertModel>(dan::bench::bert_config(dan::bench::kMiniLM), true, gen);
    model_dir = tmp_dir + "/random-minilm-shape";
    model->save_pretrained(model_dir);
    fmt::print("weights: random (HF init) with all-MiniLM-L6-v2's shape, saved to {}\n", model_dir);
  } else {
    model = bert::BertModel::from_pretrained(model_dir, gen);
    fmt::print("weights: {}\n", model_dir);
  }
  const bert::BertConfig& cfg = model->config();
  fmt::print("model: {} layers, hidden {}, {} heads, intermediate {}, {} parameters\n",
             cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size,
             model->num_parameters());

  // Inputs: ids in [1000, vocab) (no special tokens needed for timing), lengths all T, or
  // uniform in [T/4, T] with --padded; the loss weights of the training step.
  const int64_t B = o.batch, T = o.seq;
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto next = [&]() {
    const uint64_t z = dan::bench::splitmix64(s);
    s += 0x9E3779B97F4A7C15ull;
    return z;
  };
  const dan::bench::TokenBatch batch = dan::bench::make_token_batch(
      B, T,
      [&](int64_t) {
        return o.padded
                   ? T / 4 + static_cast<int64_t>(next() % static_cast<uint64_t>(T - T / 4 + 1))
                   : T;
      },
      [&] {
        return 1000 + static_cast<int64_t>(next() % static_cast<uint64_t>(cfg.vocab_size - 1000));
      });
  const int64_t tokens = batch.tokens;
  const Tensor input_ids = batch.ids_tensor();
  const Tensor attention_mask = batch.mask_tensor();
  dan::Generator wgen(12);
  const Tensor loss_weight = dan::randn({B, T, cfg.hidden_size}, wgen);
  fmt::print(
      "inputs: batch {} x {} tokens ({} real, {}); training step: dropout {} / {}, "
      "loss = sum(h * W), backward\n",
      B, T, tokens, o.padded ? "lengths uniform in [T/4, T]" : "no padding",
      cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob);
  const std::string file = tmp_dir + "/inputs.safetensors";
  dan::save_safetensors(
      file,
      {{"input_ids", input_ids}, {"attention_mask", attention_mask}, {"loss_weight", loss_weight}});

  std::vector<bert::Kernels> kinds;
  if (o.kernels != "composed") kinds.push_back(bert::Kernels::fused);
  if (o.kernels != "fused") kinds.push_back(bert::Kernels::composed);
  auto kname = [](bert::Kernels k) { return k == bert::Kernels::fused ? "fused" : "composed"; };

  for (int threads : o.threads) {
    dan::set_num_threads(threads);
    fmt::print("\n== threads = {} (ours: OpenMP + OpenBLAS; PyTorch: torch.set_num_threads) ==\n",
               dan::num_threads());
    // Rounds alternate ours and the peer, so that a change in the machine's load hits both;
    // each number below is the median over rounds of the per-round medians.
    struct Row {
      std::string name;
      std::vector<Timing> fwd, train;
      double checksum = 0;
    };
    std::vector<Row> rows(kinds.size());
    std::vector<nlohmann::json> peer_rounds;
    PeerResult peer;
    for (int round = 0; round < o.rounds; ++round) {
      for (size_t ki = 0; ki < kinds.size(); ++ki) {
        const bert::Kernels k = kinds[ki];
        model->set_kernels(k);
        Row& r = rows[ki];
        r.name = std::string("ours (") + kname(k) + ")";
        model->eval();
        {
          dan::NoGradGuard no_grad;
          r.checksum = dan::sum(model->forward(input_ids, attention_mask).last_hidden_state).item();
          r.fwd.push_back(time_it(o.repeats, [&] { model->forward(input_ids, attention_mask); }));
        }
        if (o.train) {
          model->train();
          r.train.push_back(time_it(o.repeats, [&] {
            model->zero_grad();
            const Tensor h = model->forward(input_ids, attention_mask).last_hidden_state;
            dan::sum(h * loss_weight).backward();
          }));
          model->eval();
        }
        model->zero_grad();
      }
      if (o.peer) {
        peer = run_peer(o, python, file, model_dir, threads);
        if (!peer.ok) break;
        peer_rounds.push_back(peer.j);
      }
    }
    auto med_t = [&](const std::vector<Timing>& ts) {
      std::vector<double> w, c;
      for (const Timing& t : ts) {
        w.push_back(t.wall);
        c.push_back(t.cpu);
      }
      return Timing{median_high(w), median_high(c)};
    };
    auto med_j = [&](const char* key) {
      std::vector<double> v;
      for (const auto& j : peer_rounds) v.push_back(j[key].get<double>());
      return median_high(v);
    };
    fmt::print("  ({} rounds; each: median of {} runs after a warm-up)\n", o.rounds, o.repeats);
    fmt::print("  {:<44} {:>10} {:>10} {:>12} {:>12}\n", "", "fwd wall", "fwd CPU", "train wall",
               "train CPU");
    auto ms = [](double v) { return fmt::format("{:.1f} ms", 1e3 * v); };
    for (const Row& r : rows) {
      const Timing f = med_t(r.fwd), t = med_t(r.train);
      fmt::print("  {:<44} {:>10} {:>10} {:>12} {:>12}\n", r.name, ms(f.wall), ms(f.cpu),
                 o.train ? ms(t.wall) : "-", o.train ? ms(t.cpu) : "-");
    }
    if (!peer.ok) {
      if (o.peer) fmt::print("  PyTorch reference unavailable: {}\n", peer.error);
      continue;
    }
    const auto& j = peer.j;
    const std::string pname = "PyTorch " + j["torch"].get<std::string>();
    const Timing pf{med_j("forward_wall_s"), med_j("forward_cpu_s")};
    const Timing pt = o.train ? Timing{med_j("train_wall_s"), med_j("train_cpu_s")} : Timing{};
    fmt::print("  {:<44} {:>10} {:>10} {:>12} {:>12}\n", pname, ms(pf.wall), ms(pf.cpu),
               o.train ? ms(pt.wall) : "-", o.train ? ms(pt.cpu) : "-");
    fmt::print("  peer: {}, {} threads\n", j["impl"].get<std::string>(), j["threads"].get<int>());
    for (const Row& r : rows) {
      const Timing f = med_t(r.fwd), t = med_t(r.train);
      fmt::print("  speed ratio PyTorch/{:<16} forward: {:.3f}x wall, {:.3f}x CPU", r.name,
                 pf.wall / f.wall, pf.cpu / f.cpu);
      if (o.train) {
        fmt::print("   train step: {:.3f}x wall, {:.3f}x CPU", pt.wall / t.wall, pt.cpu / t.cpu);
      }
      fmt::print("   (> 1: we are faster)\n");
      const double ref = j["checksum"].get<double>();
      fmt::print(
          "  output check {}: sum(h) {:.6f} vs PyTorch {:.6f} (relative diff {:.1e})\n", r.name,
          r.checksum, ref,
          std::abs(r.checksum - ref) / std::max(1.0, std::sqrt(j["checksum_sq"].get<double>())));
    }
  }
  fs::remove_all(tmp_dir);
  return 0;
}
