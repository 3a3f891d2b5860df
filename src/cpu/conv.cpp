// Convolution kernels: conv2d (bias and a fused ReLU in its epilogue), conv2d_grad_input,
// conv2d_grad_weight. Each node gets one of three implementations, chosen by a fixed rule on its
// geometry (conv_impl below, so that runs are reproducible): our im2col + SGEMM (conv_gemm.cpp),
// oneDNN on the plain NCHW/OIHW tensors (its own im2col + GEMM), or oneDNN on the layouts it
// chooses (blocked nChw16c with a direct JIT kernel). The blocked kernels take each activation as
// it is stored (plain, or nChw16c / nChw8c where CpuBackend::choose_storage kept it blocked
// between ops) and reorder only what differs from the primitive's choice. An nChw8c operand is
// given to the primitive as stored, so that oneDNN runs its 8-channel kernels on it (24 channels:
// faster than padding to 16-channel blocks, bench/RESULTS.md). Three shapes run on our own kernels
// instead of oneDNN's blocked ones: 3x3 convolutions between nChw8c activations
// (conv_direct8.h), 3x3 stride-2 ones from nChw8c to nChw16c with the forward of the 1x1
// projection beside them (conv_direct_s2.h), 3x3 stride-1 ones between nChw16c activations of
// up to 48 channels (conv_direct48.h), and the gradients of strided 1x1 convolutions
// (conv_pointwise.h).
#include <algorithm>
#include <cstdio>

#include "cpu/blocked.h"
#include "cpu/conv_direct.h"
#include "cpu/conv_direct48.h"
#include "cpu/conv_direct8.h"
#include "cpu/conv_direct_s2.h"
#include "cpu/conv_gemm.h"
#include "cpu/conv_pointwise.h"
#include "cpu/conv_winograd24.h"
#include "cpu/dnnl_util.h"
#include "cpu/fuse.h"

