// How the CPU engine stores activations (CpuBackend::choose_storage): in oneDNN's blocked layout
// between the kernels that take it, so that a convolution on oneDNN's blocked kernels no longer
// reorders its input from NCHW to nChw16c and its output back on every call, nor do its
// gradients.
//
// A 4-D f32 activation whose channels are a multiple of 16 is stored nchw16c (blocked.h) when
// every node touching it takes that: convolutions that run on oneDNN's blocked kernels (not our
// im2col + SGEMM, not oneDNN on plain tensors) take each operand in either layout and reorder what
// is not the primitive's choice; pooling (oneDNN, and our blocked max gradient), LRN (oneDNN
// forward, our gradient on pixel-major tiles) and the elementwise kernels (flat loops) take it
// where all their operands agree, and the bias gradient (of a convolution's bias) reads it. Views
// (flatten), inner products, batch norm (its loops stream per-channel rows), bias_add, concat and
// the rest want NCHW. Dropout too: its mask is a function of the element's index, so a blocked
// step would drop other elements than the same step stored NCHW. Inputs, parameters and kept
// values are never changed (choose_values).
//
// Measured (2 threads, this AVX-512 machine, medians of 5 interleaved runs): AlexNet at batch 16
// 477.9 -> 465.2 ms a step (the values from conv2's output to conv5's input blocked). LeNet and the
// small ResNet are unchanged: their 16k-channel values all touch im2col + SGEMM or batch norm.
// MYELIN_CPU_BLOCKED=0 keeps every activation NCHW (for A/B timing).
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "core/value_choice.h"
#include "cpu/blocked.h"
#include "cpu/cpu_backend.h"

namespace myelin {

namespace {

struct Entry {
  OperandSlots slots;  // the operands that take nchw16c
  // Nodes of the op that take it at all (all when null): those whose kernel has a blocked path.
  bool (*when)(const Node&, const Graph&) = nullptr;
};

// n's row, or null where its kernel takes nchw16c nowhere.
const OperandSlots* blocked_slots(const Node& n, const Graph& g) {
  static const std::map<std::string, Entry> table = {
      {"conv2d", {{{0}, {0}}, cpu::conv_takes_blocked}},
      {"conv2d_grad_input", {{{0}, {0}}, cpu::conv_takes_blocked}},
      {"conv2d_grad_weight", {{{0, 1}, {}}, cpu::conv_takes_blocked}},
      {"max_pool2d", {{{0}, {0}, true}, cpu::pool_takes_blocked}},
      {"max_pool2d_grad", {{{0, 1, 2}, {0}, true}, cpu::pool_takes_blocked}},
      {"avg_pool2d", {{{0}, {0}, true}, cpu::pool_takes_blocked}},
      {"avg_pool2d_grad", {{{0}, {0}, true}, cpu::pool_takes_blocked}},
      {"lrn", {{{0}, {0}, true}}},
      {"lrn_grad", {{{0, 1, 2}, {0}, true}}},
      {"activation", {{{0}, {0}, true}}},
      {"activation_grad", {{{0, 1, 2}, {0}, true}}},
      {"add", {{{0, 1}, {0}, true}}},
      {"mul", {{{0, 1}, {0}, true}}},
      {"accumulate_grad", {{{0, 1}, {}, true}}},
      {"fill", {{{}, {0}}}},
      {"bias_grad", {{{0}, {}}}},
  };
  auto it = table.find(n.op);
  if (it == table.end() || (it->second.when && !it->second.when(n, g))) return nullptr;
  return &it->second.slots;
}

}  // namespace

void CpuBackend::choose_storage(Graph& g) const {
  const char* env = std::getenv("MYELIN_CPU_BLOCKED");
  if (env && std::strcmp(env, "0") == 0) return;
  ChoiceRules rules = table_rules([&g](const Node& n) { return blocked_slots(n, g); },
                                  [](const Value& v) {
                                    return v.kind == ValueKind::activation &&
                                           v.dtype == DType::f32 && v.shape.rank() == 4 &&
                                           v.shape[1] % cpu::kChannelBlock == 0;
                                  });
  std::vector<char> chosen = choose_values(g, rules);
  for (size_t v = 0; v < chosen.size(); ++v)
    if (chosen[v]) g.value(static_cast<ValueId>(v)).layout = Layout::nchw16c;
}

}  // namespace myelin
