// Convolution kernels on oneDNN: conv2d (bias fused), conv2d_grad_input, conv2d_grad_weight.
// Each kernel prepares the primitive twice, once on the plain NCHW/OIHW tensors (oneDNN then
// picks its im2col+GEMM implementation) and once letting oneDNN choose its layouts (usually
// blocked nChw16c with a direct JIT kernel, bracketed by reorders), times both on the node's
// shapes, and keeps the faster: neither wins everywhere (LeNet's conv1 weight gradient is ten
// times faster blocked, its conv2 passes are faster plain).
#include <algorithm>
#include <cstdio>

#include "cpu/dnnl_util.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

enum class ConvPass { forward, grad_input, grad_weight };

struct ConvGeometry {
  Shape x, w, y;
  memory::dims w_dnnl;  // [G, O/G, C/G, kh, kw] when grouped
  memory::dims strides, dilates, pad_l, pad_r;
  bool has_bias = false;
};

ConvGeometry conv_geometry(const KernelSpec& s, ConvPass pass) {
  ConvParams p(s.node.attrs);
  ConvGeometry g;
  switch (pass) {
    case ConvPass::forward:
      g.x = s.input(0).shape, g.w = s.input(1).shape, g.y = s.output(0).shape;
      g.has_bias = s.node.inputs.size() == 3;
      break;
    case ConvPass::grad_input:
      g.y = s.input(0).shape, g.w = s.input(1).shape, g.x = s.output(0).shape;
      break;
    case ConvPass::grad_weight:
      g.y = s.input(0).shape, g.x = s.input(1).shape, g.w = s.output(0).shape;
      break;
  }
  g.w_dnnl = dnnl_dims(g.w);
  if (p.groups > 1) g.w_dnnl = {p.groups, g.w[0] / p.groups, g.w[1], g.w[2], g.w[3]};
  g.strides = {p.stride_h, p.stride_w};
  g.dilates = {p.dil_h - 1, p.dil_w - 1};  // oneDNN counts the gaps between taps
  // Symmetric padding: the output size is the floor rule of window_out, which oneDNN applies.
  g.pad_l = {p.pad_h, p.pad_w};
  g.pad_r = {p.pad_h, p.pad_w};
  return g;
}

memory::desc conv_desc(const memory::dims& d, bool blocked) {
  return blocked ? any_desc(d) : plain_desc(d);
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvGeometry& g, bool blocked,
                                                     dnnl::engine& eng,
                                                     const dnnl::primitive_attr& attr) {
  memory::desc bias = g.has_bias ? plain_desc(memory::dims{g.w[0]}) : memory::desc();
  dnnl::convolution_forward::desc d(
      dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      conv_desc(dnnl_dims(g.x), blocked), conv_desc(g.w_dnnl, blocked), bias,
      conv_desc(dnnl_dims(g.y), blocked), g.strides, g.dilates, g.pad_l, g.pad_r);
  return {d, attr, eng};
}

void build_forward(DnnlSequence& seq, const ConvGeometry& g, bool blocked, dnnl::engine& eng) {
  auto pd = forward_pd(g, blocked, eng, user_scratchpad_attr());
  auto x = seq.input_as(0, plain_desc(g.x), pd.src_desc());
  auto w = seq.input_as(1, plain_desc(g.w_dnnl), pd.weights_desc());
  auto y = seq.output_as(0, plain_desc(g.y), pd.dst_desc());
  std::vector<std::pair<int, DnnlSequence::Slot>> args{
      {DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}};
  if (g.has_bias) args.emplace_back(DNNL_ARG_BIAS, seq.input(2, plain_desc(memory::dims{g.w[0]})));
  seq.add(dnnl::convolution_forward(pd), args, pd.scratchpad_desc(), "convolution_forward");
}

void build_grad_input(DnnlSequence& seq, const ConvGeometry& g, bool blocked, dnnl::engine& eng) {
  auto hint = forward_pd(g, blocked, eng, {});
  dnnl::convolution_backward_data::desc d(
      dnnl::algorithm::convolution_direct, conv_desc(dnnl_dims(g.x), blocked),
      conv_desc(g.w_dnnl, blocked), conv_desc(dnnl_dims(g.y), blocked), g.strides, g.dilates,
      g.pad_l, g.pad_r);
  dnnl::convolution_backward_data::primitive_desc pd(d, user_scratchpad_attr(), eng, hint);
  auto dy = seq.input_as(0, plain_desc(g.y), pd.diff_dst_desc());
  auto w = seq.input_as(1, plain_desc(g.w_dnnl), pd.weights_desc());
  auto dx = seq.output_as(0, plain_desc(g.x), pd.diff_src_desc());
  seq.add(dnnl::convolution_backward_data(pd),
          {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}},
          pd.scratchpad_desc(), "convolution_backward_data");
}

