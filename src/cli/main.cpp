// myelin: train, test, time and deploy neural networks on CPUs and GPUs.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "core/error.h"

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

const std::vector<Command>& commands() { return registry(); }

bool stderr_is_terminal() { return isatty(STDERR_FILENO) != 0; }

int usage(std::FILE* out) {
  std::fprintf(out,
               "myelin: design, train, time and deploy neural networks on CPUs and GPUs\n\n"
               "usage: myelin COMMAND [flags]   (myelin COMMAND --help for its flags)\n\n"
               "commands:\n");
  for (const Command& c : commands()) std::fprintf(out, "  %-14s %s\n", c.name.c_str(), c.summary.c_str());
  std::fprintf(out,
               "\nexample:\n  myelin train --model lenet --data fashion-mnist --device cpu --out runs/lenet\n");
  return out == stdout ? 0 : 2;
}

}  // namespace myelin::cli

int main(int argc, char** argv) {
  using namespace myelin::cli;
  if (argc < 2) return usage(stderr);
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") return usage(stdout);
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
  std::fprintf(stderr, "myelin: unknown command '%s'\n\n", name.c_str());
  return usage(stderr);
}
