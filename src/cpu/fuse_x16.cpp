// share_wide_inputs (CpuBackend::fuse): a 24-channel value (nChw8c, blocked.h) that a 3x3
// convolution to a multiple of 16 channels converts to nChw16c (conv.cpp: conv_geometry) is
// converted once, by that convolution's forward, into a value of its own ("x16_out": the
// forward's second output, stored nChw16c by CpuBackend::choose_storage), which its weight
// gradient and the other convolutions on the same input (a residual block's 1x1 projection, its
// weight gradient) read instead. In the small ResNet that saves res2_conv1's second conversion
// (its weight gradient's) and runs res2_proj on oneDNN's AVX-512 1x1 kernel without converting
// its output and gradients between 8- and 16-channel blocks. Not where our stride-2 kernel takes
// the convolution (it reads nChw8c). MYELIN_CPU_SHARE_X16=0 turns it off.
#include "core/env.h"
#include "cpu/blocked.h"
#include "cpu/conv_direct_s2.h"
#include "cpu/conv_gemm.h"
#include "cpu/cpu_backend.h"

namespace myelin::cpu {

namespace {

// A blocked convolution node (pass `pass`) from x with 8-channel blocks to a multiple of 16.
bool widens(const Node& n, const Graph& g, ConvPass pass) {
  if (!conv_takes_blocked(n, g)) return false;
  const ConvShape c = conv_shape(n, g, pass);
  return c.groups == 1 && blocked_layout(c.c) == Layout::nchw8c && c.o % kChannelBlock == 0;
}

}  // namespace

void share_wide_inputs(Graph& g) {
  if (env_is("MYELIN_CPU_SHARE_X16", "0")) return;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& conv = g.nodes()[i];
    if (conv.op != "conv2d" || conv.attrs.has("x16_out") || conv.outputs.size() != 1 ||
        !widens(conv, g, ConvPass::forward))
      continue;
    const ConvShape c = conv_shape(conv, g, ConvPass::forward);
    if (c.kh * c.kw == 1) continue;  // these take x as nChw8c (conv_geometry)
    // Our stride-2 kernels read x as nChw8c in every pass, the projection's forward too
    // (conv_direct_s2.h). In the small ResNet at batch 128, 2 threads, making the copy cost
    // res2_conv1's forward 0.2 ms; res2_proj's forward read it in 0.15 ms, x in 0.12-0.155.
    if (direct_s2_applies(c, ConvPass::forward, 8, kChannelBlock)) continue;
    const ValueId x = conv.inputs[0];
    std::vector<int> readers;  // the nodes after conv that may read the copy instead
    for (size_t r = i + 1; r < g.nodes().size(); ++r) {
      const Node& n = g.nodes()[r];
      const bool fwd = n.op == "conv2d" && n.inputs[0] == x && widens(n, g, ConvPass::forward);
      const bool dw = n.op == "conv2d_grad_weight" && n.inputs.size() > 1 && n.inputs[1] == x &&
                      widens(n, g, ConvPass::grad_weight);
      if (fwd || dw) readers.push_back(static_cast<int>(r));
    }
    if (readers.empty()) continue;
    const ValueId x16 = g.activation(conv.name + ".x16", g.value(x).shape);
    Node& w = g.node(static_cast<int>(i));
    w.outputs.push_back(x16);
    w.attrs.set("x16_out", int64_t{1});
    for (int r : readers) {
      Node& n = g.node(r);
      n.inputs[n.op == "conv2d" ? 0 : 1] = x16;
    }
    g.remove_nodes({});  // sets x16's producer
  }
}

void store_wide_inputs(Graph& g) {
  for (const Node& n : g.nodes())
    if (n.op == "conv2d" && n.outputs.size() > 1 && n.attrs.has("x16_out")) {
      Value& v = g.value(n.outputs[1]);
      if (is_blocked(v.layout)) v.layout = Layout::nchw16c;
    }
}

}  // namespace myelin::cpu
