#include "dist/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/world.h"

namespace myelin::dist {

namespace {

volatile sig_atomic_t g_forward = 0;  // a signal to pass on to the ranks
void remember(int sig) {
  g_forward = sig;
}

int parse_index(const std::string& s, const std::string& spec) {
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0)
    throw UsageError("--gpus '" + spec + "': '" + s +
                     "' is not a GPU index (expected a count like 2 or a list like 0,1)");
  return static_cast<int>(v);
}

std::string describe(int status) {
  if (WIFSIGNALED(status))
    return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

std::vector<std::string> own_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(f, arg, '\0')) args.push_back(arg);
  if (args.empty()) throw Error("cannot read this process's command line from /proc/self/cmdline");
  return args;
}

pid_t start_rank(const std::vector<std::string>& args, int rank, int size, int gpu,
                 const std::string& id) {
  pid_t pid = fork();
  if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  setenv(kRankEnv, std::to_string(rank).c_str(), 1);
  setenv(kWorldSizeEnv, std::to_string(size).c_str(), 1);
  setenv(kGpuEnv, std::to_string(gpu).c_str(), 1);
  setenv(kNcclIdEnv, id.c_str(), 1);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "myelin: rank %d: cannot start: %s\n", rank, std::strerror(errno));
  _exit(127);
}

}  // namespace

std::vector<int> parse_gpus(const std::string& spec, int visible) {
  std::vector<int> gpus;
  if (spec.find(',') == std::string::npos) {
    int n = parse_index(spec, spec);
    if (n < 1) throw UsageError("--gpus 0: give a count of at least 1 or a list like 0,1");
    for (int i = 0; i < n; ++i) gpus.push_back(i);
  } else {
    size_t at = 0;
    while (at < spec.size()) {
      size_t comma = std::min(spec.find(',', at), spec.size());
      if (comma > at) gpus.push_back(parse_index(spec.substr(at, comma - at), spec));
      at = comma + 1;
    }
  }
  if (visible == 0)
    throw UsageError("--gpus " + spec + ": this machine has no GPU that CUDA can see" +
                     " (train on the CPU with mpirun -np N for several processes)");
  std::set<int> seen;
  for (int g : gpus) {
    if (g >= visible)
      throw UsageError("--gpus " + spec + ": this machine has " + std::to_string(visible) + " GPU" +
                       (visible == 1 ? "" : "s") + " (0.." + std::to_string(visible - 1) + ")");
    if (!seen.insert(g).second)
      throw UsageError("--gpus " + spec + " names GPU " + std::to_string(g) + " twice");
  }
  if (gpus.empty()) throw UsageError("--gpus '" + spec + "' names no GPU");
  return gpus;
}

int launch_local(const std::vector<int>& gpus) {
  const int size = static_cast<int>(gpus.size());
  const std::vector<std::string> args = own_command_line();
  const std::string id = new_nccl_id();
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = remember;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  std::vector<pid_t> pids;
  for (int r = 0; r < size; ++r) pids.push_back(start_rank(args, r, size, gpus[r], id));
  int running = size, code = 0;
  while (running > 0) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno != EINTR) break;
      for (pid_t p : pids)
        if (p > 0) kill(p, g_forward);
      g_forward = 0;
      continue;
    }
    int rank = 0;
    while (rank < size && pids[rank] != pid) ++rank;
    if (rank == size) continue;
    pids[rank] = -1;
    --running;
    bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    if (!failed || code != 0) continue;
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::fprintf(stderr, "myelin: rank %d (GPU %d) %s; stopping the other %d rank%s\n", rank,
                 gpus[rank], describe(status).c_str(), running, running == 1 ? "" : "s");
    for (pid_t p : pids)
      if (p > 0) kill(p, SIGKILL);
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return code;
}

}  // namespace myelin::dist
