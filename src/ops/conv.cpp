// 2-D convolution (NCHW, weights [O, C/groups, kh, kw]) and its two gradients. Transposed
// convolution is composite: its forward is the data gradient of a convolution.
#include "ops/common.h"

namespace myelin {

namespace {

Shape conv_out_shape(const Node& n, const std::vector<TensorType>& in, const Shape& x,
                     const Shape& w) {
  ConvParams p(n.attrs);
  expect(x.rank() == 4, n, in, "input must be [N, C, H, W]");
  expect(w.rank() == 4, n, in, "weights must be [O, C/groups, kh, kw]");
  expect(p.groups >= 1 && x[1] % p.groups == 0 && w[0] % p.groups == 0, n, in,
         "groups must divide input and output channels");
  expect(w[1] * p.groups == x[1], n, in,
         "weights expect " + std::to_string(w[1] * p.groups) + " input channels, input has " +
             std::to_string(x[1]));
  int64_t oh = window_out(x[2], w[2], p.stride_h, p.pad_h, p.dil_h);
  int64_t ow = window_out(x[3], w[3], p.stride_w, p.pad_w, p.dil_w);
  expect(oh > 0 && ow > 0, n, in, "kernel larger than the padded input");
  return Shape{x[0], w[0], oh, ow};
}

std::vector<TensorType> infer_conv(const Node& n, const std::vector<TensorType>& in) {
  Shape out = conv_out_shape(n, in, in[0].shape, in[1].shape);
  if (in.size() == 3) expect(in[2].shape == Shape{in[1].shape[0]}, n, in, "bias must be [O]");
  return {{out, in[0].dtype}};
}

// conv2d_grad_input(dy, w) -> dx of attrs.input_shape
std::vector<TensorType> infer_grad_input(const Node& n, const std::vector<TensorType>& in) {
  Shape x(n.attrs.ints("input_shape", {}));
  expect(conv_out_shape(n, in, x, in[1].shape) == in[0].shape, n, in,
         "dy does not match a convolution of input " + x.str());
  return {{x, in[0].dtype}};
}

// conv2d_grad_weight(dy, x) -> dw of attrs.weight_shape
std::vector<TensorType> infer_grad_weight(const Node& n, const std::vector<TensorType>& in) {
  Shape w(n.attrs.ints("weight_shape", {}));
  expect(conv_out_shape(n, in, in[1].shape, w) == in[0].shape, n, in,
         "dy does not match a convolution with weights " + w.str());
  return {{w, in[0].dtype}};
}

Attrs with(Attrs a, const std::string& key, const Shape& s) {
  a.set(key, s.dims);
  return a;
}

std::vector<ValueId> grad_conv(GradBuilder& g) {
  Attrs a = g.node().attrs;  // a copy: adding nodes below may reallocate the node vector
  ValueId dy = g.grad_out(0), x = g.in(0), w = g.in(1);
  std::vector<ValueId> r(g.node().inputs.size(), kNoValue);
  if (g.needs_grad(0))
    r[0] = g.add1("conv2d_grad_input", {dy, w}, with(a, "input_shape", g.shape(x)));
  if (g.needs_grad(1))
    r[1] = g.add1("conv2d_grad_weight", {dy, x}, with(a, "weight_shape", g.shape(w)));
  if (r.size() == 3 && g.needs_grad(2)) r[2] = g.add1("bias_grad", {dy});
  return r;
}

// dx = conv2d_grad_input(dy, w) is linear in dy and w: its gradients are a convolution and a
// weight gradient with the roles of dy and x exchanged.
std::vector<ValueId> grad_conv_grad_input(GradBuilder& g) {
  Attrs a = g.node().attrs;
  ValueId gx = g.grad_out(0), dy = g.in(0), w = g.in(1);
  ValueId ddy = g.needs_grad(0) ? g.add1("conv2d", {gx, w}, a) : kNoValue;
  ValueId dw = g.needs_grad(1)
                   ? g.add1("conv2d_grad_weight", {dy, gx}, with(a, "weight_shape", g.shape(w)))
                   : kNoValue;
  return {ddy, dw};
}

// conv_transpose2d(x[N, C, H, W], w[C, O/groups, kh, kw], b[O]?), attrs as conv2d plus
// output_padding.
std::vector<ValueId> expand_conv_transpose(Graph& g, const std::string& name,
                                           const std::vector<ValueId>& in, const Attrs& attrs) {
  ConvParams p(attrs);
  auto op = attrs.pair("output_padding", 0);
  const Shape& x = g.value(in[0]).shape;
  const Shape& w = g.value(in[1]).shape;
  if (x.rank() != 4 || w.rank() != 4 || x[1] != w[0])
    throw ShapeError("conv_transpose2d '" + name + "': input " + x.str() + " and weights " +
                     w.str() + " must be [N, C, H, W] and [C, O/groups, kh, kw]");
  int64_t oh = (x[2] - 1) * p.stride_h - 2 * p.pad_h + p.dil_h * (w[2] - 1) + 1 + op[0];
  int64_t ow = (x[3] - 1) * p.stride_w - 2 * p.pad_w + p.dil_w * (w[3] - 1) + 1 + op[1];
  Attrs a = attrs;
  a.set("input_shape", std::vector<int64_t>{x[0], w[1] * p.groups, oh, ow});
  ValueId y = g.add1("conv2d_grad_input", name, {in[0], in[1]}, a);
  if (in.size() == 3) y = g.add1("bias_add", name, {y, in[2]});
  return {y};
}

// 2 FLOPs (a multiply-add) per weight tap reaching each element of the convolution's output side
// y (dy for the gradients): C/groups * kh * kw taps, from the weights' (or their gradient's) shape.
double conv_flops(const Graph& g, ValueId y, ValueId w) {
  const Shape& k = g.value(w).shape;
  return 2.0 * elements(g, y) * static_cast<double>(k[1] * k[2] * k[3]);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "conv2d",
               .min_inputs = 2,
               .max_inputs = 3,
               .infer = infer_conv,
               .grad = grad_conv,
               // The bias adds 1 per output element.
               .flops =
                   [](const Graph& g, const Node& n) {
                     double bias = n.inputs.size() > 2 ? elements(g, n.outputs[0]) : 0;
                     return conv_flops(g, n.outputs[0], n.inputs[1]) + bias;
                   },
               .doc = "2-D convolution: x[N,C,H,W], w[O,C/groups,kh,kw], b[O]?; stride, pad, "
                      "dilation, groups"});
  register_op({.name = "conv2d_grad_input",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_grad_input,
               .grad = grad_conv_grad_input,
               .flops = [](const Graph& g,
                           const Node& n) { return conv_flops(g, n.inputs[0], n.inputs[1]); },
               .doc = "data gradient of conv2d: (dy, w) -> dx"});
  register_op({.name = "conv2d_grad_weight",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_grad_weight,
               .flops = [](const Graph& g,
                           const Node& n) { return conv_flops(g, n.inputs[0], n.outputs[0]); },
               .doc = "weight gradient of conv2d: (dy, x) -> dw"});
  register_op({.name = "conv_transpose2d",
               .min_inputs = 2,
               .max_inputs = 3,
               .expand = expand_conv_transpose,
               .doc = "transposed convolution: x[N,C,H,W], w[C,O/groups,kh,kw], b[O]?"});
}

}  // namespace myelin
