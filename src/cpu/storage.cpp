// How the CPU engine stores activations (CpuBackend::choose_storage): in oneDNN's blocked layout
// between the kernels that take it, so that a convolution on oneDNN's blocked kernels no longer
// reorders its input from NCHW to nChw16c and its output back on every call, nor do its
// gradients.
//
// A 4-D f32 activation is stored blocked (blocked.h: nchw8c for channel counts that are a multiple
// of 8 but not of 16, nchw16c otherwise, channels that are not a multiple of 16 padded to whole
// blocks, the padding zero) when every node touching it takes that. Each kernel
// states which of its operands take it, and for which nodes, where it is registered
// (KernelStorage::layout, core/backend.h): the convolutions on oneDNN's blocked kernels, pooling,
// LRN (whole blocks), batch norm (each operand on its own: it converts between the layouts where
// its neighbours differ), the elementwise kernels and the bias gradient. A kernel that states
// nothing wants NCHW: views (flatten), inner products, bias_add, concat, dropout and the rest.
// Inputs, parameters and kept values are never changed (choose_values).
//
// Measured (2 threads, this AVX-512 machine, medians of 5 interleaved runs): AlexNet at batch 16
// 477.9 -> 465.2 ms a step (the values from conv2's output to conv5's input blocked). LeNet is
// unchanged (its values all touch im2col + SGEMM). In the small ResNet (models/resnet.yaml), from
// its stem's batch norm, which writes nchw8c from the plain output of the stem's im2col + SGEMM
// convolution, to the batch norms before the inner product, every activation and gradient is
// blocked, its 24-channel ones nchw8c, the 48-channel ones nchw16c; the only activation reorders
// left are oneDNN's between the two around its 24 -> 48 convolutions (bench/RESULTS.md).
// MYELIN_CPU_BLOCKED=0 keeps every activation NCHW (for A/B timing).
#include <vector>

#include "core/backend.h"
#include "core/env.h"
#include "core/value_choice.h"
#include "cpu/blocked.h"
#include "cpu/cpu_backend.h"

namespace myelin {

namespace {

// n's slots that take a blocked layout, or null where its kernel takes it nowhere.
const OperandSlots* blocked_slots(const Node& n, const Graph& g) {
  const KernelStorage* k = kernel_storage(n.op, DeviceKind::cpu);
  return k && k->layout ? k->layout->slots_for(n, g) : nullptr;
}

}  // namespace

void CpuBackend::choose_storage(Graph& g) const {
  if (env_is("MYELIN_CPU_BLOCKED", "0")) return;
  ChoiceRules rules = table_rules([&g](const Node& n) { return blocked_slots(n, g); },
                                  [](const Value& v) {
                                    return v.kind == ValueKind::activation &&
                                           v.dtype == DType::f32 && v.shape.rank() == 4;
                                  });
  std::vector<char> chosen = choose_values(g, rules);
  for (size_t v = 0; v < chosen.size(); ++v) {
    Value& val = g.value(static_cast<ValueId>(v));
    if (chosen[v]) val.layout = cpu::blocked_layout(val.shape[1]);
  }
  cpu::store_wide_inputs(g);
}

}  // namespace myelin
