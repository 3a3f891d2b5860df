#include "server/launcher.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "server/slurm.h"
#include "server/system.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<int>& v) {
  std::string out;
  for (int x : v) out += (out.empty() ? "" : ",") + std::to_string(x);
  return out;
}

// mpirun refuses to run as root unless told; CI and containers run as root.
std::vector<std::string> mpirun_prefix(int ranks) {
  std::string mpirun = find_program("mpirun");
  if (mpirun.empty())
    throw Error("a job with ranks > 1 needs mpirun, which is not on PATH: install openmpi-bin");
  std::vector<std::string> argv = {mpirun, "--oversubscribe", "-np", std::to_string(ranks)};
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  return argv;
}

}  // namespace

Resources resources_of(const nlohmann::json& spec) {
  Resources r;
  r.device = spec.value("device", "cpu");
  r.gpus = r.on_gpu() ? static_cast<int>(spec.value("gpus", int64_t{1})) : 0;
  r.nodes = static_cast<int>(spec.value("nodes", int64_t{1}));
  r.ranks = static_cast<int>(spec.value("ranks", int64_t{1}));
  return r;
}

std::vector<std::string> device_flags(const Resources& r, const std::vector<int>& gpus) {
  if (!r.on_gpu()) return {"--device", "cpu"};
  if (gpus.size() == 1) return {"--device", "cuda:" + std::to_string(gpus[0])};
  return {"--gpus", join(gpus), "--device", "cuda"};
}

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = std::min(dirs.find(':', start), dirs.size());
    fs::path p = fs::path(dirs.substr(start, end - start)) / name;
    if (end > start && access(p.c_str(), X_OK) == 0) return p.string();
    start = end + 1;
  }
  return "";
}

std::vector<Pool> LocalLauncher::pools() const {
  std::vector<Pool> p = {{"cpu", cpu_slots_}};
  for (int i = 0; i < sys_.gpu_count(); ++i) p.push_back({"gpu:" + std::to_string(i), 1});
  return p;
}

Needs LocalLauncher::needs(const Resources& r) const {
  if (!r.on_gpu()) return {{"cpu"}, 1, "the CPU"};
  if (r.device != "cuda") return {{"gpu:" + r.device.substr(5)}, 1, "GPU " + r.device.substr(5)};
  Needs n;
  for (int i = 0; i < sys_.gpu_count(); ++i) n.candidates.push_back("gpu:" + std::to_string(i));
  n.count = r.gpus;
  n.describe = r.gpus == 1 ? "a GPU" : std::to_string(r.gpus) + " GPUs";
  return n;
}

Handle LocalLauncher::start(const Launch& l) {
  std::vector<int> gpus;
  for (const std::string& p : l.pools)
    if (p.rfind("gpu:", 0) == 0) gpus.push_back(std::stoi(p.substr(4)));
  std::vector<std::string> argv;
  if (l.resources.ranks > 1) argv = mpirun_prefix(l.resources.ranks);
  argv.insert(argv.end(), l.train.begin(), l.train.end());
  for (const std::string& f : device_flags(l.resources, gpus)) argv.push_back(f);
  Spawned p = spawn_process(argv, l.run_dir, l.log_path);
  children_.insert(p.pid);
  return {p.pid, p.start};
}

JobStatus LocalLauncher::poll(const Handle& h) {
  pid_t pid = static_cast<pid_t>(h.id);
  if (children_.count(pid)) {
    std::optional<ExitStatus> st = reap(pid);
    if (!st) return {};
    children_.erase(pid);
    return {JobStatus::ended, "", *st};
  }
  if (process_alive(pid, h.tag)) return {};
  return {JobStatus::ended, "", ExitStatus{}};
}

void LocalLauncher::abort(const Handle& h) {
  signal_group(static_cast<pid_t>(h.id), SIGTERM);
}

std::optional<ProcessUse> LocalLauncher::use(const Handle& h) const {
  return process_use(static_cast<pid_t>(h.id));
}

std::unique_ptr<Launcher> make_launcher(const std::string& scheduler, const SystemMonitor& sys,
                                        int cpu_slots) {
  if (scheduler == "slurm") return std::make_unique<SlurmLauncher>();
  if (scheduler == "local") return std::make_unique<LocalLauncher>(sys, cpu_slots);
  throw Error("unknown scheduler '" + scheduler + "': use local or slurm");
}

}  // namespace myelin::server
