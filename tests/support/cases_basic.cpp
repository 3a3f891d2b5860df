// Op cases for the elementwise, softmax/loss, dropout and shape ops, with float64 references.
#include <algorithm>
#include <cmath>

#include "ops/params.h"
#include "support/op_harness.h"

namespace myelin::test {

namespace {

using Ins = std::vector<Doubles>;
using Types = std::vector<TensorType>;

TensorType f32(Dims d) {
  return {Shape(std::move(d)), DType::f32};
}
TensorType i32(Dims d) {
  return {Shape(std::move(d)), DType::i32};
}

// A shape viewed as [outer = dims[0], mid = dims[1], inner = the rest] (axis-1 ops), or around
// any axis.
struct Around {
  int64_t outer = 1, mid = 1, inner = 1;
  Around(const Shape& s, int axis) {
    for (int d = 0; d < s.rank(); ++d) (d < axis ? outer : d == axis ? mid : inner) *= s[d];
  }
};

int norm_axis(const Attrs& a, const Shape& s) {
  int64_t axis = a.i("axis", 1);
  return static_cast<int>(axis < 0 ? axis + s.rank() : axis);
}

// ---- elementwise ----

Ins ref_add(const Ins& in, const Attrs&, const Types&) {
  Doubles y(in[0].size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = in[0][i] + in[1][i];
  return {y};
}

Ins ref_mul(const Ins& in, const Attrs&, const Types&) {
  Doubles y(in[0].size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = in[0][i] * in[1][i];
  return {y};
}

Ins ref_bias_add(const Ins& in, const Attrs&, const Types& t) {
  Around l(t[0].shape, 1);
  Doubles y(in[0]);
  for (int64_t i = 0; i < static_cast<int64_t>(y.size()); ++i) y[i] += in[1][i / l.inner % l.mid];
  return {y};
}

Ins ref_bias_grad(const Ins& in, const Attrs&, const Types& t) {
  Around l(t[0].shape, 1);
  Doubles db(l.mid, 0.0);
  for (int64_t i = 0; i < static_cast<int64_t>(in[0].size()); ++i)
    db[i / l.inner % l.mid] += in[0][i];
  return {db};
}

Ins ref_fill(const Ins&, const Attrs& a, const Types&) {
  return {Doubles(Shape(a.ints("shape", {})).numel(), a.f("value", 0.0))};
}

// ---- softmax and losses ----

Ins ref_softmax(const Ins& in, const Attrs&, const Types& t) {
  Around l(t[0].shape, 1);
  Doubles y(in[0].size());
  for (int64_t n = 0; n < l.outer; ++n)
    for (int64_t i = 0; i < l.inner; ++i) {
      auto at = [&](int64_t c) { return (n * l.mid + c) * l.inner + i; };
      double mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < l.mid; ++c) mx = std::max(mx, in[0][at(c)]);
      for (int64_t c = 0; c < l.mid; ++c) sum += y[at(c)] = std::exp(in[0][at(c)] - mx);
      for (int64_t c = 0; c < l.mid; ++c) y[at(c)] /= sum;
    }
  return {y};
}

// softmax_grad(dy, y) = y * (dy - sum_c dy * y)
Ins ref_softmax_grad(const Ins& in, const Attrs&, const Types& t) {
  Around l(t[0].shape, 1);
  Doubles dx(in[0].size());
  for (int64_t n = 0; n < l.outer; ++n)
    for (int64_t i = 0; i < l.inner; ++i) {
      auto at = [&](int64_t c) { return (n * l.mid + c) * l.inner + i; };
      double dot = 0;
      for (int64_t c = 0; c < l.mid; ++c) dot += in[0][at(c)] * in[1][at(c)];
      for (int64_t c = 0; c < l.mid; ++c) dx[at(c)] = in[1][at(c)] * (in[0][at(c)] - dot);
    }
  return {dx};
}

// Per-example log-probabilities of logits [N, K].
Doubles log_softmax_rows(const Doubles& x, int64_t n, int64_t k) {
  Doubles lp(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double mx = *std::max_element(x.begin() + i * k, x.begin() + (i + 1) * k), sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += std::exp(x[i * k + j] - mx);
    for (int64_t j = 0; j < k; ++j) lp[i * k + j] = x[i * k + j] - mx - std::log(sum);
  }
  return lp;
}

double smoothed_target(const Attrs& a, int64_t k, int64_t j, double label) {
  double eps = a.f("label_smoothing", 0.0);
  return eps / k + (j == static_cast<int64_t>(label) ? 1 - eps : 0.0);
}

Ins ref_xent(const Ins& in, const Attrs& a, const Types& t) {
  int64_t n = t[0].shape[0], k = t[0].shape[1];
  Doubles lp = log_softmax_rows(in[0], n, k);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) loss -= smoothed_target(a, k, j, in[1][i]) * lp[i * k + j];
  return {{loss / n}};
}

// (dloss, logits, labels) -> dloss / N * (softmax - target)
Ins ref_xent_grad(const Ins& in, const Attrs& a, const Types& t) {
  int64_t n = t[1].shape[0], k = t[1].shape[1];
  Doubles lp = log_softmax_rows(in[1], n, k), dx(lp.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j)
      dx[i * k + j] = in[0][0] / n * (std::exp(lp[i * k + j]) - smoothed_target(a, k, j, in[2][i]));
  return {dx};
}

// Ties count against: the label must beat all but k-1 of the other logits strictly.
Ins ref_top_k(const Ins& in, const Attrs& a, const Types& t) {
  int64_t n = t[0].shape[0], k = t[0].shape[1], top = a.i("k", 1), hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto label = static_cast<int64_t>(in[1][i]);
    int64_t above = 0;
    for (int64_t j = 0; j < k; ++j) above += j != label && in[0][i * k + j] >= in[0][i * k + label];
    hits += above < top;
  }
  return {{static_cast<double>(hits) / n}};
}

// Every fourth example gets a tie between its label's logit and the next class's.
std::function<void(Ins&)> with_ties(int64_t n, int64_t k) {
  return [n, k](Ins& in) {
    for (int64_t i = 0; i < n; i += 4) {
      auto label = static_cast<int64_t>(in[1][i]);
      in[0][i * k + (label + 1) % k] = in[0][i * k + label];
    }
  };
}

std::function<void(Ins&)> shift_input0(double s) {
  return [s](Ins& in) {
    for (double& x : in[0]) x += s;
  };
}

std::function<void(Ins&)> scale_input0(double s) {
  return [s](Ins& in) {
    for (double& x : in[0]) x *= s;
  };
}

// ---- dropout ----

Doubles masked(const Doubles& x, double ratio, int node) {
  uint64_t key = dropout_key(kCaseSeed, kCaseStep, node);
  uint32_t threshold = dropout_threshold(ratio);
  Doubles y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = dropout_keep(key, i, threshold) ? x[i] / (1 - ratio) : 0.0;
  return y;
}

Ins ref_dropout(const Ins& in, const Attrs& a, const Types&) {
  return {masked(in[0], a.f("ratio", 0.5), kCaseNode)};
}

Ins ref_dropout_grad(const Ins& in, const Attrs& a, const Types&) {
  return {masked(in[0], a.f("ratio", 0.5), static_cast<int>(a.i("forward_node", -1)))};
}

Ins ref_identity(const Ins& in, const Attrs&, const Types&) {
  return {in[0]};
}

// ---- shape ----

Ins ref_concat(const Ins& in, const Attrs& a, const Types& t) {
  int axis = norm_axis(a, t[0].shape);
  Doubles y;
  int64_t outer = Around(t[0].shape, axis).outer;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t p = 0; p < in.size(); ++p) {
      Around l(t[p].shape, axis);
      int64_t row = l.mid * l.inner;
      y.insert(y.end(), in[p].begin() + o * row, in[p].begin() + (o + 1) * row);
    }
  return {y};
}

