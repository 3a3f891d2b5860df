// The Trainer behind train() (trainer.h), declared for its files only: trainer.cpp holds the loop,
// trainer_text.cpp the text datasets, trainer_ranks.cpp data parallelism over ranks.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/text.h"
#include "dist/communicator.h"
#include "dist/watchdog.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/session.h"
#include "train/trainer.h"

namespace myelin::detail {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Mean loss and accuracy over the batches since it was last taken.
struct Window {
  double loss = 0, top1 = 0, seconds = 0;
  int64_t batches = 0;
  void add(float l, float t) { loss += l, top1 += t, ++batches; }
  double mean_loss() const { return batches ? loss / static_cast<double>(batches) : 0; }
  double mean_top1() const { return batches ? top1 / static_cast<double>(batches) : 0; }
};

class Trainer {
 public:
  Trainer(const TrainOptions& o, const TrainObserver& obs) : o_(o), obs_(obs) {}
  TrainResult run();

 private:
  void resolve_inputs();
  void open_data();
  void fit_text_dataset();
  void open_text_data();
  void open_sources();
  void build_session();
  void add_eval_program();
  void init_state();
  void open_metrics();
  void loop();
  bool train_step(const Batch& b);
  // Whole steps queued on a device that runs them asynchronously (CUDA, accumulate == 1).
  bool pipelined() const { return recipe_.accumulate == 1 && session_->pipelined(); }
  bool pipelined_step(const Batch& b);
  void collect_stats(bool all);
  void after_update();
  [[noreturn]] void diverged(float loss, const Batch& b);
  [[noreturn]] void diverged(float loss, int64_t iter, int64_t epoch, int64_t batch, double lr);
  void write_train_event();
  void test_pass();
  void write_sample();
  void snapshot();
  TrainResult finish(bool stopped);
  double epoch() const {
    return static_cast<double>(st_.epoch) +
           static_cast<double>(st_.batch_in_epoch) / static_cast<double>(bpe_);
  }
  double elapsed() const;
  bool stop_requested() const;
  // Data parallelism: every rank must stop at the same update, so a stop request is summed over
  // the ranks (each update on the CPU; every 16 on a pipelined GPU, where it costs a sync).
  bool should_stop();
  std::string rank_device() const;
  void connect_ranks();
  void rescale_resumed_counters(int64_t old_global_batch);
  std::vector<double> sum_over_ranks(std::vector<double> v);
  void reduce_window();
  void reduce_eval(EvalResult& r);
  bool parallel() const { return comm_ != nullptr; }
  int64_t ranks() const { return world_.size; }

  const TrainOptions& o_;
  const TrainObserver& obs_;
  dist::World world_;
  std::string device_;  // this rank's
  std::unique_ptr<dist::Communicator> comm_;
  std::unique_ptr<dist::Watchdog> watchdog_;
  std::string resume_dir_;
  std::optional<Checkpoint> resume_;
  json prev_options_ = json::object();
  std::string model_, data_spec_;
  NetworkSpec spec_;
  Recipe recipe_;
  uint64_t seed_ = 1;
  int64_t train_limit_ = 0, test_limit_ = 0;
  std::shared_ptr<Dataset> train_data_, test_data_;
  std::optional<TextCorpus> text_;  // a text dataset, read while resolving the network
  std::string data_description_;
  int64_t train_examples_ = 0, test_examples_ = 0;  // text: tokens
  std::vector<std::string> class_names_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Session> sampler_;  // text: the network reading one symbol per step
  std::shared_ptr<BatchSource> train_loader_, test_loader_;
  int64_t bpe_ = 0, max_iter_ = 0, eval_every_ = 0, snapshot_every_ = 0, log_every_ = 0;
  TrainerState st_;
  std::unique_ptr<MetricsLog> log_;
  std::unique_ptr<Progress> progress_;
  Window window_, update_window_;
  double lr_ = 0, train_seconds_ = 0, start_seconds_ = 0, last_eval_seconds_ = 0;
  int64_t start_iter_ = 0;
  // Pipelined steps (CUDA): a step's figures are read while the next one runs.
  struct Pending {
    int64_t iter = 0, epoch = 0, batch = 0;
    double lr = 0;
  };
  Pending pending_[2];
  int64_t stats_seen_ = 0;
  Clock::time_point t_start_ = Clock::now();
  std::optional<EvalResult> last_test_;
  int64_t last_test_iter_ = -1;
  std::string last_checkpoint_;
};

}  // namespace myelin::detail
