// The scheduler's view of running jobs: new lines of metrics.jsonl and log.txt become events,
// and a process that ended is judged by its exit status and its last events.
#include <signal.h>

#include <deque>
#include <fstream>

#include "server/jobs.h"
#include "server/scheduler.h"
#include "server/sweeps.h"

namespace myelin::server {

namespace {

constexpr size_t kErrorLines = 20;  // log lines kept with a failed job

// Complete lines of `path` from byte `offset`; advances offset past them.
std::vector<std::string> new_lines(const std::string& path, int64_t& offset) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  if (!in) return lines;
  in.seekg(0, std::ios::end);
  int64_t size = in.tellg();
  if (size <= offset) return lines;
  in.seekg(offset);
  std::string chunk(static_cast<size_t>(size - offset), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  size_t start = 0, nl;
  while ((nl = chunk.find('\n', start)) != std::string::npos) {
    lines.push_back(chunk.substr(start, nl - start));
    start = nl + 1;
  }
  offset += static_cast<int64_t>(start);
  return lines;
}

// A progress bar redraws its line after '\r': keep what a person would have seen last.
std::string last_drawn(const std::string& line) {
  size_t end = line.find_last_not_of('\r');
  if (end == std::string::npos) return "";
  size_t cr = line.find_last_of('\r', end);
  size_t start = cr == std::string::npos ? 0 : cr + 1;
  return line.substr(start, end + 1 - start);
}

std::deque<std::string> log_tail(const std::string& path) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(last_drawn(line));
    if (tail.size() > kErrorLines) tail.pop_front();
  }
  return tail;
}

// Folds a metrics event into the job's summary; false for a train/test line already recorded
// (a resumed run logs again, bit for bit, the iterations after its checkpoint).
bool summarize(nlohmann::json& m, const nlohmann::json& e) {
  std::string kind = e.value("event", "");
  int64_t iter = e.value("iter", int64_t{0});
  if (kind == "train" || kind == "test") {
    std::string seen = "last_" + kind + "_iter";
    if (m.contains(seen) && iter <= m[seen].get<int64_t>()) return false;
    m[seen] = iter;
    m["iter"] = iter;
    if (e.contains("epoch")) m["epoch"] = e["epoch"];
  }
  if (kind == "train") {
    for (const char* k : {"lr", "images_per_second", "tokens_per_second", "eta_seconds"})
      if (e.contains(k)) m[k] = e[k];
    m["train_loss"] = e.value("loss", 0.0);
    m["train_accuracy"] = e.value("top1", 0.0);
  } else if (kind == "test") {
    double acc = e.value("top1", 0.0);
    m["test_accuracy"] = acc;
    m["test_loss"] = e.value("loss", 0.0);
    if (e.contains("bits_per_symbol")) {  // text: the validation loss in bits per symbol
      double bits = e.value("bits_per_symbol", 0.0);
      m["bits_per_symbol"] = bits;
      if (!m.contains("best_bits_per_symbol") || bits < m["best_bits_per_symbol"].get<double>())
        m["best_bits_per_symbol"] = bits;
    }
    if (!m.contains("best_accuracy") || acc > m["best_accuracy"].get<double>()) {
      m["best_accuracy"] = acc;
      m["best_iter"] = iter;
    }
  } else if (kind == "start" || kind == "resume") {
    if (e.contains("max_iter")) m["max_iter"] = e["max_iter"];
  } else if (kind == "end") {
    m["finished"] = true;
    for (const char* k : {"test_accuracy", "test_top5", "test_loss", "seconds", "iterations"})
      if (e.contains(k)) m[k] = e[k];
  }
  if (m.contains("max_iter") && m.contains("iter") && m["max_iter"].get<int64_t>() > 0)
    m["progress"] = static_cast<double>(m["iter"].get<int64_t>()) / m["max_iter"].get<int64_t>();
  return true;
}

std::string failure_message(const ExitStatus& status, const std::deque<std::string>& tail,
                            const nlohmann::json& last_error) {
  std::string text;
  for (const std::string& l : tail) text += l + "\n";
  bool oom = text.find("out of memory") != std::string::npos ||
             text.find("out of host memory") != std::string::npos ||
             text.find("bad_alloc") != std::string::npos ||
             text.find("cudaErrorMemoryAllocation") != std::string::npos;
  std::string head = oom ? "out of memory: the job needed more memory than the device had "
                           "(try a smaller batch); "
                         : "";
  if (last_error.is_string()) return head + last_error.get<std::string>();
  return head + "the training process " + status.describe() + (text.empty() ? "" : ":\n" + text);
}

}  // namespace

// Runs every tick for every running job: one query, and the summary is read only when the
// metrics file has grown.
void Scheduler::follow(int64_t job) {
  Statement s =
      c_.db.query("SELECT run_dir, metrics_offset, log_offset FROM jobs WHERE id = ?", {job});
  if (!s.step()) return;
  std::string dir = s.text(0);
  follow_metrics(job, dir, s.integer(1));
  follow_log(job, dir, s.integer(2));
}