Ins ref_split(const Ins& in, const Attrs& a, const Types& t) {
  int axis = norm_axis(a, t[0].shape);
  Around whole(t[0].shape, axis);
  Ins parts;
  int64_t at = 0;
  for (int64_t size : a.ints("sizes", {})) {
    Doubles part;
    for (int64_t o = 0; o < whole.outer; ++o) {
      auto row = in[0].begin() + (o * whole.mid + at) * whole.inner;
      part.insert(part.end(), row, row + size * whole.inner);
    }
    parts.push_back(part);
    at += size;
  }
  return parts;
}

Attrs axis_attrs(int64_t axis) {
  return Attrs{{"axis", axis}};
}

Attrs split_attrs(int64_t axis, std::vector<int64_t> sizes) {
  return Attrs{{"axis", axis}, {"sizes", std::move(sizes)}};
}

void register_elementwise() {
  register_case({.name = "add/3d",
                 .op = "add",
                 .inputs = {f32({2, 3, 4}), f32({2, 3, 4})},
                 .reference = ref_add,
                 .grad_inputs = {0, 1},
                 .perf_inputs = {f32({256, 4096}), f32({256, 4096})}});
  register_case({.name = "mul/2d",
                 .op = "mul",
                 .inputs = {f32({3, 5}), f32({3, 5})},
                 .reference = ref_mul,
                 .grad_inputs = {0, 1},
                 .perf_inputs = {f32({256, 4096}), f32({256, 4096})}});
  register_case({.name = "bias_add/nchw",
                 .op = "bias_add",
                 .inputs = {f32({2, 3, 2, 2}), f32({3})},
                 .reference = ref_bias_add,
                 .grad_inputs = {0, 1},
                 .perf_inputs = {f32({64, 32, 28, 28}), f32({32})}});
  register_case({.name = "bias_add/2d",
                 .op = "bias_add",
                 .inputs = {f32({4, 5}), f32({5})},
                 .reference = ref_bias_add,
                 .grad_inputs = {0, 1}});
  register_case({.name = "bias_grad/nchw",
                 .op = "bias_grad",
                 .inputs = {f32({3, 4, 5, 6})},
                 .reference = ref_bias_grad,
                 .perf_inputs = {f32({64, 32, 28, 28})}});
  // Many rows over channels that do not fill the kernels' 32-wide column groups: sums split
  // into hundreds of slices and reduced again (the CUDA columns path, as for NHWC activations).
  register_case({.name = "bias_grad/many_rows",
                 .op = "bias_grad",
                 .inputs = {f32({4099, 37})},
                 .reference = ref_bias_grad});
  register_case({.name = "bias_grad/small_planes",  // planes shorter than a block, many slices
                 .op = "bias_grad",
                 .inputs = {f32({70, 33, 3, 5})},
                 .reference = ref_bias_grad});
  register_case({.name = "fill/f32",
                 .op = "fill",
                 .attrs = {{"shape", std::vector<int64_t>{3, 4}}, {"value", 0.75}},
                 .reference = ref_fill});
  register_case({.name = "fill/i32",
                 .op = "fill",
                 .attrs = {{"shape", std::vector<int64_t>{5}}, {"value", 3.0}, {"dtype", "i32"}},
                 .reference = ref_fill});
}

