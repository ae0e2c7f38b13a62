// Benchmark: one DropoutNet training epoch on mal2023-shaped synthetic data, ours against the
// same model in PyTorch (bench/reference/dropoutnet_epoch.py, a subprocess) on identical
// batches: the pairs, the input-dropout choices, the tables and the initial weights are made
// here and handed to the peer in one safetensors file.
// GCC 12 at -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include <fmt/core.h>
#pragma GCC diagnostic pop

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench/common.h"
#include "core/serialize.h"
#include "core/threads.h"
#include "layers/optim/sgd.h"
#include "models/dropoutnet/dropoutnet.h"
#include "recsys/sampler.h"

namespace {

using dan::Tensor;
namespace dn = dan::dropoutnet;
using dan::bench::Clock;
using dan::bench::process_cpu_s;
using dan::bench::seconds_since;

struct Options {
  int threads = 0;  // 0: dan::num_threads() (DAN_NUM_THREADS or all cores)
  int64_t users = 1900, items = 8800, rank = 64, content = 300, meta = 60;
  int64_t ratings_per_user = 40, top_n = 100, n_random = 100, batch = 1024, batches = 0;
  std::vector<int64_t> hidden = {800, 400};
  double lr = 0.005, momentum = 0.9, dropout_p = 0.5;
  std::string python = "/usr/bin/python3";
  std::string script = std::string(DAN_BENCH_REFERENCE_DIR) + "/dropoutnet_epoch.py";
  std::string keep_file;
};

[[noreturn]] void usage(const char* argv0) {
  fmt::print(stderr,
             "usage: {} [--threads T] [--batches N (0 = whole epoch)] [--users U] [--items I]\n"
             "  [--rank R] [--top-n N] [--random N] [--batch B] [--hidden 800,400] [--lr X]\n"
             "  [--python PATH] [--reference dropoutnet_epoch.py] [--keep-file PATH]\n",
             argv0);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    const std::string v = argv[++i];
    if (a == "--threads")
      o.threads = std::max(1, std::atoi(v.c_str()));
    else if (a == "--batches")
      o.batches = std::max(0L, std::atol(v.c_str()));
    else if (a == "--users")
      o.users = std::max(2L, std::atol(v.c_str()));
    else if (a == "--items")
      o.items = std::max(2L, std::atol(v.c_str()));
    else if (a == "--rank")
      o.rank = std::max(1L, std::atol(v.c_str()));
    else if (a == "--top-n")
      o.top_n = std::max(0L, std::atol(v.c_str()));
    else if (a == "--random")
      o.n_random = std::max(0L, std::atol(v.c_str()));
    else if (a == "--batch")
      o.batch = std::max(2L, std::atol(v.c_str()));
    else if (a == "--lr")
      o.lr = std::atof(v.c_str());
    else if (a == "--python")
      o.python = v;
    else if (a == "--reference")
      o.script = v;
    else if (a == "--keep-file")
      o.keep_file = v;
    else if (a == "--hidden") {
      o.hidden.clear();
      size_t p = 0;
      while (p < v.size()) {
        const size_t q = std::min(v.find(',', p), v.size());
        if (q > p) o.hidden.push_back(std::atol(v.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else {
      usage(argv[0]);
    }
  }
  return o;
}

// mal2023-shaped inputs: WMF factors, item content (TF-IDF-SVD-like dense columns with
// decaying scale, standardized; plus metadata: genre flags and numeric fields), each user's
// ratings, and from them phiU and the user transform.
struct Data {
  Tensor U, V, phiV, phiU, Utr;
};

Data make_data(const Options& o) {
  dan::Generator g(2023);
  Data d;
  d.U = dan::randn({o.users, o.rank}, g) * 0.3;
  d.V = dan::randn({o.items, o.rank}, g) * 0.3;
  Tensor svd = dan::randn({o.items, o.content}, g);
  {
    float* p = svd.data<float>();
    for (int64_t i = 0; i < o.items; ++i) {
      for (int64_t j = 0; j < o.content; ++j) {
        p[i * o.content + j] *=
            static_cast<float>(1.0 / std::sqrt(1.0 + static_cast<double>(j) / 10));
      }
    }
  }
  const int64_t flags = o.meta * 2 / 3;
  Tensor genres = dan::bernoulli({o.items, flags}, 0.15, g);
  Tensor numeric = dan::randn({o.items, o.meta - flags}, g);
  d.phiV = dan::cat({svd, genres, numeric}, 1).detach();
  {  // standardize every column, as the reference preprocessing does
    float* p = d.phiV.data<float>();
    const int64_t w = d.phiV.size(1);
    for (int64_t j = 0; j < w; ++j) {
      double s = 0, q = 0;
      for (int64_t i = 0; i < o.items; ++i) s += p[i * w + j];
      const double mean = s / static_cast<double>(o.items);
      for (int64_t i = 0; i < o.items; ++i) q += (p[i * w + j] - mean) * (p[i * w + j] - mean);
      const double inv = 1.0 / std::sqrt(q / static_cast<double>(o.items) + 1e-12);
      for (int64_t i = 0; i < o.items; ++i)
        p[i * w + j] = static_cast<float>((p[i * w + j] - mean) * inv);
    }
  }
  std::vector<int32_t> ru, ri;
  std::vector<float> rv;
  const uint64_t key = dan::recsys::stream_key(7, 0, 0);
  for (int64_t u = 0; u < o.users; ++u) {
    std::vector<int32_t> its;
    for (int64_t k = 0; static_cast<int64_t>(its.size()) < std::min(o.ratings_per_user, o.items);
         ++k) {
      const auto it = static_cast<int32_t>(dan::recsys::uniform_below(
          key, static_cast<uint64_t>(u * 100000 + k), static_cast<uint64_t>(o.items)));
      if (std::find(its.begin(), its.end(), it) == its.end()) its.push_back(it);
    }
    std::sort(its.begin(), its.end());
    for (int32_t it : its) {
      ru.push_back(static_cast<int32_t>(u));
      ri.push_back(it);
      rv.push_back(static_cast<float>(1 + (u + it) % 10));
    }
  }
  const auto R = dan::recsys::Csr::from_triplets(o.users, o.items, ru, ri, rv);
  d.phiU = dn::user_content(R, d.phiV, 0);
  d.Utr = dn::user_transform(R, d.V);
  return d;
}

dan::bench::PeerResult run_torch(const Options& o, const std::string& file, int threads,
                                 int64_t batches) {
  std::string hidden;
  for (size_t i = 0; i < o.hidden.size(); ++i)
    hidden += (i ? "," : "") + std::to_string(o.hidden[i]);
  return dan::bench::run_peer(fmt::format(
      "{0} '{1}' '{2}' '{3}' --threads {4} --batch {5} --batches {6} --hidden '{7}' --lr {8} "
      "--momentum {9} 2>&1",
      dan::bench::peer_thread_env(threads), o.python, o.script, file, threads, o.batch, batches,
      hidden, o.lr, o.momentum));
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) dan::set_num_threads(o.threads);
  const int threads = dan::num_threads();
  fmt::print("bench_dropoutnet_epoch: one DropoutNet training epoch, ours vs PyTorch\n");
  fmt::print("machine cores: {}   load average: {}   threads: {} (both sides)\n",
             std::thread::hardware_concurrency(), dan::bench::load_average(), threads);

  auto t0 = Clock::now();
  const Data data = make_data(o);
  fmt::print(
      "data: {} users, {} train items, rank {}, item content {} ({} SVD-like + {} "
      "metadata), made in {:.2f} s\n",
      o.users, o.items, o.rank, data.phiV.size(1), o.content, o.meta, seconds_since(t0));

  dan::recsys::SamplerConfig sc;
  sc.top_n = o.top_n;
  sc.n_random = o.n_random;
  sc.seed = 1;
  t0 = Clock::now();
  const dan::recsys::Pairs pairs = dan::recsys::sample_epoch(data.U, data.V, sc, 0);
  const double sample_s = seconds_since(t0);
  const int64_t total_batches = pairs.num_batches(o.batch);
  const int64_t nb = o.batches > 0 ? std::min(o.batches, total_batches) : total_batches;
  fmt::print(
      "pairs: top-{} + {} random per user = {} pairs, {} batches of {} (sampled in "
      "{:.3f} s){}\n",
      o.top_n, o.n_random, pairs.size(), total_batches, o.batch, sample_s,
      nb < total_batches ? fmt::format("; timing the first {} batches", nb) : "");

  dn::DropoutNetConfig mc;
  mc.rank_in = o.rank;
  mc.user_content_dim = data.phiU.size(1);
  mc.item_content_dim = data.phiV.size(1);
  mc.final_hidden = o.hidden;
  mc.rank_out = o.rank;
  dan::Generator gen(3);
  dn::DropoutNet model(mc, gen);
  dn::InputDropoutConfig dc;
  dc.p = o.dropout_p;
  dc.user = dn::UserInput::transform;
  dc.seed = 4;
  const dn::BatchMaker maker({data.U, data.V, data.Utr, data.phiU, data.phiV}, dc);
  fmt::print(
      "model: [U || phiU] and [V || phiV] ({} -> {} -> {}) per side, Linear -> "
      "BatchNorm1d -> tanh, {} parameters; input dropout p = {} (item -> 0, user -> "
      "transform); SGD lr {} momentum {}\n",
      o.rank + mc.item_content_dim, fmt::join(o.hidden, " -> "), o.rank, model.num_parameters(),
      o.dropout_p, o.lr, o.momentum);

  // The peer's file: tables, pairs, each batch's extended-table rows, initial weights.
  const std::string file = o.keep_file.empty()
                               ? fmt::format("/tmp/bench_dropoutnet_{}.safetensors", getpid())
                               : o.keep_file;
  {
    std::vector<int32_t> ur, vr;
    ur.reserve(static_cast<size_t>(pairs.size()));
    vr.reserve(static_cast<size_t>(pairs.size()));
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t s = b * o.batch, e = std::min(pairs.size(), s + o.batch);
      const auto r = maker.rows(pairs.users.data() + s, pairs.items.data() + s, e - s, 0,
                                static_cast<uint64_t>(b));
      ur.insert(ur.end(), r.u.begin(), r.u.end());
      vr.insert(vr.end(), r.v.begin(), r.v.end());
    }
    const auto n = static_cast<int64_t>(ur.size());
    std::vector<int32_t> us(pairs.users.begin(), pairs.users.begin() + n);
    std::vector<int32_t> is(pairs.items.begin(), pairs.items.begin() + n);
    std::vector<float> ts(pairs.targets.begin(), pairs.targets.begin() + n);
    dan::NamedTensors out = {{"U_ext", maker.U_extended()},
                             {"V_ext", maker.V_extended()},
                             {"phiU", data.phiU},
                             {"phiV", data.phiV},
                             {"users", dan::from_vector(us, {n})},
                             {"items", dan::from_vector(is, {n})},
                             {"targets", dan::from_vector(ts, {n})},
                             {"u_rows", dan::from_vector(ur, {n})},
                             {"v_rows", dan::from_vector(vr, {n})}};
    for (const auto& [k, t] : model.state_dict()) out.emplace_back("init." + k, t);
    dan::save_safetensors(file, out);
  }

  // Ours: the loop a training run executes (batch assembly included).
  dan::SGD opt(model.parameters(), {.lr = o.lr, .momentum = o.momentum});
  model.train();
  std::array<double, 4> phase{};  // gather, forward, backward, step
  std::vector<double> losses;
  const double c0 = process_cpu_s();
  t0 = Clock::now();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t s = b * o.batch, e = std::min(pairs.size(), s + o.batch);
    auto tp = Clock::now();
    const dn::Batch x = maker.make(pairs, s, e, 0, static_cast<uint64_t>(b));
    phase[0] += seconds_since(tp);
    tp = Clock::now();
    opt.zero_grad();
    const Tensor loss = model.loss(x.Uin, x.Vin, x.phiU, x.phiV, x.target);
    phase[1] += seconds_since(tp);
    tp = Clock::now();
    loss.backward();
    phase[2] += seconds_since(tp);
    tp = Clock::now();
    opt.step();
    losses.push_back(loss.item());
    phase[3] += seconds_since(tp);
  }
  const double ours_s = seconds_since(t0), ours_cpu = process_cpu_s() - c0;
  double mean = 0;
  for (double l : losses) mean += l / static_cast<double>(losses.size());

  const dan::bench::PeerResult torch = run_torch(o, file, threads, nb);
  if (o.keep_file.empty()) std::remove(file.c_str());

  fmt::print("\n  {:<26} {:>10} {:>10}\n", "", "ours", "pytorch");
  const std::array<const char*, 4> names = {"batch gather", "zero_grad + forward", "backward",
                                            "step + loss.item"};
  for (size_t i = 0; i < 4; ++i) fmt::print("  {:<26} {:>9.2f}s {:>10}\n", names[i], phase[i], "");
  if (torch.ok) {
    const double ts = torch.j["epoch_s"].get<double>();
    fmt::print("  {:<26} {:>9.2f}s {:>9.2f}s   (torch {}, {} threads)\n", "EPOCH (wall)", ours_s,
               ts, torch.j["torch"].get<std::string>(), torch.j["threads"].get<int>());
    fmt::print("  {:<26} {:>9.2f}s {:>9.2f}s\n", "process CPU time", ours_cpu,
               torch.j["cpu_s"].get<double>());
    fmt::print("  {:<26} {:>9.1f}  {:>9.1f}\n", "ms per batch",
               1e3 * ours_s / static_cast<double>(nb), 1e3 * ts / static_cast<double>(nb));
    fmt::print("  speed ratio ours/PyTorch = {:.3f}x ({})\n", ts / ours_s,
               ts >= ours_s ? "we are faster" : "we are slower");
    fmt::print(
        "  loss check (same init, same batches): first {:.6f} vs {:.6f}, last {:.6f} vs "
        "{:.6f}, mean {:.6f} vs {:.6f}\n",
        losses.front(), torch.j["loss_first"].get<double>(), losses.back(),
        torch.j["loss_last"].get<double>(), mean, torch.j["loss_mean"].get<double>());
  } else {
    fmt::print("  {:<26} {:>9.2f}s {:>10}   (process CPU {:.2f} s)\n", "EPOCH (wall)", ours_s, "-",
               ours_cpu);
    fmt::print("  PyTorch reference unavailable, ours-only numbers above. Reason:\n  {}\n",
               torch.error);
    fmt::print("  ours: loss first {:.6f}, last {:.6f}, mean {:.6f}\n", losses.front(),
               losses.back(), mean);
  }
  return 0;
}
