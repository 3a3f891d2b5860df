// Dropout: identity in inference graphs; in training, a mask drawn from a counter-based hash
// (see params.h), recomputed by the backward kernel rather than stored.
#include "ops/common.h"

namespace myelin {

MYELIN_REGISTER_OPS {
  register_op(
      {.name = "dropout",
       .infer =
           [](const Node& n, const std::vector<TensorType>& in) {
             double r = DropoutParams(n.attrs).ratio;
             expect(r >= 0 && r < 1, n, in, "ratio must be in [0, 1)");
             return std::vector{in[0]};
           },
       .grad =
           [](GradBuilder& g) {
             Attrs a = g.node().attrs;
             a.set("forward_node", int64_t{g.node_index()});
             return std::vector{g.add1("dropout_grad", {g.grad_out(0)}, a)};
           },
       .expand =
           [](Graph& g, const std::string& name, const std::vector<ValueId>& in,
              const Attrs& attrs) {
             if (!g.training()) return std::vector<ValueId>{in[0]};
             Attrs a = attrs;
             a.set("forward_node", int64_t{static_cast<int64_t>(g.nodes().size())});
             return g.append_primitive("dropout", name, in, a);
           },
       .doc = "zeroes each element with probability ratio, scales the rest by 1/(1-ratio)"});
  register_op({.name = "dropout_grad",
               .infer = same_as_first,
               .doc = "dy masked like its forward (attrs.forward_node identifies the mask)"});
}

}  // namespace myelin
