// Where jobs run: the scheduler decides when a job may start and what it needs; a Launcher starts
// it, tells how it stands and stops it. Two of them: LocalLauncher (child processes of this
// server, over its CPU and GPUs) and SlurmLauncher (batch jobs of a Slurm cluster, slurm.h).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "server/process.h"

namespace myelin::server {

class SystemMonitor;

// What a job asks for (the request's device, gpus, nodes and ranks, checked by create_job).
struct Resources {
  std::string device = "cpu";  // cpu, cuda or cuda:N
  int gpus = 0;                // GPUs per node (0 on the CPU)
  int nodes = 1;
  int ranks = 1;  // CPU processes training together over MPI
  bool on_gpu() const { return device != "cpu"; }
};
Resources resources_of(const nlohmann::json& spec);

// A pool of slots jobs take: "cpu", "gpu:N", or "slurm" (the cluster, which queues by itself).
struct Pool {
  std::string name;
  int capacity = 1;  // jobs at once; -1: no limit here
};

// The pools a job may take and how many of them at once (N GPUs: N pools "gpu:i").
struct Needs {
  std::vector<std::string> candidates;
  int count = 1;
  std::string describe;  // what it waits for, in words: "2 GPUs"
};

struct Launch {
  int64_t job = 0;
  std::string run_dir, log_path;
  std::vector<std::string> train;  // `myelin train ...` without the device flags
  Resources resources;
  std::vector<std::string> pools;  // the pools it was given
};

// How a started job is known: a pid and its start time locally, a Slurm job id under Slurm.
// Stored in the jobs table (pid, pid_start) so that a restarted server finds its jobs again.
struct Handle {
  int64_t id = 0;
  std::string tag;
};

struct JobStatus {
  enum Phase { pending, running, ended } phase = running;
  std::string waiting;  // pending: why, in words
  ExitStatus exit;      // ended: how
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::vector<Pool> pools() const = 0;
  virtual Needs needs(const Resources& r) const = 0;
  // Throws on failure, with the reason (the job fails with it).
  virtual Handle start(const Launch& l) = 0;
  // Called every tick for every job started: cheap (a launcher may answer from a cache).
  virtual JobStatus poll(const Handle& h) = 0;
  // SIGTERM: the trainer writes a checkpoint and stops. Safe from any thread.
  virtual void abort(const Handle& h) = 0;
  // What the job's processes use now, where this server can see them.
  virtual std::optional<ProcessUse> use(const Handle& h) const = 0;
};

// Child processes of this server: the CPU (cpu_slots jobs at once) and each GPU found.
class LocalLauncher : public Launcher {
 public:
  LocalLauncher(const SystemMonitor& sys, int cpu_slots) : sys_(sys), cpu_slots_(cpu_slots) {}
  std::vector<Pool> pools() const override;
  Needs needs(const Resources& r) const override;
  Handle start(const Launch& l) override;
  JobStatus poll(const Handle& h) override;
  void abort(const Handle& h) override;
  std::optional<ProcessUse> use(const Handle& h) const override;

 private:
  const SystemMonitor& sys_;
  int cpu_slots_;
  std::set<pid_t> children_;  // ours (waitpid works); others were reattached after a restart
};

std::unique_ptr<Launcher> make_launcher(const std::string& scheduler, const SystemMonitor& sys,
                                        int cpu_slots);

// The trainer's device flags for the GPUs given, or for a count the cluster picks.
std::vector<std::string> device_flags(const Resources& r, const std::vector<int>& gpus);
// The program found on PATH, or "" (execv needs a path).
std::string find_program(const std::string& name);

}  // namespace myelin::server
