// State carried from one step to the next (a recurrent layer's final hidden state becoming the
// next batch's initial state, for truncated backpropagation through time):
//   copy(x) -> y: a copy, so the step reads the state as it was even after assign changes it;
//   assign(state, value): state = value in place, no outputs; the step's last reader of the
//   state must be the copy.
#include "ops/common.h"

namespace myelin {

MYELIN_REGISTER_OPS {
  register_op({.name = "copy",
               .infer = same_as_first,
               .grad = [](GradBuilder& g) { return std::vector<ValueId>{g.grad_out(0)}; },
               .flops = no_flops,
               .doc = "y = x, in new memory"});
  register_op({.name = "assign",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer =
                   [](const Node& n, const std::vector<TensorType>& in) {
                     expect(in[0].shape == in[1].shape && in[0].dtype == in[1].dtype, n, in,
                            "the state and its new value must have one shape and type");
                     return std::vector<TensorType>{};
                   },
               .flops = no_flops,
               .doc = "state = value, in place"});
}

}  // namespace myelin
