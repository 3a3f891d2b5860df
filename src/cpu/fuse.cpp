// CpuBackend::fuse: a ReLU whose input comes from a convolution, an inner product or a batch
// norm becomes that node's epilogue, the gradient of a ReLU before a 2x2 max pooling part of
// the pooling's gradient (ops/fuse.h), and a batch norm + ReLU + 2x2 max pooling one node, with
// its gradient (fuse_batch_norm_pools below), with a thin convolution in front of that
// (fuse_stem_convolutions); the gradient of a ReLU into the add of the two gradients it reads
// (fuse_add_relu_grads, ops/fuse.h), and the sum that the fused pooling's gradient reads into it
// (fuse_pool_grad_sums); a 24-channel input that convolutions convert to nChw16c converted once
// (share_wide_inputs, fuse_x16.cpp). MYELIN_CPU_FUSE=0 turns all of it off, MYELIN_CPU_BN_POOL=0
// the batch norm + pooling ones, MYELIN_CPU_STEM=0 the convolution's.
#include <vector>

#include "core/env.h"
#include "cpu/blocked.h"
#include "cpu/bn_pool.h"
#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "cpu/pool_geometry.h"
#include "ops/fuse.h"
#include "ops/params.h"

namespace myelin {

namespace cpu {

namespace {

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

namespace {

constexpr int64_t kMaxStemTaps = 32;  // input channels x kernel area of a fusable convolution

// The chain's convolution, if it may be fused into it: a convolution without bias, ReLU or groups,
// of few taps, on a graph input (the kernels read the image as NCHW, which an activation need not
// be), whose output only the batch norm and its gradient read, and whose input gradient nobody
// asks for (the gradient of the batch norm read by the weight gradient alone).
bool fusable_stem(const Graph& g, const std::vector<std::vector<int>>& readers, int bn, int grad,
                  int& conv, int& weight_grad) {
  const ValueId x = g.nodes()[bn].inputs[0];
  conv = g.value(x).producer;
  if (conv < 0 || g.is_kept(x)) return false;
  const Node& c = g.nodes()[conv];
  if (c.op != "conv2d" || c.inputs.size() != 2 || c.attrs.has("post") || c.outputs[0] != x ||
      c.attrs.i("groups", 1) != 1 || g.value(c.inputs[0]).kind == ValueKind::activation ||
      g.value(c.inputs[0]).dtype != DType::f32)
    return false;
  const Shape& w = g.value(c.inputs[1]).shape;
  if (w.rank() != 4 || w[1] * w[2] * w[3] > kMaxStemTaps) return false;
  for (int r : readers[x])
    if (r != bn && r != grad) return false;
  if (grad < 0) return true;
  const ValueId dx = g.nodes()[grad].outputs[0];
  if (g.is_kept(dx) || readers[dx].size() != 1) return false;
  weight_grad = readers[dx][0];
  const Node& wg = g.nodes()[weight_grad];
  return wg.op == "conv2d_grad_weight" && wg.inputs.size() == 2 && wg.inputs[0] == dx &&
         wg.inputs[1] == c.inputs[0];
}

// The convolution's geometry onto a fused node.
void copy_conv_attrs(const Node& conv, Node& to) {
  to.attrs.set("conv", std::string("stem"));
  for (const char* k : {"stride", "pad", "dilation"})
    if (conv.attrs.has(k)) to.attrs.set(k, conv.attrs.items().at(k));
}

}  // namespace

// A thin convolution in front of a fused batch norm + ReLU + pooling (a ResNet's stem) becomes
// part of it: the batch norm reads the image and the weights and computes the convolution's
// output where it needs it (bn_pool.cpp), so that output, 128x24x28x28 floats in the small
// ResNet, is neither stored nor read back; the gradient writes the convolution's weight gradient
// in place of dx, which goes too. The forward passes the image's statistics (the columns' mean and
// covariance, which the weight gradient needs) to the gradient as "stem_stats", so that it does
// not compute them again from the image (MYELIN_CPU_STEM_STATS=0: it does). Run after
// fuse_batch_norm_pools.
void fuse_stem_convolutions(Graph& g) {
  const bool pass_stats = !env_is("MYELIN_CPU_STEM_STATS", "0"),
             pass_picks = !env_is("MYELIN_CPU_STEM_PICKS", "0");
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the convolutions and weight gradients now done by batch norms
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& bn = g.nodes()[i];
    if (bn.op != "batch_norm" || bn.attrs.s("pool", "") != "max2" || bn.attrs.has("conv")) continue;
    int grad = -1, conv = -1, weight_grad = -1;
    for (int r : readers[bn.inputs[0]]) {
      const Node& n = g.nodes()[r];
      if (n.op == "batch_norm_grad" && n.attrs.s("pool", "") == "max2" &&
          n.inputs[1] == bn.inputs[0])
        grad = r;
    }
    if (!fusable_stem(g, readers, static_cast<int>(i), grad, conv, weight_grad)) continue;
    const Node c = g.nodes()[conv];
    Node& b = g.node(static_cast<int>(i));
    b.inputs[0] = c.inputs[0];
    b.inputs.push_back(c.inputs[1]);
    copy_conv_attrs(c, b);
    fused.push_back(conv);
    if (grad < 0) continue;
    Node& bg = g.node(grad);
    bg.inputs[1] = c.inputs[0];
    bg.inputs.push_back(c.inputs[1]);
    bg.outputs[0] = g.nodes()[weight_grad].outputs[0];
    copy_conv_attrs(c, bg);
    fused.push_back(weight_grad);
    const Shape w = g.value(c.inputs[1]).shape;
    if (pass_stats) {
      const ValueId stats =
          g.activation(c.name + ".stem_stats", Shape{stem_stats_floats(w[1] * w[2] * w[3])});
      g.node(static_cast<int>(i)).outputs.push_back(stats);
      g.node(grad).inputs.push_back(stats);
      g.node(grad).attrs.set("stem_stats", int64_t{1});
    }
    // A dense stem (one channel, 3x3, stride 1) passes each window's pick too ("stem_picks": a
    // byte a channel, bn_pool.h), so that the gradient computes neither x nor z again
    // (MYELIN_CPU_STEM_PICKS=0: it does).
    const ConvParams cp(c.attrs);
    if (pass_picks && w[1] == 1 && w[2] == 3 && w[3] == 3 && cp.stride_h == 1 && cp.stride_w == 1 &&
        cp.dil_h == 1 && cp.dil_w == 1) {
      const ValueId picks = g.activation(
          c.name + ".stem_picks", Shape{stem_picks_floats(g.value(g.nodes()[i].outputs[0]).shape)});
      g.node(static_cast<int>(i)).outputs.push_back(picks);
      g.node(static_cast<int>(i)).attrs.set("stem_picks", int64_t{1});
      g.node(grad).inputs.push_back(picks);
      g.node(grad).attrs.set("stem_picks", int64_t{1});
    }
  }
  g.remove_nodes(fused);
}

// A fused batch norm + pooling gradient whose dp is a sum (the pooling's output read by a
// residual block's first convolution and its shortcut) adds the two itself, per tile in cache:
// "dp_sum" = 1, the second addend as the last input. Run after fuse_stem_convolutions.
void fuse_pool_grad_sums(Graph& g) {
  const std::vector<std::vector<int>> readers = readers_of(g);
  std::vector<int> fused;  // the adds now done by batch norm gradients
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& b = g.nodes()[i];
    if (b.op != "batch_norm_grad" || b.attrs.s("pool", "") != "max2" || b.attrs.has("dp_sum"))
      continue;
    const int p = plain_sum_producer(g, readers, b.inputs[0]);
    if (p < 0) continue;
    const std::vector<ValueId> addends = g.nodes()[p].inputs;
    Node& grad = g.node(static_cast<int>(i));
    grad.inputs[0] = addends[0];
    grad.inputs.push_back(addends[1]);
    grad.attrs.set("dp_sum", int64_t{1});
    fused.push_back(p);
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
  if (!env_is("MYELIN_CPU_BN_RELU_GRAD", "0")) fuse_batch_norm_relu_grads(g);
  if (!env_is("MYELIN_CPU_RESIDUAL", "0")) {
    // add(batch_norm(x), r) becomes one batch norm; the ReLU after the sum then fuses into it.
    fuse_residual_adds(g);
    fuse_relus(g, [](const Node& producer, double) { return producer.op == "batch_norm"; });
  }
  if (!env_is("MYELIN_CPU_ADD_RELU_GRAD", "0")) fuse_add_relu_grads(g);
  cpu::share_wide_inputs(g);
  if (env_is("MYELIN_CPU_BN_POOL", "0")) return;
  cpu::fuse_batch_norm_pools(g);
  if (!env_is("MYELIN_CPU_STEM", "0")) cpu::fuse_stem_convolutions(g);
  if (!env_is("MYELIN_CPU_DP_SUM", "0")) cpu::fuse_pool_grad_sums(g);
}

}  // namespace myelin
