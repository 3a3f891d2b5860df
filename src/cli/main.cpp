// myelin: train, test, time and deploy neural networks on CPUs and GPUs.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/command.h"
#include "core/error.h"
#include "core/text.h"

namespace myelin::cli {

namespace {
std::vector<Command>& registry() {
  static std::vector<Command> c;
  return c;
}
}  // namespace

bool register_command(Command c) {
  registry().push_back(std::move(c));
  return true;
}

const std::vector<Command>& commands() {
  return registry();
}

bool stderr_is_terminal() {
  return isatty(STDERR_FILENO) != 0;
}

int usage(std::FILE* out) {
  std::fprintf(out,
               "myelin: design, train, time and deploy neural networks on CPUs and GPUs\n\n"
               "usage: myelin COMMAND [flags]   (myelin COMMAND --help for its flags)\n\n"
               "commands:\n");
  for (const Command& c : commands())
    std::fprintf(out, "  %-14s %s\n", c.name.c_str(), c.summary.c_str());
  std::fprintf(out,
               "\nexample:\n  myelin train --model lenet --data fashion-mnist --device cpu --out "
               "runs/lenet\n");
  return out == stdout ? 0 : 2;
}

// OpenMP threads that finish a parallel region spin for the next one by default. That pays
// when the process owns every core (`myelin time`), but the trainer's loader threads, other jobs
// and a loaded machine then wait behind spinning threads: measured here, a LeNet run on a busy
// 2-core machine went from 3 s to over 60 s. So every other command waits passively, unless the
// user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT). libgomp reads these when it loads, before
// main, hence the one re-execution.
void prefer_passive_openmp(const std::string& command, char** argv) {
  if (command == "time" || std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // if that fails, go on with the defaults
}

std::string closest_command(const std::string& name) {
  std::vector<std::string> names;
  for (const Command& c : commands()) names.push_back(c.name);
  return myelin::closest_match(name, names);
}

}  // namespace myelin::cli

int main(int argc, char** argv) {
  using namespace myelin::cli;
  if (argc < 2) return usage(stderr);
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") return usage(stdout);
  prefer_passive_openmp(name, argv);
  std::vector<std::string> rest(argv + 2, argv + argc);
  for (const Command& c : commands()) {
    if (c.name != name) continue;
    try {
      return c.run(rest);
    } catch (const myelin::UsageError& e) {
      std::fprintf(stderr, "myelin %s: %s\n", name.c_str(), e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "myelin %s: error: %s\n", name.c_str(), e.what());
      return 1;
    }
  }
  std::string near = closest_command(name);
  std::fprintf(stderr, "myelin: unknown command '%s'%s\n\n", name.c_str(),
               near.empty() ? "" : (" (did you mean '" + near + "'?)").c_str());
  return usage(stderr);
}
