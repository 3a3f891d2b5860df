// batch_norm_sum_grad (ops/normalization.cpp) on the CPU, NCHW or [N, C] floats: the CUDA engine's
// fusion of a ReLU-masked gradient sum into batch norm's gradient (ops/fuse.h), here so that the
// op has a reference engine like every other. dy = y > 0 ? a + b : 0 first, then batch norm's
// gradient from the saved mean and invstd, the channels' sums in double.
#include <vector>

#include "core/backend.h"

namespace myelin {

namespace {

// (a, x, gamma, mean, invstd, b, y) -> dx, dgamma, dbeta, dy
void batch_norm_sum_grad(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                         const StepContext&, const Node&) {
  const Shape& s = in[1].shape();
  const int64_t n = s[0], c = s[1], inner = s.numel() / (n * c), rows = n * inner;
  const float *a = in[0].f32(), *x = in[1].f32(), *gamma = in[2].f32(), *mean = in[3].f32(),
              *invstd = in[4].f32(), *b = in[5].f32(), *y = in[6].f32();
  float *dx = out[0].f32(), *dgamma = out[1].f32(), *dbeta = out[2].f32(), *dy = out[3].f32();
  for (int64_t i = 0; i < s.numel(); ++i) dy[i] = y[i] > 0.f ? a[i] + b[i] : 0.f;
  auto each = [&](int64_t ch, auto&& f) {  // f(element index) over channel ch's elements
    for (int64_t img = 0; img < n; ++img)
      for (int64_t k = 0; k < inner; ++k) f((img * c + ch) * inner + k);
  };
  for (int64_t ch = 0; ch < c; ++ch) {
    double sdy = 0, sdyx = 0;
    each(ch, [&](int64_t i) {
      sdy += dy[i];
      sdyx += static_cast<double>(dy[i]) * (x[i] - mean[ch]);
    });
    const double is = invstd[ch], dg = sdyx * is, k = gamma[ch] * is;
    dbeta[ch] = static_cast<float>(sdy);
    dgamma[ch] = static_cast<float>(dg);
    each(ch, [&](int64_t i) {
      const double xhat = (x[i] - mean[ch]) * is;
      dx[i] = static_cast<float>(k * (dy[i] - sdy / rows - xhat * dg / rows));
    });
  }
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel_fn("batch_norm_sum_grad", DeviceKind::cpu, batch_norm_sum_grad);
}

}  // namespace myelin
