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
  std::string solver = "sgd";  // sgd | nesterov | adam | adamw | rmsprop | adagrad
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double rms_decay = 0.99;          // rmsprop's moving average of squared gradients
  std::string lr_policy = "fixed";  // fixed | step | multistep | exp | inv | poly | cosine
  double gamma = 0.1, power = 1.0;
  int64_t step_size = 0;            // iterations (step policy)
  std::vector<int64_t> milestones;  // iterations (multistep)
  int64_t warmup_iters = 0;
  double clip_grad_norm = 0.0;  // 0 = off
  int64_t accumulate = 1;       // batches per update
  int64_t batch = 64;
  int64_t epochs = 10;
  int64_t max_iter = 0;  // 0 = from epochs
  double label_smoothing = 0.0;
  // Data transforms the network expects (in pixel units before scale).
  double scale = 1.0 / 255;
  std::vector<double> mean;  // per channel
  int64_t crop = 0, pad = 0;
  bool mirror = false;
  int64_t cutout = 0;  // side of a random square zeroed per training image
  // Test passes score each image by the mean of its logits and its mirror's (test-time
  // augmentation: the test set chooses nothing, both views are always taken).
  bool test_mirror = false;

  bool operator==(const Recipe&) const = default;
};

// One layer as written: its op, its name, the values it reads and names, and its attributes.
struct LayerSpec {
  std::string name;
  std::string type;                 // conv, pool, relu, ... (see model/layers.cpp)
  std::vector<std::string> inputs;  // default: the previous layer's output
  Attrs attrs;
  int line = 0;  // in the network file, for errors
};

struct NetworkSpec {
  std::string name;
  std::string file;  // where it was read from ("" when built in C++)
  std::string description;
  Dims input;  // [C, H, W]; with tokens, [steps]
  // "image": the input is floats (pixels) and each example has one label. "tokens": the input
  // is symbol ids (a text dataset), [steps] per example, and each step's label is the next
  // symbol; the logits are [N, steps, classes] and the loss averages over every step.
  std::string input_type = "image";
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
// The values Recipe::solver and Recipe::lr_policy take.
const std::vector<std::string>& solver_names();
const std::vector<std::string>& lr_policy_names();

// Builds the forward graph ending in softmax cross-entropy and accuracy (kept). With
// training=false, dropout is the identity and batch norm uses running statistics.
BuiltNetwork build_network(const NetworkSpec& spec, int64_t batch, bool training,
                           double label_smoothing = 0.0);

// --- Additions (model layer) ---

// The directories searched for standard networks, in order: $MYELIN_MODELS (':'-separated),
// <executable dir>/../models, <executable dir>/../share/myelin/models, the source tree's models/.
std::vector<std::string> model_search_path();

// The spec written back as a network file (only values that differ from the defaults);
// parse_network(write_network(s), f) is equivalent to s.
std::string write_network(const NetworkSpec& spec);

// Same network and recipe: everything but `file` and the layers' line numbers.
bool equivalent(const NetworkSpec& a, const NetworkSpec& b);

// Layer types a network file may use, with one line of help each and their keys.
struct LayerHelp {
  std::string type, doc;
  std::vector<std::string> keys;  // "filters (required)", "stride = 1", ...
};
std::vector<LayerHelp> layer_help();

// Size and cost of a built network, per example (batch-independent).
struct LayerCost {
  std::string name, type;
  Shape output;        // with the batch dimension
  int64_t params = 0;  // trained parameters of this layer
  int64_t flops = 0;   // forward, per example; a multiply-add counts 2
};
struct NetworkCost {
  int64_t params = 0, flops = 0;
  std::vector<LayerCost> layers;
};
NetworkCost network_cost(const NetworkSpec& spec);
std::string describe_network(const NetworkSpec& spec);  // a table: layer, output, params, FLOPs

}  // namespace myelin
