#include "server/scheduler.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "model/network.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "train/metrics.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

constexpr int kTickMs = 20;         // how often running jobs' files are read
constexpr int kDispatchEvery = 10;  // ticks between looks at the queue (and on every wake)

std::vector<std::string> split_pools(const std::string& pools) {
  std::vector<std::string> out;
  std::stringstream in(pools);
  for (std::string p; std::getline(in, p, ',');) out.push_back(p);
  return out;
}

std::string join_pools(const std::vector<std::string>& pools) {
  std::string out;
  for (const std::string& p : pools) out += (out.empty() ? "" : ",") + p;
  return out;
}

int64_t file_size(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

// The network file written at creation, fitted to the dataset now that it is built.
void fit_network_to_dataset(const Context& c, int64_t job, const DatasetView& ds) {
  std::string path = job_json(c, job)["run_dir"].get<std::string>() + "/network.yaml";
  NetworkSpec net = fit_network(load_network(path), ds);
  std::ofstream(path, std::ios::trunc) << write_network(net);
}

}  // namespace

Scheduler::Scheduler(Context& c, const SystemMonitor& sys)
    : c_(c), launcher_(make_launcher(c.options.scheduler, sys, c.options.cpu_slots)) {
  reattach();
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  stop_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Scheduler::loop() {
  for (int tick = 0; !stop_; ++tick) {
    bool woken = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, std::chrono::milliseconds(kTickMs), [&] { return woken_ || stop_; });
      woken = woken_;
      woken_ = false;
    }
    if (stop_) break;
    try {
      for (auto& [job, r] : running_)
        if (r.started) follow(job);
      check_jobs();
      if (woken || tick % kDispatchEvery == 0) dispatch();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "myelin serve: scheduler: %s\n", e.what());
    }
  }
}

void Scheduler::set_state(int64_t job, const std::string& state, const nlohmann::json& extra) {
  nlohmann::json data = extra;
  data["state"] = state;
  c_.events.job_event(job, "state", data);
  c_.events.change("job", job, data);
}

nlohmann::json Scheduler::pools_json() const {
  std::map<std::string, nlohmann::json> running, queued;
  Statement r = c_.db.query("SELECT id, pool FROM jobs WHERE state = 'running' ORDER BY id");
  while (r.step())
    for (const std::string& p : split_pools(r.text(1))) running[p].push_back(r.integer(0));
  Statement q = c_.db.query("SELECT id, spec FROM jobs WHERE state = 'queued' ORDER BY id");
  while (q.step()) {
    Needs needs = launcher_->needs(resources_of(nlohmann::json::parse(q.text(1))));
    for (const std::string& p : needs.candidates) queued[p].push_back(q.integer(0));
  }
  nlohmann::json out = nlohmann::json::array();
  for (const Pool& p : launcher_->pools()) {
    nlohmann::json capacity = p.capacity < 0 ? nlohmann::json() : nlohmann::json(p.capacity);
    out.push_back({{"name", p.name},
                   {"capacity", capacity},
                   {"running", running.count(p.name) ? running[p.name] : nlohmann::json::array()},
                   {"queued", queued.count(p.name) ? queued[p.name] : nlohmann::json::array()}});
  }
  return out;
}

// Queued jobs in submission order, each on the first free pools it may take; a job that must
// wait claims its pools, so later jobs queue behind it instead of overtaking it.
void Scheduler::dispatch() {
  std::map<std::string, int> busy;
  for (auto& [job, r] : running_)
    for (const std::string& p : split_pools(r.pools)) ++busy[p];
  std::map<std::string, int> capacity;
  for (const Pool& p : launcher_->pools()) capacity[p.name] = p.capacity;
  std::set<std::string> claimed;
  Statement q = c_.db.query(
      "SELECT id, spec, dataset, waiting_for FROM jobs WHERE state = 'queued' AND pid IS NULL "
      "ORDER BY id");
  std::vector<std::tuple<int64_t, std::string, int64_t, std::string>> queued;
  while (q.step()) queued.emplace_back(q.integer(0), q.text(1), q.integer(2), q.text(3));
  for (auto& [id, spec_text, dataset, was_waiting] : queued) {
    DatasetView ds = dataset_view(c_, dataset);
    Needs needs = launcher_->needs(resources_of(nlohmann::json::parse(spec_text)));
    std::string why;
    if (ds.state != "ready") {
      why = "dataset " + std::to_string(dataset) + " (" + ds.name + ") to finish building";
    } else {
      std::vector<std::string> free;
      for (const std::string& p : needs.candidates)
        if (!claimed.count(p) && (capacity[p] < 0 || busy[p] < capacity[p]) &&
            static_cast<int>(free.size()) < needs.count)
          free.push_back(p);
      if (static_cast<int>(free.size()) == needs.count) {
        if (start(id, free))
          for (const std::string& p : free) ++busy[p];
        continue;  // started, failed to start, or aborted meanwhile: not waiting
      }
      why = needs.describe;
      for (const std::string& p : needs.candidates)
        if (capacity[p] >= 0) claimed.insert(p);
    }
    if (why != was_waiting) waiting(id, why);
  }
}

