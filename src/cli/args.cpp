#include "cli/args.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace myelin::cli {

namespace {

const Flag* find_flag(const std::vector<Flag>& flags, const std::string& name) {
  for (const Flag& f : flags)
    if (f.name == name) return &f;
  return nullptr;
}

std::string suggestion(const std::vector<Flag>& flags, const std::string& name) {
  std::vector<std::string> names;
  for (const Flag& f : flags) names.push_back(f.name);
  std::string best = closest_match(name, names);
  return best.empty() ? "" : " (did you mean --" + best + "?)";
}

}  // namespace

Args::Args(const std::string& command, const std::vector<std::string>& argv,
           const std::vector<Flag>& flags)
    : command_(command) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const Flag* f = find_flag(flags, name);
    if (!f)
      throw UsageError("unknown flag --" + name + " for 'myelin " + command + "'" +
                       suggestion(flags, name) + "; see 'myelin " + command + " --help'");
    if (!f->value_name.empty() && !inline_value) {
      if (i + 1 >= argv.size())
        throw UsageError("--" + name + " needs a value (" + f->value_name + ")");
      value = argv[++i];
    }
    values_[name] = f->value_name.empty() && !inline_value ? "1" : value;
  }
}

std::string Args::str(const std::string& name, const std::string& dflt) const {
  auto it = values_.find(name);
  return it == values_.end() ? dflt : it->second;
}

int64_t Args::integer(const std::string& name, int64_t dflt) const {
  auto it = values_.find(name);
  if (it == values_.end()) return dflt;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0')
    throw UsageError("--" + name + " expects an integer, got '" + it->second + "'");
  return v;
}

double Args::number(const std::string& name, double dflt) const {
  auto it = values_.find(name);
  if (it == values_.end()) return dflt;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0')
    throw UsageError("--" + name + " expects a number, got '" + it->second + "'");
  return v;
}

std::string wrap_words(const std::string& text, size_t indent) {
  constexpr size_t kColumns = 100;
  std::string out, word;
  size_t column = indent;
  std::istringstream words(text);
  while (words >> word) {
    if (column > indent && column + 1 + word.size() > kColumns) {
      out.append(1, '\n').append(indent, ' ');
      column = indent;
    } else if (column > indent) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
  }
  return out;
}

std::string help_text(const std::string& usage, const std::string& description,
                      const std::vector<Flag>& flags, const std::string& examples) {
  std::string s = "usage: " + usage + "\n\n" + description + "\n\nflags:\n";
  size_t width = 0;
  for (const Flag& f : flags) width = std::max(width, f.name.size() + f.value_name.size() + 3);
  for (const Flag& f : flags) {
    std::string left = "--" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    std::string help = f.help + (f.fallback.empty() ? "" : " [" + f.fallback + "]");
    s += "  " + left + std::string(width - left.size() + 2, ' ') + wrap_words(help, width + 4) +
         "\n";
  }
  if (!examples.empty()) s += "\nexamples:\n" + examples;
  return s;
}

}  // namespace myelin::cli
