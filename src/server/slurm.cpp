#include "server/slurm.h"

#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace myelin::server {

namespace {

constexpr int kCommandSeconds = 30;  // sbatch, squeue and scancel get this long to answer
constexpr int kRefreshMs = 1000;     // how often squeue is asked
constexpr const char* kTagPrefix = "slurm:";
constexpr const char* kExitFile = "slurm-exit";  // the trainer's exit status, by the script

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// #SBATCH options for the job's resources.
std::vector<std::string> slurm_options(const Resources& r) {
  std::vector<std::string> o;
  if (r.nodes > 1) {
    o.push_back("--nodes=" + std::to_string(r.nodes));
    int per_node = r.on_gpu() ? r.gpus : std::max(1, r.ranks / r.nodes);
    o.push_back("--ntasks-per-node=" + std::to_string(per_node));
    if (r.on_gpu()) o.push_back("--gpus-per-node=" + std::to_string(r.gpus));
    return o;
  }
  o.push_back("--nodes=1");
  o.push_back("--ntasks=" + std::to_string(r.on_gpu() ? 1 : r.ranks));
  if (r.on_gpu()) o.push_back("--gpus=" + std::to_string(r.gpus));
  return o;
}

// The command the script runs: one process (the trainer starts a rank per GPU itself with
// --gpus N), or mpirun over the allocation (OpenMPI reads it from Slurm's environment).
std::vector<std::string> command(const Launch& l) {
  const Resources& r = l.resources;
  bool mpi = r.nodes > 1 || r.ranks > 1;
  std::vector<std::string> argv;
  if (mpi) {
    argv = {"mpirun"};
    if (geteuid() == 0) argv.push_back("--allow-run-as-root");
    if (r.nodes == 1) argv.insert(argv.end(), {"-np", std::to_string(r.ranks)});
  }
  argv.insert(argv.end(), l.train.begin(), l.train.end());
  if (r.on_gpu() && r.gpus > 1 && !mpi) argv.insert(argv.end(), {"--gpus", std::to_string(r.gpus)});
  argv.insert(argv.end(), {"--device", r.on_gpu() ? "cuda" : "cpu"});
  return argv;
}

std::string run_dir_of(const Handle& h) {
  return h.tag.substr(std::string(kTagPrefix).size());
}

// How the job ended: the status the script wrote, else what Slurm says.
ExitStatus exit_status(const std::string& run_dir, int64_t id, const std::string& state) {
  ExitStatus e;
  std::string name = "Slurm job " + std::to_string(id);
  if (state == "CANCELLED") {
    e.what = name + " was cancelled in Slurm (scancel)";
    e.restartable = false;
  }
  std::ifstream in(run_dir + "/" + kExitFile);
  int code = -1;
  if (in >> code) {
    if (code > 128)
      e.signal = code - 128;  // the shell's way of telling a signal
    else
      e.code = code;
    if (state != "CANCELLED") e.what = "";
    return e;
  }
  if (e.what.empty())
    e.what = state.empty() ? name + " ended (squeue no longer lists it) without an exit status"
                           : name + " ended " + state + " before its trainer finished";
  return e;
}

JobStatus::Phase phase_of(const std::string& state) {
  static const std::set<std::string> pending = {"PENDING", "REQUEUED", "REQUEUE_HOLD",
                                                "REQUEUE_FED", "RESV_DEL_HOLD"};
  static const std::set<std::string> running = {"RUNNING",   "CONFIGURING", "COMPLETING",
                                                "SIGNALING", "STAGE_OUT",   "RESIZING",
                                                "SUSPENDED", "STOPPED"};
  if (pending.count(state)) return JobStatus::pending;
  if (running.count(state)) return JobStatus::running;
  return JobStatus::ended;  // COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, ...
}

}  // namespace

bool is_slurm_handle(const std::string& tag) {
  return tag.rfind(kTagPrefix, 0) == 0;
}

