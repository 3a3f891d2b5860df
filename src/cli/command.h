// The `myelin` subcommands register themselves here; main() dispatches by name.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace myelin::cli {

struct Command {
  std::string name;
  std::string summary;  // one line for `myelin --help`
  std::function<int(const std::vector<std::string>& argv)> run;
};

bool register_command(Command c);
const std::vector<Command>& commands();

// Writes a progress bar to stderr when it is a terminal; returns false otherwise.
bool stderr_is_terminal();

}  // namespace myelin::cli
