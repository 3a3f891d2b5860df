// How the CUDA engine stores activations (CudaBackend::choose_storage): their type and layout;
// and the ReLUs it fuses into convolutions, batch norms and adds (a residual block's end), their
// gradients into LRN's and batch norm's, and the residual add into the batch norm before it, first
// (CudaBackend::fuse). MYELIN_CUDA_BN_FUSE=0 turns the batch-norm fusions off (ops_cuda_test's
// batch_norm_nhwc relu and residual cases check them; ResNet-50 bf16 at batch 256 on an H100: 4,983
// img/s without, 5,386 with).
//
// Type. Under --precision bf16/fp16 an activation (or activation gradient) is stored in the
// precision's 16-bit type when every node touching it has a kernel that takes 16-bit storage there
// (KernelStorage::half, registered with each kernel in ops_*.cpp); those kernels load and store
// through FPtr and compute in fp32. Without it each cuDNN/cuBLASLt call would cast its operands to
// 16 bits and its result back, and the elementwise ops would move fp32. Parameters, optimizer
// state, inputs and kept values (loss, accuracy, weight gradients) stay fp32, and so does anything
// a kernel without a 16-bit path touches. A view shares its source's type.
//
// Layout. A 4-D activation is stored channels-last (NHWC) when every node touching it takes that
// (KernelStorage::layout, likewise registered with each kernel): cuDNN's tensor-core convolutions
// work in NHWC, so an NCHW activation costs a transposing copy on the way in and out of every
// convolution. Views (flatten) and kernels that state nothing want NCHW.
//
// Both under --precision bf16/fp16; in networks with batch norm too, whose own kernels take
// 16-bit NHWC (batch_norm.cu). Before those, batch norm ran fp32 NCHW on cuDNN and kept most of a
// ResNet's activations so. In AlexNet 16-bit channels-last storage is worth 8% at batch 256
// (H100). Under tf32 activations stay fp32, and channels-last in networks with batch norm only
// (the convolutions' staged path then works on fp32 NHWC, ops_conv.cpp): AlexNet ran slower so
// (b64 12,437 vs 13,202 img/s NCHW), where cuDNN's fp32 NCHW batch norm is what a ResNet would
// run otherwise. fp32 keeps NCHW (cuDNN's exact fp32 kernels). MYELIN_CUDA_BF16_STORAGE=0 turns
// 16-bit storage off; MYELIN_CUDA_LAYOUT=nchw channels-last, =nhwc takes it under tf32 in any
// network.
#include <optional>
#include <vector>

#include "core/backend.h"
#include "core/env.h"
#include "core/op_registry.h"
#include "core/value_choice.h"
#include "cuda/cuda_backend.h"
#include "ops/fuse.h"

namespace myelin::cuda {

namespace {

// n's slots under one of its CUDA kernel's storage rules (KernelStorage::layout or ::half), or
// null where it takes that storage nowhere.
const OperandSlots* kernel_slots(const Node& n, const Graph& g,
                                 std::optional<StorageRule> KernelStorage::*rule) {
  const KernelStorage* k = kernel_storage(n.op, DeviceKind::cuda);
  return k && (k->*rule) ? (k->*rule)->slots_for(n, g) : nullptr;
}

void choose_types(Graph& g, DType half) {
  ChoiceRules rules = table_rules(
      [&g](const Node& n) { return kernel_slots(n, g, &KernelStorage::half); },
      [](const Value& v) { return v.kind == ValueKind::activation && v.dtype == DType::f32; });
  // A view's output shares its source's memory, and so its type.
  rules.takes = [table = rules.takes](const Node& n, bool output, size_t k) {
    return op_def(n.op).is_view || table(n, output, k);
  };
  std::vector<char> chosen = choose_values(g, rules);
  for (size_t v = 0; v < chosen.size(); ++v)
    if (chosen[v]) g.value(static_cast<ValueId>(v)).dtype = half;
}

void choose_layouts(Graph& g) {
  ChoiceRules rules = table_rules(
      [&g](const Node& n) { return kernel_slots(n, g, &KernelStorage::layout); },
      [](const Value& v) { return v.kind == ValueKind::activation && v.shape.rank() == 4; });
  std::vector<char> chosen = choose_values(g, rules);
  for (size_t v = 0; v < chosen.size(); ++v)
    if (chosen[v]) g.value(static_cast<ValueId>(v)).layout = Layout::nhwc;
}

bool has_batch_norm(const Graph& g) {
  for (const Node& n : g.nodes())
    if (n.op == "batch_norm") return true;
  return false;
}

// Whether g's activations may be stored channels-last under p, as `layout` says.
bool channels_last(const Graph& g, Precision p, ChannelsLast layout) {
  switch (layout) {
    case ChannelsLast::never:
      return false;
    case ChannelsLast::where_it_pays:
      return is_16bit(p) || (p == Precision::tf32 && has_batch_norm(g));
    case ChannelsLast::always:
      return p != Precision::fp32;
  }
  return false;
}

}  // namespace

void plan_storage(Graph& g, Precision p, bool storage16, ChannelsLast layout) {
  if (channels_last(g, p, layout)) choose_layouts(g);
  if (is_16bit(p) && storage16) choose_types(g, half_type(p));
}

void CudaBackend::fuse(Graph& g) const {
  fuse_for_cuda(g);
}

void CudaBackend::choose_storage(Graph& g) const {
  const ChannelsLast layout = env_is("MYELIN_CUDA_LAYOUT", "nchw")   ? ChannelsLast::never
                              : env_is("MYELIN_CUDA_LAYOUT", "nhwc") ? ChannelsLast::always
                                                                     : ChannelsLast::where_it_pays;
  plan_storage(g, precision_, !env_is("MYELIN_CUDA_BF16_STORAGE", "0"), layout);
}

}  // namespace myelin::cuda