void register_softmax() {
  register_case({.name = "softmax/2d",
                 .op = "softmax",
                 .inputs = {f32({4, 7})},
                 .reference = ref_softmax,
                 .grad_inputs = {0},
                 .perf_inputs = {f32({256, 1000})}});
  register_case({.name = "softmax/nchw",
                 .op = "softmax",
                 .inputs = {f32({2, 5, 3, 2})},
                 .reference = ref_softmax,
                 .grad_inputs = {0},
                 .perf_inputs = {f32({64, 21, 28, 28})}});
  register_case({.name = "softmax/two_tiles",
                 .op = "softmax",
                 .inputs = {f32({2, 3, 10, 10})},
                 .reference = ref_softmax,
                 .grad_inputs = {0}});
  // exp(100) overflows float: only a max-subtracting kernel survives. Shifted logits keep the
  // softmax well conditioned, so the gradient is checked too.
  register_case({.name = "softmax/large_logits",
                 .op = "softmax",
                 .inputs = {f32({3, 6})},
                 .reference = ref_softmax,
                 .grad_inputs = {0},
                 .prepare = shift_input0(100)});
  // Saturated: outputs are ~0 and ~1 and the gradient vanishes; forward only.
  register_case({.name = "softmax/saturated",
                 .op = "softmax",
                 .inputs = {f32({3, 6})},
                 .reference = ref_softmax,
                 .prepare = scale_input0(100)});
  register_case({.name = "softmax_grad/nchw",
                 .op = "softmax_grad",
                 .inputs = {f32({2, 4, 3, 1}), f32({2, 4, 3, 1})},
                 .reference = ref_softmax_grad});
}