namespace myelin::cpu {

namespace {

struct ConvGeometry {
  Shape x, w, y;
  memory::dims w_dnnl;  // [G, O/G, C/G, kh, kw] when grouped
  memory::dims strides, dilates, pad_l, pad_r;
  bool has_bias = false;
  memory::desc x_md, y_md;      // x and y (or their gradients) as stored
  bool x8 = false, y8 = false;  // x, y stored nChw8c: the primitive takes them so
};

ConvGeometry conv_geometry(const KernelSpec& s, ConvPass pass) {
  ConvShape c = conv_shape(s, pass);
  ConvGeometry g;
  g.x = Shape{c.n, c.c, c.h, c.w}, g.w = Shape{c.o, c.cg(), c.kh, c.kw};
  g.y = Shape{c.n, c.o, c.oh, c.ow};
  g.has_bias = c.has_bias;
  g.w_dnnl = dnnl_dims(g.w);
  if (c.groups > 1) g.w_dnnl = {c.groups, c.og(), c.cg(), c.kh, c.kw};
  g.strides = {c.sh, c.sw};
  g.dilates = {c.dil_h - 1, c.dil_w - 1};  // oneDNN counts the gaps between taps
  // Symmetric padding: the output size is the floor rule of window_out, which oneDNN applies.
  g.pad_l = {c.ph, c.pw};
  g.pad_r = {c.ph, c.pw};
  auto in = [&](int i, const Shape& sh) { return stored_desc(sh, s.input_layout(i)); };
  auto out = [&](int i, const Shape& sh) { return stored_desc(sh, s.output_layout(i)); };
  if (pass == ConvPass::forward) g.x_md = in(0, g.x), g.y_md = out(0, g.y);
  if (pass == ConvPass::grad_input) g.y_md = in(0, g.y), g.x_md = out(0, g.x);
  if (pass == ConvPass::grad_weight) g.y_md = in(0, g.y), g.x_md = in(1, g.x);
  const int xi = pass == ConvPass::grad_weight ? 1 : 0;
  g.x8 = (pass == ConvPass::grad_input ? s.output_layout(0) : s.input_layout(xi)) == Layout::nchw8c;
  g.y8 = (pass == ConvPass::forward ? s.output_layout(0) : s.input_layout(0)) == Layout::nchw8c;
  // Only where both sides are nChw8c (24 -> 24) do the 8-channel kernels win. From 24 channels
  // to 48 (the small ResNet's 3x3 stride-2 convolution) an nChw8c x made oneDNN run its AVX2
  // kernel and reorder y to nChw16c; converting x to nChw16c instead (padded to 32 channels,
  // reblock in blocked.h) and running the AVX-512 kernel is faster: at 14x14, batch 128, 2
  // threads, forward / backward data / backward weights 0.81 / 0.70 / 0.76 ms -> 0.45 / 0.59 /
  // 0.63 ms (Xeon, AVX-512). Not for 1x1 kernels: the projection beside it lost more to its own
  // conversion of x than it gained.
  if (g.x8 != g.y8 && c.kh * c.kw > 1) g.x8 = g.y8 = false;
  return g;
}

memory::desc conv_desc(const memory::dims& d, bool blocked) {
  return blocked ? any_desc(d) : plain_desc(d);
}

// x and y for the primitive's description: as stored where that is nChw8c, else conv_desc.
memory::desc x_desc(const ConvGeometry& g, bool blocked) {
  return g.x8 ? g.x_md : conv_desc(dnnl_dims(g.x), blocked);
}
memory::desc y_desc(const ConvGeometry& g, bool blocked) {
  return g.y8 ? g.y_md : conv_desc(dnnl_dims(g.y), blocked);
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvGeometry& g, bool blocked,
                                                     dnnl::engine& eng,
                                                     const dnnl::primitive_attr& attr) {
  memory::desc bias = g.has_bias ? plain_desc(memory::dims{g.w[0]}) : memory::desc();
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training,
                                    dnnl::algorithm::convolution_direct, x_desc(g, blocked),
                                    conv_desc(g.w_dnnl, blocked), bias, y_desc(g, blocked),
                                    g.strides, g.dilates, g.pad_l, g.pad_r);
  return {d, attr, eng};
}

// A fused ReLU is a oneDNN eltwise post-op: applied in the convolution's own output loop.
void build_forward(DnnlSequence& seq, const KernelSpec& s, const ConvGeometry& g, bool blocked,
                   dnnl::engine& eng) {
  const PostRelu post(s.node.attrs);
  dnnl::primitive_attr attr = user_scratchpad_attr();
  if (post.on) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, post.slope, 0.0f);
    attr.set_post_ops(ops);
  }
  auto pd = forward_pd(g, blocked, eng, attr);
  DnnlSequence::Slot x;
  if (s.node.attrs.has("x16_out")) {  // x converted once, kept for other readers (fuse_x16.cpp)
    const memory::desc x16_md = stored_desc(g.x, s.output_layout(1));
    const DnnlSequence::Slot user = seq.input(0, g.x_md), copy = seq.output(1, x16_md);
    seq.convert(user, g.x_md, copy, x16_md);
    x = seq.slot_as(copy, x16_md, pd.src_desc());
  } else {
    x = seq.input_as(0, g.x_md, pd.src_desc());
  }
  auto w = seq.input_as(1, plain_desc(g.w_dnnl), pd.weights_desc());
  auto y = seq.output_as(0, g.y_md, pd.dst_desc());
  std::vector<std::pair<int, DnnlSequence::Slot>> args{
      {DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}};
  if (g.has_bias) args.emplace_back(DNNL_ARG_BIAS, seq.input(2, plain_desc(memory::dims{g.w[0]})));
  seq.add(dnnl::convolution_forward(pd), args, pd.scratchpad_desc(), "convolution_forward");
}

void build_grad_input(DnnlSequence& seq, const ConvGeometry& g, bool blocked, dnnl::engine& eng) {
  auto hint = forward_pd(g, blocked, eng, {});
  dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, x_desc(g, blocked),
                                          conv_desc(g.w_dnnl, blocked), y_desc(g, blocked),
                                          g.strides, g.dilates, g.pad_l, g.pad_r);
  dnnl::convolution_backward_data::primitive_desc pd(d, user_scratchpad_attr(), eng, hint);
  auto dy = seq.input_as(0, g.y_md, pd.diff_dst_desc());
  auto w = seq.input_as(1, plain_desc(g.w_dnnl), pd.weights_desc());
  auto dx = seq.output_as(0, g.x_md, pd.diff_src_desc());
  seq.add(dnnl::convolution_backward_data(pd),
          {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}},
          pd.scratchpad_desc(), "convolution_backward_data");
}

