// Training checkpoints: the whole state a run needs to continue bit-identically — model
// weights and buffers, optimizer state, lr-scheduler epochs, Philox generator (seed, offset),
// epoch/step counters, extra tensors and string metadata — in one safetensors file, written
// atomically (an interrupted save leaves the previous checkpoint intact). The file is plain
// safetensors: safetensors.torch.load_file reads every tensor of it.
//
//   TrainState st;
//   st.module("model", model).optimizer("optim", opt).scheduler("sched", sched).generator("rng", gen);
//   ...
//   st.epoch = epoch; st.step = step;
//   st.metadata["config"] = cfg.to_yaml();
//   save_checkpoint(run.file("checkpoint.safetensors"), st);
//   // resume, with freshly constructed objects registered under the same names:
//   load_checkpoint(path, st);            // restores every registered object in place
//   for (int64_t e = st.epoch + 1; ...)   // st.epoch = epochs completed when saved
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/generator.h"
#include "layers/module.h"
#include "layers/optim/optimizer.h"
#include "layers/optim/scheduler.h"

namespace dan::recsys {

// The objects of a training run (referenced, not owned: they must outlive the TrainState)
// and the values saved with them.
//
// Names are identifiers ([A-Za-z0-9_]+), unique over all four kinds, not "extra". In the file:
//   <module>.<state_dict key>     e.g. model.0.weight, model.1.running_mean
//   <optimizer>.<state_dict key>  e.g. optim.state.0.exp_avg, optim.param_groups.0.lr
//   <scheduler>.epoch             (i64)
//   extra.<key>                   the `extra` tensors
// and in the safetensors metadata: "dan.checkpoint" (format version), "dan.epoch", "dan.step",
// "dan.parts" (the registered names by kind), "dan.generator.<name>.seed" / ".offset"
// (decimal u64), "format": "pt", plus the user's `metadata` entries (keys must not start
// with "dan." or be "format").
struct TrainState {
  TrainState& module(const std::string& name, Module& m);
  TrainState& optimizer(const std::string& name, Optimizer& o);
  TrainState& scheduler(const std::string& name, LRScheduler& s);
  TrainState& generator(const std::string& name, Generator& g);

  int64_t epoch = 0;  // epochs completed
  int64_t step = 0;   // optimizer steps completed
  std::map<std::string, Tensor> extra;  // any other tensors (best metric so far, EMA weights, ...)
  std::map<std::string, std::string> metadata;

  std::vector<std::pair<std::string, Module*>> modules;
  std::vector<std::pair<std::string, Optimizer*>> optimizers;
  std::vector<std::pair<std::string, LRScheduler*>> schedulers;
  std::vector<std::pair<std::string, Generator*>> generators;

 private:
  void check_name(const std::string& name) const;
};

// Writes every registered object's state, the counters, `extra` and `metadata` to `path`
// atomically (temp file in the same folder, fsync, rename).
void save_checkpoint(const std::string& path, const TrainState& s);

// Restores every registered object in place from `path` and sets epoch, step, extra (replaced
// by the file's extra.* tensors) and metadata (the user entries of the file).
//
// The checkpoint must match what is registered: every registered name present in the file
// and every part of the file registered, each module's keys, shapes and dtypes equal to its
// state_dict. All mismatches are checked before anything changes and reported in one
// dan::Error naming the file and each full key:
//   load_checkpoint 'runs/x/checkpoint.safetensors': 2 problems:
//     model.0.weight: shape [5, 6] in the checkpoint, [4, 6] here
//     model.1.running_mean: missing from the checkpoint
// The optimizers then validate and load their own state (Optimizer::load_state_dict; its
// error is prefixed with the file and optimizer name), before the modules are touched; with
// several optimizers, one that fails leaves those before it loaded.
void load_checkpoint(const std::string& path, TrainState& s);

// What a checkpoint file holds, without any objects: for deciding how to resume.
struct CheckpointInfo {
  int64_t epoch = 0, step = 0;
  std::map<std::string, std::vector<std::string>> parts;  // "module" -> {"model"}, "optimizer" -> ...
  std::map<std::string, std::string> metadata;           // the user entries
  std::vector<std::string> tensor_names;                  // every tensor, sorted
};
CheckpointInfo read_checkpoint_info(const std::string& path);

}  // namespace dan::recsys
