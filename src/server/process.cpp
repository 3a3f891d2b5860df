#include "server/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace myelin::server {

namespace {

[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::string& dir,
                             int log_fd) {
  setpgid(0, 0);
  sigset_t none;  // the server blocks SIGINT/SIGTERM for its signal thread; a job must not
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, 0);
  dup2(log_fd, 1);
  dup2(log_fd, 2);
  if (chdir(dir.c_str()) != 0) _exit(127);
  for (int fd = 3; fd < 1024; ++fd) close(fd);  // sockets and the database stay with the server
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  dprintf(2, "cannot run %s: %s\n", args[0], std::strerror(errno));
  _exit(127);
}

}  // namespace

Spawned spawn_process(const std::vector<std::string>& argv, const std::string& dir,
                      const std::string& log_path) {
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw Error("cannot open " + log_path + ": " + std::strerror(errno));
  pid_t pid = fork();
  if (pid == 0) exec_child(argv, dir, log_fd);
  close(log_fd);
  if (pid < 0) throw Error(std::string("cannot start a job: fork: ") + std::strerror(errno));
  setpgid(pid, pid);  // also here, so the group exists before the first signal we send
  return {pid, process_start(pid)};
}

std::string process_start(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return "";
  // Fields after the command (which may hold spaces) start after the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 3 && field == "Z") return "";  // a zombie has ended
    if (i == 22) return field;
  }
  return "";
}

std::optional<ProcessUse> process_use(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (pid <= 0 || !std::getline(in, stat)) return std::nullopt;
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  std::vector<std::string> f(1, "");  // f[i]: field i + 2 of stat(5)
  for (std::string x; rest >> x;) f.push_back(x);
  if (f.size() < 23) return std::nullopt;
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  ProcessUse u;
  u.cpu_seconds = (std::stod(f[12]) + std::stod(f[13])) / ticks;  // utime, stime
  u.rss_bytes = std::stoll(f[22]) * sysconf(_SC_PAGESIZE);        // rss
  return u;
}

bool process_alive(pid_t pid, const std::string& start) {
  return pid > 0 && !start.empty() && process_start(pid) == start;
}

void signal_group(pid_t pid, int sig) {
  if (pid > 0 && kill(-pid, sig) != 0) kill(pid, sig);
}

std::optional<ExitStatus> reap(pid_t pid) {
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  ExitStatus e;
  if (r < 0) return e;  // not our child (reattached after a restart): unknown
  if (WIFEXITED(status)) e.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
  return e;
}

std::string ExitStatus::describe() const {
  if (signal == SIGKILL)
    return "killed by SIGKILL (the kernel's out-of-memory killer or a kill -9)";
  if (signal != 0) return std::string("killed by signal ") + strsignal(signal);
  if (code >= 0) return "exited with code " + std::to_string(code);
  return "ended (its exit status is unknown: it was started before the server restarted)";
}

}  // namespace myelin::server
