// The optimizer step as ops, so every engine runs it on its own device (the CUDA engine in one
// launch for all parameters, inside the captured step) and the trainer never touches weights.
//
// optimizer_update(hp, p_0..p_{n-1}, g_0..g_{n-1}, s_0..s_{n*slots-1} [, norm_sq] [, loss_scale])
//   hp: f32 [8] = {lr, momentum or beta1, beta2 (rmsprop: decay), eps, weight_decay, t (1-based
//       step), grad_scale, 0}; written by the trainer before each step, so schedules need no
//       rebuild and a captured CUDA graph stays valid.
//   attrs: solver (sgd|nesterov|adam|adamw|rmsprop|adagrad), count n, lr_mult[n], decay_mult[n],
//       clip (global-norm threshold, 0 = off; then norm_sq is the last input), zero_grads (1:
//       zero each g after use, for accumulated gradients), loss_scaled (1: the gradients are of the
//       loss times loss_scale[0]; norm_sq, then loss_scale, are the last inputs, and a step whose
//       norm_sq is not finite changes nothing but the zeroing of g).
//   In place, per element, with g' = g * grad_scale / loss_scale * clip_factor:
//     clip_factor = min(1, clip / (sqrt(norm_sq) * grad_scale / loss_scale + 1e-6)) when clip > 0,
//       else 1
//     d = wd * decay_mult (decoupled for adamw: p -= lr * lr_mult * d * p first; else g' += d * p)
//     sgd:      v = momentum * v + g';         p -= lr_i * v
//     nesterov: v = momentum * v + g';         p -= lr_i * (g' + momentum * v)
//     adam(w):  m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
//               p -= lr_i * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
//     rmsprop:  v = b2 v + (1-b2) g'^2;        p -= lr_i * g' / (sqrt(v) + eps)
//     adagrad:  v += g'^2;                     p -= lr_i * g' / (sqrt(v) + eps)
//   with lr_i = lr * lr_mult[i]. States start at zero.
// global_norm_sq(g_0..g_{n-1}) -> [1] f32: the sum of squares of every element.
// accumulate_grad(acc, g): acc += g in place (no outputs), for gradient accumulation.
// loss_scale_update(scale, good_steps, norm_sq): dynamic loss scaling (fp16), in place. A step
//   whose norm_sq is not finite (the scaled gradients overflowed; the update skipped it) halves
//   the scale and restarts the count; growth_interval finite steps in a row double it. The scale
//   stays within [2^-24, 2^24].
#include "ops/common.h"

namespace myelin {

int optimizer_slots(const std::string& solver) {
  if (solver == "sgd" || solver == "nesterov" || solver == "rmsprop" || solver == "adagrad")
    return 1;
  if (solver == "adam" || solver == "adamw") return 2;
  throw Error("unknown solver '" + solver +
              "' (expected sgd, nesterov, adam, adamw, rmsprop or adagrad)");
}

namespace {

std::vector<TensorType> infer_update(const Node& n, const std::vector<TensorType>& in) {
  int64_t count = n.attrs.i("count", 0);
  int slots = optimizer_slots(n.attrs.s("solver", "sgd"));
  bool clip = n.attrs.f("clip", 0.0) > 0, scaled = n.attrs.i("loss_scaled", 0) != 0;
  expect(in[0].shape == Shape{8} && in[0].dtype == DType::f32, n, in, "hp must be f32 [8]");
  expect(static_cast<int64_t>(in.size()) ==
             1 + count * (2 + slots) + (clip || scaled ? 1 : 0) + (scaled ? 1 : 0),
         n, in,
         "expected hp, params, grads, states" + std::string(clip || scaled ? ", norm_sq" : "") +
             (scaled ? ", loss_scale" : ""));
  for (int64_t i = 0; i < count; ++i) {
    const Shape& p = in[1 + i].shape;
    expect(in[1 + count + i].shape == p, n, in,
           "gradient " + std::to_string(i) + " differs from its parameter");
    for (int s = 0; s < slots; ++s)
      expect(in[1 + 2 * count + i * slots + s].shape == p, n, in,
             "state differs from its parameter");
  }
  expect(static_cast<int64_t>(n.attrs.floats("lr_mult", {}).size()) == count &&
             static_cast<int64_t>(n.attrs.floats("decay_mult", {}).size()) == count,
         n, in, "lr_mult and decay_mult need one entry per parameter");
  return {};
}

// Per parameter element: the gradient times its one scalar factor (grad_scale, loss scale and
// clipping together: 1) and weight decay (2), then the solver's formula above as written.
double update_flops(const Graph& g, const Node& n) {
  static const std::pair<const char*, double> solvers[] = {
      {"sgd", 4}, {"nesterov", 6}, {"adam", 14}, {"adamw", 14}, {"rmsprop", 9}, {"adagrad", 7}};
  std::string solver = n.attrs.s("solver", "sgd");
  double per_element = 3;
  for (auto& [name, f] : solvers)
    if (solver == name) per_element += f;
  double params = 0;
  for (int64_t i = 0, count = n.attrs.i("count", 0); i < count; ++i)
    params += elements(g, n.inputs.at(static_cast<size_t>(1 + i)));
  return per_element * params;
}

// A multiply-add per element of every input.
double norm_sq_flops(const Graph& g, const Node& n) {
  double f = 0;
  for (ValueId v : n.inputs) f += 2 * elements(g, v);
  return f;
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "optimizer_update",
               .min_inputs = 1,
               .max_inputs = 1 << 20,
               .infer = infer_update,
               .flops = update_flops,
               .doc = "one solver step for every parameter, in place"});
  register_op({.name = "global_norm_sq",
               .min_inputs = 1,
               .max_inputs = 1 << 20,
               .infer =
                   [](const Node&, const std::vector<TensorType>&) {
                     return std::vector<TensorType>{{Shape{1}, DType::f32}};
                   },
               .flops = norm_sq_flops,
               .doc = "sum of squares of all inputs"});
  register_op({.name = "loss_scale_update",
               .min_inputs = 3,
               .max_inputs = 3,
               .infer =
                   [](const Node& n, const std::vector<TensorType>& in) {
                     for (const TensorType& t : in)
                       expect(t.shape.numel() == 1 && t.dtype == DType::f32, n, in,
                              "scale, good_steps and norm_sq are f32 scalars");
                     return std::vector<TensorType>{};
                   },
               .flops = no_flops,  // a few scalar operations a step
               .doc = "dynamic loss scaling: halve on overflow, double after a run of good steps"});
  register_op({.name = "accumulate_grad",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer =
                   [](const Node& n, const std::vector<TensorType>& in) {
                     expect(in[0].shape == in[1].shape, n, in,
                            "acc and g must have the same shape");
                     return std::vector<TensorType>{};
                   },
               .flops = flops_per_input(1, 1),  // an add per element of g
               .doc = "acc += g in place"});
}

}  // namespace myelin
