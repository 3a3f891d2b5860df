#include "dist/watchdog.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "dist/communicator.h"

namespace myelin::dist {

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Watchdog::Watchdog(int rank, double timeout_seconds)
    : rank_(rank), timeout_(timeout_seconds), thread_([this] { watch(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::pet() {
  last_ns_ = now_ns();
}

double Watchdog::default_timeout() {
  const char* v = std::getenv("MYELIN_COLLECTIVE_TIMEOUT");
  double t = v ? std::atof(v) : 0;
  return t > 0 ? t : 45;
}

void Watchdog::watch() {
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, std::chrono::milliseconds(500), [this] { return stop_; })) {
    int64_t last = last_ns_;
    if (last == 0 || paused_) continue;
    double idle = static_cast<double>(now_ns() - last) / 1e9;
    if (idle < timeout_) continue;
    std::fprintf(stderr,
                 "myelin: rank %d: no training step finished in %.0f s: another rank stopped "
                 "responding or a collective hangs; ending the run (continue it with --resume)\n",
                 rank_, idle);
    std::fflush(stderr);
    abort_run(3);
  }
}

}  // namespace myelin::dist
