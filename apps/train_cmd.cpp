// `deepaninet train CONFIG.yaml [key=value ...]` and `deepaninet train --resume RUN_DIR`:
// the experiment runner. Data, split, WMF (cached), features (cached), DropoutNet training with
// validation on cold anime every epoch, the best epoch by a validation metric, the test report.
// Run folder: config.yaml, split.safetensors, metrics.jsonl, results.json, plots/*.svg,
// checkpoint.safetensors (resumable, last epoch) and best.safetensors (best model).
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/pipeline.h"
#include "apps/schema.h"
#include "apps/train.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "core/threads.h"
#include "layers/optim/adam.h"
#include "layers/optim/scheduler.h"
#include "layers/optim/sgd.h"
#include "recsys/checkpoint.h"
#include "recsys/plot.h"
#include "recsys/progress.h"
#include "recsys/rundir.h"
#include "recsys/sampler.h"

namespace dan::apps {

namespace fs = std::filesystem;

namespace {

std::unique_ptr<Optimizer> make_optimizer(const recsys::Config& cfg, std::vector<ParamGroup> params) {
  const std::string kind = cfg.get_string("train.optimizer");
  const double lr = cfg.get_double("train.lr"), wd = cfg.get_double("train.weight_decay");
  if (kind == "sgd") {
    SGDOptions o;
    o.lr = lr;
    o.momentum = cfg.get_double("train.momentum");
    o.weight_decay = wd;
    return std::make_unique<SGD>(std::move(params), o);
  }
  AdamOptions o;
  o.lr = lr;
  o.weight_decay = wd;
  if (kind == "adam") return std::make_unique<Adam>(std::move(params), o);
  return std::make_unique<AdamW>(std::move(params), o);
}

// A closed-form schedule factor by name (the same forms as the scheduler classes).
PerGroupLR::Factor schedule_factor(const std::string& kind, double gamma, int64_t step_size, int64_t total) {
  if (kind == "step") return [=](int64_t e) { return std::pow(gamma, static_cast<double>(e / step_size)); };
  if (kind == "exponential") return [=](int64_t e) { return std::pow(gamma, static_cast<double>(e)); };
  if (kind == "linear")
    return [=](int64_t e) { return std::max(0.0, 1.0 - static_cast<double>(e) / static_cast<double>(total)); };
  return [](int64_t) { return 1.0; };
}

std::unique_ptr<LRScheduler> make_scheduler(const recsys::Config& cfg, Optimizer& opt, const Model& model) {
  if (model.text) {
    // train.scheduler for DropoutNet (and a graph encoder), features.bert.schedule for the BERT
    // layers, whose group is the last one.
    std::vector<PerGroupLR::Factor> f(
        opt.param_groups().size() - 1,
        schedule_factor(cfg.get_string("train.scheduler"), cfg.get_double("train.gamma"),
                        cfg.get_int("train.step_size"), cfg.get_int("train.epochs")));
    f.push_back(schedule_factor(cfg.get_string("features.bert.schedule"), cfg.get_double("features.bert.gamma"), 1,
                                cfg.get_int("features.bert.decay_epochs")));
    return std::make_unique<PerGroupLR>(opt, std::move(f));
  }
  const std::string kind = cfg.get_string("train.scheduler");
  if (kind == "step") return std::make_unique<StepLR>(opt, cfg.get_int("train.step_size"), cfg.get_double("train.gamma"));
  if (kind == "exponential") return std::make_unique<ExponentialLR>(opt, cfg.get_double("train.gamma"));
  if (kind == "linear") return std::make_unique<LinearDecay>(opt, cfg.get_int("train.epochs"));
  return std::make_unique<ConstantLR>(opt);
}

recsys::SamplerConfig sampler_config(const recsys::Config& cfg) {
  recsys::SamplerConfig s;
  s.strategy = recsys::parse_sample_strategy(cfg.get_string("train.sampling"));
  s.top_n = cfg.get_int("train.top_n");
  s.n_random = cfg.get_int("train.random_n");
  s.lo = cfg.get_double("train.threshold_lo");
  s.hi = cfg.get_double("train.threshold_hi");
  s.pairs_per_epoch = cfg.get_int("train.pairs_per_epoch");
  s.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  return s;
}

void write_plots(const recsys::RunDir& run, const std::string& metric) {
  const auto lines = run.read_jsonl("metrics.jsonl");
  recsys::Series train{"train loss"}, val{"val loss (cold, folded-in V)"}, m{"val " + metric};
  for (const auto& j : lines) {
    const double e = j.at("epoch").get<double>();
    train.x.push_back(e);
    train.y.push_back(j.at("train_loss").get<double>());
    val.x.push_back(e);
    val.y.push_back(j.at("val_loss").get<double>());
    m.x.push_back(e);
    m.y.push_back(j.at("val").at(metric).get<double>());
  }
  recsys::PlotSpec loss{"DropoutNet loss", "epoch", "mean squared error", {train, val}};
  loss.log_y = true;
  run.write_text("plots/loss.svg", recsys::line_plot_svg(loss));
  recsys::PlotSpec ms{"validation " + metric + " (cold anime)", "epoch", metric, {m}};
  m.markers = true;
  run.write_text("plots/val_metric.svg", recsys::line_plot_svg(ms));
}

}  // namespace

TrainOutcome run_training(const recsys::Config& cfg, const std::string& run_path, bool resume) {
  recsys::RunDir run = recsys::RunDir::open(run_path);
  if (!resume) run.write_config(cfg);
  auto prepared = std::make_shared<const Prepared>(prepare(cfg, run.file("split.safetensors")));
  const Prepared& p = *prepared;
  const Device dev = Device::parse(cfg.get_string("device"));
  const std::string metric = cfg.get_string("train.select_metric");

  default_generator().manual_seed(static_cast<uint64_t>(cfg.get_int("seed")));
  Generator init_gen(static_cast<uint64_t>(cfg.get_int("seed")));
  auto model = std::make_shared<Model>(build_model(cfg, p, init_gen));
  model->to(dev);
  dropoutnet::DropoutNet& net = *model->net;
  std::unique_ptr<Optimizer> opt = make_optimizer(cfg, model->param_groups(cfg));
  std::unique_ptr<LRScheduler> sched = make_scheduler(cfg, *opt, *model);

  dropoutnet::InputDropoutConfig dcfg;
  dcfg.p = cfg.get_double("train.dropout_p");
  dcfg.item_dropout = dcfg.p > 0;
  dcfg.user = dcfg.p > 0 ? dropoutnet::parse_user_input(cfg.get_string("train.user_input"))
                         : dropoutnet::UserInput::keep;
  dcfg.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  // Content tables: with a trained graph encoder the graph part is appended per step
  // (gnn::train_epoch); with a fixed one it is computed once here and appended to the tables.
  Tensor phiU_tab = p.phiU, phiV_tab = p.phiV_train;
  const bool graph_per_step = model->graph && model->graph_trained;
  const int64_t accumulate = cfg.get_int("train.accumulate");
  DAN_CHECK(accumulate == 1 || !graph_per_step,
            "train.accumulate = {} is not supported with a trained graph encoder (graph.train: true)", accumulate);
  if (model->graph && !model->graph_trained) {
    const Content c = model_content(*model, p);
    phiU_tab = c.phiU;
    NoGradGuard ng;
    phiV_tab = index_select(c.phi_all, from_vector(p.inter.train_items,
                                                   {static_cast<int64_t>(p.inter.train_items.size())}));
  }
  dropoutnet::Tables tables{p.U.to(dev), p.V.to(dev), p.U_transform.to(dev),
                            phiU_tab.defined() ? phiU_tab.to(dev) : Tensor(), phiV_tab.to(dev)};
  dropoutnet::BatchMaker maker(tables, dcfg);
  const recsys::SamplerConfig scfg = sampler_config(cfg);
  const int64_t batch = cfg.get_int("train.batch_size");

  // Validation: cold val anime (V input 0) with targets from folded-in WMF vectors.
  const Tensor V_val = fold_in_items(p.U, p.inter.val, cfg);
  dropoutnet::InputDropoutConfig plain;
  plain.p = 0;
  plain.item_dropout = false;
  plain.user = dropoutnet::UserInput::keep;
  // The validation tables hold the current content (the graph part changes as it trains).
  const auto val_maker_for = [&](const Content& c) {
    NoGradGuard ng;
    const std::vector<int32_t>& vi = p.split.val_items;
    const Tensor phi_val = index_select(c.phi_all, from_vector(vi, {static_cast<int64_t>(vi.size())}));
    dropoutnet::Tables val_tables{user_input(p, cfg).to(dev), zeros({V_val.size(0), V_val.size(1)}).to(dev),
                                  Tensor(), c.phiU.defined() ? c.phiU.to(dev) : Tensor(), phi_val.to(dev)};
    return dropoutnet::BatchMaker(val_tables, plain);
  };
  recsys::SamplerConfig vs = scfg;
  vs.strategy = recsys::SampleStrategy::top_random;
  vs.top_n = 20;
  vs.n_random = 20;
  vs.seed = 12345;
  const recsys::Pairs val_pairs = recsys::sample_epoch(p.U, V_val, vs, 0);
  const recsys::EvalConfig ecfg = eval_config(cfg);
  const recsys::Csr none;

  recsys::TrainState state;
  state.module("model", net);
  if (model->graph) state.module("graph", *model->graph);
  if (model->text) state.module("bert", *model->text->encoder);
  state.optimizer("optimizer", *opt).scheduler("scheduler", *sched).generator("default", default_generator());
  double best = -INFINITY;
  int64_t best_epoch = 0;
  int64_t start_epoch = 0;
  if (resume) {
    DAN_CHECK(run.exists("checkpoint.safetensors"), "{}: no checkpoint.safetensors to resume from", run.path());
    recsys::load_checkpoint(run.file("checkpoint.safetensors"), state);
    start_epoch = state.epoch;
    best = state.extra.at("best").item();
    best_epoch = static_cast<int64_t>(state.extra.at("best_epoch").item());
    run.truncate_jsonl_after_epoch(start_epoch);
    fmt::print("train: resuming {} after epoch {}\n", run.path(), start_epoch);
  }

  const int64_t epochs = cfg.get_int("train.epochs");
  const int64_t every = cfg.get_int("run.checkpoint_every");
  recsys::Progress progress;
  // features.bert.user_grad = false: φ^U from the content as of the epoch's start.
  const bool user_table = model->text && model->text->user_content && !model->text->user_grad;
  if (user_table && start_epoch < epochs) model->text->user_table = model_content(*model, p).phiU.to(dev);
  for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const recsys::Pairs pairs = recsys::sample_epoch(p.U, p.V, scfg, static_cast<uint64_t>(epoch));
    const std::vector<double> lrs = sched->last_lrs();
    progress.start_epoch(epoch + 1, epochs, pairs.num_batches(batch));
    net.train();
    const auto on_batch = [&](int64_t, double loss) { progress.step({{"loss", loss}}); };
    const auto ep = static_cast<uint64_t>(epoch);
    dropoutnet::EpochResult er;
    if (graph_per_step) {
      er = gnn::train_epoch(net, *model->graph, model->graph_inputs, *opt, maker, pairs, batch, ep, on_batch);
    } else if (model->text || accumulate > 1) {
      // Fine-tuned BERT content per batch, and/or gradient accumulation.
      std::vector<Module*> mods;
      if (model->text) mods.push_back(model->text->encoder.get());
      er = accumulate_epoch(
          net, mods, *opt, pairs, batch, accumulate,
          [&](int64_t begin, int64_t end, int64_t b) {
            dropoutnet::Batch x = maker.make(pairs, begin, end, ep, static_cast<uint64_t>(b));
            if (!model->text) return x;
            return text_batch(*model->text, x, pairs.users.data() + begin, pairs.items.data() + begin, end - begin);
          },
          on_batch);
    } else {
      er = dropoutnet::train_epoch(net, *opt, maker, pairs, batch, ep, on_batch);
    }
    sched->step();
    const Content content = model_content(*model, p);  // the graph / BERT part once per epoch
    if (user_table) model->text->user_table = content.phiU.to(dev);
    const double val_loss = dropoutnet::evaluate_loss(net, val_maker_for(content), val_pairs);
    const recsys::Metrics vm = recsys::evaluate(cold_scores(*model, p, cfg, p.split.val_items, content),
                                                p.inter.val, none, ecfg);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double score = vm.get(metric);
    progress.end_epoch(fmt::format("train loss {:.5f}  val loss {:.5f}  val {} {:.4f}", er.mean_loss,
                                   val_loss, metric, score));
    nlohmann::json line = {{"epoch", epoch + 1},   {"train_loss", er.mean_loss},
                           {"val_loss", val_loss}, {"val", nlohmann::json::parse(vm.to_json())},
                           {"lr", lrs},            {"pairs", er.pairs},
                           {"seconds", secs}};
    run.append_jsonl("metrics.jsonl", line);
    state.epoch = epoch + 1;
    if (score > best) {
      best = score;
      best_epoch = epoch + 1;
      recsys::TrainState bs;
      bs.module("model", net);
      if (model->graph) bs.module("graph", *model->graph);
      if (model->text) bs.module("bert", *model->text->encoder);
      bs.epoch = epoch + 1;
      recsys::save_checkpoint(run.file("best.safetensors"), bs);
    }
    if ((epoch + 1) % every == 0 || epoch + 1 == epochs) {
      state.extra["best"] = scalar_tensor(best, DType::f64);
      state.extra["best_epoch"] = scalar_tensor(static_cast<double>(best_epoch), DType::f64);
      recsys::save_checkpoint(run.file("checkpoint.safetensors"), state);
    }
  }
  write_plots(run, metric);

