// Softmax over axis 1, the softmax cross-entropy loss (mean over the batch, optional label
// smoothing) and top-k accuracy.
#include "ops/common.h"

namespace myelin {

namespace {

std::vector<TensorType> infer_softmax(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].shape.rank() >= 2, n, in, "input must be [N, C, ...]");
  return {in[0]};
}

void expect_logits_labels(const Node& n, const std::vector<TensorType>& in, int logits,
                          int labels) {
  expect(in[logits].shape.rank() == 2, n, in, "logits must be [N, classes]");
  expect(in[labels].shape == Shape{in[logits].shape[0]}, n, in, "labels must be [N]");
  expect(in[labels].dtype == DType::i32, n, in, "labels must be i32");
}

std::vector<TensorType> infer_xent(const Node& n, const std::vector<TensorType>& in) {
  expect_logits_labels(n, in, 0, 1);
  double s = n.attrs.f("label_smoothing", 0.0);
  expect(s >= 0 && s < 1, n, in, "label_smoothing must be in [0, 1)");
  return {{Shape{}, DType::f32}};
}

std::vector<TensorType> infer_xent_grad(const Node& n, const std::vector<TensorType>& in) {
  expect_logits_labels(n, in, 1, 2);
  return {in[1]};
}

std::vector<TensorType> infer_topk(const Node& n, const std::vector<TensorType>& in) {
  expect_logits_labels(n, in, 0, 1);
  int64_t k = n.attrs.i("k", 1);
  expect(k >= 1, n, in, "k must be at least 1");
  return {{Shape{}, DType::f32}};
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "softmax",
               .infer = infer_softmax,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{g.add1("softmax_grad", {g.grad_out(0), g.out(0)})};
                   },
               .flops = flops_per_output(3),  // the row's maximum, exp and sum, the division
               .doc = "softmax over axis 1"});
  register_op({.name = "softmax_grad",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = same_as_first,
               .flops = flops_per_output(4),  // the row's sum of dy * y, dx = y * (dy - sum)
               .doc = "(dy, y) -> dx"});
  register_op(
      {.name = "softmax_cross_entropy",
       .min_inputs = 2,
       .max_inputs = 2,
       .infer = infer_xent,
       .grad =
           [](GradBuilder& g) {
             return std::vector{g.add1("softmax_cross_entropy_grad",
                                       {g.grad_out(0), g.in(0), g.in(1)}, g.node().attrs),
                                kNoValue};
           },
       .flops = flops_per_input(3),  // a softmax per logit; the log and mean per row are few
       .doc = "mean cross-entropy of softmax(logits[N,K]) and labels[N] (i32); label_smoothing"});
  register_op({.name = "softmax_cross_entropy_grad",
               .min_inputs = 3,
               .max_inputs = 3,
               .infer = infer_xent_grad,
               // The softmax again, minus the target, times dloss / N.
               .flops = flops_per_input(5, 1),
               .doc = "(dloss, logits, labels) -> dlogits"});
  register_op({.name = "top_k_accuracy",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_topk,
               .flops = flops_per_input(1),  // a comparison per logit with the label's
               .doc = "fraction of the batch whose label is among the k largest logits"});
}

}  // namespace myelin
