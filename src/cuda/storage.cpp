// How the CUDA engine stores activations (CudaBackend::choose_storage): their type and layout;
// and the ReLUs it fuses into convolutions (and their gradients into LRN's) first
// (CudaBackend::fuse).
//
// Type. Under --precision bf16/fp16 an activation (or activation gradient) is stored in the
// precision's 16-bit type when every node touching it has a kernel that takes 16-bit storage there
// (the table below); those kernels load and store through FPtr and compute in fp32. Without it
// each cuDNN/cuBLASLt call would cast its operands to 16 bits and its result back, and the
// elementwise ops would move fp32. Parameters, optimizer state, inputs and kept values (loss,
// accuracy, weight gradients) stay fp32, and so does anything a kernel without a 16-bit path
// touches (softmax, the losses: the logits are small).
//
// Layout. A 4-D activation is stored channels-last (NHWC) when every node touching it takes that:
// cuDNN's tensor-core convolutions work in NHWC, so an NCHW activation costs a transposing copy on
// the way in and out of every convolution. Convolutions and pooling take each operand in either
// layout (they transpose what is not NHWC); elementwise kernels, LRN and bias take either as long
// as all their operands agree; views (flatten) and the rest want NCHW. Batch norm stays NCHW:
// cuDNN's NHWC fp32 batch norm made ResNet-9's step 4x slower (H200: 17.9 vs 4.5 ms).
//
// Both under --precision bf16/fp16 only (fp32 and tf32 convolve NCHW fp32 in place), and by
// default only in networks without batch norm: there (ResNet-9 on Fashion-MNIST) batch norm keeps
// most activations fp32 NCHW anyway, the step was no faster (H200, b512: 4.36 ms vs 4.40 ms), and
// the 70-epoch recipe ended at 95.21% instead of 95.58% (H100). In AlexNet they are worth 8% at
// batch 256 (H100). MYELIN_CUDA_BF16_STORAGE=0|1 and MYELIN_CUDA_LAYOUT=nchw|nhwc decide instead.
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "core/op_registry.h"
#include "core/value_choice.h"
#include "cuda/cuda_backend.h"
#include "cuda/device_kernels.h"
#include "ops/fuse.h"
#include "ops/params.h"

namespace myelin::cuda {

namespace {

using Slots = OperandSlots;

// The slots whose kernels load and store 16-bit storage.
const Slots* type_slots(const Node& n) {
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
      {"lrn", {{0}, {0}, true}},
      {"lrn_grad", {{0, 1, 2}, {0}, true}},
      {"add", {{0, 1}, {0}}},
      {"bias_add", {{0}, {0}}},
      {"bias_grad", {{0}, {}}},
  };
  // LRN's 16-bit kernels exist for some sizes only.
  if ((n.op == "lrn" || n.op == "lrn_grad") &&
      !lrn16_size_supported(static_cast<int>(LrnParams(n.attrs).size)))
    return nullptr;
  auto it = table.find(n.op);
  return it == table.end() ? nullptr : &it->second;
}

// The slots whose kernels take NHWC, and whether they must agree.
const Slots* layout_slots(const Node& n) {
  static const std::map<std::string, Slots> table = {
      {"conv2d", {{0}, {0}}},
      {"conv2d_grad_input", {{0}, {0}}},
      {"conv2d_grad_weight", {{0, 1}, {}}},
      {"max_pool2d", {{0}, {0}}},
      {"max_pool2d_grad", {{0, 1, 2}, {0}}},
      {"avg_pool2d", {{0}, {0}}},
      {"avg_pool2d_grad", {{0}, {0}}},
      {"activation", {{0}, {0}, true}},
      {"activation_grad", {{0, 1, 2}, {0}, true}},
      {"dropout", {{0}, {0}, true}},
      {"dropout_grad", {{0}, {0}, true}},
      {"add", {{0, 1}, {0}, true}},
      {"mul", {{0, 1}, {0}, true}},
      {"accumulate_grad", {{0, 1}, {}, true}},
      {"fill", {{}, {0}}},
      {"lrn", {{0}, {0}, true}},
      {"lrn_grad", {{0, 1, 2}, {0}, true}},
      {"bias_add", {{0}, {0}, true}},
      {"bias_grad", {{0}, {}}},
  };
  auto it = table.find(n.op);
  return it == table.end() ? nullptr : &it->second;
}

bool env_is(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, value) == 0;
}

void choose_types(Graph& g, DType half) {
  ChoiceRules rules = table_rules(type_slots, [](const Value& v) {
    return v.kind == ValueKind::activation && v.dtype == DType::f32;
  });
  // A view's output shares its source's memory, and so its type.
  rules.takes = [table = rules.takes](const Node& n, bool output, size_t k) {
    return op_def(n.op).is_view || table(n, output, k);
  };
  std::vector<char> chosen = choose_values(g, rules);
  for (size_t v = 0; v < chosen.size(); ++v)
    if (chosen[v]) g.value(static_cast<ValueId>(v)).dtype = half;
}

void choose_layouts(Graph& g) {
  ChoiceRules rules = table_rules(layout_slots, [](const Value& v) {
    return v.kind == ValueKind::activation && v.shape.rank() == 4;
  });
  std::vector<char> chosen = choose_values(g, rules);
  for (size_t v = 0; v < chosen.size(); ++v)
    if (chosen[v]) g.value(static_cast<ValueId>(v)).layout = Layout::nhwc;
}

}  // namespace

void plan_storage(Graph& g, Precision p, bool storage16, bool nhwc) {
  if (p != Precision::bf16 && p != Precision::fp16) return;
  if (nhwc) choose_layouts(g);
  if (storage16) choose_types(g, p == Precision::fp16 ? DType::f16 : DType::bf16);
}

void CudaBackend::fuse(Graph& g) const {
  if (env_is("MYELIN_CUDA_FUSE", "0")) return;
  fuse_relus(
      g, [](const Node& producer, double slope) { return producer.op == "conv2d" && slope == 0; });
  fuse_relu_grads(g, [](const Node& gradient) { return gradient.op == "lrn_grad"; });
}

void CudaBackend::choose_storage(Graph& g) const {
  bool batch_norm = false;
  for (const Node& n : g.nodes()) batch_norm = batch_norm || n.op == "batch_norm";
  auto choice = [&](const char* env, const char* on, const char* off) {
    return env_is(env, on) || (!batch_norm && !env_is(env, off));
  };
  plan_storage(g, precision_, choice("MYELIN_CUDA_BF16_STORAGE", "1", "0"),
               choice("MYELIN_CUDA_LAYOUT", "nhwc", "nchw"));
}

}  // namespace myelin::cuda
