// myelin serve: the training system's server (REST API, event streams, the web UI, the job
// scheduler) until Ctrl-C. Jobs keep running when it stops and are reattached at the next start.
#include <signal.h>

#include <cstdio>
#include <thread>

#include "cli/command.h"
#include "cli/common.h"
#include "server/launcher.h"
#include "server/server.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& serve_flags() {
  static const std::vector<Flag> f = {
      {"host", "ADDR", "address to listen on (0.0.0.0: every interface)", "127.0.0.1"},
      {"port", "N", "port to listen on", "5000"},
      {"data-dir", "DIR", "where datasets, jobs, the database and the token live",
       "$MYELIN_DATA or ~/.local/share/myelin"},
      {"allow-dir", "DIR,DIR", "folders whose images may become datasets (comma-separated)",
       "the data dir only"},
      {"users", "", "accounts with passwords (the first one made is the admin)", "token only"},
      {"max-restarts", "N", "times a crashed job restarts from its last checkpoint", "3"},
      {"no-auto-resume", "", "after a restart, leave interrupted jobs for a person to resume", ""},
      {"cpu-slots", "N", "jobs that train on the CPU at the same time", "1"},
      {"scheduler", "local|slurm",
       "local: jobs are child processes over this machine's CPU and GPUs; slurm: each job is a "
       "Slurm batch job (sbatch; squeue follows it, scancel stops it)",
       "local"},
      {"max-upload-mb", "N", "the largest upload accepted", "1024"},
      {"threads", "N", "HTTP worker threads (each open event stream takes one)", "256"}};
  return f;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

server::ServeOptions serve_options(const Args& a) {
  server::ServeOptions o;
  o.host = a.str("host", o.host);
  o.port = static_cast<int>(a.integer("port", o.port));
  o.data_dir = a.str("data-dir", "");
  o.allow_dirs = split_commas(a.str("allow-dir", ""));
  o.users = a.has("users");
  o.max_restarts = static_cast<int>(a.integer("max-restarts", o.max_restarts));
  o.resume_interrupted = !a.has("no-auto-resume");
  o.cpu_slots = static_cast<int>(a.integer("cpu-slots", o.cpu_slots));
  o.scheduler = choice_from(a, "scheduler", o.scheduler, {"local", "slurm"});
  o.max_upload_bytes = a.integer("max-upload-mb", 1024) << 20;
  o.threads = static_cast<int>(a.integer("threads", o.threads));
  if (o.port < 1 || o.port > 65535) throw UsageError("--port must be 1..65535");
  if (o.cpu_slots < 1) throw UsageError("--cpu-slots must be at least 1");
  if (o.scheduler == "slurm" && server::find_program("sbatch").empty())
    throw UsageError(
        "--scheduler slurm needs Slurm's client commands (sbatch, squeue, scancel) on PATH: "
        "install slurm-client, and set SLURM_CONF if the cluster's slurm.conf is not in "
        "/etc/slurm");
  return o;
}

// SIGINT and SIGTERM stop the server from a thread of their own (blocked everywhere else, so no
// HTTP thread is interrupted half-way).
std::thread stop_on_signals(server::Server& s, sigset_t set) {
  return std::thread([&s, set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr,
                 "\nmyelin serve: stopping (jobs keep running; they are reattached at the "
                 "next start)\n");
    s.stop();
  });
}

int run_serve(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin serve [--host ADDR] [--port N] [--data-dir DIR] [--allow-dir DIR ...]",
      "Runs the training system: the web UI and the REST API under /api/v1 (docs/openapi.yaml),\n"
      "live event streams, datasets, and jobs queued over the CPU and every GPU. At first start\n"
      "it writes a random token to DATA_DIR/token and prints a URL that logs a browser in;\n"
      "scripts send 'Authorization: Bearer TOKEN'. Jobs run as `myelin train` processes that\n"
      "outlive the server: stop it (Ctrl-C) or kill it, start it again, and they carry on.\n"
      "With --scheduler slurm each job is submitted to Slurm instead (its run directory must\n"
      "be on a filesystem the cluster's nodes share).",
      serve_flags(),
      "  myelin serve\n"
      "  myelin serve --port 8080 --allow-dir /srv/photos\n"
      "  myelin serve --scheduler slurm --host 0.0.0.0 --data-dir /shared/myelin\n"
      "  curl -H \"Authorization: Bearer $(cat ~/.local/share/myelin/token)\" "
      "localhost:5000/api/v1/jobs\n");
  if (wants_help(argv, help)) return 0;
  Args a("serve", argv, serve_flags());
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  server::Server s(serve_options(a));
  std::thread stopper = stop_on_signals(s, set);
  std::printf("myelin serve: data in %s\n  open %s\n", s.context().options.data_dir.c_str(),
              s.url().c_str());
  std::fflush(stdout);
  s.run();
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  return 0;
}

const bool registered = register_command(
    {"serve", "the training system: web UI, REST API, job queue over the GPUs", run_serve});

}  // namespace

}  // namespace myelin::cli
