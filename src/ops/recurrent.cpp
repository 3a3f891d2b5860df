// Recurrent layers: one layer in one direction over a batch-first sequence, as one op whose
// kernels are the vendors' (oneDNN's RNN primitives, cuDNN's RNN API). Stacked and bidirectional
// networks are several of them (model/layer_build.cpp), so every layer's weights keep PyTorch's
// names and layout.
//
// rnn(x[N, T, I], w_ih[G*H, I], w_hh[G*H, H], b_ih[G*H], b_hh[G*H], h0[N, H]?, c0[N, H]?)
//   -> y[N, T, H], h_n[N, H], c_n[N, H] (LSTM)
// with G gates (LSTM 4, GRU 3, RNN 1) in PyTorch's order. Missing initial states are zero: the
// composite fills them, so the primitive always has its 5 + S inputs (S = 2 for LSTM, else 1).
//
// rnn_grad(the forward's inputs, its outputs, dy, dh_n, dc_n?) -> dx, dw_ih, dw_hh, db_ih, db_hh,
// dh0, dc0?. The forward of a training graph leaves its gates in memory its gradient's kernel
// finds again (attrs.forward_node names the pair).
#include "ops/common.h"

namespace myelin {

namespace {

std::vector<TensorType> infer_rnn(const Node& n, const std::vector<TensorType>& in) {
  RnnParams p(n.attrs);
  const Shape& x = in[0].shape;
  int64_t gh = p.gates() * p.hidden;
  expect(p.hidden >= 1, n, in, "hidden must be at least 1");
  expect(x.rank() == 3 && x[0] >= 1 && x[1] >= 1, n, in,
         "input must be [N, T, features], batch first, with at least one step");
  expect(static_cast<int>(in.size()) == 5 + p.states(), n, in,
         "needs x, w_ih, w_hh, b_ih, b_hh and " + std::to_string(p.states()) + " initial states");
  expect(in[1].shape == Shape{gh, x[2]}, n, in,
         "w_ih must be [" + std::to_string(gh) + ", " + std::to_string(x[2]) + "]");
  expect(in[2].shape == Shape{gh, p.hidden}, n, in,
         "w_hh must be [" + std::to_string(gh) + ", " + std::to_string(p.hidden) + "]");
  expect(in[3].shape == Shape{gh} && in[4].shape == Shape{gh}, n, in,
         "b_ih and b_hh must be [" + std::to_string(gh) + "]");
  Shape state{x[0], p.hidden};
  for (int s = 0; s < p.states(); ++s)
    expect(in[5 + s].shape == state, n, in, "initial states must be " + state.str());
  std::vector<TensorType> out{{Shape{x[0], x[1], p.hidden}, in[0].dtype}};
  for (int s = 0; s < p.states(); ++s) out.push_back({state, in[0].dtype});
  return out;
}

std::vector<ValueId> expand_rnn(Graph& g, const std::string& name, const std::vector<ValueId>& in,
                                const Attrs& attrs) {
  RnnParams p(attrs);
  std::vector<ValueId> inputs = in;
  if (inputs.size() >= 1 && g.value(inputs[0]).shape.rank() == 3) {
    Dims state{g.value(inputs[0]).shape[0], p.hidden};
    while (inputs.size() >= 5 && static_cast<int>(inputs.size()) < 5 + p.states())
      inputs.push_back(
          g.append_primitive("fill", name, {}, Attrs{{"shape", state}, {"value", 0.0}}).at(0));
  }
  Attrs a = attrs;
  a.set("training", int64_t{g.training() ? 1 : 0});
  a.set("forward_node", static_cast<int64_t>(g.nodes().size()));
  return g.append_primitive("rnn", name, inputs, a);
}

std::vector<ValueId> grad_rnn(GradBuilder& g) {
  const Node n = g.node();  // a copy: adding nodes may move the node vector
  RnnParams p(n.attrs);
  if (!p.training) throw Error("rnn '" + n.name + "': no gradient in inference mode");
  std::vector<ValueId> in = n.inputs;
  in.insert(in.end(), n.outputs.begin(), n.outputs.end());
  for (size_t k = 0; k < n.outputs.size(); ++k) {
    ValueId d = g.grad_out(static_cast<int>(k));
    if (d == kNoValue)  // an output nothing reads: its gradient is zero
      d = g.add1("fill", {}, Attrs{{"shape", g.shape(n.outputs[k]).dims}, {"value", 0.0}});
    in.push_back(d);
  }
  return g.add("rnn_grad", in, n.attrs);
}

std::vector<TensorType> infer_rnn_grad(const Node& n, const std::vector<TensorType>& in) {
  int s = RnnParams(n.attrs).states();
  expect(static_cast<int>(in.size()) == 7 + 3 * s, n, in,
         "needs the forward's inputs and outputs and the outputs' gradients");
  for (int k = 0; k <= s; ++k)
    expect(in[6 + 2 * s + k].shape == in[5 + s + k].shape, n, in,
           "each output's gradient must have its output's shape");
  return {in.begin(), in.begin() + 5 + s};
}

// Per step and example: the gates' products with the input and the hidden state (a multiply-add
// counts 2), and the cell's elementwise work (LSTM about 20 per unit: three sigmoids, two tanh,
// the products and sums; GRU about 15; RNN its activation).
double rnn_flops(const Graph& g, const Node& n) {
  RnnParams p(n.attrs);
  const Shape& x = g.value(n.inputs[0]).shape;
  const double steps = static_cast<double>(x[0] * x[1]), h = static_cast<double>(p.hidden);
  const double cell = p.cell == RnnCell::lstm ? 20 : p.cell == RnnCell::gru ? 15 : 2;
  return steps * (2.0 * p.gates() * h * static_cast<double>(x[2] + p.hidden) + cell * h);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "rnn",
               .min_inputs = 5,
               .max_inputs = 7,
               .infer = infer_rnn,
               .grad = grad_rnn,
               .expand = expand_rnn,
               .flops = rnn_flops,
               .doc = "one recurrent layer (mode lstm|gru|rnn_tanh|rnn_relu, hidden, reverse): "
                      "x[N,T,I] w_ih w_hh b_ih b_hh h0? c0? -> y[N,T,H] h_n c_n?"});
  register_op({.name = "rnn_grad",
               .min_inputs = 10,
               .max_inputs = 13,
               .infer = infer_rnn_grad,
               // The data and weight gradients: twice the forward's products, and the cell's.
               .flops = [](const Graph& g, const Node& n) { return 2.0 * rnn_flops(g, n); },
               .doc = "(rnn inputs, outputs, output gradients) -> input gradients"});
}

}  // namespace myelin
