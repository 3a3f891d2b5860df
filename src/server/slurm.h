// Jobs as Slurm batch jobs (`myelin serve --scheduler slurm`): each job gets a batch script in its
// run directory (job.sbatch) that runs the same `myelin train` command line as a local job, with
// its GPUs, nodes and MPI ranks as Slurm options; sbatch submits it, squeue follows it, scancel
// stops it. The run directory must be on a filesystem the cluster's nodes share with the server:
// the server follows metrics.jsonl and log.txt there as it does for local jobs.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "server/launcher.h"

namespace myelin::server {

// The batch script for a launch: #SBATCH options from its resources, then the command.
std::string batch_script(const Launch& l);

class SlurmLauncher : public Launcher {
 public:
  std::vector<Pool> pools() const override;
  Needs needs(const Resources& r) const override;
  Handle start(const Launch& l) override;
  JobStatus poll(const Handle& h) override;
  void abort(const Handle& h) override;
  std::optional<ProcessUse> use(const Handle&) const override { return std::nullopt; }

 private:
  struct Seen {
    std::string state, reason;
  };
  void refresh();  // one squeue for every job of ours, at most once a second

  std::map<int64_t, Seen> seen_;  // by Slurm job id, from the last squeue
  std::string squeue_error_;      // why the last squeue failed, or ""
  std::chrono::steady_clock::time_point refreshed_{};
};

// Handles of Slurm jobs carry their run directory in the tag: "slurm:DIR".
bool is_slurm_handle(const std::string& tag);

}  // namespace myelin::server