  // Test: the best epoch's model beside the baselines, on cold test anime.
  recsys::TrainState bs;
  bs.module("model", net);
  if (model->graph) bs.module("graph", *model->graph);
  if (model->text) bs.module("bert", *model->text->encoder);
  recsys::load_checkpoint(run.file("best.safetensors"), bs);
  Report rep;
  rep.tables.push_back(cold_table(p, cfg, p.split.test_items, p.inter.test, model.get(),
                                  "DeepAniNet", "cold"));
  nlohmann::json results = nlohmann::json::parse(rep.to_json());
  results["best_epoch"] = best_epoch;
  results["select_metric"] = metric;
  run.write_json("results.json", results);
  rep.print();
  fmt::print("train: best epoch {} (val {} {:.4f}); results -> {}\n", best_epoch, metric, best,
             run.file("results.json"));
  return TrainOutcome{run.path(), best_epoch, best, std::move(rep), model, prepared};
}

int train_command(int argc, char** argv) {
  const Flags f = parse_flags(argc, argv, 2, {"resume", "threads"});
  if (f.has("threads")) set_num_threads(static_cast<int>(f.integer("threads", 1)));
  const recsys::Schema schema = train_schema();
  if (f.has("resume")) {
    const std::string dir = f.str("resume", "");
    recsys::Config cfg = recsys::load_config(schema, dir + "/config.yaml", f.positional);
    run_training(cfg, dir, true);
    return 0;
  }
  DAN_CHECK(!f.positional.empty(), "train: usage: deepaninet train CONFIG.yaml [key=value ...] | --resume RUN_DIR");
  const std::string path = f.positional[0];
  const std::vector<std::string> overrides(f.positional.begin() + 1, f.positional.end());
  recsys::Config cfg = recsys::load_config(schema, path, overrides);
  recsys::RunDir run = recsys::RunDir::create(cfg.get_string("run.dir"), cfg.get_string("name"));
  fmt::print("train: {} -> {}\n", path, run.path());
  run_training(cfg, run.path(), false);
  return 0;
}

}  // namespace dan::apps
