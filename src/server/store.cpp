#include "server/store.h"

#include <chrono>

namespace myelin::server {

void create_schema(const Database& db) {
  db.exec(R"(
CREATE TABLE IF NOT EXISTS users(
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, hash TEXT NOT NULL,
  admin INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
  id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS uploads(
  id INTEGER PRIMARY KEY, owner INTEGER NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
  bytes INTEGER NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS datasets(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, owner INTEGER NOT NULL, spec TEXT NOT NULL,
  state TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, error TEXT, dir TEXT NOT NULL,
  info TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sweeps(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, owner INTEGER NOT NULL, spec TEXT NOT NULL,
  created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, owner INTEGER NOT NULL, spec TEXT NOT NULL,
  state TEXT NOT NULL, dataset INTEGER, sweep INTEGER, parent INTEGER, run_dir TEXT NOT NULL,
  pool TEXT, pid INTEGER, pid_start TEXT, restarts INTEGER NOT NULL DEFAULT 0,
  error TEXT, waiting_for TEXT, metrics TEXT NOT NULL DEFAULT '{}',
  metrics_offset INTEGER NOT NULL DEFAULT 0, log_offset INTEGER NOT NULL DEFAULT 0,
  abort_requested INTEGER NOT NULL DEFAULT 0,
  resume INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
  created REAL NOT NULL, started REAL, finished REAL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE TABLE IF NOT EXISTS events(
  job INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
  time REAL NOT NULL, PRIMARY KEY(job, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes(
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, ref INTEGER NOT NULL,
  data TEXT NOT NULL, time REAL NOT NULL);
)");
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

void EventHub::notify() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++version_;
  }
  cv_.notify_all();
}

uint64_t EventHub::wait(uint64_t seen, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return version_ != seen; });
  return version_;
}

uint64_t EventHub::version() {
  std::lock_guard<std::mutex> lock(mutex_);
  return version_;
}

int64_t EventLog::job_event(int64_t job, const std::string& kind,
                            const nlohmann::json& data) const {
  int64_t seq = 0;
  db.transaction([&] {
    db.run("UPDATE jobs SET seq = seq + 1 WHERE id = ?", {job});
    seq = db.scalar("SELECT seq FROM jobs WHERE id = ?", {job}).value_or(0);
    db.run("INSERT INTO events(job, seq, kind, data, time) VALUES(?, ?, ?, ?, ?)",
           {job, seq, kind, data.dump(), now_seconds()});
  });
  hub.notify();
  return seq;
}

int64_t EventLog::change(const std::string& kind, int64_t ref, const nlohmann::json& data) const {
  db.run("INSERT INTO changes(kind, ref, data, time) VALUES(?, ?, ?, ?)",
         {kind, ref, data.dump(), now_seconds()});
  int64_t id = db.last_insert_id();
  hub.notify();
  return id;
}

}  // namespace myelin::server
