#include "train/memory.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "core/backend.h"
#include "core/env.h"
#include "core/error.h"
#include "core/op_registry.h"
#include "core/planner.h"
#include "core/value_choice.h"
#include "model/layers.h"
#include "ops/fuse.h"
#include "train/session.h"

namespace myelin {

using json = nlohmann::json;

json MemoryEstimate::to_json() const {
  return {{"parameters", parameters},
          {"optimizer_state", optimizer_state},
          {"activations", activations},
          {"workspace", workspace},
          {"total", total},
          {"train_arena", train_arena},
          {"eval_arena", eval_arena},
          {"gradients", gradients},
          {"exact", exact}};
}

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// Session's allocation unit (each persistent tensor and input buffer is its own 256-byte-rounded
// buffer).
int64_t aligned(int64_t bytes) {
  return (bytes + 255) / 256 * 256;
}

int64_t bytes_of(const Value& v) {
  return v.shape.numel() * static_cast<int64_t>(dtype_size(v.dtype));
}

// Ops whose CUDA kernels load and store 16-bit activations (KernelStorage::half in their
// registrations, src/cuda/ops_*.cpp, here by op: the operands those leave out are parameters, or
// gradients only the optimizer reads). A copy, since a build without the CUDA engine estimates
// too.
bool cuda_takes_16bit(const std::string& op) {
  static const std::set<std::string> ops = {"conv2d",
                                            "conv2d_grad_input",
                                            "conv2d_grad_weight",
                                            "inner_product",
                                            "matmul",
                                            "activation",
                                            "activation_grad",
                                            "dropout",
                                            "dropout_grad",
                                            "max_pool2d",
                                            "max_pool2d_grad",
                                            "avg_pool2d",
                                            "avg_pool2d_grad",
                                            "lrn",
                                            "lrn_grad",
                                            "add",
                                            "bias_add",
                                            "bias_grad"};
  return ops.count(op) != 0;
}

// CudaBackend::fuse and choose_storage's effect on sizes (layouts do not change sizes). Batch norm
// takes 16 bits on x, a fused residual and y (dy, x and dx), channels-last; under bf16/fp16 every
// 4-D activation of a convolutional network is.
void cuda_rewrite(Graph& g, const std::string& precision) {
  fuse_for_cuda(g);
  if (precision != "bf16" && precision != "fp16") return;
  if (env_is("MYELIN_CUDA_BF16_STORAGE", "0")) return;
  ChoiceRules rules;
  rules.takes = [](const Node& n, bool output, size_t k) {
    if (n.op == "batch_norm") return k == 0 || (!output && k == 5);
    if (n.op == "batch_norm_grad") return k == 0 || (!output && k == 1);
    if (n.op == "batch_norm_sum_grad") return output ? k == 0 || k == 3 : k <= 1 || k >= 5;
    return op_def(n.op).is_view || cuda_takes_16bit(n.op);
  };
  rules.tied = [](const Node& n) {
    return n.op == "lrn" || n.op == "lrn_grad" || n.op.starts_with("batch_norm");
  };
  rules.eligible = [](const Value& v) {
    return v.kind == ValueKind::activation && v.dtype == DType::f32;
  };
  std::vector<char> chosen = choose_values(g, rules);
  DType half = precision == "fp16" ? DType::f16 : DType::bf16;
  for (size_t v = 0; v < chosen.size(); ++v)
    if (chosen[v]) g.value(static_cast<ValueId>(v)).dtype = half;
}

// The allowance for cuDNN's scratch (see memory.h).
int64_t cuda_workspace_allowance(const Graph& g) {
  int64_t largest = 0;
  for (const Node& n : g.nodes()) {
    if (n.op.rfind("conv2d", 0) != 0) continue;
    int64_t elements = 0;
    for (ValueId v : n.inputs) elements += g.value(v).shape.numel();
    for (ValueId v : n.outputs) elements += g.value(v).shape.numel();
    largest = std::max(largest, 2 * 4 * elements);
  }
  return std::clamp(largest, 64 * kMiB, int64_t{2} << 30);
}

struct Planned {
  int64_t arena = 0, workspace = 0;
};

// What Program's constructor would allocate for `g` on this device.
Planned plan_program(Graph g, Backend* cpu, const std::string& precision) {
  Planned p;
  if (!cpu) {
    cuda_rewrite(g, precision);
    p.arena = static_cast<int64_t>(plan_memory(g).arena_bytes);
    p.workspace = cuda_workspace_allowance(g);
    return p;
  }
  cpu->fuse(g);
  cpu->choose_storage(g);
  p.arena = static_cast<int64_t>(plan_memory(g).arena_bytes);
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = g.nodes()[i];
    if (op_def(n.op).is_view) continue;
    auto k = make_kernel(KernelSpec{n, g, static_cast<int>(i), *cpu});
    p.workspace = std::max(p.workspace, static_cast<int64_t>(k->workspace_bytes()));
  }
  return p;
}

