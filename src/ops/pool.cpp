// Max and average pooling over H and W (NCHW); global pooling is composite.
#include "ops/common.h"

namespace myelin {

namespace {

std::vector<TensorType> infer_pool(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape.rank() == 4, n, in, "input must be [N, C, H, W]");
  PoolParams p(n.attrs);
  expect(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0, n, in,
         "kernel and stride must be positive");
  expect(p.pad_h < p.kernel_h && p.pad_w < p.kernel_w, n, in,
         "padding must be smaller than the kernel");
  int64_t oh = p.out_h(in[0].shape[2]), ow = p.out_w(in[0].shape[3]);
  expect(oh > 0 && ow > 0, n, in, "pooling window larger than the padded input");
  return {{Shape{in[0].shape[0], in[0].shape[1], oh, ow}, in[0].dtype}};
}

std::vector<TensorType> infer_input_shape(const Node& n, const std::vector<TensorType>& in) {
  return {{Shape(n.attrs.ints("input_shape", {})), in[0].dtype}};
}

Attrs with_input_shape(const GradBuilder& g) {
  Attrs a = g.node().attrs;
  a.set("input_shape", g.shape(g.in(0)).dims);
  return a;
}

ExpandFn global_pool(const std::string& op) {
  return [op](Graph& g, const std::string& name, const std::vector<ValueId>& in, const Attrs&) {
    const Shape& x = g.value(in[0]).shape;
    if (x.rank() != 4)
      throw ShapeError("global pooling '" + name + "': input must be [N, C, H, W], got " + x.str());
    Attrs a{{"kernel", std::vector<int64_t>{x[2], x[3]}}, {"stride", int64_t{1}}};
    return g.add(op, name, in, a);
  };
}

// One FLOP per window element for each element of the output (forward) or of dy (gradients): a
// comparison (max) or an add (average). The gradients spread each dy over its window (average) or
// find the window's maximum again to route it (max).
FlopsFn pool_flops(bool output) {
  return [output](const Graph& g, const Node& n) {
    PoolParams p(n.attrs);
    ValueId v = output ? n.outputs[0] : n.inputs[0];
    return elements(g, v) * static_cast<double>(p.kernel_h * p.kernel_w);
  };
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "max_pool2d",
               .infer = infer_pool,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{g.add1("max_pool2d_grad",
                                               {g.grad_out(0), g.in(0), g.out(0)},
                                               with_input_shape(g))};
                   },
               .flops = pool_flops(true),
               .doc = "max pooling: kernel, stride (default kernel), pad, ceil_mode; on CUDA "
                      "with a gradient also -> picks (pass_max_pool_picks)"});
  register_op({.name = "avg_pool2d",
               .infer = infer_pool,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{
                         g.add1("avg_pool2d_grad", {g.grad_out(0)}, with_input_shape(g))};
                   },
               .flops = pool_flops(true),
               .doc = "average pooling: kernel, stride, pad, ceil_mode, count_include_pad"});
  register_op({.name = "max_pool2d_grad",
               .min_inputs = 2,
               .max_inputs = 3,
               .infer = infer_input_shape,
               .flops = pool_flops(false),
               .doc = "(dy, x, y) -> dx; on CUDA also (dy, picks) -> dx (pass_max_pool_picks)"});
  register_op({.name = "avg_pool2d_grad",
               .infer = infer_input_shape,
               .flops = pool_flops(false),
               .doc = "(dy) -> dx"});
  register_op({.name = "global_avg_pool",
               .expand = global_pool("avg_pool2d"),
               .doc = "average over H and W: [N, C, H, W] -> [N, C, 1, 1]"});
  register_op({.name = "global_max_pool",
               .expand = global_pool("max_pool2d"),
               .doc = "maximum over H and W: [N, C, H, W] -> [N, C, 1, 1]"});
}

}  // namespace myelin