void Scheduler::follow_metrics(int64_t job, const std::string& dir, int64_t offset) {
  std::vector<std::string> lines = new_lines(dir + "/metrics.jsonl", offset);
  if (lines.empty()) return;
  Statement s = c_.db.query("SELECT metrics, sweep FROM jobs WHERE id = ?", {job});
  if (!s.step()) return;
  nlohmann::json summary = nlohmann::json::parse(s.text(0));
  bool in_sweep = !s.is_null(1);
  bool tested = false;
  for (const std::string& line : lines) {
    nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object()) continue;
    if (!summarize(summary, e)) continue;
    if (e.value("event", "") == "error") summary["error"] = e.value("message", "");
    tested = tested || e.value("event", "") == "test";
    c_.events.job_event(job, "metrics", e);
  }
  c_.db.run("UPDATE jobs SET metrics_offset = ?, metrics = ? WHERE id = ?",
            {offset, summary.dump(), job});
  c_.events.change("job", job, {{"state", kRunning}, {"metrics", summary}});
  if (tested && in_sweep) apply_halving(c_, *this, job);
}

void Scheduler::follow_log(int64_t job, const std::string& dir, int64_t offset) {
  std::vector<std::string> lines = new_lines(dir + "/log.txt", offset);
  if (lines.empty()) return;
  for (const std::string& line : lines) {
    std::string shown = last_drawn(line);
    if (!shown.empty()) c_.events.job_event(job, "log", {{"line", shown}});
  }
  c_.db.run("UPDATE jobs SET log_offset = ? WHERE id = ?", {offset, job});
}

void Scheduler::check_jobs() {
  std::vector<std::pair<int64_t, ExitStatus>> ended;
  for (auto& [job, r] : running_) {
    JobStatus st = launcher_->poll(r.handle);
    if (st.phase == JobStatus::pending) {
      Statement s = c_.db.query("SELECT waiting_for FROM jobs WHERE id = ?", {job});
      if (s.step() && s.text(0) != st.waiting) waiting(job, st.waiting);
      continue;
    }
    // A job that ran between two looks at a cluster's queue still shows that it ran.
    bool ran = st.phase == JobStatus::running || st.exit.code >= 0 || st.exit.signal != 0;
    if (!r.started && ran) mark_running(job, r);
    if (st.phase == JobStatus::ended) ended.emplace_back(job, st.exit);
  }
  for (auto& [job, status] : ended) {
    if (running_[job].started) follow(job);  // the last lines it wrote
    running_.erase(job);
    finished(job, status);
  }
}

void Scheduler::finished(int64_t job, const ExitStatus& status) {
  Statement s = c_.db.query(
      "SELECT metrics, abort_requested, restarts, run_dir, error FROM jobs WHERE id = ?", {job});
  if (!s.step()) return;
  nlohmann::json m = nlohmann::json::parse(s.text(0));
  bool abort_requested = s.integer(1) != 0;
  int64_t restarts = s.integer(2);
  std::string dir = s.text(3), reason = s.text(4);
  double now = now_seconds();
  auto end_as = [&](const std::string& state, const nlohmann::json& error) {
    c_.db.run("UPDATE jobs SET state = ?, error = ?, finished = ?, pid = NULL WHERE id = ?",
              {state, error.is_string() ? SqlValue(error.get<std::string>()) : SqlValue(nullptr),
               now, job});
    set_state(job, state, {{"error", error}, {"exit", status.describe()}});
  };
  if (m.value("finished", false)) return end_as(kDone, nullptr);
  if (abort_requested)
    return end_as(kAborted, reason.empty() ? nlohmann::json() : nlohmann::json(reason));
  bool clean_error =
      status.code == 1 || status.code == 2 || !status.restartable || m.contains("error");
  if (clean_error)
    return end_as(kFailed, failure_message(status, log_tail(dir + "/log.txt"),
                                           (m.contains("error") ? m["error"] : nlohmann::json())));
  // A crash, a kill or an interruption: continue from the last checkpoint, a few times.
  if (restarts < c_.options.max_restarts) {
    c_.db.run(
        "UPDATE jobs SET state = 'queued', resume = 1, restarts = restarts + 1, pid = NULL "
        "WHERE id = ?",
        {job});
    c_.events.job_event(job, "restart",
                        {{"attempt", restarts + 1},
                         {"reason", status.describe()},
                         {"from_iter", latest_checkpoint_iter(dir)}});
    set_state(job, kQueued, {{"restart", restarts + 1}, {"reason", status.describe()}});
    wake();
    return;
  }
  end_as(kFailed, failure_message(status, log_tail(dir + "/log.txt"), nullptr) + " (after " +
                      std::to_string(restarts) + " restarts)");
}

// Jobs started before the server stopped: running ones, and those waiting in a cluster's queue.
void Scheduler::reattach() {
  Statement s = c_.db.query(
      "SELECT id, pid, pid_start, pool, state FROM jobs WHERE state = 'running' OR "
      "(state = 'queued' AND pid IS NOT NULL)");
  std::vector<std::tuple<int64_t, Handle, std::string, bool>> jobs;
  while (s.step())
    jobs.emplace_back(s.integer(0), Handle{s.integer(1), s.text(2)}, s.text(3),
                      s.text(4) == kRunning);
  for (auto& [job, handle, pools, started] : jobs) {
    if (started) follow(job);
    JobStatus st = launcher_->poll(handle);
    if (st.phase != JobStatus::ended) {
      running_[job] = {handle, pools, started, -1};
      if (started) c_.events.job_event(job, "state", {{"state", kRunning}, {"reattached", true}});
      continue;
    }
    nlohmann::json m = job_json(c_, job)["metrics"];
    if (m.value("finished", false) || !st.exit.restartable) {
      finished(job, st.exit);
      continue;
    }
    c_.db.run("UPDATE jobs SET state = 'interrupted', pid = NULL WHERE id = ?", {job});
    set_state(job, kInterrupted, {{"reason", "its process ended while the server was down"}});
    if (c_.options.resume_interrupted) resume(job);
  }
}

}  // namespace myelin::server