void build_grad_weight(DnnlSequence& seq, const ConvGeometry& g, bool blocked, dnnl::engine& eng) {
  auto hint = forward_pd(g, blocked, eng, {});
  dnnl::convolution_backward_weights::desc d(
      dnnl::algorithm::convolution_direct, conv_desc(dnnl_dims(g.x), blocked),
      conv_desc(g.w_dnnl, blocked), conv_desc(dnnl_dims(g.y), blocked), g.strides, g.dilates,
      g.pad_l, g.pad_r);
  dnnl::convolution_backward_weights::primitive_desc pd(d, user_scratchpad_attr(), eng, hint);
  auto dy = seq.input_as(0, plain_desc(g.y), pd.diff_dst_desc());
  auto x = seq.input_as(1, plain_desc(g.x), pd.src_desc());
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
    if (pass == ConvPass::forward) build_forward(seq, g, blocked, eng);
    if (pass == ConvPass::grad_input) build_grad_input(seq, g, blocked, eng);
    if (pass == ConvPass::grad_weight) build_grad_weight(seq, g, blocked, eng);
  });
  return seq;
}

std::vector<Shape> shapes(const KernelSpec& s, const std::vector<ValueId>& ids) {
  std::vector<Shape> r;
  for (ValueId v : ids) r.push_back(s.graph.value(v).shape);
  return r;
}

class ConvKernel : public Kernel {
 public:
  ConvKernel(const KernelSpec& s, ConvPass pass) : seq_(choose(s, pass)) {}

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    seq_.run(in, out, ctx.workspace);
  }
  size_t workspace_bytes() const override { return seq_.workspace_bytes(); }

 private:
  // The faster of the plain and the oneDNN-chosen layouts, timed on this node's shapes.
  static DnnlSequence choose(const KernelSpec& s, ConvPass pass) {
    bool blocked = false;
    if (forced_layout(blocked)) return build(s, pass, blocked);
    DnnlSequence plain = build(s, pass, false);
    DnnlSequence chosen = build(s, pass, true);
    if (chosen.reorder_count() == 0) return chosen;  // oneDNN picked the plain layouts itself
    TrialTensors t(shapes(s, s.node.inputs), shapes(s, s.node.outputs),
                   std::max(plain.workspace_bytes(), chosen.workspace_bytes()));
    plain.min_ms(t, 1), chosen.min_ms(t, 1);  // warm-up: first touch, caches
    double t_plain = plain.min_ms(t, 1), t_chosen = chosen.min_ms(t, 1);
    // Alternate so that a burst of load elsewhere hits both; big convolutions time once.
    for (int round = 0; round < 3 && std::max(t_plain, t_chosen) < 20; ++round) {
      t_plain = std::min(t_plain, plain.min_ms(t, 1));
      t_chosen = std::min(t_chosen, chosen.min_ms(t, 1));
    }
    bool keep_chosen = t_chosen < t_plain;
    if (verbose())
      std::fprintf(stderr, "myelin cpu: %s '%s': plain %.3f ms, blocked %.3f ms -> %s\n",
                   s.node.op.c_str(), s.node.name.c_str(), t_plain, t_chosen,
                   keep_chosen ? "blocked" : "plain");
    return keep_chosen ? std::move(chosen) : std::move(plain);
  }

  DnnlSequence seq_;
};

template <ConvPass pass>
KernelFactory conv_factory() {
  return [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<ConvKernel>(s, pass);
  };
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("conv2d", DeviceKind::cpu, conv_factory<ConvPass::forward>());
  register_kernel("conv2d_grad_input", DeviceKind::cpu, conv_factory<ConvPass::grad_input>());
  register_kernel("conv2d_grad_weight", DeviceKind::cpu, conv_factory<ConvPass::grad_weight>());
}

}  // namespace myelin::cpu
