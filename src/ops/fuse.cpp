#include "ops/fuse.h"

#include <optional>

#include "core/env.h"
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

// Whether every reader of n's outputs is node `at` or comes after it.
bool outputs_read_after(const Graph& g, const Node& n, int at,
                        const std::vector<std::vector<int>>& readers) {
  for (ValueId v : n.outputs)
    for (int r : readers[v])
      if (r < at) return false;
  return true;
}

}  // namespace

std::vector<std::vector<int>> readers_of(const Graph& g) {
  std::vector<std::vector<int>> readers(g.values().size());
  for (size_t i = 0; i < g.nodes().size(); ++i)
    for (ValueId v : g.nodes()[i].inputs) readers[v].push_back(static_cast<int>(i));
  return readers;
}

void fuse_relus(Graph& g, const std::function<bool(const Node&, double)>& takes) {
  const std::vector<std::vector<int>> readers = readers_of(g);
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
    if (!takes(prod, *slope) || prod.outputs[0] != t || prod.attrs.has("post")) continue;
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

void fuse_relu_grads(Graph& g, const std::function<bool(const Node&)>& takes) {
  std::vector<int> readers(g.values().size(), 0);
  for (const Node& n : g.nodes())
    for (ValueId v : n.inputs) ++readers[v];
  std::vector<int> fused;  // the ReLU gradient nodes now done by the node before them
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& a = g.nodes()[i];
    if (a.op != "activation_grad" || relu_slope(a) != 0.0) continue;
    const ValueId g_in = a.inputs[0], y = a.inputs[2];
    const int p = g.value(g_in).producer;
    if (p < 0 || g.is_kept(g_in) || readers[g_in] != 1) continue;
    const Node& prod = g.nodes()[p];
    if (!takes(prod) || prod.outputs[0] != g_in || prod.attrs.has("post") ||
        prod.inputs.size() < 2 || prod.inputs[1] != y)
      continue;
    Node& pn = g.node(p);
    pn.attrs.set("post", std::string("relu_grad"));
    pn.outputs[0] = a.outputs[0];
    fused.push_back(static_cast<int>(i));
  }
  g.remove_nodes(fused);
}

void fuse_residual_adds(Graph& g) {
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the batch norms now done where their add was
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& add = g.nodes()[i];
    if (add.op != "add" || add.inputs.size() != 2 || add.attrs.s("post", "relu") != "relu")
      continue;
    for (int side = 0; side < 2; ++side) {
      const ValueId t = add.inputs[side], r = add.inputs[1 - side];
      const int p = g.value(t).producer;
      if (p < 0 || g.is_kept(t) || readers[t].size() != 1 || t == r) continue;
      const Node& bn = g.nodes()[p];
      if (bn.op != "batch_norm" || bn.inputs.size() != 5 || bn.attrs.has("post") ||
          bn.outputs[0] != t || g.value(r).shape != g.value(t).shape ||
          !outputs_read_after(g, bn, static_cast<int>(i), readers))
        continue;
      Node merged = bn;
      merged.inputs.push_back(r);
      merged.outputs[0] = add.outputs[0];
      for (const char* k : {"post", "post_slope"})
        if (add.attrs.has(k)) merged.attrs.set(k, add.attrs.items().at(k));
      g.node(static_cast<int>(i)) = std::move(merged);
      fused.push_back(p);
      break;
    }
  }
  g.remove_nodes(fused);
}

void fuse_batch_norm_relu_grads(Graph& g) {
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the ReLU gradient nodes now done by the batch norm's gradient
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& a = g.nodes()[i];
    if (a.op != "activation_grad" || relu_slope(a) != 0.0) continue;
    const ValueId dy = a.inputs[0], y = a.inputs[2], dt = a.outputs[0];
    const int p = g.value(y).producer;
    if (p < 0 || g.is_kept(dt) || readers[dt].size() != 1) continue;
    const Node& bn = g.nodes()[p];
    const Node& b = g.nodes()[readers[dt][0]];
    if (bn.op != "batch_norm" || bn.inputs.size() != 5 || bn.outputs.size() != 3 ||
        bn.attrs.s("post", "") != "relu" || bn.attrs.has("post_slope") || bn.outputs[0] != y ||
        a.inputs[1] != y)
      continue;
    if (b.op != "batch_norm_grad" || b.inputs.size() != 5 || b.attrs.has("post") ||
        b.inputs[0] != dt || b.inputs[1] != bn.inputs[0] || b.inputs[3] != bn.outputs.at(1))
      continue;
    Node& grad = g.node(readers[dt][0]);
    grad.inputs[0] = dy;
    grad.inputs.push_back(bn.inputs[2]);
    grad.attrs.set("post", std::string("relu_grad"));
    fused.push_back(static_cast<int>(i));
  }
  g.remove_nodes(fused);
}

int plain_sum_producer(const Graph& g, const std::vector<std::vector<int>>& readers, ValueId v) {
  const int p = g.value(v).producer;
  if (p < 0 || g.is_kept(v) || readers[v].size() != 1) return -1;
  const Node& add = g.nodes()[p];
  const Shape& s = g.value(v).shape;
  if (add.op != "add" || add.inputs.size() != 2 || add.attrs.has("post") || add.outputs[0] != v ||
      g.value(add.inputs[0]).shape != s || g.value(add.inputs[1]).shape != s)
    return -1;
  return p;
}

