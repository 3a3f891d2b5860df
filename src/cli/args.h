// Command-line flags: --name value, --name=value, boolean --name; positional arguments.
// Unknown flags and malformed numbers are UsageErrors that name the flag and suggest the
// nearest known one.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace myelin::cli {

struct Flag {
  std::string name;        // without dashes
  std::string value_name;  // "N", "FILE"; empty for a boolean switch
  std::string help;
  std::string fallback;  // shown in --help; empty for none
};

class Args {
 public:
  Args(const std::string& command, const std::vector<std::string>& argv,
       const std::vector<Flag>& flags);
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& dflt = "") const;
  int64_t integer(const std::string& name, int64_t dflt) const;
  double number(const std::string& name, double dflt) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// `text` as lines of at most 100 columns, each after the first `indent` spaces in (a word longer
// than a line stays whole).
std::string wrap_words(const std::string& text, size_t indent);

// The --help text: usage line, description, flags table (each flag's help wrapped under its
// column), examples.
std::string help_text(const std::string& usage, const std::string& description,
                      const std::vector<Flag>& flags, const std::string& examples);

}  // namespace myelin::cli
