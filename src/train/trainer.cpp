#include "train/trainer.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <future>
#include <memory>
#include <numeric>

#include "data/dataset_util.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "dist/watchdog.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/schedule.h"
#include "train/session.h"
#include "train/trainer_impl.h"

namespace myelin::detail {

namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_signal = 0;
std::atomic<int64_t> g_first_signal_ns{0};
static_assert(std::atomic<int64_t>::is_always_lock_free, "used in a signal handler");

int64_t monotonic_ns() {  // clock_gettime is async-signal-safe
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The first SIGINT/SIGTERM asks the loop to stop after its step. One sent again within a second
// is the same request delivered twice (`timeout` and supervisors signal the process and its
// group); a later one stops at once.
void on_signal(int sig) {
  int64_t now = monotonic_ns();
  if (g_signal == 0) {
    g_first_signal_ns = now;
    g_signal = sig;
    return;
  }
  if (now - g_first_signal_ns.load() < 1000000000) return;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

class SignalGuard {
 public:
  explicit SignalGuard(bool enable) : enabled_(enable) {
    if (!enabled_) return;
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    if (!enabled_) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  bool enabled_;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::shared_ptr<Dataset> first_n(std::shared_ptr<Dataset> d, int64_t n, const std::string& name) {
  if (!d || n <= 0 || n >= d->size()) return d;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  return std::make_shared<data::SubsetDataset>(std::move(d), std::move(idx),
                                               name + " (first " + std::to_string(n) + ")");
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string string_field(const json& j, const char* key, const std::string& dflt) {
  auto it = j.is_object() ? j.find(key) : j.end();
  return it != j.end() && it->is_string() ? it->get<std::string>() : dflt;
}

int64_t int_field(const json& j, const char* key, int64_t dflt) {
  auto it = j.is_object() ? j.find(key) : j.end();
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : dflt;
}

void check_recipe(const Recipe& r) {
  if (r.batch < 1) throw UsageError("batch must be at least 1, got " + std::to_string(r.batch));
  if (r.accumulate < 1)
    throw UsageError("accumulate must be at least 1, got " + std::to_string(r.accumulate));
  if (r.clip_grad_norm < 0) throw UsageError("clip_grad_norm must not be negative");
}

}  // namespace

double Trainer::elapsed() const {
  return start_seconds_ + seconds_since(t_start_);
}

bool Trainer::stop_requested() const {
  return g_signal != 0 || (obs_.should_stop && obs_.should_stop());
}

// Model, data, recipe and seed: the flags given, else the resumed run's, else the defaults.
void Trainer::resolve_inputs() {
  if (o_.out_dir.empty()) throw UsageError("no output directory given (--out DIR)");
  if (!o_.resume.empty()) {
    resume_dir_ = find_checkpoint(o_.resume);
    resume_ = load_checkpoint(resume_dir_);
    prev_options_ = resume_->state.options;
  }
  model_ = !o_.model.empty() ? o_.model : string_field(prev_options_, "model", "");
  if (o_.spec)
    spec_ = *o_.spec;
  else if (!model_.empty())
    spec_ = load_network(model_);
  else
    throw UsageError("no network given (--model NAME|FILE)");
  if (model_.empty()) model_ = spec_.name;
  recipe_ = o_.overrides.apply(resume_ ? resume_->state.recipe : spec_.recipe);
  check_recipe(recipe_);
  seed_ = resume_ ? resume_->state.seed : o_.seed;
  data_spec_ = o_.sources         ? o_.sources->description
               : !o_.data.empty() ? o_.data
                                  : string_field(prev_options_, "data", "fashion-mnist");
  train_limit_ = o_.train_limit > 0 ? o_.train_limit : int_field(prev_options_, "train_limit", 0);
  test_limit_ = o_.test_limit > 0 ? o_.test_limit : int_field(prev_options_, "test_limit", 0);
  fit_text_dataset();
}

// Batches from memory (TrainOptions::sources), checked against the network and the recipe.
void Trainer::open_sources() {
  const BatchSources& s = *o_.sources;
  if (!s.train) throw UsageError("no training batches given");
  if (world_.size > 1) throw UsageError("batches from memory train in one process only");
  Shape bs = s.train->batch_shape();
  Dims example(bs.dims.begin() + 1, bs.dims.end());
  if (bs[0] != recipe_.batch || example != spec_.input)
    throw UsageError("training batches of " + bs.str() + " do not fit network '" + spec_.name +
                     "', which takes " + Shape(spec_.input).str() + " in batches of " +
                     std::to_string(recipe_.batch));
  train_loader_ = s.train;
  test_loader_ = s.test;
  bpe_ = train_loader_->batches_per_epoch();
  class_names_ = s.class_names;
  for (auto k = class_names_.size(); k < static_cast<size_t>(spec_.classes); ++k)
    class_names_.push_back(std::to_string(k));
  class_names_.resize(static_cast<size_t>(spec_.classes));
  data_description_ = s.description;
  train_examples_ = s.train_examples;
  test_examples_ = s.test ? s.test_examples : 0;
}

void Trainer::open_data() {
  if (text_) return open_text_data();
  if (o_.sources) return open_sources();
  DatasetSplits splits = open_dataset(data_spec_, o_.open);
  train_data_ = first_n(splits.train, train_limit_, data_spec_ + " train");
  test_data_ = first_n(splits.test, test_limit_, data_spec_ + " test");
  if (!train_data_) throw UsageError("dataset '" + data_spec_ + "' has no training set");
  if (train_data_->num_classes() > spec_.classes)
    throw UsageError("dataset '" + data_spec_ + "' has " +
                     std::to_string(train_data_->num_classes()) + " classes but network '" +
                     spec_.name + "' has " + std::to_string(spec_.classes) + " outputs");
  class_names_ = train_data_->class_names();
  class_names_.resize(static_cast<size_t>(spec_.classes));
  LoaderOptions lo;
  lo.batch = recipe_.batch;
  lo.seed = seed_;
  lo.threads = o_.loader_threads;
  lo.transforms = transforms_from(recipe_);
  lo.rank = world_.rank;
  lo.world = world_.size;
  train_loader_ = std::make_unique<Loader>(train_data_, lo);
  Shape bs = train_loader_->batch_shape();
  Dims example(bs.dims.begin() + 1, bs.dims.end());
  if (example != spec_.input)
    throw UsageError("dataset '" + data_spec_ + "' gives examples of " + Shape(example).str() +
                     (recipe_.crop ? " (after crop)" : "") + ", network '" + spec_.name +
                     "' takes " + Shape(spec_.input).str());
  bpe_ = train_loader_->batches_per_epoch();
  if (test_data_) {
    lo.batch = std::max<int64_t>(1, std::min(o_.eval_batch, test_data_->size()));
    lo.shuffle = lo.training = lo.drop_last = false;  // each rank tests its share
    test_loader_ = std::make_unique<Loader>(test_data_, lo);
  }
  data_description_ = train_data_->describe();
  train_examples_ = train_data_->size();
  test_examples_ = test_data_ ? test_data_->size() : 0;
}

// The training program only: build_session runs while open_data loads the data, and the
// evaluation program's batch depends on the test set's size (add_eval_program).
void Trainer::build_session() {
  SessionOptions so;
  so.device = Device::parse(device_);
  so.backend.threads = o_.threads;
  so.backend.precision = o_.precision;
  so.backend.conv_search = o_.conv_search;
  so.batch = recipe_.batch;
  so.eval = false;
  so.seed = seed_;
  so.recipe = recipe_;
  session_ = std::make_unique<Session>(spec_, so);
  if (world_.distributed() || o_.data_parallel) comm_ = dist::connect(world_, session_->backend());
}

bool Trainer::should_stop() {
  if (!parallel()) return stop_requested();
  const int64_t every = pipelined() ? 16 : 1;
  if (st_.iteration % every != 0) return false;
  return sum_over_ranks({stop_requested() ? 1.0 : 0.0})[0] > 0;
}

void Trainer::add_eval_program() {
  session_->add_eval(test_loader_ ? test_loader_->batch_shape()[0] : recipe_.batch);
}

void Trainer::init_state() {
  int64_t updates_per_epoch = std::max<int64_t>(1, bpe_ / recipe_.accumulate);
  max_iter_ = recipe_.max_iter > 0 ? recipe_.max_iter : recipe_.epochs * bpe_ / recipe_.accumulate;
  if (max_iter_ <= 0)
    throw UsageError("nothing to train: " + std::to_string(recipe_.epochs) + " epochs of " +
                     std::to_string(bpe_) + " batches give no update");
  check_schedule(recipe_, max_iter_);
  eval_every_ = o_.eval_every > 0 ? o_.eval_every : updates_per_epoch;
  snapshot_every_ = o_.snapshot_every != 0 ? o_.snapshot_every : updates_per_epoch;
  log_every_ = o_.log_every > 0 ? o_.log_every : std::max<int64_t>(1, updates_per_epoch / 20);
  json options = o_.to_json();
  options["model"] = model_, options["data"] = data_spec_, options["seed"] = seed_;
  options["train_limit"] = train_limit_, options["test_limit"] = test_limit_;
  if (resume_) {
    restore_checkpoint(*session_, *resume_, resume_dir_);
    st_ = resume_->state;
    rescale_resumed_counters(st_.recipe.batch * st_.world_size);
  } else if (!o_.weights.empty()) {
    WeightsReport r = load_weights(*session_, o_.weights, false);
    if (!o_.quiet) std::fprintf(stderr, "%s\n", r.summary().c_str());
  }
  st_.seed = seed_;
  st_.network = spec_.name;
  st_.class_names = class_names_;
  st_.recipe = recipe_;
  st_.max_iter = max_iter_;
  st_.world_size = ranks();
  st_.options = options;
  start_iter_ = st_.iteration;
  start_seconds_ = st_.seconds;
}

// Rank 0 speaks for the run: the other ranks write no events and show no progress.
void Trainer::open_metrics() {
  progress_ = std::make_unique<Progress>(o_.quiet || !world_.is_root(), max_iter_);
  if (text_) progress_->count_tokens(static_cast<double>(spec_.input[0]));
  if (!world_.is_root()) {
    log_ = std::make_unique<MetricsLog>();
    return;
  }
  fs::create_directories(o_.out_dir);
  std::string path = (fs::path(o_.out_dir) / "metrics.jsonl").string();
  bool append = resume_ && fs::exists(path);
  if (append) truncate_metrics_after(path, st_.iteration);
  log_ = std::make_unique<MetricsLog>(path, !append, obs_.on_event);
  log_->write({{"event", resume_ ? "resume" : "start"},
               {"iter", st_.iteration},
               {"network", spec_.name},
               {"dataset", data_description_},
               {"train_examples", train_examples_},
               {"test_examples", test_examples_},
               {"device", o_.device},
               {"batch", recipe_.batch},
               {"world_size", ranks()},
               {"global_batch", recipe_.batch * ranks()},
               {"transport", comm_ ? comm_->transport() : "none"},
               {"batches_per_epoch", bpe_},
               {"max_iter", max_iter_},
               {"seed", seed_},
               {"recipe", recipe_to_json(recipe_)},
               {"options", st_.options}});
  std::string where = o_.device;
  if (comm_)
    where = std::to_string(ranks()) + " rank" + (ranks() == 1 ? "" : "s") + " (" +
            comm_->transport() + ") x " + (device_ == "cpu" ? "cpu" : "one GPU each") +
            ", global batch " + std::to_string(recipe_.batch * ranks());
  char line[640];
  std::snprintf(line, sizeof line,
                "%s %s on %s (%lld training, %lld test %s): %lld iterations of batch %lld "
                "(%lld per epoch) on %s, from iteration %lld",
                resume_ ? "resuming" : "training", spec_.name.c_str(), data_spec_.c_str(),
                static_cast<long long>(train_examples_), static_cast<long long>(test_examples_),
                text_ ? "tokens" : "examples", static_cast<long long>(max_iter_),
                static_cast<long long>(recipe_.batch),
                static_cast<long long>(bpe_ / recipe_.accumulate), where.c_str(),
                static_cast<long long>(st_.iteration));
  progress_->line(line);
}

// Recurrent layers that carry their state start each epoch from zero (text: the streams start
// over); a run resumed mid-epoch goes on from the checkpoint's state.
void Trainer::loop() {
  if (st_.batch_in_epoch == 0) session_->reset_carried_states();
  train_loader_->start_epoch(st_.epoch, st_.batch_in_epoch);
  Batch b;
  while (st_.iteration < max_iter_) {
    if (!train_loader_->next(b)) {
      ++st_.epoch;
      st_.batch_in_epoch = 0;
      session_->reset_carried_states();
      train_loader_->start_epoch(st_.epoch);
      continue;
    }
    if (!train_step(b)) continue;  // accumulating gradients
    after_update();
    if (st_.iteration < max_iter_ && should_stop()) return;
  }
}

// One batch forward and backward; the update once `accumulate` batches have been seen.
bool Trainer::train_step(const Batch& b) {
  if (pipelined()) return pipelined_step(b);
  auto t0 = Clock::now();
  session_->feed(b);
  session_->forward_backward(static_cast<uint64_t>(st_.micro_batches));
  StepStats s = session_->last_stats();
  if (!std::isfinite(s.loss)) diverged(s.loss, b);
  ++st_.micro_batches;
  st_.batch_in_epoch = b.index + 1;
  window_.add(s.loss, s.top1);
  update_window_.add(s.loss, s.top1);
  bool update = st_.micro_batches % recipe_.accumulate == 0;
  if (update) {
    lr_ = lr_at(recipe_, st_.iteration, max_iter_);
    session_->update(Hyper::from(recipe_, lr_, st_.iteration),
                     static_cast<uint64_t>(st_.iteration));
    ++st_.iteration;
  }
  double dt = seconds_since(t0);
  train_seconds_ += dt;
  window_.seconds += dt;
  return update;
}

// The whole step at once (accumulate == 1) on a device that runs it asynchronously: the step is
// queued, then the previous step's loss is read, so the device never waits for the host.
bool Trainer::pipelined_step(const Batch& b) {
  auto t0 = Clock::now();
  lr_ = lr_at(recipe_, st_.iteration, max_iter_);
  session_->feed(b);
  session_->step(Hyper::from(recipe_, lr_, st_.iteration), static_cast<uint64_t>(st_.iteration));
  pending_[session_->steps() % 2] = {st_.iteration + 1, b.epoch, b.index, lr_};
  ++st_.micro_batches;
  ++st_.iteration;
  st_.batch_in_epoch = b.index + 1;
  collect_stats(false);
  double dt = seconds_since(t0);
  train_seconds_ += dt;
  window_.seconds += dt;
  return true;
}

// Adds the loss and accuracy of each finished pipelined step not yet counted; `all` waits for
// the last one too (before events, test passes and snapshots).
void Trainer::collect_stats(bool all) {
  int64_t steps = session_->steps();
  for (int64_t upto = all ? steps : steps - 1; stats_seen_ < upto; ++stats_seen_) {
    StepStats s = session_->step_stats(static_cast<int>(steps - 1 - stats_seen_));
    if (!std::isfinite(s.loss)) {
      const Pending& p = pending_[(stats_seen_ + 1) % 2];
      diverged(s.loss, p.iter, p.epoch, p.batch, p.lr);
    }
    window_.add(s.loss, s.top1);
    update_window_.add(s.loss, s.top1);
  }
}

void Trainer::diverged(float loss, const Batch& b) {
  diverged(loss, st_.iteration + 1, b.epoch, b.index, lr_at(recipe_, st_.iteration, max_iter_));
}

void Trainer::diverged(float loss, int64_t it, int64_t epoch, int64_t batch, double lr) {
  std::string what = std::isnan(loss) ? "NaN" : "infinite";
  std::string msg = "training diverged: the loss is " + what + " at iteration " +
                    std::to_string(it) + " (epoch " + std::to_string(epoch) + ", batch " +
                    std::to_string(batch) + ", learning rate " + number(lr) +
                    "); lower the learning rate or clip gradients (clip_grad_norm)";
  log_->write({{"event", "error"}, {"iter", it}, {"message", msg}});
  progress_->finish();
  throw DivergedError(msg, it);
}

void Trainer::after_update() {
  const int64_t it = st_.iteration;
  const bool last = it == max_iter_;
  const bool log = last || it % log_every_ == 0;
  const bool test = !last && test_loader_ && it % eval_every_ == 0;
  const bool snap = !last && snapshot_every_ > 0 && it % snapshot_every_ == 0;
  // Events, test passes and snapshots report the figures of every step so far (the last one's
  // only arrive when it finishes), as does the first progress line.
  if (pipelined() && (log || test || snap || it == start_iter_ + 1)) collect_stats(true);
  StepInfo info{st_.iteration, epoch(), static_cast<float>(update_window_.mean_loss()),
                static_cast<float>(update_window_.mean_top1()), lr_};
  update_window_ = {};
  if (watchdog_) watchdog_->pet();
  if (obs_.on_step) obs_.on_step(info);
  int64_t done = st_.iteration - start_iter_;
  double per_iter = done > 0 ? train_seconds_ / static_cast<double>(done) : 0;
  double eta = per_iter * static_cast<double>(max_iter_ - st_.iteration);
  progress_->update(st_.iteration, epoch(), info.loss, lr_,
                    static_cast<double>(done * recipe_.batch * recipe_.accumulate * ranks()) /
                        std::max(train_seconds_, 1e-9),
                    eta);
  if (log) write_train_event();
  if (test) test_pass();
  if (snap) snapshot();
}

void Trainer::write_train_event() {
  reduce_window();
  int64_t done = st_.iteration - start_iter_;
  double per_iter = done > 0 ? train_seconds_ / static_cast<double>(done) : 0;
  int64_t evals_left = test_loader_ ? (max_iter_ - st_.iteration) / eval_every_ + 1 : 0;
  double eta = per_iter * static_cast<double>(max_iter_ - st_.iteration) +
               last_eval_seconds_ * static_cast<double>(evals_left);
  double ips = window_.seconds > 0
                   ? static_cast<double>(window_.batches * recipe_.batch) / window_.seconds
                   : 0;
  json event = {{"event", "train"},
                {"iter", st_.iteration},
                {"epoch", epoch()},
                {"loss", window_.mean_loss()},
                {"top1", window_.mean_top1()},
                {"lr", lr_},
                {"images_per_second", ips},
                {"eta_seconds", eta}};
  if (text_) event["tokens_per_second"] = ips * static_cast<double>(spec_.input[0]);
  log_->write(event);
  window_ = {};
}

void Trainer::test_pass() {
  if (watchdog_) watchdog_->pause();
  EvalResult r = evaluate_batches(*session_, *test_loader_, class_names_, 20, recipe_.test_mirror);
  reduce_eval(r);
  if (watchdog_) watchdog_->resume();
  last_eval_seconds_ = r.seconds;
  if (r.top1 > st_.best_top1) st_.best_top1 = r.top1, st_.best_iter = st_.iteration;
  json event = {{"event", "test"},        {"iter", st_.iteration}, {"epoch", epoch()},
                {"loss", r.loss},         {"top1", r.top1},        {"top5", r.top5},
                {"examples", r.examples}, {"seconds", r.seconds}};
  // Text: the loss in bits per symbol (per character at char level), the usual yardstick.
  if (text_) event["bits_per_symbol"] = r.loss / std::log(2.0);
  log_->write(event);
  char line[200];
  if (text_)
    std::snprintf(line, sizeof line,
                  "iter %lld  validation: loss %.4f  %.3f bits per symbol  top-1 %.2f%%  (%lld "
                  "tokens)",
                  static_cast<long long>(st_.iteration), r.loss, r.loss / std::log(2.0),
                  r.top1 * 100, static_cast<long long>(r.examples));
  else
    std::snprintf(line, sizeof line,
                  "iter %lld  test: loss %.4f  top-1 %.2f%%  top-5 %.2f%%  (%lld images)",
                  static_cast<long long>(st_.iteration), r.loss, r.top1 * 100, r.top5 * 100,
                  static_cast<long long>(r.examples));
  progress_->line(line);
  last_test_ = std::move(r);
  last_test_iter_ = st_.iteration;
  write_sample();
}

// Rank 0 writes the checkpoint (every rank holds the same weights); the others wait for it, so
// a long write does not look like a hung rank.
void Trainer::snapshot() {
  st_.seconds = elapsed();
  if (watchdog_) watchdog_->pause();
  if (world_.is_root()) {
    last_checkpoint_ = save_checkpoint(o_.out_dir, capture_checkpoint(*session_, st_), o_.keep);
    log_->write({{"event", "snapshot"}, {"iter", st_.iteration}, {"path", last_checkpoint_}});
  }
  sum_over_ranks({0.0});
  if (watchdog_) watchdog_->resume();
}

TrainResult Trainer::finish(bool stopped) {
  if (!stopped && test_loader_ && last_test_iter_ != st_.iteration) test_pass();
  snapshot();
  TrainResult r;
  r.iterations = st_.iteration;
  r.epochs = epoch();
  r.seconds = st_.seconds;
  r.best_top1 = st_.best_top1, r.best_iter = st_.best_iter;
  r.stopped = stopped;
  r.checkpoint = last_checkpoint_;
  progress_->finish();
  if (stopped) {
    log_->write({{"event", "stopped"},
                 {"iter", st_.iteration},
                 {"reason", g_signal != 0 ? "signal" : "requested"},
                 {"checkpoint", last_checkpoint_}});
    progress_->line("stopped at iteration " + std::to_string(st_.iteration) +
                    "; continue with --resume " + o_.out_dir);
    return r;
  }
  r.weights = (fs::path(o_.out_dir) / "weights.safetensors").string();
  if (world_.is_root())
    write_safetensors(r.weights, capture_checkpoint(*session_, st_).weights.tensors,
                      weights_metadata(st_));
  if (last_test_)
    r.test_top1 = last_test_->top1, r.test_top5 = last_test_->top5, r.test_loss = last_test_->loss;
  log_->write({{"event", "end"},
               {"iter", st_.iteration},
               {"test_accuracy", r.test_top1},
               {"test_top5", r.test_top5},
               {"test_loss", r.test_loss},
               {"best_accuracy", st_.best_top1},
               {"best_iter", st_.best_iter},
               {"seconds", r.seconds},
               {"iterations", r.iterations},
               {"world_size", ranks()},
               {"weights", r.weights}});
  char acc[32] = "n/a";
  if (r.test_top1 >= 0) std::snprintf(acc, sizeof acc, "%.2f%%", r.test_top1 * 100);
  progress_->line("done: " + std::to_string(r.iterations) + " iterations in " +
                  format_duration(r.seconds) + ", test top-1 " + acc + "; weights in " + r.weights);
  return r;
}

TrainResult Trainer::run() {
  SignalGuard guard(o_.handle_signals);
  world_ = dist::detect_world();
  device_ = rank_device();
  resolve_inputs();
  {
    // Loading the data (gunzip, decoding) and building the training program (device set-up,
    // cuDNN's algorithm search) take about as long as each other: both at once. open_data and
    // build_session touch different members; get() rethrows open_data's errors.
    auto data = std::async(std::launch::async, [this] { open_data(); });
    build_session();
    data.get();
  }
  add_eval_program();
  init_state();
  connect_ranks();
  open_metrics();
  try {
    loop();
    return finish(st_.iteration < max_iter_);
  } catch (const DivergedError&) {
    throw;  // already logged
  } catch (const std::exception& e) {
    log_->write({{"event", "error"}, {"iter", st_.iteration}, {"message", e.what()}});
    progress_->finish();
    throw;
  }
}

}  // namespace myelin::detail

namespace myelin {

TrainResult train(const TrainOptions& options, const TrainObserver& observer) {
  return detail::Trainer(options, observer).run();
}

}  // namespace myelin