void fuse_add_relu_grads(Graph& g) {
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the ReLU gradient nodes now done by adds
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& a = g.nodes()[i];
    if (a.op != "activation_grad" || a.inputs.size() != 3 || a.inputs[1] != a.inputs[2] ||
        ActParams(a.attrs).kind != ActKind::relu)
      continue;
    const ValueId sum = a.inputs[0], y = a.inputs[1];
    const int p = plain_sum_producer(g, readers, sum);
    if (p < 0 || g.value(sum).shape != g.value(y).shape) continue;
    Node& n = g.node(p);
    n.inputs.push_back(y);
    n.attrs.set("post", std::string("relu_grad"));
    n.outputs[0] = a.outputs[0];
    fused.push_back(static_cast<int>(i));
  }
  g.remove_nodes(fused);
}

void pass_max_pool_picks(Graph& g) {
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& grad = g.nodes()[i];
    if (grad.op != "max_pool2d_grad" || grad.inputs.size() != 3) continue;
    const ValueId x = grad.inputs[1], y = grad.inputs[2];
    const int p = g.value(y).producer;
    if (p < 0) continue;
    const Node& pool = g.nodes()[p];
    const PoolParams pp(pool.attrs);
    if (pool.op != "max_pool2d" || pool.outputs.size() != 1 || pool.outputs[0] != y ||
        pool.inputs[0] != x || pp.kernel_h * pp.kernel_w >= 256)
      continue;
    const ValueId picks =
        g.activation(pool.name + ".picks", Shape{g.value(y).shape.numel()}, DType::u8);
    g.node(p).outputs.push_back(picks);
    g.value(picks).producer = p;
    g.node(static_cast<int>(i)).inputs = {g.nodes()[i].inputs[0], picks};
  }
}

void fuse_batch_norm_sum_grads(Graph& g) {
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the batch-norm gradients now done where their sum was
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& add = g.nodes()[i];
    if (add.op != "add" || add.inputs.size() != 3 || add.attrs.s("post", "") != "relu_grad")
      continue;
    const ValueId dy = add.outputs[0];
    for (int r : readers[dy]) {
      const Node& grad = g.nodes()[r];
      if (grad.op != "batch_norm_grad" || grad.inputs.size() != 5 || grad.attrs.has("post") ||
          grad.inputs[0] != dy || r < static_cast<int>(i))
        continue;
      Node merged = grad;
      merged.op = "batch_norm_sum_grad";
      merged.inputs[0] = add.inputs[0];
      merged.inputs.insert(merged.inputs.end(), {add.inputs[1], add.inputs[2]});
      merged.outputs.push_back(dy);
      g.node(static_cast<int>(i)) = std::move(merged);
      fused.push_back(r);
      break;
    }
  }
  g.remove_nodes(fused);
}

void fuse_shortcut_batch_norms(Graph& g) {
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the shortcuts' batch norms now done by the batch norms they feed
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& bn = g.nodes()[i];
    if (bn.op != "batch_norm" || bn.inputs.size() != 6 || bn.outputs.size() != 3) continue;
    const ValueId r = bn.inputs[5];
    const int p = g.value(r).producer;
    if (p < 0 || g.is_kept(r) || readers[r].size() != 1) continue;
    const Node& sc = g.nodes()[p];
    const BatchNormParams a(bn.attrs), b(sc.attrs);
    if (sc.op != "batch_norm" || sc.inputs.size() != 5 || sc.outputs.size() != 3 ||
        sc.outputs[0] != r || sc.attrs.has("post") || a.eps != b.eps || a.momentum != b.momentum ||
        a.training != b.training || !a.training ||
        g.value(sc.inputs[0]).shape != g.value(bn.inputs[0]).shape)
      continue;
    Node& merged = g.node(static_cast<int>(i));
    merged.inputs.pop_back();
    merged.inputs.insert(merged.inputs.end(), sc.inputs.begin(), sc.inputs.end());
    merged.outputs.insert(merged.outputs.end(), sc.outputs.begin() + 1, sc.outputs.end());
    fused.push_back(p);
  }
  g.remove_nodes(fused);
}

CudaFusions cuda_fusions() {
  return {.batch_norm = !env_is("MYELIN_CUDA_BN_FUSE", "0"),
          .add_relu_grads = !env_is("MYELIN_CUDA_ADD_RELU_GRAD", "0"),
          .bn_sum_grads = env_is("MYELIN_CUDA_BN_SUM_GRAD", "1"),
          .pool_picks = env_is("MYELIN_CUDA_POOL_PICKS", "1"),
          .bn_shortcuts = env_is("MYELIN_CUDA_BN_SHORTCUT", "1")};
}

void fuse_for_cuda(Graph& g, const CudaFusions& f) {
  fuse_relus(g, [](const Node& producer, double slope) {
    return (producer.op == "conv2d" || producer.op == "batch_norm" || producer.op == "add") &&
           slope == 0;
  });
  fuse_relu_grads(g, [](const Node& gradient) { return gradient.op == "lrn_grad"; });
  if (f.batch_norm) {
    fuse_residual_adds(g);
    fuse_batch_norm_relu_grads(g);
    if (f.bn_shortcuts) fuse_shortcut_batch_norms(g);
  }
  if (f.add_relu_grads) fuse_add_relu_grads(g);
  if (f.add_relu_grads && f.bn_sum_grads) fuse_batch_norm_sum_grads(g);
  if (f.pool_picks) pass_max_pool_picks(g);
}

void fuse_for_cuda(Graph& g) {
  if (!env_is("MYELIN_CUDA_FUSE", "0")) fuse_for_cuda(g, cuda_fusions());
}

}  // namespace myelin
