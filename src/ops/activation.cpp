// Pointwise activations. Their gradients are one op, activation_grad(dy, x, y), whose kernels
// use whichever of x and y their formula needs.
#include "ops/common.h"

namespace myelin {

ActParams::ActParams(const Attrs& a) {
  static const std::pair<const char*, ActKind> kinds[] = {
      {"relu", ActKind::relu},       {"leaky_relu", ActKind::leaky_relu},
      {"sigmoid", ActKind::sigmoid}, {"tanh", ActKind::tanh},
      {"elu", ActKind::elu},         {"gelu", ActKind::gelu}};
  std::string k = a.s("kind", "relu");
  kind = ActKind::relu;
  bool found = false;
  for (auto& [name, v] : kinds)
    if (k == name) kind = v, found = true;
  if (!found) throw Error("unknown activation '" + k + "'");
  alpha = a.f("alpha", kind == ActKind::leaky_relu ? 0.01 : 1.0);
}

namespace {

std::vector<TensorType> infer_act(const Node& n, const std::vector<TensorType>& in) {
  expect(is_float(in[0].dtype), n, in, "input must be floating point");
  return {in[0]};
}

std::vector<TensorType> infer_act_grad(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape == in[1].shape && in[1].shape == in[2].shape, n, in,
         "dy, x and y must have the same shape");
  return {in[0]};
}

// Each activation is a composite of the primitive `activation` with its kind fixed.
void register_activation(const std::string& kind, const std::string& doc) {
  register_op({.name = kind,
               .expand =
                   [kind](Graph& g, const std::string& name, const std::vector<ValueId>& in,
                          const Attrs& attrs) {
                     Attrs a = attrs;
                     a.set("kind", kind);
                     return g.append_primitive("activation", name, in, a);
                   },
               .doc = doc});
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "activation",
               .infer = infer_act,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{g.add1("activation_grad",
                                               {g.grad_out(0), g.in(0), g.out(0)}, g.node().attrs)};
                   },
               .doc = "pointwise activation of attrs.kind"});
  register_op({.name = "activation_grad",
               .min_inputs = 3,
               .max_inputs = 3,
               .infer = infer_act_grad,
               .doc = "gradient of an activation: (dy, x, y) -> dx"});
  register_activation("relu", "max(x, 0)");
  register_activation("leaky_relu", "x if x > 0 else alpha * x (alpha 0.01)");
  register_activation("sigmoid", "1 / (1 + exp(-x))");
  register_activation("tanh", "tanh(x)");
  register_activation("elu", "x if x > 0 else alpha * (exp(x) - 1)");
  register_activation("gelu", "x * Phi(x), tanh approximation");
}

}  // namespace myelin
