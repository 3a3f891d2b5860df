// Elementwise add and multiply (same shapes), per-channel bias, and fill.
#include "ops/common.h"

namespace myelin {

namespace {

std::vector<TensorType> infer_binary(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape == in[1].shape, n, in, "operands must have the same shape");
  expect(in[0].dtype == in[1].dtype, n, in, "operands must have the same dtype");
  return {in[0]};
}

// bias_add(x[N, C, ...], b[C]): adds b along axis 1.
std::vector<TensorType> infer_bias_add(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape.rank() >= 2, n, in, "input must have at least 2 dimensions (N, C, ...)");
  expect(in[1].shape.rank() == 1 && in[1].shape[0] == in[0].shape[1], n, in,
         "bias must be [C] with C = input dimension 1");
  return {in[0]};
}

// bias_grad(dy[N, C, ...]) -> [C]: sums over every axis but 1.
std::vector<TensorType> infer_bias_grad(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape.rank() >= 2, n, in, "input must have at least 2 dimensions (N, C, ...)");
  return {{Shape{in[0].shape[1]}, in[0].dtype}};
}

std::vector<TensorType> infer_fill(const Node& n, const std::vector<TensorType>&) {
  return {{Shape(n.attrs.ints("shape", {})), dtype_from_name(n.attrs.s("dtype", "f32"))}};
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "add",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_binary,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{g.grad_out(0), g.grad_out(0)};
                   },
               .doc = "a + b, same shapes"});
  register_op(
      {.name = "mul",
       .min_inputs = 2,
       .max_inputs = 2,
       .infer = infer_binary,
       .grad =
           [](GradBuilder& g) {
             ValueId da = g.needs_grad(0) ? g.add1("mul", {g.grad_out(0), g.in(1)}) : kNoValue;
             ValueId db = g.needs_grad(1) ? g.add1("mul", {g.grad_out(0), g.in(0)}) : kNoValue;
             return std::vector{da, db};
           },
       .doc = "a * b elementwise, same shapes"});
  register_op({.name = "bias_add",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_bias_add,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{g.grad_out(0), g.add1("bias_grad", {g.grad_out(0)})};
                   },
               .doc = "x + b broadcast along axis 1"});
  register_op({.name = "bias_grad",
               .infer = infer_bias_grad,
               .flops = flops_per_input(1),  // an add per element of dy
               .doc = "sum of dy over every axis but 1"});
  register_op({.name = "fill",
               .min_inputs = 0,
               .max_inputs = 0,
               .infer = infer_fill,
               .flops = no_flops,
               .doc = "a tensor of attrs.shape filled with attrs.value"});
}

}  // namespace myelin
