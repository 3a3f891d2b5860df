// A one-line progress bar on stderr (redrawn in place on a terminal, a plain line every few
// seconds otherwise).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace myelin::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  void update(int64_t done, int64_t total, const std::string& note = "");
  void finish();

 private:
  std::string label_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false;
};

}  // namespace myelin::cli
