// Local response normalization across channels (AlexNet's) and batch normalization.
#include "ops/common.h"

namespace myelin {

namespace {

std::vector<TensorType> infer_lrn(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape.rank() == 4, n, in, "input must be [N, C, H, W]");
  LrnParams p(n.attrs);
  expect(p.size >= 1 && p.size % 2 == 1, n, in, "size must be a positive odd number");
  return {in[0]};
}

std::vector<TensorType> infer_lrn_grad(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape == in[1].shape && in[1].shape == in[2].shape, n, in,
         "dy, x and y must have the same shape");
  return {in[0]};
}

// batch_norm(x[N, C, ...], gamma[C], beta[C], running_mean[C], running_var[C] [, r]).
// Training: outputs y, the batch mean and 1/sqrt(var + eps) (saved for backward), and updates
// the running statistics. Inference: y from the running statistics. A sixth input r (like x) is a
// residual add fused in by a backend (ops/fuse.h): y = batch_norm(x) + r, then the fused ReLU when
// attrs post = "relu". The CUDA engine's fuse_shortcut_batch_norms also gives a training node the
// five inputs of the shortcut's batch norm in r's place (and its mean and invstd as the fourth and
// fifth outputs); its shapes are not inferred again.
std::vector<TensorType> infer_bn(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape.rank() >= 2, n, in, "input must be [N, C, ...]");
  Shape c{in[0].shape[1]};
  for (int i = 1; i < 5; ++i)
    expect(in[i].shape == c, n, in, "gamma, beta and statistics must be [C]");
  if (in.size() == 6) expect(in[5].shape == in[0].shape, n, in, "the residual must be shaped as x");
  if (!BatchNormParams(n.attrs).training) return {in[0]};
  return {in[0], {c, DType::f32}, {c, DType::f32}};
}

std::vector<ValueId> expand_bn(Graph& g, const std::string& name, const std::vector<ValueId>& in,
                               const Attrs& attrs) {
  Attrs a = attrs;
  a.set("training", int64_t{g.training() ? 1 : 0});
  return {g.append_primitive("batch_norm", name, in, a).at(0)};
}

// batch_norm_grad(dy, x, gamma, mean, invstd [, beta]) -> dx, dgamma, dbeta. With attrs post =
// "relu_grad" (a ReLU's gradient fused in by a backend, ops/fuse.h) dy is the gradient of
// max(y, 0) and counts only where y = gamma * (x - mean) * invstd + beta > 0: beta is then the
// sixth input.
std::vector<TensorType> infer_bn_grad(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape == in[1].shape, n, in, "dy and x must have the same shape");
  const bool relu_grad = n.attrs.s("post", "") == "relu_grad";
  expect(relu_grad == (in.size() == 6), n, in, "beta is the sixth input exactly with a fused ReLU");
  return {in[0], in[2], in[2]};
}

// batch_norm_sum_grad(a, x, gamma, mean, invstd, b, y) -> dx, dgamma, dbeta, dy: batch_norm_grad
// of dy = y > 0 ? a + b : 0 (a ReLU's gradient of a sum), which it also writes; a backend's fusion
// of add(a, b, y) with post relu_grad and the batch-norm gradient reading it (ops/fuse.h).
std::vector<TensorType> infer_bn_sum_grad(const Node& n, const std::vector<TensorType>& in) {
  for (int k : {1, 5, 6})
    expect(in[k].shape == in[0].shape, n, in, "a, x, b and y must have the same shape");
  return {in[0], in[2], in[2], in[0]};
}

std::vector<ValueId> grad_bn(GradBuilder& g) {
  const Node& n = g.node();
  if (n.outputs.size() < 3)
    throw Error("batch_norm '" + n.name + "': no gradient in inference mode");
  auto r = g.add("batch_norm_grad", {g.grad_out(0), g.in(0), g.in(1), g.out(1), g.out(2)}, n.attrs);
  return {r[0], r[1], r[2], kNoValue, kNoValue};
}

// LRN: per element the window's sum of squares (size), then k + alpha/size * sum, its power and
// the division (3). Its gradient does that again and sums dy * y / scale over the same window:
// twice the forward.
double lrn_flops(const Graph& g, const Node& n) {
  return elements(g, n.outputs[0]) * static_cast<double>(LrnParams(n.attrs).size + 3);
}

// Batch norm applies y = x * scale + shift per element (2); training first takes the batch's
// sum and sum of squares (3 more). Its gradient recomputes x^ = (x - mean) * invstd (2), sums dy
// and dy * x^ (3) and forms dx = k * (dy - mean(dy) - x^ * mean(dy * x^)) (4).
double batch_norm_flops(const Graph& g, const Node& n) {
  bool training = n.outputs.size() == 3;
  return elements(g, n.outputs[0]) * (training ? 5 : 2);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "lrn",
               .infer = infer_lrn,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{
                         g.add1("lrn_grad", {g.grad_out(0), g.in(0), g.out(0)}, g.node().attrs)};
                   },
               .flops = lrn_flops,
               .doc = "local response normalization across channels: size, alpha, beta, k"});
  register_op({.name = "lrn_grad",
               .min_inputs = 3,
               .max_inputs = 3,
               .infer = infer_lrn_grad,
               .flops = [](const Graph& g, const Node& n) { return 2 * lrn_flops(g, n); },
               .doc = "(dy, x, y) -> dx"});
  register_op({.name = "batch_norm",
               .min_inputs = 5,
               .max_inputs = 6,
               .infer = infer_bn,
               .grad = grad_bn,
               .expand = expand_bn,
               .flops = batch_norm_flops,
               .doc = "batch normalization: x, gamma, beta, running mean, running var [, "
                      "residual]; eps, momentum"});
  register_op({.name = "batch_norm_grad",
               .min_inputs = 5,
               .max_inputs = 6,
               .infer = infer_bn_grad,
               .flops = flops_per_input(9),
               .doc = "(dy, x, gamma, mean, invstd [, beta]) -> dx, dgamma, dbeta"});
  register_op({.name = "batch_norm_sum_grad",
               .min_inputs = 7,
               .max_inputs = 7,
               .infer = infer_bn_sum_grad,
               .flops = flops_per_input(11),
               .doc = "(a, x, gamma, mean, invstd, b, y) -> dx, dgamma, dbeta, dy: batch_norm_grad "
                      "of dy = y > 0 ? a + b : 0 (made by the CUDA engine's fusions)"});
}

}  // namespace myelin
