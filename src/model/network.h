// Networks: a declarative spec (parsed from a network file or made with NetBuilder) and the
// graph built from it for a batch size and mode.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/graph.h"

namespace myelin {

// The training settings a network file may recommend; command-line flags override them.
struct Recipe {
  std::string solver = "sgd";    // sgd | nesterov | adam | adamw | rmsprop | adagrad
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::string lr_policy = "fixed";  // fixed | step | multistep | exp | inv | poly | cosine
  double gamma = 0.1, power = 1.0;
  int64_t step_size = 0;             // iterations (step policy)
  std::vector<int64_t> milestones;   // iterations (multistep)
  int64_t warmup_iters = 0;
  double clip_grad_norm = 0.0;       // 0 = off
  int64_t accumulate = 1;            // batches per update
  int64_t batch = 64;
  int64_t epochs = 10;
  int64_t max_iter = 0;              // 0 = from epochs
  double label_smoothing = 0.0;
  // Data transforms the network expects (in pixel units before scale).
  double scale = 1.0 / 255;
  std::vector<double> mean;          // per channel
  int64_t crop = 0, pad = 0;
  bool mirror = false;
};

// One layer as written: its op, its name, the values it reads and names, and its attributes.
struct LayerSpec {
  std::string name;
  std::string type;                 // conv, pool, relu, ... (see model/layers.cpp)
  std::vector<std::string> inputs;  // default: the previous layer's output
  Attrs attrs;
  int line = 0;                     // in the network file, for errors
};

struct NetworkSpec {
  std::string name;
  std::string file;                 // where it was read from ("" when built in C++)
  std::string description;
  Dims input;                       // [C, H, W]
  int64_t classes = 0;
  std::vector<LayerSpec> layers;
  Recipe recipe;
};

// The graph of a network for one batch size: its inputs and the values a trainer reads.
struct BuiltNetwork {
  Graph graph;
  ValueId data = kNoValue, label = kNoValue;
  ValueId logits = kNoValue, loss = kNoValue, top1 = kNoValue, top5 = kNoValue;
  std::vector<std::string> layer_names;  // in order, for per-layer reports
};

// `name_or_path`: a standard network name (models/NAME.yaml) or a file path. Throws ParseError
// with the file, line and field for bad files.
NetworkSpec load_network(const std::string& name_or_path);
NetworkSpec parse_network(const std::string& text, const std::string& file);
std::vector<std::string> standard_networks();  // names under models/

// Builds the forward graph ending in softmax cross-entropy and accuracy (kept). With
// training=false, dropout is the identity and batch norm uses running statistics.
BuiltNetwork build_network(const NetworkSpec& spec, int64_t batch, bool training,
                           double label_smoothing = 0.0);

}  // namespace myelin
