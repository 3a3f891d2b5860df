// What the CPU engine's own 3x3 convolution kernels are checked against: a padded 3x3 stride-1
// convolution (bias, then a leaky ReLU) and its gradients computed in double from NCHW floats.
#pragma once

#include <cstdint>
#include <vector>

namespace myelin::test {

// y = leaky_relu(conv(x, w) + bias, slope); dx and dw for the output gradient dy. NCHW, OIHW.
struct Conv3x3Ref {
  std::vector<double> y, dx, dw;
};

inline Conv3x3Ref conv3x3_ref(const std::vector<float>& x, const std::vector<float>& wt,
                              const std::vector<float>& bias, const std::vector<float>& dy,
                              int64_t n, int64_t c, int64_t k, int64_t h, int64_t w, double slope) {
  const int64_t hw = h * w;
  Conv3x3Ref r{std::vector<double>(n * k * hw), std::vector<double>(n * c * hw),
               std::vector<double>(k * c * 9)};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < k; ++o)
      for (int64_t ci = 0; ci < c; ++ci)
        for (int64_t oh = 0; oh < h; ++oh)
          for (int64_t ow = 0; ow < w; ++ow)
            for (int64_t ky = 0; ky < 3; ++ky)
              for (int64_t kx = 0; kx < 3; ++kx) {
                const int64_t ih = oh + ky - 1, iw = ow + kx - 1;
                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                const int64_t yi = ((i * k + o) * h + oh) * w + ow,
                              xi = ((i * c + ci) * h + ih) * w + iw,
                              wi = ((o * c + ci) * 3 + ky) * 3 + kx;
                r.y[yi] += double(x[xi]) * wt[wi];
                r.dx[xi] += double(dy[yi]) * wt[wi];
                r.dw[wi] += double(dy[yi]) * x[xi];
              }
  for (int64_t e = 0; e < n * k * hw; ++e) {
    const double v = r.y[e] + bias[e / hw % k];
    r.y[e] = v < 0 ? v * slope : v;
  }
  return r;
}

}  // namespace myelin::test
