// Matrix products: matmul (with transposes) and inner_product (fully connected layer).
#include "ops/common.h"

namespace myelin {

namespace {

std::vector<TensorType> infer_matmul(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape.rank() == 2 && in[1].shape.rank() == 2, n, in, "operands must be matrices");
  bool ta = n.attrs.i("trans_a", 0), tb = n.attrs.i("trans_b", 0);
  int64_t m = in[0].shape[ta ? 1 : 0], ka = in[0].shape[ta ? 0 : 1];
  int64_t kb = in[1].shape[tb ? 1 : 0], nn = in[1].shape[tb ? 0 : 1];
  expect(ka == kb, n, in,
         "inner dimensions differ (" + std::to_string(ka) + " vs " + std::to_string(kb) + ")");
  return {{Shape{m, nn}, in[0].dtype}};
}

Attrs trans(int64_t a, int64_t b) {
  return Attrs{{"trans_a", a}, {"trans_b", b}};
}

// C = op(A) op(B)  =>  dA = dC op(B)^T, dB = op(A)^T dC, transposed back where A or B was.
std::vector<ValueId> grad_matmul(GradBuilder& g) {
  int64_t ta = g.node().attrs.i("trans_a", 0), tb = g.node().attrs.i("trans_b", 0);
  ValueId dc = g.grad_out(0), a = g.in(0), b = g.in(1);
  ValueId da = kNoValue, db = kNoValue;
  if (g.needs_grad(0))
    da = ta ? g.add1("matmul", {b, dc}, trans(tb, 1)) : g.add1("matmul", {dc, b}, trans(0, !tb));
  if (g.needs_grad(1))
    db = tb ? g.add1("matmul", {dc, a}, trans(1, ta)) : g.add1("matmul", {a, dc}, trans(!ta, 0));
  return {da, db};
}

// inner_product(x[N, ...], w[O, K], b[O]?) -> [N, O], K = product of x's dimensions after N.
std::vector<TensorType> infer_ip(const Node& n, const std::vector<TensorType>& in) {
  const Shape& x = in[0].shape;
  expect(x.rank() >= 2, n, in, "input must be [N, ...]");
  expect(in[1].shape.rank() == 2, n, in, "weights must be [O, K]");
  expect(x.numel() / x[0] == in[1].shape[1], n, in,
         "weights expect " + std::to_string(in[1].shape[1]) + " inputs per example, input has " +
             std::to_string(x.numel() / x[0]));
  if (in.size() == 3) expect(in[2].shape == Shape{in[1].shape[0]}, n, in, "bias must be [O]");
  return {{Shape{x[0], in[1].shape[0]}, in[0].dtype}};
}

std::vector<ValueId> grad_ip(GradBuilder& g) {
  ValueId dy = g.grad_out(0), x = g.in(0), w = g.in(1);
  Shape xs = g.shape(x);  // a copy: adding nodes may move the values
  std::vector<ValueId> r(g.node().inputs.size(), kNoValue);
  if (g.needs_grad(0)) {
    ValueId dx = g.add1("matmul", {dy, w});
    r[0] = xs.rank() == 2 ? dx : g.add1("reshape", {dx}, Attrs{{"shape", xs.dims}});
  }
  if (g.needs_grad(1)) {
    ValueId xf = xs.rank() == 2
                     ? x
                     : g.add1("reshape", {x}, Attrs{{"shape", std::vector<int64_t>{xs[0], -1}}});
    r[1] = g.add1("matmul", {dy, xf}, trans(1, 0));
  }
  if (r.size() == 3 && g.needs_grad(2)) r[2] = g.add1("bias_grad", {dy});
  return r;
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "matmul",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_matmul,
               .grad = grad_matmul,
               // k multiply-adds per element of c.
               .flops =
                   [](const Graph& g, const Node& n) {
                     const Shape& a = g.value(n.inputs[0]).shape;
                     int64_t k = n.attrs.i("trans_a", 0) ? a[0] : a[1];
                     return 2.0 * elements(g, n.outputs[0]) * static_cast<double>(k);
                   },
               .doc = "op(a) @ op(b); trans_a, trans_b"});
  register_op({.name = "inner_product",
               .min_inputs = 2,
               .max_inputs = 3,
               .infer = infer_ip,
               .grad = grad_ip,
               // K multiply-adds per output, and the bias add.
               .flops =
                   [](const Graph& g, const Node& n) {
                     double k = static_cast<double>(g.value(n.inputs[1]).shape[1]);
                     double bias = n.inputs.size() > 2 ? 1 : 0;
                     return elements(g, n.outputs[0]) * (2 * k + bias);
                   },
               .doc = "fully connected: x[N,...] w[O,K] b[O]? -> [N,O]"});
}

}  // namespace myelin
