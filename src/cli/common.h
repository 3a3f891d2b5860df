// Flags and helpers shared by several subcommands.
#pragma once
#include <string>
#include <vector>

#include "cli/args.h"
#include "core/error.h"
#include "train/session.h"

namespace myelin::cli {

// --device, --threads, --precision
std::vector<Flag> device_flags();
Device device_from(const Args& a);
BackendOptions backend_from(const Args& a);

// --flag's value (`fallback` where not given), which must be one of `names`: a UsageError
// listing them otherwise.
std::string choice_from(const Args& a, const std::string& flag, const std::string& fallback,
                        const std::vector<std::string>& names);

// --conv-search: how the CUDA engine chooses convolution algorithms (train and time).
Flag conv_search_flag();
std::string conv_search_from(const Args& a);

// --size, --resize, --channels, --val-percent: how image folders are read.
std::vector<Flag> data_flags();
OpenOptions open_options(const Args& a);

// Prints help and returns true when --help or -h is among the arguments.
bool wants_help(const std::vector<std::string>& argv, const std::string& text);

// A random batch for the network's inputs, for timing: images uniform in [-1, 1] (or symbol
// ids), labels in [0, classes).
Batch synthetic_batch(const BuiltNetwork& net, int64_t classes, uint64_t seed);

}  // namespace myelin::cli