void build_grad_weight(DnnlSequence& seq, const ConvGeometry& g, bool blocked, dnnl::engine& eng) {
  auto hint = forward_pd(g, blocked, eng, {});
  dnnl::convolution_backward_weights::desc d(
      dnnl::algorithm::convolution_direct, x_desc(g, blocked), conv_desc(g.w_dnnl, blocked),
      y_desc(g, blocked), g.strides, g.dilates, g.pad_l, g.pad_r);
  dnnl::convolution_backward_weights::primitive_desc pd(d, user_scratchpad_attr(), eng, hint);
  auto dy = seq.input_as(0, g.y_md, pd.diff_dst_desc());
  auto x = seq.input_as(1, g.x_md, pd.src_desc());
  auto dw = seq.output_as(0, plain_desc(g.w_dnnl), pd.diff_weights_desc());
  seq.add(dnnl::convolution_backward_weights(pd),
          {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_WEIGHTS, dw}},
          pd.scratchpad_desc(), "convolution_backward_weights");
}

const char* pass_primitive(ConvPass pass) {
  switch (pass) {
    case ConvPass::forward:
      return "convolution_forward";
    case ConvPass::grad_input:
      return "convolution_backward_data";
    case ConvPass::grad_weight:
      return "convolution_backward_weights";
  }
  return "convolution";
}

DnnlSequence build(const KernelSpec& s, ConvPass pass, bool blocked) {
  ConvGeometry g = conv_geometry(s, pass);
  DnnlSequence seq(cpu_backend(s), s.node);
  dnnl::engine& eng = cpu_backend(s).engine();
  dnnl_call(s.node, pass_primitive(pass), [&] {
    if (pass == ConvPass::forward) build_forward(seq, s, g, blocked, eng);
    if (pass == ConvPass::grad_input) build_grad_input(seq, g, blocked, eng);
    if (pass == ConvPass::grad_weight) build_grad_weight(seq, g, blocked, eng);
  });
  return seq;
}

// A oneDNN convolution primitive on plain or oneDNN-chosen (blocked) layouts.
class DnnlConv : public Kernel {
 public:
  DnnlConv(const KernelSpec& s, ConvPass pass, bool blocked) : seq_(build(s, pass, blocked)) {}

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    seq_.run(in, out, ctx.workspace);
  }
  size_t workspace_bytes() const override { return seq_.workspace_bytes(); }

 private:
  DnnlSequence seq_;
};

enum class ConvImpl { gemm, plain, blocked };

// The implementation of a convolution, a pure function of its geometry (so every process runs
// the same kernels and sums in the same order). oneDNN's blocked direct kernels compute whole
// 16-channel blocks on both sides; where rounding the channels up to blocks would waste half the
// work or more (LeNet's conv2, 20 -> 50 channels, computes as 32 -> 64: 2.05x), and for inputs
// of fewer than 16 channels (first layers), our im2col + SGEMM, which pads nothing, is faster.
// Measured on this machine (AVX-512, 1 thread, fwd+bwd ms): LeNet conv2 at batch 64: gemm 8.4,
// plain 10.3, blocked 12.7; the small ResNet's 48 -> 48 at 7x7, batch 128: blocked 7.6, gemm 13.9;
// its 24 -> 24 (1.78x): blocked 14.2, gemm 15.1; its first 1 -> 24: gemm 3.1, blocked 14.8.
// MYELIN_CPU_LAYOUT=gemm|plain|blocked pins one implementation for every convolution.
ConvImpl conv_impl(const ConvShape& c) {
  std::string forced = layout_override();
  if (forced == "gemm") return ConvImpl::gemm;
  if (forced == "plain") return ConvImpl::plain;
  if (forced == "blocked") return ConvImpl::blocked;
  auto blocks = [](int64_t ch) { return static_cast<double>((ch + 15) / 16 * 16) / ch; };
  bool blocked = c.cg() >= 16 && c.og() >= 16 && blocks(c.cg()) * blocks(c.og()) < 2.0;
  return blocked ? ConvImpl::blocked : ConvImpl::gemm;
}

const char* impl_name(ConvImpl i) {
  return i == ConvImpl::gemm    ? "im2col+sgemm"
         : i == ConvImpl::plain ? "oneDNN plain"
                                : "oneDNN blocked";
}

