// The server's tables and the two event logs: each job's events (metrics lines, state changes,
// log lines; numbered per job, so a dropped stream resumes with Last-Event-ID) and the global
// change log (job and dataset state changes, for lists). Appends wake the streams through the
// EventHub.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "server/db.h"

namespace myelin::server {

void create_schema(const Database& db);

double now_seconds();  // wall clock, seconds since the epoch

// Wakes every stream waiting for new events.
class EventHub {
 public:
  void notify();
  // Waits until notify() is called after `seen` or the timeout passes; returns the new version.
  uint64_t wait(uint64_t seen, int timeout_ms);
  uint64_t version();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t version_ = 0;
};

struct EventLog {
  const Database& db;
  EventHub& hub;

  // A job's next event (kind: metrics | state | log | restart); returns its sequence number.
  int64_t job_event(int64_t job, const std::string& kind, const nlohmann::json& data) const;
  // A change for the global stream (kind: job | dataset | sweep); returns its id.
  int64_t change(const std::string& kind, int64_t ref, const nlohmann::json& data) const;
};

}  // namespace myelin::server