void Scheduler::waiting(int64_t job, const std::string& why) {
  c_.db.run("UPDATE jobs SET waiting_for = ? WHERE id = ?", {why, job});
  c_.events.change("job", job, {{"state", kQueued}, {"waiting_for", why}});
}

bool Scheduler::start(int64_t job, const std::vector<std::string>& pools) {
  // An abort from the API waits until the job is started (then it is signalled) or sees it
  // still queued without a process (then it is aborted here, and not started).
  std::lock_guard<std::mutex> lock(launch_mutex_);
  if (!c_.db.scalar("SELECT 1 FROM jobs WHERE id = ? AND state = 'queued' AND pid IS NULL", {job}))
    return false;
  nlohmann::json j = job_json(c_, job);
  std::string dir = j["run_dir"];
  bool resume = c_.db.scalar("SELECT resume FROM jobs WHERE id = ?", {job}).value_or(0) != 0;
  int64_t ckpt = latest_checkpoint_iter(dir);
  resume = resume && ckpt >= 0;
  Launch launch{job, dir, dir + "/log.txt", {}, resources_of(j["spec"]), pools};
  // A resumed trainer keeps metrics.jsonl up to its checkpoint; cut it here first, so that what
  // is followed from now on is only what the new process writes.
  std::string metrics = dir + "/metrics.jsonl";
  Handle handle;
  int64_t metrics_offset = 0, log_offset = 0;  // what the new process writes starts there
  try {
    if (!resume) fit_network_to_dataset(c_, job, dataset_view(c_, j["dataset"].get<int64_t>()));
    launch.train = train_command(c_, job, resume);
    if (resume) truncate_metrics_after(metrics, ckpt);
    metrics_offset = resume ? file_size(metrics) : 0;
    log_offset = file_size(launch.log_path);
    handle = launcher_->start(launch);
  } catch (const std::exception& e) {
    c_.db.run("UPDATE jobs SET state = ?, error = ?, finished = ? WHERE id = ?",
              {std::string(kFailed), std::string(e.what()), now_seconds(), job});
    set_state(job, kFailed, {{"error", e.what()}});
    return false;
  }
  c_.db.run(
      "UPDATE jobs SET pool = ?, pid = ?, pid_start = ?, waiting_for = NULL, error = NULL, "
      "resume = 0, abort_requested = 0, metrics_offset = ?, log_offset = ? WHERE id = ?",
      {join_pools(pools), handle.id, handle.tag, metrics_offset, log_offset, job});
  running_[job] = {handle, join_pools(pools), false, resume ? ckpt : -1};
  JobStatus st = launcher_->poll(handle);
  if (st.phase == JobStatus::pending) {
    waiting(job, st.waiting);
    return true;
  }
  mark_running(job, running_[job]);
  if (st.phase == JobStatus::ended) {  // already (a trainer that could not start): say how
    follow(job);
    running_.erase(job);
    finished(job, st.exit);
  }
  return true;
}

void Scheduler::mark_running(int64_t job, Running& r) {
  r.started = true;
  c_.db.run(
      "UPDATE jobs SET state = 'running', waiting_for = NULL, started = COALESCE(started, ?), "
      "finished = NULL WHERE id = ?",
      {now_seconds(), job});
  set_state(job, kRunning, {{"pool", r.pools}, {"resumed_from", r.resumed_from}});
}

void Scheduler::abort(int64_t job, const std::string& reason) {
  std::lock_guard<std::mutex> lock(launch_mutex_);
  nlohmann::json j = job_json(c_, job);
  std::string state = j["state"];
  // Not handed to a launcher yet (pid is set once it is): aborted at once.
  if ((state == kQueued || state == kInterrupted) &&
      c_.db.run("UPDATE jobs SET state = 'aborted', waiting_for = NULL, finished = ? "
                "WHERE id = ? AND state = ? AND pid IS NULL",
                {now_seconds(), job, state}) > 0) {
    set_state(job, kAborted, {{"reason", reason}});
    return;
  }
  if (state != kRunning && state != kQueued)
    throw ApiError(409, "job " + std::to_string(job) + " has already ended (" + state + ")");
  c_.db.run("UPDATE jobs SET abort_requested = 1, error = ? WHERE id = ?",
            {reason.empty() ? SqlValue(nullptr) : SqlValue(reason), job});
  Statement s =
      c_.db.query("SELECT pid, pid_start FROM jobs WHERE id = ? AND pid IS NOT NULL", {job});
  if (s.step()) launcher_->abort({s.integer(0), s.text(1)});
}

void Scheduler::resume(int64_t job) {
  if (c_.db.run("UPDATE jobs SET state = 'queued', resume = 1, error = NULL, finished = NULL, "
                "pid = NULL WHERE id = ? AND state IN ('aborted', 'interrupted', 'failed')",
                {job}) > 0)
    set_state(job, kQueued, {{"resume", true}});
  wake();
}

}  // namespace myelin::server
