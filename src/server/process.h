// Jobs' processes: each `myelin train` runs in a process group of its own, so it outlives a
// killed server (which reattaches to it after a restart) and an abort reaches all its threads.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace myelin::server {

struct Spawned {
  pid_t pid = 0;
  std::string start;  // the kernel's start time of the process, to tell a reused pid apart
};

// Runs argv[0] with `argv` in `dir`, stdout and stderr appended to `log_path`, stdin /dev/null.
Spawned spawn_process(const std::vector<std::string>& argv, const std::string& dir,
                      const std::string& log_path);

// The start time field of /proc/PID/stat ("" when the process is gone).
std::string process_start(pid_t pid);
bool process_alive(pid_t pid, const std::string& start);

// What a job's process uses now: resident memory and CPU time (user + system) from /proc.
struct ProcessUse {
  int64_t rss_bytes = 0;
  double cpu_seconds = 0;
};
std::optional<ProcessUse> process_use(pid_t pid);

// SIGTERM (or another signal) to the process's whole group.
void signal_group(pid_t pid, int sig);

// How a child ended, when it has: exited with a code or killed by a signal.
struct ExitStatus {
  int code = -1;            // exit code, or -1
  int signal = 0;           // the signal that killed it, or 0
  std::string what;         // how it ended, in words, where a launcher knows better
  bool restartable = true;  // false: someone stopped it on purpose (a cluster's scancel)
  std::string describe() const;
};
std::optional<ExitStatus> reap(pid_t pid);  // waitpid(WNOHANG) of our own child

// A short command (sbatch, squeue, scancel) run to its end: found on PATH, its output captured,
// killed after `timeout_s` seconds (then `code` is -1 and `err` says so).
struct CommandResult {
  int code = -1;
  std::string out, err;
};
CommandResult run_command(const std::vector<std::string>& argv, int timeout_s);

}  // namespace myelin::server
