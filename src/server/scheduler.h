// The scheduler: one thread that starts queued jobs in submission order as their pools free up
// (the CPU, each GPU; or hands them all to Slurm), follows each running job's metrics.jsonl and
// log into the event log, notices when a job ends and decides what that means (done, failed,
// aborted, or a crash to restart from its last checkpoint), and at start reattaches to jobs that
// outlived a killed server. How jobs start, stand and stop is its Launcher's business.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server/context.h"
#include "server/launcher.h"

namespace myelin::server {

class SystemMonitor;

class Scheduler {
 public:
  Scheduler(Context& c, const SystemMonitor& sys);
  ~Scheduler();  // stops the thread; running jobs go on and are reattached at the next start

  void wake();  // a job was queued or changed
  // Queued here: aborted at once. Running (or waiting in Slurm's queue): SIGTERM; the trainer
  // writes a checkpoint and stops.
  void abort(int64_t job, const std::string& reason = "");
  // An aborted, interrupted or failed job continues from its last checkpoint.
  void resume(int64_t job);
  // The pools: [{"name", "capacity" (null: no limit), "running": [ids], "queued": [ids]}].
  nlohmann::json pools_json() const;

 private:
  struct Running {
    Handle handle;
    std::string pools;          // the pools it holds, comma-separated
    bool started = false;       // running, not waiting in a cluster's queue
    int64_t resumed_from = -1;  // the checkpoint's iteration, or -1
  };

  void loop();
  void reattach();
  void follow(int64_t job);
  // From the byte offsets already consumed.
  void follow_metrics(int64_t job, const std::string& run_dir, int64_t offset);
  void follow_log(int64_t job, const std::string& run_dir, int64_t offset);
  void check_jobs();
  void waiting(int64_t job, const std::string& why);
  void mark_running(int64_t job, Running& r);
  void finished(int64_t job, const ExitStatus& status);
  void dispatch();
  bool start(int64_t job, const std::vector<std::string>& pools);
  void set_state(int64_t job, const std::string& state, const nlohmann::json& extra = {});

  Context& c_;
  std::unique_ptr<Launcher> launcher_;
  std::map<int64_t, Running> running_;  // only the scheduler's thread touches it
  std::mutex mutex_;
  std::mutex launch_mutex_;  // a job's start and its abort, one at a time
  std::condition_variable cv_;
  bool woken_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace myelin::server
