// What every part of the server shares: its options, the database, the event log, who may call,
// which paths may be read, and the machine's resources. Made once by Server; passed by reference.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "server/auth.h"
#include "server/db.h"
#include "server/paths.h"
#include "server/store.h"

namespace myelin::server {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 5000;
  std::string data_dir;                 // default: $MYELIN_DATA or ~/.local/share/myelin
  std::vector<std::string> allow_dirs;  // more roots for dataset folders (the data dir always)
  bool users = false;                   // accounts with passwords besides the token
  int max_restarts = 3;                 // a crashed job restarts from its checkpoint this often
  bool resume_interrupted = true;       // after a server restart, resume jobs whose process died
  int cpu_slots = 1;                    // jobs that run on the CPU at the same time
  std::string scheduler = "local";      // local (child processes) or slurm (sbatch)
  int64_t max_upload_bytes = 1LL << 30;
  std::string myelin_binary;  // what runs jobs (default: this executable)
  std::string web_dir;        // built web assets (default: found beside the binary)
  int threads = 256;          // HTTP worker threads (each event stream holds one)
};

struct Context {
  explicit Context(const ServeOptions& o);

  ServeOptions options;
  Database db;
  EventHub hub;
  EventLog events{db, hub};
  Auth auth;
  PathGuard paths;
  std::atomic<bool> stopping{false};  // event streams end when set

  std::string jobs_dir() const { return options.data_dir + "/jobs"; }
  std::string datasets_dir() const { return options.data_dir + "/datasets"; }
  std::string uploads_dir() const { return options.data_dir + "/uploads"; }
};

// Owners and admins may change a job or dataset; everybody signed in may look.
void require_owner(const Identity& who, int64_t owner, const std::string& what);

}  // namespace myelin::server