template <ConvPass pass>
KernelFactory conv_factory() {
  return [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    ConvImpl impl = conv_impl(conv_shape(s, pass));
    if (verbose())
      std::fprintf(stderr, "myelin cpu: %s '%s': %s\n", s.node.op.c_str(), s.node.name.c_str(),
                   impl_name(impl));
    if (impl == ConvImpl::gemm) return make_gemm_conv(s, pass);
    // 3x3 stride-2 convolutions from nChw8c to nChw16c (24 -> 48) and the forward of the 1x1
    // projection beside them: our AVX-512 kernels on x as stored, where oneDNN's would convert x
    // to nChw16c and dx back (conv_direct_s2.h).
    if (impl == ConvImpl::blocked && direct_s2_takes(s, pass)) {
      if (verbose())
        std::fprintf(stderr, "myelin cpu: %s '%s': direct stride-2 AVX-512 (nChw8c)\n",
                     s.node.op.c_str(), s.node.name.c_str());
      return make_direct_s2_conv(s, pass);
    }
    // 3x3 stride-1 convolutions between nChw16c activations of 16 to 48 channels (the small
    // ResNet's 48 -> 48 at 7x7): our AVX-512 kernels (conv_direct48.h).
    if (impl == ConvImpl::blocked && direct48_takes(s, pass)) {
      if (verbose())
        std::fprintf(stderr, "myelin cpu: %s '%s': direct 3x3 AVX-512 (nChw16c)\n",
                     s.node.op.c_str(), s.node.name.c_str());
      return make_direct48_conv(s, pass);
    }
    // 3x3 convolutions between nChw8c activations (24 -> 24): our AVX-512 kernel, where oneDNN
    // would run its AVX2 one (conv_direct8.h). Layouts as for oneDNN's blocked kernels.
    if (impl == ConvImpl::blocked && !s.node.attrs.has("x16_out")) {
      const ConvGeometry g = conv_geometry(s, pass);
      if (direct8_applies(conv_shape(s, pass), g.x8, g.y8)) {
        if (verbose())
          std::fprintf(stderr, "myelin cpu: %s '%s': %s 3x3 AVX-512 (nChw8c)\n", s.node.op.c_str(),
                       s.node.name.c_str(),
                       winograd24_applies(conv_shape(s, pass)) ? "Winograd F(2x2,3x3)" : "direct");
        return make_direct8_conv(s, pass);
      }
      // Strided 1x1 gradients (conv_pointwise.h).
      if (pass != ConvPass::forward &&
          pointwise_applies(conv_shape(s, pass), pass, conv_x_block(s, pass),
                            conv_y_block(s, pass))) {
        if (verbose())
          std::fprintf(stderr, "myelin cpu: %s '%s': strided 1x1 AVX2 (blocked)\n",
                       s.node.op.c_str(), s.node.name.c_str());
        return make_pointwise_conv(s, pass);
      }
    }
    return std::make_unique<DnnlConv>(s, pass, impl == ConvImpl::blocked);
  };
}

}  // namespace

bool conv_takes_blocked(const Node& n, const Graph& g) {
  ConvPass pass = n.op == "conv2d"              ? ConvPass::forward
                  : n.op == "conv2d_grad_input" ? ConvPass::grad_input
                                                : ConvPass::grad_weight;
  return conv_impl(conv_shape(n, g, pass)) == ConvImpl::blocked;
}

// Convolutions on oneDNN's blocked kernels (not our im2col + SGEMM, not oneDNN on plain tensors)
// take each activation operand blocked (nChw16c, nChw8c) or NCHW and reorder what is not the
// primitive's choice.
MYELIN_REGISTER_OPS {
  register_kernel("conv2d", DeviceKind::cpu, conv_factory<ConvPass::forward>(),
                  {.layout = takes_each({0}, {0, 1}, conv_takes_blocked)});
  register_kernel("conv2d_grad_input", DeviceKind::cpu, conv_factory<ConvPass::grad_input>(),
                  {.layout = takes_each({0}, {0}, conv_takes_blocked)});
  register_kernel("conv2d_grad_weight", DeviceKind::cpu, conv_factory<ConvPass::grad_weight>(),
                  {.layout = takes_each({0, 1}, {}, conv_takes_blocked)});
}

}  // namespace myelin::cpu
