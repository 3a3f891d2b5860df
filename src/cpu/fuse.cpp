// CpuBackend::fuse: a ReLU whose input t comes from a convolution, an inner product or a batch
// norm becomes that node's epilogue ("post" = "relu"), so the ReLU's output y is written while
// the producer's output is still in cache, and t (a whole activation) leaves the arena.
//
// Only where nothing else needs t: its readers are the ReLU and the ReLU's gradient, and it is
// not kept. The gradient node activation_grad(dy, x, y) then reads y in place of x: a ReLU's
// gradient only asks whether x > 0, and y > 0 exactly when x > 0 (also for a leaky ReLU with a
// slope >= 0).
#include <cstdlib>
#include <cstring>
#include <optional>

#include "cpu/cpu_backend.h"
#include "ops/params.h"

namespace myelin {

namespace {

// The slope below 0 of a ReLU or leaky ReLU node (forward or gradient); none for other
// activations and for a negative slope, where y > 0 no longer means x > 0.
std::optional<double> relu_slope(const Node& n) {
  if (n.op != "activation" && n.op != "activation_grad") return std::nullopt;
  ActParams p(n.attrs);
  if (p.kind == ActKind::relu) return 0.0;
  if (p.kind == ActKind::leaky_relu && p.alpha >= 0) return p.alpha;
  return std::nullopt;
}

bool has_relu_epilogue(const std::string& op) {
  return op == "conv2d" || op == "inner_product" || op == "batch_norm";
}

}  // namespace

void CpuBackend::fuse(Graph& g) const {
  const char* env = std::getenv("MYELIN_CPU_FUSE");
  if (env && std::strcmp(env, "0") == 0) return;
  std::vector<std::vector<int>> readers(g.values().size());
  for (size_t i = 0; i < g.nodes().size(); ++i)
    for (ValueId v : g.nodes()[i].inputs) readers[v].push_back(static_cast<int>(i));
  std::vector<int> fused;  // the ReLU nodes now done by their producers
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& relu = g.nodes()[i];
    std::optional<double> slope = relu_slope(relu);
    if (relu.op != "activation" || !slope) continue;
    const ValueId t = relu.inputs[0], y = relu.outputs[0];
    // A value fused away earlier in this pass keeps its old producer, a ReLU: never fused twice.
    const int p = g.value(t).producer;
    if (p < 0 || g.is_kept(t) || g.value(t).dtype != DType::f32) continue;
    const Node& prod = g.nodes()[p];
    if (!has_relu_epilogue(prod.op) || prod.outputs[0] != t || prod.attrs.has("post")) continue;
    std::vector<int> grads;
    bool only_relu = true;
    for (int r : readers[t]) {
      const Node& n = g.nodes()[r];
      if (r == static_cast<int>(i)) continue;
      bool its_grad = n.op == "activation_grad" && n.inputs[0] != t && n.inputs[1] == t &&
                      n.inputs[2] == y && relu_slope(n) == slope;
      only_relu = only_relu && its_grad;
      grads.push_back(r);
    }
    if (!only_relu) continue;
    Node& pn = g.node(p);
    pn.attrs.set("post", std::string("relu"));
    if (*slope != 0) pn.attrs.set("post_slope", *slope);
    pn.outputs[0] = y;
    for (int r : grads) g.node(r).inputs[1] = y;
    fused.push_back(static_cast<int>(i));
  }
  g.remove_nodes(fused);
}

}  // namespace myelin
