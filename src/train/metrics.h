// Metrics: classification tallies computed from logits on the host (so a padded last batch
// counts only its real rows), the metrics.jsonl event log, and the terminal progress display.
//
// metrics.jsonl, one JSON object a line:
//   {"event":"start","iter":0,"network":..,"dataset":..,"device":..,"max_iter":..,...}
//   {"event":"train","iter":..,"epoch":..,"loss":..,"top1":..,"lr":..,"images_per_second":..,
//    "eta_seconds":..}                     loss/top1: means over the batches since the last one
//   {"event":"test","iter":..,"epoch":..,"loss":..,"top1":..,"top5":..,"examples":..}
//   {"event":"snapshot","iter":..,"path":..}
//   {"event":"end","iter":..,"test_accuracy":..,"test_top5":..,"test_loss":..,"seconds":..,
//    "iterations":..}                      the last line of a finished run
//   {"event":"stopped","iter":..,"reason":"signal"|"requested","checkpoint":..}
//   {"event":"error","iter":..,"message":..}
// Accuracies are fractions in [0, 1]; epoch is fractional (batches done / batches per epoch).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace myelin {

class ClassificationTally {
 public:
  explicit ClassificationTally(int classes);
  // `count` rows of `classes` logits each (row stride `classes`) and their labels.
  void add(const float* logits, const int32_t* labels, int64_t count);

  int classes() const { return classes_; }
  int64_t examples() const { return examples_; }
  double loss() const;  // mean softmax cross-entropy
  double top1() const;
  double top5() const;  // top-min(5, classes)
  // Rows: true class, columns: predicted class.
  const std::vector<int64_t>& confusion() const { return confusion_; }
  std::vector<double> per_class_accuracy() const;  // NaN for a class with no examples

 private:
  int classes_;
  int64_t examples_ = 0, top1_hits_ = 0, top5_hits_ = 0;
  double loss_sum_ = 0;
  std::vector<int64_t> confusion_;
};

// Appends events to OUT/metrics.jsonl (one flushed line each) and hands them to a listener.
class MetricsLog {
 public:
  MetricsLog() = default;
  // truncate: a fresh run; otherwise lines are appended.
  MetricsLog(const std::string& path, bool truncate,
             std::function<void(const nlohmann::json&)> listener = {});
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const nlohmann::json& event);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::function<void(const nlohmann::json&)> listener_;
};

// For a resumed run in the same directory: keeps the events up to and including iteration
// `iter` and drops what came after it and any end/stopped/error lines. Atomic.
void truncate_metrics_after(const std::string& path, int64_t iter);

// A progress bar on stderr when it is a terminal (redrawn at most 10 times a second), a plain
// line every few seconds otherwise; nothing when quiet.
class Progress {
 public:
  Progress(bool quiet, int64_t max_iter);
  void update(int64_t iter, double epoch, double loss, double lr, double images_per_second,
              double eta_seconds);
  void line(const std::string& text);  // a message of its own (test results, snapshots)
  // Text runs count tokens: `per_example` of them per example, shown as "tokens/s".
  void count_tokens(double per_example) { per_example_ = per_example, unit_ = "tokens/s"; }
  void finish();

 private:
  bool quiet_, tty_;
  int64_t max_iter_;
  bool drawn_ = false;
  double per_example_ = 1;
  const char* unit_ = "img/s";
  std::chrono::steady_clock::time_point last_;
};

std::string format_duration(double seconds);  // "1:02:03", "4:05"

}  // namespace myelin
