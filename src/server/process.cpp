#include "server/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
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

[[noreturn]] void exec_command(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  dprintf(2, "cannot run %s: %s", args[0], std::strerror(errno));
  _exit(127);
}

// Reads both pipes until they close or the deadline passes; false on the deadline.
bool drain(int out_fd, int err_fd, std::string& out, std::string& err, int timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* into[2] = {&out, &err};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) into[i]->append(buf, static_cast<size_t>(n));
      if (n == 0 || (n < 0 && errno != EINTR)) {
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  return true;
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, int timeout_s) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    throw Error(std::string("pipe: ") + std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid == 0) exec_command(argv, out[1], err[1]);
  close(out[1]);
  close(err[1]);
  CommandResult r;
  bool finished = pid > 0 && drain(out[0], err[0], r.out, r.err, timeout_s);
  close(out[0]);
  close(err[0]);
  if (pid < 0)
    throw Error(std::string("cannot run ") + argv[0] + ": fork: " + std::strerror(errno));
  if (!finished) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!finished) {
    r.err = argv[0] + " did not answer within " + std::to_string(timeout_s) + " s";
    return r;
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

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
  if (!what.empty()) return what;
  if (signal == SIGKILL)
    return "killed by SIGKILL (the kernel's out-of-memory killer or a kill -9)";
  if (signal != 0) return std::string("killed by signal ") + strsignal(signal);
  if (code >= 0) return "exited with code " + std::to_string(code);
  return "ended (its exit status is unknown: it was started before the server restarted)";
}

}  // namespace myelin::server
