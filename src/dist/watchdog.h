// Ends a data-parallel rank that stops making progress: a rank that hangs (a peer stopped without
// exiting, a collective that never completes) would otherwise wait forever. The trainer pets it
// after every step; `timeout` seconds without a pet print which rank gave up, then end every rank
// (dist::abort_run). Armed by the first pet, so start-up (data loading, cuDNN's search) is free.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace myelin::dist {

class Watchdog {
 public:
  Watchdog(int rank, double timeout_seconds);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  void pet();
  // Work whose length has no bound (a test pass, a checkpoint) runs with the watchdog paused.
  void pause() { paused_ = true; }
  void resume() { pet(), paused_ = false; }
  // MYELIN_COLLECTIVE_TIMEOUT seconds, else 45.
  static double default_timeout();

 private:
  void watch();
  int rank_;
  double timeout_;
  std::atomic<int64_t> last_ns_{0};
  std::atomic<bool> paused_{false};
  bool stop_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace myelin::dist
