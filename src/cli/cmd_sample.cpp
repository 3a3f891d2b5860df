// myelin sample: text drawn from a trained text network, symbol by symbol, as it is generated.
#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "train/sample.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& sample_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {
        {"model", "NAME|FILE", "the network (default: the one recorded with the weights)", ""},
        {"weights", "W", "a .safetensors file, a checkpoint or a run directory", ""},
        {"prime", "TEXT", "text the network reads first (default: a newline)", ""},
        {"length", "N", "symbols to draw", "200"},
        {"temperature", "T", "below 1: safer choices; above 1: more surprising ones", "1"},
        {"seed", "S", "the same seed draws the same text", "1"}};
    for (const Flag& d : device_flags()) v.push_back(d);
    return v;
  }();
  return f;
}

int run_sample(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin sample --weights W [--prime TEXT] [--length N] [--temperature T] [--seed S]",
      "Generates text with a network trained on a text dataset (such as char-lstm): it reads the\n"
      "prime one symbol at a time, then draws each next symbol from its scores (sharpened or\n"
      "flattened by the temperature) and reads that back. Prints the prime, then the text as it\n"
      "is drawn.",
      sample_flags(),
      "  myelin sample --weights runs/fortunes --prime \"The \" --length 300 --temperature 0.8\n");
  if (wants_help(argv, help)) return 0;
  Args a("sample", argv, sample_flags());
  if (!a.has("weights"))
    throw UsageError("--weights is required (a run directory or .safetensors)");
  SampleOptions o;
  o.model = a.str("model");
  o.weights = a.str("weights");
  o.device = a.str("device", "cpu");
  o.threads = backend_from(a).threads;
  o.prime = a.str("prime");
  o.length = a.integer("length", 200);
  o.temperature = a.number("temperature", 1.0);
  o.seed = static_cast<uint64_t>(a.integer("seed", 1));
  std::fputs(o.prime.c_str(), stdout);
  sample_text(o, [](const std::string& symbol) {
    std::fputs(symbol.c_str(), stdout);
    std::fflush(stdout);
  });
  std::fputs("\n", stdout);
  return 0;
}

const bool registered = register_command(
    {"sample", "generate text with a network trained on a text dataset", run_sample});

}  // namespace

}  // namespace myelin::cli