void register_losses() {
  register_case({.name = "softmax_cross_entropy/plain",
                 .op = "softmax_cross_entropy",
                 .inputs = {f32({6, 5}), i32({6})},
                 .int_max = 5,
                 .reference = ref_xent,
                 .grad_inputs = {0},
                 .perf_inputs = {f32({256, 1000}), i32({256})}});
  register_case({.name = "softmax_cross_entropy/smoothing",
                 .op = "softmax_cross_entropy",
                 .attrs = {{"label_smoothing", 0.1}},
                 .inputs = {f32({8, 10}), i32({8})},
                 .int_max = 10,
                 .reference = ref_xent,
                 .grad_inputs = {0}});
  register_case({.name = "softmax_cross_entropy/large_logits",
                 .op = "softmax_cross_entropy",
                 .inputs = {f32({5, 4}), i32({5})},
                 .int_max = 4,
                 .reference = ref_xent,
                 .grad_inputs = {0},
                 .prepare = scale_input0(100)});
  register_case({.name = "softmax_cross_entropy_grad/smoothing",
                 .op = "softmax_cross_entropy_grad",
                 .attrs = {{"label_smoothing", 0.2}},
                 .inputs = {f32({}), f32({4, 6}), i32({4})},
                 .int_max = 6,
                 .reference = ref_xent_grad});
  register_case({.name = "top_k_accuracy/k1_ties",
                 .op = "top_k_accuracy",
                 .attrs = {{"k", int64_t{1}}},
                 .inputs = {f32({32, 5}), i32({32})},
                 .int_max = 5,
                 .reference = ref_top_k,
                 .prepare = with_ties(32, 5)});
  register_case({.name = "top_k_accuracy/k3_ties",
                 .op = "top_k_accuracy",
                 .attrs = {{"k", int64_t{3}}},
                 .inputs = {f32({32, 10}), i32({32})},
                 .int_max = 10,
                 .reference = ref_top_k,
                 .prepare = with_ties(32, 10),
                 .perf_inputs = {f32({256, 1000}), i32({256})}});
}

void register_dropout() {
  register_case({.name = "dropout/ratio0.3",
                 .op = "dropout",
                 .attrs = {{"ratio", 0.3}},
                 .inputs = {f32({4, 50})},
                 .reference = ref_dropout,
                 .grad_inputs = {0},
                 .perf_inputs = {f32({256, 4096})}});
  register_case({.name = "dropout/ratio0",
                 .op = "dropout",
                 .attrs = {{"ratio", 0.0}},
                 .inputs = {f32({3, 7})},
                 .reference = ref_dropout,
                 .grad_inputs = {0}});
  register_case({.name = "dropout/inference_is_identity",
                 .op = "dropout",
                 .attrs = {{"ratio", 0.5}},
                 .inputs = {f32({3, 7})},
                 .training = false,
                 .reference = ref_identity,
                 .grad_inputs = {0}});
  register_case({.name = "dropout_grad/forward_node3",
                 .op = "dropout_grad",
                 .attrs = {{"ratio", 0.5}, {"forward_node", int64_t{3}}},
                 .inputs = {f32({5, 20})},
                 .reference = ref_dropout_grad});
}

void register_shape() {
  register_case(
      {.name = "concat/axis1",
       .op = "concat",
       .attrs = axis_attrs(1),
       .inputs = {f32({2, 3, 4}), f32({2, 1, 4}), f32({2, 2, 4})},
       .reference = ref_concat,
       .grad_inputs = {0, 1, 2},
       .perf_inputs = {f32({64, 32, 14, 14}), f32({64, 16, 14, 14}), f32({64, 16, 14, 14})}});
  register_case({.name = "concat/axis0",
                 .op = "concat",
                 .attrs = axis_attrs(0),
                 .inputs = {f32({1, 3}), f32({2, 3})},
                 .reference = ref_concat,
                 .grad_inputs = {0, 1}});
  register_case({.name = "concat/last_axis",
                 .op = "concat",
                 .attrs = axis_attrs(-1),
                 .inputs = {f32({2, 2, 3}), f32({2, 2, 2})},
                 .reference = ref_concat,
                 .grad_inputs = {0, 1}});
  register_case({.name = "concat/i32",
                 .op = "concat",
                 .attrs = axis_attrs(1),
                 .inputs = {i32({2, 3}), i32({2, 4})},
                 .int_max = 1000,
                 .reference = ref_concat});
  register_case({.name = "split/axis1",
                 .op = "split",
                 .attrs = split_attrs(1, {1, 2, 3}),
                 .inputs = {f32({2, 6, 3})},
                 .reference = ref_split,
                 .grad_inputs = {0}});
  // Output 1 gets no gradient: the split's gradient fills its slot with zeros.
  register_case({.name = "split/unused_part",
                 .op = "split",
                 .attrs = split_attrs(-1, {2, 1, 2}),
                 .inputs = {f32({3, 5})},
                 .reference = ref_split,
                 .grad_inputs = {0},
                 .checked_outputs = {0, 2}});
  register_case({.name = "flatten/nchw",
                 .op = "flatten",
                 .inputs = {f32({2, 3, 2, 2})},
                 .reference = ref_identity,
                 .grad_inputs = {0}});
}

[[maybe_unused]] const bool registered = [] {
  register_elementwise();
  register_softmax();
  register_losses();
  register_dropout();
  register_shape();
  return true;
}();

}  // namespace

}  // namespace myelin::test
