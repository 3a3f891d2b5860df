// CpuBackend::fuse: a ReLU whose input comes from a convolution, an inner product or a batch
// norm becomes that node's epilogue, the gradient of a ReLU before a 2x2 max pooling part of
// the pooling's gradient (ops/fuse.h), and a batch norm + ReLU + 2x2 max pooling one node, with
// its gradient (fuse_batch_norm_pools below). MYELIN_CPU_FUSE=0 turns all of it off,
// MYELIN_CPU_BN_POOL=0 the last one alone.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/env.h"
#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "cpu/pool_geometry.h"
#include "ops/fuse.h"

namespace myelin {

namespace cpu {

namespace {

// readers[v]: the nodes that read value v, in order.
std::vector<std::vector<int>> readers_of(const Graph& g) {
  std::vector<std::vector<int>> readers(g.values().size());
  for (size_t i = 0; i < g.nodes().size(); ++i)
    for (ValueId v : g.nodes()[i].inputs) readers[v].push_back(static_cast<int>(i));
  return readers;
}

// The parts of one batch norm + ReLU + pair pooling chain: node indices, -1 where absent.
struct BnPoolChain {
  int bn = -1, pool = -1, pool_grad = -1, bn_grad = -1;
};

// The pooling gradient of the chain (max_pool2d_grad with the ReLU's gradient fused, reading the
// ReLU's output z and the pooling's output) and the batch norm gradient that reads its result
// alone; false where z has any other reader.
bool find_gradients(const Graph& g, const std::vector<std::vector<int>>& readers, ValueId z,
                    BnPoolChain& c) {
  const Node& bn = g.nodes()[c.bn];
  const Node& pool = g.nodes()[c.pool];
  for (int r : readers[z]) {
    if (r == c.pool) continue;
    const Node& n = g.nodes()[r];
    if (c.pool_grad >= 0 || n.op != "max_pool2d_grad" || n.attrs.s("post", "") != "relu_grad" ||
        n.inputs.size() != 3 || n.inputs[1] != z || n.inputs[2] != pool.outputs[0] ||
        n.inputs[0] == z)
      return false;
    c.pool_grad = r;
  }
  if (c.pool_grad < 0) return true;  // no gradient: inference, or nothing trains below
  const ValueId dz = g.nodes()[c.pool_grad].outputs[0];
  if (g.is_kept(dz) || readers[dz].size() != 1 || bn.outputs.size() != 3) return false;
  const Node& b = g.nodes()[readers[dz][0]];
  if (b.op != "batch_norm_grad" || b.inputs.size() != 5 || b.attrs.has("post") ||
      b.inputs[0] != dz || b.inputs[1] != bn.inputs[0] || b.inputs[2] != bn.inputs[1] ||
      b.inputs[3] != bn.outputs[1] || b.inputs[4] != bn.outputs[2])
    return false;
  c.bn_grad = readers[dz][0];
  return true;
}

// The chain whose pooling is node i, if it is one: a batch norm with a fused plain ReLU whose
// output z only the pooling (2x2, stride 2) and that pooling's gradient read.
bool find_chain(const Graph& g, const std::vector<std::vector<int>>& readers, int i,
                BnPoolChain& c) {
  const Node& pool = g.nodes()[i];
  if (pool.op != "max_pool2d" || pool.inputs.size() != 1 || pool.outputs.size() != 1) return false;
  const ValueId z = pool.inputs[0];
  const int p = g.value(z).producer;
  if (p < 0 || g.is_kept(z) || g.value(z).dtype != DType::f32 || g.value(z).shape.rank() != 4)
    return false;
  const Node& bn = g.nodes()[p];
  if (bn.op != "batch_norm" || bn.inputs.size() != 5 || bn.outputs[0] != z ||
      bn.attrs.s("post", "") != "relu" || bn.attrs.has("post_slope") || bn.attrs.has("pool") ||
      !is_pair_pool(PoolGeometry(g.value(z).shape, pool.attrs)))
    return false;
  c = BnPoolChain{p, i};
  return find_gradients(g, readers, z, c);
}

}  // namespace

// A batch norm with its ReLU (fused already) followed by a 2x2 stride-2 max pooling becomes one
// node that writes the pooling's output: "pool" = "max2" on the batch norm, the ReLU's output z
// (the largest activation of a ResNet's stem) no longer stored. Its gradient likewise: the pooling
// gradient goes, and batch_norm_grad gets "pool" = "max2", the pooling's incoming gradient as its
// dy and beta as a sixth input; it recomputes z from x where it needs the windows' maxima.
void fuse_batch_norm_pools(Graph& g) {
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the pooling nodes (and their gradients) now done by batch norms
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    BnPoolChain c;
    if (!find_chain(g, readers, static_cast<int>(i), c)) continue;
    Node& bn = g.node(c.bn);
    bn.outputs[0] = g.nodes()[c.pool].outputs[0];
    bn.attrs.set("pool", std::string("max2"));
    fused.push_back(c.pool);
    if (c.pool_grad < 0) continue;
    const ValueId dp = g.nodes()[c.pool_grad].inputs[0], beta = bn.inputs[2];
    Node& grad = g.node(c.bn_grad);
    grad.inputs[0] = dp;
    grad.inputs.push_back(beta);
    grad.attrs.set("pool", std::string("max2"));
    fused.push_back(c.pool_grad);
  }
  g.remove_nodes(fused);
}

}  // namespace cpu

void CpuBackend::fuse(Graph& g) const {
  if (env_is("MYELIN_CPU_FUSE", "0")) return;
  fuse_relus(g, [](const Node& producer, double) {
    return producer.op == "conv2d" || producer.op == "inner_product" || producer.op == "batch_norm";
  });
  fuse_relu_grads(g, [&g](const Node& n) { return cpu::pool_grad_takes_relu_grad(n, g); });
  if (!env_is("MYELIN_CPU_BN_POOL", "0")) cpu::fuse_batch_norm_pools(g);
}

}  // namespace myelin
