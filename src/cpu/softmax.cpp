// CPU kernels for softmax over axis 1, its gradient, the softmax cross-entropy loss and its
// gradient, and top-k accuracy. Exponentials are taken after subtracting the maximum, so large
// logits never overflow; sums over classes and over the batch are accumulated in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/backend.h"
#include "core/error.h"

namespace myelin {

namespace {

// x viewed as [outer = N, classes = C, inner = product of the dimensions after 1].
struct AxisLayout {
  int64_t outer, classes, inner;
  explicit AxisLayout(const Shape& s) : outer(s[0]), classes(s[1]), inner(1) {
    for (int d = 2; d < s.rank(); ++d) inner *= s[d];
  }
};

// With inner > 1, positions of one example are processed a tile at a time: the loops over a
// tile are contiguous and vectorise, and the tile's scratch lives on the stack.
constexpr int64_t kTile = 64;

// Softmax of one contiguous row of C logits.
void softmax_row(const float* x, float* y, int64_t c) {
  float mx = x[0];
  for (int64_t k = 1; k < c; ++k) mx = std::max(mx, x[k]);
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < c; ++k) {
    y[k] = std::exp(x[k] - mx);
    sum += y[k];
  }
  float inv = static_cast<float>(1.0 / sum);
#pragma omp simd
  for (int64_t k = 0; k < c; ++k) y[k] *= inv;
}

// Softmax over C for positions [i0, i0 + len) of one example (x, y point at its start).
void softmax_tile(const float* x, float* y, const AxisLayout& l, int64_t i0, int64_t len) {
  float mx[kTile];
  double sum[kTile];
  for (int64_t j = 0; j < len; ++j) mx[j] = x[i0 + j], sum[j] = 0;
  for (int64_t c = 1; c < l.classes; ++c)
    for (int64_t j = 0; j < len; ++j) mx[j] = std::max(mx[j], x[c * l.inner + i0 + j]);
  for (int64_t c = 0; c < l.classes; ++c) {
    const float* xc = x + c * l.inner + i0;
    float* yc = y + c * l.inner + i0;
    for (int64_t j = 0; j < len; ++j) {
      yc[j] = std::exp(xc[j] - mx[j]);
      sum[j] += yc[j];
    }
  }
  float inv[kTile];
  for (int64_t j = 0; j < len; ++j) inv[j] = static_cast<float>(1.0 / sum[j]);
  for (int64_t c = 0; c < l.classes; ++c) {
    float* yc = y + c * l.inner + i0;
    for (int64_t j = 0; j < len; ++j) yc[j] *= inv[j];
  }
}

void softmax_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                    const StepContext&, const Node&) {
  AxisLayout l(in[0].shape());
  const float* x = in[0].f32();
  float* y = out[0].f32();
  int64_t example = l.classes * l.inner;
  if (l.inner == 1) {
#pragma omp parallel for if (l.outer * example >= 4096)
    for (int64_t n = 0; n < l.outer; ++n) softmax_row(x + n * example, y + n * example, l.classes);
    return;
  }
  int64_t tiles = (l.inner + kTile - 1) / kTile;
#pragma omp parallel for collapse(2) if (l.outer * example >= 4096)
  for (int64_t n = 0; n < l.outer; ++n)
    for (int64_t t = 0; t < tiles; ++t)
      softmax_tile(x + n * example, y + n * example, l, t * kTile,
                   std::min(kTile, l.inner - t * kTile));
}

// dx = y * (dy - sum_c dy * y), for positions [i0, i0 + len) of one example.
void softmax_grad_tile(const float* dy, const float* y, float* dx, const AxisLayout& l, int64_t i0,
                       int64_t len) {
  double dot[kTile];
  for (int64_t j = 0; j < len; ++j) dot[j] = 0;
  for (int64_t c = 0; c < l.classes; ++c)
    for (int64_t j = 0; j < len; ++j)
      dot[j] += static_cast<double>(dy[c * l.inner + i0 + j]) * y[c * l.inner + i0 + j];
  for (int64_t c = 0; c < l.classes; ++c) {
    int64_t o = c * l.inner + i0;
    for (int64_t j = 0; j < len; ++j)
      dx[o + j] = static_cast<float>(y[o + j] * (dy[o + j] - dot[j]));
  }
}

