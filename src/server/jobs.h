// Jobs: a request checked and stored (POST /jobs, clones, sweeps), its row as the API shows it,
// and the `myelin train` command line that runs it.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/context.h"

namespace myelin::server {

class SystemMonitor;

// The states a job moves through.
inline constexpr const char* kQueued = "queued";
inline constexpr const char* kRunning = "running";
inline constexpr const char* kDone = "done";
inline constexpr const char* kFailed = "failed";
inline constexpr const char* kAborted = "aborted";
inline constexpr const char* kInterrupted = "interrupted";

bool is_final(const std::string& state);  // done, failed, aborted

struct NewJob {
  nlohmann::json request;  // the body of POST /jobs (or a clone's, or a sweep member's)
  std::optional<int64_t> sweep;
};

// Checks the request (dataset, network, recipe fields, device, memory) and stores the job as
// queued; throws ApiError 4xx saying what is wrong. Returns the job's id.
int64_t create_job(Context& c, const SystemMonitor& sys, const Identity& who, const NewJob& job);

// The job as GET /jobs/{id} shows it; ApiError 404 when there is none.
nlohmann::json job_json(const Context& c, int64_t id);
// Every job, newest first, as the list shows them (the request's spec left out).
nlohmann::json jobs_json(const Context& c, const std::string& state, int64_t limit, int64_t offset);

// The `myelin train` command that runs (resume: continues) the job, without the device flags:
// its launcher adds those for the GPUs it was given (launcher.h).
std::vector<std::string> train_command(const Context& c, int64_t id, bool resume);

// The iteration of the run's latest checkpoint, or -1 when there is none.
int64_t latest_checkpoint_iter(const std::string& run_dir);

}  // namespace myelin::server
