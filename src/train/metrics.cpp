#include "train/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "train/checkpoint.h"

namespace myelin {

using json = nlohmann::json;

ClassificationTally::ClassificationTally(int classes)
    : classes_(classes), confusion_(static_cast<size_t>(classes) * classes, 0) {
  if (classes <= 0) throw Error("a classification tally needs at least one class");
}

void ClassificationTally::add(const float* logits, const int32_t* labels, int64_t count) {
  int k = std::min(5, classes_);
  for (int64_t r = 0; r < count; ++r) {
    const float* row = logits + r * classes_;
    int32_t y = labels[r];
    if (y < 0 || y >= classes_)
      throw Error("label " + std::to_string(y) + " is outside the network's " +
                  std::to_string(classes_) + " classes");
    int pred = 0, above = 0;
    double max = row[0];
    for (int c = 1; c < classes_; ++c)
      if (row[c] > row[pred]) pred = c;
    max = row[pred];
    double sum = 0;
    for (int c = 0; c < classes_; ++c) {
      sum += std::exp(static_cast<double>(row[c]) - max);
      above += row[c] > row[y];
    }
    loss_sum_ += std::log(sum) + max - row[y];
    top1_hits_ += pred == y;
    top5_hits_ += above < k;
    ++confusion_[static_cast<size_t>(y) * classes_ + pred];
    ++examples_;
  }
}

double ClassificationTally::loss() const {
  return examples_ ? loss_sum_ / static_cast<double>(examples_) : 0.0;
}
double ClassificationTally::top1() const {
  return examples_ ? static_cast<double>(top1_hits_) / static_cast<double>(examples_) : 0.0;
}
double ClassificationTally::top5() const {
  return examples_ ? static_cast<double>(top5_hits_) / static_cast<double>(examples_) : 0.0;
}

std::vector<double> ClassificationTally::per_class_accuracy() const {
  std::vector<double> acc(static_cast<size_t>(classes_));
  for (int c = 0; c < classes_; ++c) {
    int64_t total = 0;
    for (int p = 0; p < classes_; ++p) total += confusion_[static_cast<size_t>(c) * classes_ + p];
    acc[c] = total ? static_cast<double>(confusion_[static_cast<size_t>(c) * classes_ + c]) /
                         static_cast<double>(total)
                   : std::numeric_limits<double>::quiet_NaN();
  }
  return acc;
}

MetricsLog::MetricsLog(const std::string& path, bool truncate,
                       std::function<void(const json&)> listener)
    : path_(path), listener_(std::move(listener)) {
  file_ = std::fopen(path.c_str(), truncate ? "w" : "a");
  if (!file_) throw Error("cannot open " + path + ": " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const json& event) {
  if (file_) {
    // NaN has no JSON spelling; nlohmann writes null, which readers handle.
    std::string line = event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
  }
  if (listener_) listener_(event);
}

void truncate_metrics_after(const std::string& path, int64_t iter) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    json e = json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object()) continue;  // a line cut by a crash
    std::string kind = e.value("event", std::string());
    if (kind == "end" || kind == "stopped" || kind == "error") continue;
    auto it = e.find("iter");
    if (it != e.end() && it->is_number_integer() && it->get<int64_t>() > iter) continue;
    kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

Progress::Progress(bool quiet, int64_t max_iter)
    : quiet_(quiet),
      tty_(::isatty(STDERR_FILENO) != 0),
      max_iter_(max_iter),
      last_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t iter, double epoch, double loss, double lr, double ips, double eta) {
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  bool last = iter >= max_iter_;
  if (since < (tty_ ? 0.1 : 5.0) && !last) return;
  last_ = now;
  double frac = max_iter_ > 0 ? static_cast<double>(iter) / static_cast<double>(max_iter_) : 0;
  char text[256];
  std::snprintf(text, sizeof text,
                "iter %lld/%lld  epoch %.2f  loss %.4f  lr %.3g  %.0f %s  ETA %s",
                static_cast<long long>(iter), static_cast<long long>(max_iter_), epoch, loss, lr,
                ips * per_example_, unit_, format_duration(eta).c_str());
  if (!tty_) {
    std::fprintf(stderr, "%s\n", text);
    return;
  }
  constexpr int kWidth = 24;
  int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  std::fprintf(stderr, "\r\033[K[%s] %3.0f%%  %s", bar.c_str(), frac * 100, text);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::line(const std::string& text) {
  if (quiet_) return;
  if (tty_ && drawn_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
  drawn_ = false;
}

void Progress::finish() {
  if (quiet_ || !tty_ || !drawn_) return;
  std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace myelin
