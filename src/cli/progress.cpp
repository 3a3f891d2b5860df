#include "cli/progress.h"

#include <cstdio>

#include "cli/command.h"

namespace myelin::cli {

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      terminal_(stderr_is_terminal()),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void ProgressBar::update(int64_t done, int64_t total, const std::string& note) {
  auto now = std::chrono::steady_clock::now();
  double since_last = std::chrono::duration<double>(now - last_).count();
  if (done < total && since_last < (terminal_ ? 0.1 : 5.0) && drawn_) return;
  last_ = now;
  drawn_ = true;
  double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  double secs = std::chrono::duration<double>(now - start_).count();
  double eta = frac > 0 ? secs / frac - secs : 0;
  constexpr int width = 30;
  int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  std::fprintf(stderr, "%s%s [%s] %3.0f%% %lld/%lld %.0fs left %s%s", terminal_ ? "\r" : "",
               label_.c_str(), bar.c_str(), 100 * frac, static_cast<long long>(done),
               static_cast<long long>(total), eta, note.c_str(), terminal_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (terminal_ && drawn_) std::fputc('\n', stderr);
}

}  // namespace myelin::cli
