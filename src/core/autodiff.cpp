#include "core/autodiff.h"

#include "core/error.h"
#include "core/op_registry.h"

namespace myelin {

namespace {

bool is_float(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16;
}

// requires[v]: v depends on one of `wrt` through float values, so it carries a gradient.
std::vector<bool> requires_grad(const Graph& g, const std::vector<ValueId>& wrt) {
  std::vector<bool> req(g.values().size(), false);
  for (ValueId w : wrt) req[w] = true;
  for (const Node& n : g.nodes()) {
    bool any = false;
    for (ValueId v : n.inputs) any = any || req[v];
    for (ValueId v : n.outputs) req[v] = any && is_float(g.value(v).dtype);
  }
  return req;
}

// Sums the contributions to one gradient into a single value.
ValueId sum_contributions(Graph& g, const std::string& layer, std::vector<ValueId>& parts) {
  if (parts.empty()) return kNoValue;
  while (parts.size() > 1) {
    ValueId b = parts.back();
    parts.pop_back();
    parts.back() = g.add1("add", layer, {parts.back(), b});
  }
  return parts[0];
}

}  // namespace

std::map<ValueId, ValueId> differentiate(Graph& g, ValueId loss, const std::vector<ValueId>& wrt) {
  if (g.value(loss).shape.numel() != 1)
    throw ShapeError("the loss '" + g.value(loss).name + "' must be a scalar, got shape " +
                     g.value(loss).shape.str());
  g.set_phase(Phase::backward);
  Attrs one{{"value", 1.0}, {"shape", g.value(loss).shape.dims}};
  ValueId seed = g.add1("fill", g.value(loss).name, {}, one);
  g.set_phase(Phase::forward);
  return differentiate(g, {{loss, seed}}, wrt);
}

std::map<ValueId, ValueId> differentiate(Graph& g,
                                         const std::vector<std::pair<ValueId, ValueId>>& seeds,
                                         const std::vector<ValueId>& wrt) {
  std::vector<bool> req = requires_grad(g, wrt);
  int forward_nodes = 0;  // nodes before the first backward node
  while (forward_nodes < static_cast<int>(g.nodes().size()) &&
         g.nodes()[forward_nodes].phase == Phase::forward)
    ++forward_nodes;
  std::vector<std::vector<ValueId>> parts(g.values().size());
  for (auto [v, dv] : seeds) {
    if (g.value(v).shape != g.value(dv).shape)
      throw ShapeError("gradient seed for '" + g.value(v).name + "' has shape " +
                       g.value(dv).shape.str() + ", expected " + g.value(v).shape.str());
    parts[v].push_back(dv);
  }
  g.set_phase(Phase::backward);

  for (int i = forward_nodes - 1; i >= 0; --i) {
    Node node = g.nodes()[i];  // copy: the vector grows below
    bool wanted = false;
    for (ValueId v : node.inputs) wanted = wanted || req[v];
    std::vector<ValueId> grad_outs;
    bool any_grad = false;
    for (ValueId v : node.outputs) {
      if (parts.size() < g.values().size()) parts.resize(g.values().size());
      grad_outs.push_back(sum_contributions(g, node.name, parts[v]));
      any_grad = any_grad || grad_outs.back() != kNoValue;
    }
    if (!wanted || !any_grad) continue;
    const OpDef& def = op_def(node.op);
    if (!def.grad)
      throw Error("op " + node.op + " ('" + node.name +
                  "') has no gradient rule but lies between the parameters and the loss");
    GradBuilder gb(g, i, grad_outs, &req);
    std::vector<ValueId> grads = def.grad(gb);
    parts.resize(g.values().size());
    for (size_t k = 0; k < node.inputs.size() && k < grads.size(); ++k)
      if (grads[k] != kNoValue && req[node.inputs[k]]) parts[node.inputs[k]].push_back(grads[k]);
  }

  std::map<ValueId, ValueId> result;
  for (ValueId w : wrt) {
    ValueId gsum = sum_contributions(g, g.value(w).name, parts[w]);
    if (gsum == kNoValue) continue;
    g.keep(gsum);
    result[w] = gsum;
  }
  g.set_phase(Phase::forward);
  return result;
}

}  // namespace myelin
