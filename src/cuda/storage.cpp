// 16-bit activation storage under --precision bf16/fp16 (CudaBackend::choose_storage).
//
// Before, every activation stayed fp32 in the arena and each cuDNN/cuBLASLt call cast its
// operands to 16 bits and its result back, so every convolution read and wrote its activations
// twice more than needed, and the elementwise ops moved fp32. Now an activation (or activation
// gradient) is stored in the precision's 16-bit type when the node that writes it and every node
// that reads it have a kernel that takes 16-bit storage there (the table below); those kernels
// load and store through FPtr and compute in fp32. Parameters, optimizer state, inputs and kept
// values (loss, accuracy, weight gradients) stay fp32, and so does anything a kernel without a
// 16-bit path touches (batch norm, softmax, the losses: the logits are small). A view shares its
// source's storage, so a source and its views are decided together.
//
// Off by default: MYELIN_CUDA_BF16_STORAGE=1 turns it on (without it every activation stays fp32:
// the cast-per-call path). Tests: cuda_engine_test runs the small AlexNet both ways.
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "core/op_registry.h"
#include "cuda/cuda_backend.h"
#include "cuda/device_kernels.h"
#include "ops/params.h"

namespace myelin::cuda {

namespace {

struct Slots {
  std::vector<int> in, out;  // the input and output slots that may be 16-bit
};

const Slots* slots_of(const std::string& op) {
  static const std::map<std::string, Slots> table = {
      {"conv2d", {{0}, {0}}},
      {"conv2d_grad_input", {{0}, {0}}},
      {"conv2d_grad_weight", {{0, 1}, {}}},
      {"inner_product", {{0}, {0}}},
      {"matmul", {{0, 1}, {0}}},
      {"activation", {{0}, {0}}},
      {"activation_grad", {{0, 1, 2}, {0}}},
      {"dropout", {{0}, {0}}},
      {"dropout_grad", {{0}, {0}}},
      {"max_pool2d", {{0}, {0}}},
      {"max_pool2d_grad", {{0, 1, 2}, {0}}},
      {"avg_pool2d", {{0}, {0}}},
      {"avg_pool2d_grad", {{0}, {0}}},
      {"lrn", {{0}, {0}}},
      {"lrn_grad", {{0, 1, 2}, {0}}},
      {"add", {{0, 1}, {0}}},
      {"bias_add", {{0}, {0}}},
      {"bias_grad", {{0}, {}}},
  };
  auto it = table.find(op);
  return it == table.end() ? nullptr : &it->second;
}

// The slots of node n that may be 16-bit; null for none. LRN's 16-bit kernels exist for some
// sizes only, and take one storage type for all their operands (see uniform below).
const Slots* slots_of(const Node& n) {
  if ((n.op == "lrn" || n.op == "lrn_grad") &&
      !lrn16_size_supported(static_cast<int>(LrnParams(n.attrs).size)))
    return nullptr;
  return slots_of(n.op);
}

bool uniform(const Node& n) {
  return n.op == "lrn" || n.op == "lrn_grad";
}

bool has(const std::vector<int>& v, size_t k) {
  for (int i : v)
    if (static_cast<size_t>(i) == k) return true;
  return false;
}

}  // namespace

bool storage16_enabled() {
  const char* e = std::getenv("MYELIN_CUDA_BF16_STORAGE");
  return e && std::strcmp(e, "1") == 0;
}

void CudaBackend::choose_storage(Graph& g) const {
  if (precision_ != Precision::bf16 && precision_ != Precision::fp16) return;
  if (!storage16_) return;
  DType half = precision_ == Precision::fp16 ? DType::f16 : DType::bf16;
  size_t count = g.values().size();
  std::vector<ValueId> root(count);
  for (size_t v = 0; v < count; ++v) root[v] = static_cast<ValueId>(v);
  for (const Node& n : g.nodes())
    if (op_def(n.op).is_view) root[n.outputs[0]] = root[n.inputs[0]];
  std::vector<char> ok(count, 1), used(count, 0);
  for (const Node& n : g.nodes()) {
    if (op_def(n.op).is_view) continue;  // its uses are its output's consumers
    const Slots* s = slots_of(n);
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      ValueId r = root[n.inputs[k]];
      used[r] = 1;
      if (!s || !has(s->in, k)) ok[r] = 0;
    }
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!s || !has(s->out, k)) ok[root[n.outputs[k]]] = 0;
  }
  for (ValueId v : g.kept()) ok[root[v]] = 0;
  // A value nobody reads is an output the caller reads as fp32.
  for (size_t v = 0; v < count; ++v) {
    const Value& val = g.value(static_cast<ValueId>(v));
    if (!used[v] || val.kind != ValueKind::activation || val.dtype != DType::f32) ok[v] = 0;
  }
  auto is16 = [&](ValueId v) { return ok[root[v]] != 0; };
  // A node whose kernel takes one storage type for all its operands: if some stay fp32, all do
  // (turning a value back to fp32 never breaks another kernel, so this settles).
  for (bool changed = true; changed;) {
    changed = false;
    for (const Node& n : g.nodes()) {
      if (!uniform(n)) continue;
      bool any16 = false, any32 = false;
      for (const auto* list : {&n.inputs, &n.outputs})
        for (ValueId v : *list) (is16(v) ? any16 : any32) = true;
      if (!(any16 && any32)) continue;
      for (const auto* list : {&n.inputs, &n.outputs})
        for (ValueId v : *list) ok[root[v]] = 0;
      changed = true;
    }
  }
  for (size_t v = 0; v < count; ++v)
    if (is16(static_cast<ValueId>(v))) g.value(static_cast<ValueId>(v)).dtype = half;
}

}  // namespace myelin::cuda