std::string batch_script(const Launch& l) {
  std::ostringstream s;
  s << "#!/bin/bash\n";
  s << "#SBATCH --job-name=myelin-" << l.job << "\n";
  s << "#SBATCH --chdir=" << l.run_dir << "\n";
  s << "#SBATCH --output=" << l.log_path << "\n";
  s << "#SBATCH --open-mode=append\n";
  for (const std::string& o : slurm_options(l.resources)) s << "#SBATCH " << o << "\n";
  s << "# Written by `myelin serve --scheduler slurm` for job " << l.job << ".\n"
    << "# scancel --signal=TERM --full reaches the trainer, which writes a checkpoint and stops;\n"
    << "# the trap keeps this shell alive to record how the trainer ended.\n"
    << "trap 'echo \"myelin: SIGTERM: the trainer stops after a checkpoint\"' TERM\n"
    << "rm -f " << kExitFile << "\n";
  std::string line;
  for (const std::string& a : command(l)) line += (line.empty() ? "" : " ") + quoted(a);
  s << line << "\n"
    << "code=$?\n"
    << "echo $code > " << kExitFile << "\n"
    << "exit $code\n";
  return s.str();
}

std::vector<Pool> SlurmLauncher::pools() const {
  return {{"slurm", -1}};
}

Needs SlurmLauncher::needs(const Resources&) const {
  return {{"slurm"}, 1, "Slurm"};
}

Handle SlurmLauncher::start(const Launch& l) {
  std::string path = l.run_dir + "/job.sbatch";
  {
    std::ofstream out(path, std::ios::trunc);
    out << batch_script(l);
    if (!out) throw Error("cannot write " + path);
  }
  CommandResult r = run_command({"sbatch", "--parsable", path}, kCommandSeconds);
  if (r.code != 0)
    throw Error("sbatch refused the job (" + path + "): " + (r.err.empty() ? r.out : r.err));
  int64_t id = 0;
  try {
    id = std::stoll(r.out.substr(0, r.out.find(';')));  // "ID" or "ID;CLUSTER"
  } catch (const std::exception&) {
    throw Error("sbatch answered '" + r.out + "' instead of a job id");
  }
  refreshed_ = {};  // the next poll asks squeue again, which now knows this job
  return {id, kTagPrefix + l.run_dir};
}

void SlurmLauncher::refresh() {
  auto now = std::chrono::steady_clock::now();
  if (now - refreshed_ < std::chrono::milliseconds(kRefreshMs)) return;
  refreshed_ = now;
  CommandResult r = run_command(
      {"squeue", "--me", "--noheader", "--states=all", "--format=%i|%T|%r"}, kCommandSeconds);
  if (r.code != 0) {
    squeue_error_ = "squeue failed: " + (r.err.empty() ? r.out : r.err);
    return;
  }
  squeue_error_.clear();
  seen_.clear();
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find('|'), b = line.find('|', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    try {
      seen_[std::stoll(line.substr(0, a))] = {line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    } catch (const std::exception&) {
      // an array or het job's id ("12_3", "12+1"): not one of ours
    }
  }
}

JobStatus SlurmLauncher::poll(const Handle& h) {
  refresh();
  auto it = seen_.find(h.id);
  if (!squeue_error_.empty() && it == seen_.end())
    return {JobStatus::pending, "Slurm to answer (" + squeue_error_ + ")", {}};
  std::string state = it == seen_.end() ? "" : it->second.state;
  JobStatus::Phase phase = it == seen_.end() ? JobStatus::ended : phase_of(state);
  if (phase == JobStatus::pending) {
    const std::string& reason = it->second.reason;  // squeue's: Resources, Priority, ...
    std::string why = "Slurm job " + std::to_string(h.id) + " to start";
    return {phase, reason.empty() || reason == "None" ? why : why + " (" + reason + ")", {}};
  }
  if (phase == JobStatus::running) return {};
  return {JobStatus::ended, "", exit_status(run_dir_of(h), h.id, state)};
}

void SlurmLauncher::abort(const Handle& h) {
  std::string id = std::to_string(h.id);
  // A pending job has nothing to signal (scancel --signal retries "Job can not be altered now"
  // for minutes): cancel it. A running one: SIGTERM to the script and its children (the
  // trainer), which write a checkpoint and stop.
  CommandResult q =
      run_command({"squeue", "--noheader", "--jobs=" + id, "--format=%T"}, kCommandSeconds);
  std::string state = q.out.substr(0, q.out.find_first_of(" \n"));
  bool pending = q.code == 0 && phase_of(state) == JobStatus::pending;
  std::vector<std::string> cancel = {"scancel", id};
  if (!pending) cancel = {"scancel", "--signal=TERM", "--full", id};
  CommandResult r = run_command(cancel, kCommandSeconds);
  if (r.code != 0)
    throw Error("scancel " + id + " failed: " + (r.err.empty() ? r.out : r.err) +
                "; is the Slurm controller up (scontrol ping)?");
}

}  // namespace myelin::server
