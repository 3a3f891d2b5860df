#include "server/scheduler.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "model/adapt.h"
#include "model/network.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "server/system.h"
#include "train/metrics.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

constexpr int kTickMs = 20;         // how often running jobs' files are read
constexpr int kDispatchEvery = 10;  // ticks between looks at the queue (and on every wake)

std::string describe_pool(const std::string& pool) {
  if (pool == "cpu") return "the CPU";
  if (pool == "gpu") return "a GPU";
  return "GPU " + pool.substr(4);
}

int64_t file_size(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

// The network file written at creation, fitted to the dataset now that it is built.
void fit_network_to_dataset(const Context& c, int64_t job, const DatasetView& ds) {
  std::string path = job_json(c, job)["run_dir"].get<std::string>() + "/network.yaml";
  NetworkSpec net = adapt_network(load_network(path), ds.input, ds.classes);
  std::ofstream(path, std::ios::trunc) << write_network(net);
}

}  // namespace

Scheduler::Scheduler(Context& c, const SystemMonitor& sys) : c_(c), sys_(sys) {
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
      for (auto& [job, r] : running_) follow(job);
      check_exits();
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

std::vector<std::string> Scheduler::pools() const {
  std::vector<std::string> p = {"cpu"};
  for (int i = 0; i < sys_.gpu_count(); ++i) p.push_back("gpu:" + std::to_string(i));
  return p;
}

nlohmann::json Scheduler::pools_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& pool : pools()) {
    nlohmann::json running = nlohmann::json::array(), queued = nlohmann::json::array();
    Statement s = c_.db.query("SELECT id FROM jobs WHERE state = 'running' AND pool = ?", {pool});
    while (s.step()) running.push_back(s.integer(0));
    Statement q = c_.db.query("SELECT id, spec FROM jobs WHERE state = 'queued' ORDER BY id");
    while (q.step()) {
      std::string want = pool_request(nlohmann::json::parse(q.text(1)));
      if (want == pool || (want == "gpu" && pool != "cpu")) queued.push_back(q.integer(0));
    }
    int capacity = pool == "cpu" ? c_.options.cpu_slots : 1;
    out.push_back(
        {{"name", pool}, {"capacity", capacity}, {"running", running}, {"queued", queued}});
  }
  return out;
}

void Scheduler::dispatch() {
  std::map<std::string, int> busy;
  Statement r = c_.db.query("SELECT pool FROM jobs WHERE state = 'running'");
  while (r.step()) ++busy[r.text(0)];
  std::set<std::string> claimed;  // pools an earlier queued job waits for: later ones queue behind
  Statement q = c_.db.query(
      "SELECT id, spec, dataset, waiting_for FROM jobs WHERE state = 'queued' "
      "ORDER BY id");
  std::vector<std::tuple<int64_t, std::string, int64_t, std::string>> queued;
  while (q.step()) queued.emplace_back(q.integer(0), q.text(1), q.integer(2), q.text(3));
  for (auto& [id, spec_text, dataset, was_waiting] : queued) {
    std::string waiting;
    DatasetView ds = dataset_view(c_, dataset);
    std::string want = pool_request(nlohmann::json::parse(spec_text));
    std::vector<std::string> candidates;
    for (const std::string& p : pools())
      if (p == want || (want == "gpu" && p != "cpu")) candidates.push_back(p);
    if (ds.state != "ready") {
      waiting = "dataset " + std::to_string(dataset) + " (" + ds.name + ") to finish building";
    } else {
      std::string free;
      for (const std::string& p : candidates) {
        int capacity = p == "cpu" ? c_.options.cpu_slots : 1;
        if (!claimed.count(p) && busy[p] < capacity) {
          free = p;
          break;
        }
      }
      if (!free.empty() && start(id, free)) {
        ++busy[free];
        continue;
      }
      waiting = describe_pool(want);
      for (const std::string& p : candidates) claimed.insert(p);
    }
    if (waiting != was_waiting) {
      c_.db.run("UPDATE jobs SET waiting_for = ? WHERE id = ?", {waiting, id});
      c_.events.change("job", id, {{"state", kQueued}, {"waiting_for", waiting}});
    }
  }
}

bool Scheduler::start(int64_t job, const std::string& pool) {
  nlohmann::json j = job_json(c_, job);
  std::string dir = j["run_dir"];
  bool resume = c_.db.scalar("SELECT resume FROM jobs WHERE id = ?", {job}).value_or(0) != 0;
  int64_t ckpt = latest_checkpoint_iter(dir);
  resume = resume && ckpt >= 0;
  int gpu = pool == "cpu" ? -1 : std::stoi(pool.substr(4));
  std::vector<std::string> argv;
  try {
    if (!resume) fit_network_to_dataset(c_, job, dataset_view(c_, j["dataset"].get<int64_t>()));
    argv = train_command(c_, job, gpu, resume);
  } catch (const std::exception& e) {
    c_.db.run("UPDATE jobs SET state = ?, error = ?, finished = ? WHERE id = ?",
              {std::string(kFailed), std::string(e.what()), now_seconds(), job});
    set_state(job, kFailed, {{"error", e.what()}});
    return false;
  }
  // A resumed trainer keeps metrics.jsonl up to its checkpoint; cut it here first, so that what
  // is followed from now on is only what the new process writes.
  std::string metrics = dir + "/metrics.jsonl";
  if (resume) truncate_metrics_after(metrics, ckpt);
  int64_t metrics_offset = resume ? file_size(metrics) : 0;
  Spawned p = spawn_process(argv, dir, dir + "/log.txt");
  running_[job] = {p.pid, p.start, true};
  c_.db.run(
      "UPDATE jobs SET state = 'running', pool = ?, pid = ?, pid_start = ?, waiting_for = NULL, "
      "error = NULL, resume = 0, abort_requested = 0, metrics_offset = ?, log_offset = ?, "
      "started = COALESCE(started, ?), finished = NULL WHERE id = ?",
      {pool, int64_t{p.pid}, p.start, metrics_offset, file_size(dir + "/log.txt"), now_seconds(),
       job});
  set_state(job, kRunning, {{"pool", pool}, {"resumed_from", resume ? ckpt : -1}});
  return true;
}

void Scheduler::abort(int64_t job, const std::string& reason) {
  nlohmann::json j = job_json(c_, job);
  std::string state = j["state"];
  if (state == kQueued || state == kInterrupted) {
    if (c_.db.run("UPDATE jobs SET state = 'aborted', waiting_for = NULL, finished = ? "
                  "WHERE id = ? AND state = ?",
                  {now_seconds(), job, state}) > 0)
      set_state(job, kAborted, {{"reason", reason}});
    return;
  }
  if (state != kRunning)
    throw ApiError(409, "job " + std::to_string(job) + " has already ended (" + state + ")");
  c_.db.run("UPDATE jobs SET abort_requested = 1, error = ? WHERE id = ?",
            {reason.empty() ? SqlValue(nullptr) : SqlValue(reason), job});
  Statement s = c_.db.query("SELECT pid FROM jobs WHERE id = ?", {job});
  if (s.step()) signal_group(static_cast<pid_t>(s.integer(0)), SIGTERM);
}

void Scheduler::resume(int64_t job) {
  if (c_.db.run("UPDATE jobs SET state = 'queued', resume = 1, error = NULL, finished = NULL "
                "WHERE id = ? AND state IN ('aborted', 'interrupted', 'failed')",
                {job}) > 0)
    set_state(job, kQueued, {{"resume", true}});
  wake();
}

}  // namespace myelin::server
