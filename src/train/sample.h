// Generating text with a trained text network (`myelin sample`): the network reads a prime one
// symbol at a time, carrying its recurrent state, then draws each next symbol from its scores
// and reads it back.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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

class Session;

// Draws text from a session that scores one symbol at a time: a text network built with input [1]
// and batch 1 (sample_network) whose recurrent layers carry their state.
class TextSampler {
 public:
  TextSampler(Session& session, std::vector<std::string> vocabulary);
  // The drawn text (without the prime). Starts from a zero state, reads the prime (empty: a
  // newline, or the first symbol), then draws `length` symbols.
  std::string run(const std::string& prime, int64_t length, double temperature, uint64_t seed,
                  const std::function<void(const std::string&)>& on_symbol = {});

 private:
  Session& session_;
  std::vector<std::string> vocabulary_;
  std::string level_;
};

// The network reading one symbol per step; UsageError unless it is a text network whose
// recurrent layers carry their state.
NetworkSpec sample_network(NetworkSpec spec);

// The drawn text (without the prime). `on_symbol` sees each symbol as it is drawn. UsageError for
// a network that is not a text network with a recurrent layer carrying its state, weights with no
// vocabulary, a prime with a symbol outside it, or a temperature or length out of range.
std::string sample_text(const SampleOptions& o,
                        const std::function<void(const std::string&)>& on_symbol = {});

}  // namespace myelin
