// The training loop behind `myelin train` and the server's jobs: a dataset, a Session, loaders,
// the LR schedule, metrics events (OUT/metrics.jsonl), checkpoints (OUT/checkpoints/), the final
// weights (OUT/weights.safetensors), exact resumption, and a clean stop on SIGINT/SIGTERM.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "model/network.h"

namespace myelin {

// Flags that override the network file's Recipe; unset ones keep the file's values.
struct RecipeOverrides {
  std::optional<std::string> solver, lr_policy;
  std::optional<double> lr, momentum, weight_decay, beta1, beta2, rms_decay, eps, gamma, power;
  std::optional<double> clip_grad_norm, label_smoothing;
  std::optional<int64_t> step_size, warmup_iters, accumulate, batch, epochs, max_iter;
  std::optional<std::vector<int64_t>> milestones;
  Recipe apply(Recipe r) const;
  nlohmann::json to_json() const;  // only the fields that are set
};

// Examples a program holds in memory (the Python module's arrays) in place of a dataset: batches
// as the network reads them, with no transforms applied. `train` gives full batches of the
// recipe's batch size; `test`, if any, batches of any size, a short last one counted by
// Batch::count. One process only (no data parallelism).
struct BatchSources {
  std::shared_ptr<BatchSource> train, test;
  std::vector<std::string> class_names;  // label order; empty: "0", "1", ...
  std::string description;               // the start event's dataset, e.g. "numpy arrays"
  int64_t train_examples = 0, test_examples = 0;
};

struct TrainOptions {
  std::string model;                // standard network name or file; empty: the resumed run's
  std::optional<NetworkSpec> spec;  // or the network itself (then `model` only names it)
  std::string data;                 // dataset spec; empty: the resumed run's, else fashion-mnist
  std::optional<BatchSources> sources;  // or batches from memory (then `data` is unused)
  OpenOptions open;
  std::string device = "cpu";
  // Take the data-parallel path (NCCL) even as one process: `--gpus` with one GPU. Under mpirun,
  // srun or `--gpus N` the world (dist/world.h) makes every run data-parallel by itself.
  bool data_parallel = false;
  int threads = 0;  // engine threads (0: all cores)
  int loader_threads = 2;
  std::string precision = "fp32";
  std::string conv_search = "auto";  // BackendOptions::conv_search
  uint64_t seed = 1;
  std::string out_dir;         // required: metrics.jsonl, checkpoints/, weights.safetensors
  RecipeOverrides overrides;   // epochs/max_iter (iterations), batch, solver, lr, ...
  int64_t eval_every = 0;      // iterations between test passes; 0: every epoch
  int64_t snapshot_every = 0;  // iterations between checkpoints; 0: every epoch; < 0: only at end
  int64_t log_every = 0;       // iterations between train events; 0: about 20 per epoch
  int keep = 3;                // snapshots kept (<= 0: all)
  int64_t eval_batch = 100;
  std::string resume;   // a run, checkpoints or snapshot directory to continue from
  std::string weights;  // initial weights for fine-tuning (matched by name)
  int64_t train_limit = 0, test_limit = 0;  // only the first N examples (0: all)
  bool quiet = false;                       // no progress display on stderr
  bool handle_signals = true;               // SIGINT/SIGTERM finish the step, checkpoint and return
  nlohmann::json to_json() const;
};

// What a caller sees after each optimizer update.
struct StepInfo {
  int64_t iter = 0;  // updates done
  double epoch = 0;  // fractional
  float loss = 0, top1 = 0;
  double lr = 0;
};

struct TrainObserver {
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const nlohmann::json&)> on_event;  // each metrics.jsonl line as written
  std::function<bool()> should_stop;                    // polled after every update
};

struct TrainResult {
  int64_t iterations = 0;  // updates done in all (across resumes)
  double epochs = 0;
  double seconds = 0;                                     // training wall time (across resumes)
  double test_top1 = -1, test_top5 = -1, test_loss = -1;  // final evaluation; -1 if none
  double best_top1 = -1;
  int64_t best_iter = -1;
  bool stopped = false;    // stopped early by a signal or should_stop
  std::string checkpoint;  // the last snapshot written
  std::string weights;     // OUT/weights.safetensors of a finished run
};

// Training stopped because the loss became NaN or infinite; the message names the iteration.
class DivergedError : public Error {
 public:
  DivergedError(const std::string& what, int64_t iter) : Error(what), iter_(iter) {}
  int64_t iteration() const { return iter_; }

 private:
  int64_t iter_;
};

TrainResult train(const TrainOptions& options, const TrainObserver& observer = {});

}  // namespace myelin
