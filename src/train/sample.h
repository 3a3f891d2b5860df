// Generating text with a trained text network (`myelin sample`): the network reads a prime one
// symbol at a time, carrying its recurrent state, then draws each next symbol from its scores
// and reads it back.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "model/network.h"

namespace myelin {

struct SampleOptions {
  std::string model;  // empty: from the weights' metadata
  std::optional<NetworkSpec> spec;
  std::string weights;  // a run directory or .safetensors written by training on a text dataset
  std::string device = "cpu";
  int threads = 0;
  std::string prime;     // text in the weights' vocabulary; empty: a newline (or the first symbol)
  int64_t length = 200;  // symbols drawn after the prime
  double temperature = 1.0;  // > 0: below 1 more likely symbols, above 1 more surprising ones
  uint64_t seed = 1;         // the same seed draws the same text
};

// The drawn text (without the prime). `on_symbol` sees each symbol as it is drawn. UsageError for
// a network that is not a text network with a recurrent layer carrying its state, weights with no
// vocabulary, a prime with a symbol outside it, or a temperature or length out of range.
std::string sample_text(const SampleOptions& o,
                        const std::function<void(const std::string&)>& on_symbol = {});

}  // namespace myelin
