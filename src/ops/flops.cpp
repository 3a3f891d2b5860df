#include "ops/flops.h"

#include "ops/params.h"

namespace myelin {

namespace {

// 2 * output elements * multiply-adds per output, for a convolution given dy/y and weights.
double conv_flops(const Shape& y, const Shape& w) {
  return 2.0 * static_cast<double>(y.numel()) * static_cast<double>(w[1] * w[2] * w[3]);
}

}  // namespace

double node_flops(const Graph& g, const Node& n) {
  auto shape = [&](ValueId v) -> const Shape& { return g.value(v).shape; };
  if (n.op == "conv2d") return conv_flops(shape(n.outputs[0]), shape(n.inputs[1]));
  if (n.op == "conv2d_grad_input") return conv_flops(shape(n.inputs[0]), shape(n.inputs[1]));
  if (n.op == "conv2d_grad_weight") return conv_flops(shape(n.inputs[0]), shape(n.outputs[0]));
  if (n.op == "matmul") {
    const Shape& a = shape(n.inputs[0]);
    const Shape& c = shape(n.outputs[0]);
    int64_t k = n.attrs.i("trans_a", 0) ? a[0] : a[1];
    return 2.0 * static_cast<double>(c.numel()) * static_cast<double>(k);
  }
  if (n.op == "inner_product")
    return 2.0 * static_cast<double>(shape(n.outputs[0]).numel()) *
           static_cast<double>(shape(n.inputs[1])[1]);
  return 0.0;  // elementwise work is counted as memory traffic, not FLOPs
}

}  // namespace myelin
