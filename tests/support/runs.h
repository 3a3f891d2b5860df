// Helpers for tests that run the `myelin` program as a user does: run a command line, read the
// last event of a run's metrics.jsonl, compare two weight files.
#pragma once
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "train/checkpoint.h"

namespace myelin::testing {

struct Outcome {
  int status = -1;     // the exit code; -1 if it did not exit normally
  std::string output;  // stdout and stderr together
};

inline Outcome run_command(const std::string& cmd) {
  Outcome r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  int s = pclose(p);
  r.status = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  return r;
}

inline nlohmann::json last_event(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last);
}

// The largest difference between two weight files' tensors, relative to each tensor's largest
// value in `b`; infinity when a tensor of `a` is missing from `b`.
inline double weights_difference(const std::string& a, const std::string& b) {
  TensorFile fa = read_safetensors(a), fb = read_safetensors(b);
  double worst = 0;
  for (const NamedTensor& t : fa.tensors) {
    const Tensor* u = fb.find(t.name);
    if (!u) return INFINITY;
    double scale = 1e-6, diff = 0;
    for (int64_t i = 0; i < t.tensor.numel(); ++i) {
      scale = std::max(scale, std::abs(double(u->f32()[i])));
      diff = std::max(diff, std::abs(double(t.tensor.f32()[i]) - double(u->f32()[i])));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

}  // namespace myelin::testing
