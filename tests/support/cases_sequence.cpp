// Op cases for sequence models: the recurrent layer (rnn: LSTM, GRU, tanh and ReLU RNN, both
// directions), with a float64 reference written from PyTorch's equations and gate order, and the
// embedding lookup.
#include <cmath>

#include "ops/params.h"
#include "support/op_harness.h"

namespace myelin::test {

namespace {

using Ins = std::vector<Doubles>;
using Types = std::vector<TensorType>;

double sigmoid(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}

// out[r] = b[r] + sum_c w[r, c] * v[c], for rows r of w [rows, cols].
Doubles affine(const Doubles& w, const Doubles& b, const double* v, int64_t rows, int64_t cols) {
  Doubles out(b.begin(), b.begin() + rows);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[r] += w[r * cols + c] * v[c];
  return out;
}

// One sequence of one example: h (and c) in, updated in place, each step's h into y.
void run_sequence(const RnnParams& p, const Ins& in, int64_t n, int64_t t_len, int64_t i_len,
                  Doubles& h, Doubles& c, Doubles& y) {
  const int64_t hs = p.hidden, gh = p.gates() * hs;
  for (int64_t step = 0; step < t_len; ++step) {
    int64_t t = p.reverse ? t_len - 1 - step : step;
    const double* x = &in[0][(n * t_len + t) * i_len];
    Doubles a = affine(in[1], in[3], x, gh, i_len);      // W_ih x + b_ih
    Doubles b = affine(in[2], in[4], h.data(), gh, hs);  // W_hh h + b_hh
    for (int64_t j = 0; j < hs; ++j) {
      auto pre = [&](int gate) { return a[gate * hs + j] + b[gate * hs + j]; };
      if (p.cell == RnnCell::lstm) {
        double ig = sigmoid(pre(0)), fg = sigmoid(pre(1)), gg = std::tanh(pre(2));
        double og = sigmoid(pre(3));
        c[j] = fg * c[j] + ig * gg;
        y[(n * t_len + t) * hs + j] = og * std::tanh(c[j]);
      } else if (p.cell == RnnCell::gru) {
        double r = sigmoid(pre(0)), z = sigmoid(pre(1));
        double cand = std::tanh(a[2 * hs + j] + r * b[2 * hs + j]);
        y[(n * t_len + t) * hs + j] = (1 - z) * cand + z * h[j];
      } else {
        double v = pre(0);
        y[(n * t_len + t) * hs + j] = p.cell == RnnCell::rnn_tanh ? std::tanh(v) : std::max(v, 0.0);
      }
    }
    for (int64_t j = 0; j < hs; ++j) h[j] = y[(n * t_len + t) * hs + j];
  }
}

Ins ref_rnn(const Ins& in, const Attrs& attrs, const Types& types) {
  RnnParams p(attrs);
  const Shape& x = types[0].shape;
  const int64_t batch = x[0], t_len = x[1], i_len = x[2], hs = p.hidden;
  Doubles y(batch * t_len * hs), h_n(batch * hs), c_n(batch * hs);
  for (int64_t n = 0; n < batch; ++n) {
    Doubles h(hs, 0.0), c(hs, 0.0);
    if (in.size() > 5) h.assign(in[5].begin() + n * hs, in[5].begin() + (n + 1) * hs);
    if (in.size() > 6) c.assign(in[6].begin() + n * hs, in[6].begin() + (n + 1) * hs);
    run_sequence(p, in, n, t_len, i_len, h, c, y);
    std::copy(h.begin(), h.end(), h_n.begin() + n * hs);
    std::copy(c.begin(), c.end(), c_n.begin() + n * hs);
  }
  if (p.cell == RnnCell::lstm) return {y, h_n, c_n};
  return {y, h_n};
}

TensorType f32(Dims d) {
  return {Shape(std::move(d)), DType::f32};
}

Ins ref_embedding(const Ins& in, const Attrs&, const Types& t) {
  const int64_t width = t[1].shape[1];
  Doubles y;
  for (double id : in[0])
    for (int64_t j = 0; j < width; ++j) y.push_back(in[1][static_cast<int64_t>(id) * width + j]);
  return {y};
}

// x [n, t, i], the four weights and, when `states`, the initial states.
Types rnn_inputs(RnnCell cell, int64_t n, int64_t t, int64_t i, int64_t h, bool states) {
  int64_t g = cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1;
  Types in{f32({n, t, i}), f32({g * h, i}), f32({g * h, h}), f32({g * h}), f32({g * h})};
  if (states)
    for (int s = 0; s < (cell == RnnCell::lstm ? 2 : 1); ++s) in.push_back(f32({n, h}));
  return in;
}

Attrs rnn_attrs(const std::string& mode, int64_t hidden, bool reverse = false) {
  return Attrs{{"mode", mode}, {"hidden", hidden}, {"reverse", int64_t{reverse}}};
}

std::vector<int> all_inputs(const Types& in) {
  std::vector<int> r;
  for (size_t k = 0; k < in.size(); ++k) r.push_back(static_cast<int>(k));
  return r;
}

void add(const std::string& name, const std::string& mode, RnnCell cell, bool reverse, bool states,
         std::vector<int> outputs = {}) {
  Types in = rnn_inputs(cell, 2, 4, 3, 5, states);
  register_case({.name = "rnn/" + name,
                 .op = "rnn",
                 .attrs = rnn_attrs(mode, 5, reverse),
                 .inputs = in,
                 .reference = ref_rnn,
                 .grad_inputs = all_inputs(in),
                 .checked_outputs = std::move(outputs),
                 .grad_tol = 1e-3,
                 .perf_inputs = rnn_inputs(cell, 64, 32, 256, 256, states)});
}

[[maybe_unused]] const bool registered = [] {
  add("lstm", "lstm", RnnCell::lstm, false, true);
  add("lstm_reverse_zero_state", "lstm", RnnCell::lstm, true, false);
  add("lstm_final_state_only", "lstm", RnnCell::lstm, false, true, {1});
  add("gru", "gru", RnnCell::gru, false, true);
  add("gru_reverse", "gru", RnnCell::gru, true, true);
  add("rnn_tanh", "rnn_tanh", RnnCell::rnn_tanh, false, true);
  add("rnn_relu_reverse", "rnn_relu", RnnCell::rnn_relu, true, false);
  // More ids than rows: ids repeat, and their rows' gradients add up.
  register_case({.name = "embedding/repeated_ids",
                 .op = "embedding",
                 .inputs = {{Shape{3, 7}, DType::i32}, f32({5, 4})},
                 .int_max = 5,
                 .reference = ref_embedding,
                 .grad_inputs = {1}});
  register_case({.name = "copy/3d",
                 .op = "copy",
                 .inputs = {f32({2, 3, 4})},
                 .reference = [](const Ins& in, const Attrs&, const Types&) { return in; },
                 .grad_inputs = {0}});
  return true;
}();

}  // namespace

}  // namespace myelin::test
