// Step comparison for the CPU engine's graph rewrites (ReLU fusion, blocked activations): a small
// network built with StepBuilder and ended by finish_step_net runs one training or inference step
// with an environment switch (MYELIN_CPU_FUSE, MYELIN_CPU_BLOCKED, ...) on and off (run_step), and
// expect_steps_match checks that the two steps' loss, outputs and gradients agree.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/graph.h"

namespace myelin::test {

// A graph and the values compared between the two programs.
struct StepNet {
  Graph graph;
  std::vector<ValueId> compared;
};

// Layer helpers on a graph; parameters are named after the layer ("conv1.weight", ...).
struct StepBuilder {
  Graph& g;
  // Convolution with bias, `o` output channels, a k x k kernel.
  ValueId conv(ValueId x, const std::string& name, int64_t o, int64_t k, Attrs a = {});
  // Convolution without bias, as before a batch norm (its bias gradient would be zero but for
  // rounding, which differs with the order batch norm sums in).
  ValueId conv_no_bias(ValueId x, const std::string& name, int64_t o, int64_t k, Attrs a = {});
  // conv followed by a ReLU named name + "_relu".
  ValueId conv_relu(ValueId x, const std::string& name, int64_t o, int64_t k, Attrs a = {});
  // Inner product to `o` outputs, with or without bias.
  ValueId fc(ValueId x, const std::string& name, int64_t o, bool bias = true);
  // Batch norm with parameters gamma, beta and states mean, var.
  ValueId bn(ValueId x, const std::string& name);
  ValueId relu(ValueId x, const std::string& name);
};

// The small ResNet's second block at 14x14 (models/resnet.yaml): 24 channels through a 3x3
// convolution, then 24 -> 48 at stride 2 beside a 1x1 stride-2 projection shortcut, batch norms
// and ReLUs, an inner product to 6 classes. A training step over 4 images.
StepNet stride2_block_net();

// The small ResNet's first blocks at 14x14 (models/resnet.yaml: 28x28 images pooled): res1_conv1
// and res1_conv2 are 24 -> 24 between nChw8c activations; conv_b (bias, ReLU) writes for a pooling
// that the plan stores otherwise. A training (or inference) step over 4 images.
StepNet resnet14_net(bool training);

// Ends a network: an i32 label input, a softmax cross-entropy loss over `logits`, loss and logits
// kept and compared, and in training the gradients of every parameter (the data too when it is
// one), all compared.
StepNet finish_step_net(Graph g, ValueId logits);

// How run_step compiles, binds and runs.
struct StepOptions {
  const char* switch_env;  // set to "1" or "0" while the program compiles
  uint32_t bind_seed;      // std::mt19937 seed of the bound values
  int label_classes;       // labels are uniform in [0, label_classes)
  uint64_t step_seed = 0;  // StepContext::seed
};

struct StepResult {
  std::map<std::string, std::vector<float>> values;  // the compared values, by value name
  size_t nodes = 0;                                  // the program's graph's nodes
  size_t arena = 0;                                  // the plan's arena bytes
  Graph graph{true};                                 // the program's graph
};

// Compiles `net` on the CPU (2 threads) with the switch on or off, binds deterministic random
// parameters, states and labels (gamma and var in [0.5, 1.5], other floats in [-1, 1]), fills
// every activation's storage with NaN (what a kernel reads unwritten shows), runs one step and
// reads the compared values.
StepResult run_step(const StepNet& net, bool switch_on, const StepOptions& options);

// Every value of `want` is in `got` with the same size, finite in both and not all zero, and the
// largest difference is at most rel_tol times the largest magnitude; `what` ends the failure
// message.
void expect_steps_match(const StepResult& want, const StepResult& got, double rel_tol,
                        const std::string& what);

}  // namespace myelin::test