// Session's persistent tensors: parameters and states, optimizer slots and accumulators.
void count_persistent(const Graph& g, MemoryEstimate& m) {
  for (const Value& v : g.values()) {
    if (v.kind != ValueKind::param && v.kind != ValueKind::state) continue;
    bool slot = v.name.find(".opt") != std::string::npos || v.name.ends_with(".acc");
    (slot && v.kind == ValueKind::state ? m.optimizer_state : m.parameters) += aligned(bytes_of(v));
  }
}

// Session's buffers for the step's inputs: training (images, labels, hyper-parameters in one
// block, and a zero scalar) or evaluation (images, labels).
int64_t input_buffers(const BuiltNetwork& net, bool training) {
  int64_t data = aligned(bytes_of(net.graph.value(net.data)));
  int64_t label = aligned(bytes_of(net.graph.value(net.label)));
  return training ? aligned(data + label + 8 * 4) + aligned(4) : data + label;
}

std::unique_ptr<Backend> planning_backend(const std::string& device, const std::string& precision) {
  Device d = Device::parse(device);
  if (d.kind != DeviceKind::cpu) return nullptr;
  BackendOptions o;
  o.precision = precision;
  return make_backend(d, o);
}

}  // namespace

MemoryEstimate estimate_training_memory(const NetworkSpec& spec, int64_t batch,
                                        const std::string& device, const std::string& precision,
                                        int64_t eval_batch) {
  checked_precision(precision);
  std::unique_ptr<Backend> cpu = planning_backend(device, precision);
  MemoryEstimate m;
  m.exact = cpu != nullptr;
  TrainingGraph t = build_training_graph(spec, spec.recipe, batch, default_loss_scale(precision));
  count_persistent(t.net.graph, m);
  for (ValueId v : t.grads) m.gradients += aligned(bytes_of(t.net.graph.value(v)));
  Planned train = plan_program(t.net.graph, cpu.get(), precision);
  m.train_arena = train.arena;
  m.activations = train.arena + input_buffers(t.net, true);
  m.workspace = train.workspace;
  if (eval_batch > 0) {
    BuiltNetwork e = build_network(spec, eval_batch, false, spec.recipe.label_smoothing);
    Planned eval = plan_program(e.graph, cpu.get(), precision);
    m.eval_arena = eval.arena;
    m.activations += eval.arena + input_buffers(e, false);
    m.workspace += eval.workspace;  // each program has its own
  }
  m.total = m.parameters + m.optimizer_state + m.activations + m.workspace;
  return m;
}

int64_t largest_batch(const NetworkSpec& spec, const std::string& device,
                      const std::string& precision, int64_t available_bytes, int64_t eval_batch) {
  auto fits = [&](int64_t b) {
    try {
      return estimate_training_memory(spec, b, device, precision, eval_batch).total <=
             available_bytes;
    } catch (const ShapeError&) {
      if (b == 1) throw;
      return false;  // a value of this batch exceeds the graph's size limits
    }
  };
  if (!fits(1)) return 0;
  int64_t lo = 1, hi = 2;  // fits(lo); hi unknown until probed
  while (hi <= kMaxBatch && fits(hi)) lo = hi, hi *= 2;
  if (hi > kMaxBatch) hi = kMaxBatch + 1;
  while (hi - lo > 1) {  // fits(lo), !fits(hi)
    int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace myelin