void softmax_grad_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                         const StepContext&, const Node&) {
  AxisLayout l(in[0].shape());
  const float* dy = in[0].f32();
  const float* y = in[1].f32();
  float* dx = out[0].f32();
  int64_t example = l.classes * l.inner;
  int64_t tiles = (l.inner + kTile - 1) / kTile;
#pragma omp parallel for collapse(2) if (l.outer * example >= 4096)
  for (int64_t n = 0; n < l.outer; ++n)
    for (int64_t t = 0; t < tiles; ++t)
      softmax_grad_tile(dy + n * example, y + n * example, dx + n * example, l, t * kTile,
                        std::min(kTile, l.inner - t * kTile));
}

// Labels come from data files: one outside [0, classes) is an error the user can act on, and is
// found before any thread starts (an exception must not leave an OpenMP region).
void check_labels(const Node& node, const Tensor& labels, int64_t classes) {
  const int32_t* lab = labels.data_as<int32_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    if (lab[i] < 0 || lab[i] >= classes)
      throw Error(node.op + " '" + node.name + "': label " + std::to_string(lab[i]) +
                  " of example " + std::to_string(i) + " is outside [0, " +
                  std::to_string(classes) + ")");
}

struct XentParams {
  double smoothing;  // target = (1 - smoothing) * onehot + smoothing / K
  explicit XentParams(const Node& n) : smoothing(n.attrs.f("label_smoothing", 0.0)) {}
};

// log(sum_k exp(x_k)) of one row, stably.
double log_sum_exp(const float* x, int64_t k) {
  float mx = x[0];
  for (int64_t i = 1; i < k; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < k; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  return mx + std::log(sum);
}

void xent_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const StepContext&,
                 const Node& node) {
  int64_t n = in[0].shape()[0], k = in[0].shape()[1];
  check_labels(node, in[1], k);
  const float* x = in[0].f32();
  const int32_t* lab = in[1].data_as<int32_t>();
  double eps = XentParams(node).smoothing;
  double total = 0;
#pragma omp parallel for reduction(+ : total) if (n * k >= 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * k;
    double row_sum = 0;
    for (int64_t j = 0; j < k; ++j) row_sum += row[j];
    // -sum_j t_j log p_j with log p_j = x_j - lse and sum_j t_j = 1.
    total += log_sum_exp(row, k) - (1 - eps) * row[lab[i]] - eps / k * row_sum;
  }
  out[0].f32()[0] = static_cast<float>(n ? total / n : 0.0);
}

// dlogits = dloss / N * (softmax(x) - target).
void xent_grad_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                      const StepContext&, const Node& node) {
  int64_t n = in[1].shape()[0], k = in[1].shape()[1];
  check_labels(node, in[2], k);
  double scale = n ? in[0].f32()[0] / static_cast<double>(n) : 0.0;
  const float* x = in[1].f32();
  const int32_t* lab = in[2].data_as<int32_t>();
  float* dx = out[0].f32();
  double eps = XentParams(node).smoothing;
#pragma omp parallel for if (n * k >= 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * k;
    double lse = log_sum_exp(row, k);
    for (int64_t j = 0; j < k; ++j) {
      double target = eps / k + (j == lab[i] ? 1 - eps : 0.0);
      dx[i * k + j] = static_cast<float>(scale * (std::exp(row[j] - lse) - target));
    }
  }
}

// An example counts when fewer than k other logits are >= its label's logit: ties count against,
// and a NaN label logit never counts.
void top_k_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const StepContext&,
                  const Node& node) {
  int64_t n = in[0].shape()[0], k = in[0].shape()[1];
  check_labels(node, in[1], k);
  int64_t top = node.attrs.i("k", 1);
  const float* x = in[0].f32();
  const int32_t* lab = in[1].data_as<int32_t>();
  int64_t hits = 0;
#pragma omp parallel for reduction(+ : hits) if (n * k >= 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * k;
    float mine = row[lab[i]];
    int64_t above = 0;
    for (int64_t j = 0; j < k; ++j) above += j != lab[i] && !(row[j] < mine);
    hits += above < top;
  }
  out[0].f32()[0] = n ? static_cast<float>(static_cast<double>(hits) / n) : 0.0f;
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel_fn("softmax", DeviceKind::cpu, softmax_kernel);
  register_kernel_fn("softmax_grad", DeviceKind::cpu, softmax_grad_kernel);
  register_kernel_fn("softmax_cross_entropy", DeviceKind::cpu, xent_kernel);
  register_kernel_fn("softmax_cross_entropy_grad", DeviceKind::cpu, xent_grad_kernel);
  register_kernel_fn("top_k_accuracy", DeviceKind::cpu, top_k_kernel);
}

}  // namespace myelin
