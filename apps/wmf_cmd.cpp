// `deepaninet wmf`: load a dataset, split its anime 8:1:1 (or reuse the split saved in --out),
// fit WMF by implicit ALS with a progress line per iteration, save the factors, and evaluate
// WMF beside the baselines on the warm hold-out and the cold test items.
#include <chrono>
#include <filesystem>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/report.h"
#include "core/error.h"
#include "core/threads.h"
#include "models/wmf/als.h"
#include "recsys/dataset.h"
#include "recsys/rundir.h"
#include "recsys/split.h"
#include "recsys/synthetic.h"

namespace dan::apps {

namespace fs = std::filesystem;

int wmf_command(int argc, char** argv) {
  const Flags f = parse_flags(
      argc, argv, 2,
      {"data", "factors", "iters", "solver", "cg-steps", "reg", "alpha", "confidence", "threshold",
       "device", "seed", "split-seed", "out", "threads"},
      {}, {"skip-bad-rows", "no-eval"});
  DAN_CHECK(f.positional.empty(), "wmf: unexpected argument '{}'", f.positional.empty() ? "" : f.positional[0]);
  if (f.has("threads")) set_num_threads(static_cast<int>(f.integer("threads", 1)));

  wmf::AlsConfig als;
  als.factors = f.integer("factors", als.factors);
  als.iterations = static_cast<int>(f.integer("iters", als.iterations));
  als.reg = f.number("reg", als.reg);
  als.cg_steps = static_cast<int>(f.integer("cg-steps", als.cg_steps));
  als.seed = static_cast<uint64_t>(f.integer("seed", 0));
  als.device = Device::parse(f.str("device", "cpu"));
  const std::string solver = f.str("solver", "cg");
  DAN_CHECK(solver == "cg" || solver == "cholesky", "--solver: expected cg or cholesky, got '{}'", solver);
  als.solver = solver == "cg" ? wmf::Solver::cg : wmf::Solver::cholesky;
  DAN_CHECK(als.factors >= 1 && als.iterations >= 1 && als.reg >= 0 && als.cg_steps >= 1,
            "wmf: need --factors >= 1, --iters >= 1, --reg >= 0, --cg-steps >= 1");

  recsys::ImplicitConfig imp;
  imp.alpha = f.number("alpha", 1.0);
  imp.threshold = f.number("threshold", 0.0);
  const std::string conf = f.str("confidence", "linear");
  DAN_CHECK(conf == "linear" || conf == "log1p", "--confidence: expected linear or log1p, got '{}'", conf);
  imp.fn = conf == "linear" ? recsys::ConfidenceFn::linear : recsys::ConfidenceFn::log1p;

  const std::string out = f.str("out", "runs/wmf");
  fs::create_directories(out);

  const DataChoice data = choose_data(f.str("data", ""));
  recsys::LoadOptions lo;
  lo.skip_bad_rows = f.has("skip-bad-rows");
  const recsys::Dataset ds = load_data(data, lo);

  recsys::SplitConfig sc;
  sc.seed = static_cast<uint64_t>(f.integer("split-seed", static_cast<long long>(sc.seed)));
  const recsys::Split split = load_or_make_split(ds, sc, out + "/split.safetensors");
  const recsys::Interactions inter = recsys::build_interactions(ds, split, imp);
  fmt::print("wmf: {} users x {} train items, {} fit ratings ({} held out warm), {} factors, {} solver, {}\n",
             inter.fit.rows, inter.fit.cols, inter.fit.nnz(), inter.warm_test.nnz(), als.factors,
             solver, als.device.str());

  const auto t0 = std::chrono::steady_clock::now();
  const wmf::AlsResult r = wmf::fit_als(inter.fit, als, [&](const wmf::IterationStats& s) {
    fmt::print("wmf: iteration {:>3}/{}  loss {:.6f}  {:.2f} s\n", s.iteration, als.iterations, s.loss,
               s.seconds);
    std::fflush(stdout);
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  wmf::save_factors(out + "/factors.safetensors", r, inter.users, inter.train_items);
  fmt::print("wmf: {:.1f} s in all; factors -> {}/factors.safetensors\n", secs, out);

  if (f.has("no-eval")) return 0;
  const Report rep = evaluate_wmf_and_baselines(ds, split, inter, r.U, r.V);
  rep.print();
  rep.write(out + "/results.json");
  fmt::print("wmf: results -> {}/results.json\n", out);
  return 0;
}

}  // namespace dan::apps
