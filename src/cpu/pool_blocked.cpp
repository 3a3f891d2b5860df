// Our max pooling kernels on blocked layouts (nChw16c, nChw8c; blocked.h): the pair pools (2x2,
// stride 2) forward and backward, and the general max gradient, with the B channels of a pixel
// in the lanes of one vector. The rules are pool.cpp's plain kernels'.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/blocked.h"
#include "cpu/pool_geometry.h"
#include "cpu/simd.h"

namespace myelin::cpu {

namespace {

// The pair pools on blocked layouts: the same rules with the B channels of a pixel (16 or 8) in
// the lanes of one vector ([plane][h][w][B], a plane per (n, channel block)).
template <int64_t B>
[[gnu::always_inline]] inline void blocked_pair_max_row_b(const float* x0, const float* x1,
                                                          float* y, int64_t ow) {
  for (int64_t j = 0; j < ow; ++j) {
    const float *a = x0 + 2 * j * B, *b = x1 + 2 * j * B;
#pragma omp simd
    for (int64_t l = 0; l < B; ++l)
      y[j * B + l] = std::max(std::max(a[l], a[B + l]), std::max(b[l], b[B + l]));
  }
}

template <int64_t B>
[[gnu::always_inline]] inline void blocked_pair_max_grad_row_b(const float* x0, const float* x1,
                                                               const float* y, const float* dy,
                                                               float* dx0, float* dx1, int64_t ow,
                                                               bool relu_grad) {
  for (int64_t j = 0; j < ow; ++j) {
    const int64_t at = 2 * j * B;
#pragma omp simd
    for (int64_t l = 0; l < B; ++l) {
      const float m = y[j * B + l], d = relu_grad && !(m > 0) ? 0.0f : dy[j * B + l];
      const int a = x0[at + l] == m, b = (x0[at + B + l] == m) & !a;
      const int c = (x1[at + l] == m) & !(a | b), e = (x1[at + B + l] == m) & !(a | b | c);
      dx0[at + l] = a ? d : 0.0f;
      dx0[at + B + l] = b ? d : 0.0f;
      dx1[at + l] = c ? d : 0.0f;
      dx1[at + B + l] = e ? d : 0.0f;
    }
  }
}

MYELIN_VECTOR_CLONES void blocked_pair_max_row(int64_t lanes, const float* x0, const float* x1,
                                               float* y, int64_t ow) {
  if (lanes == 8) return blocked_pair_max_row_b<8>(x0, x1, y, ow);
  blocked_pair_max_row_b<16>(x0, x1, y, ow);
}

MYELIN_VECTOR_CLONES void blocked_pair_max_grad_row(int64_t lanes, const float* x0, const float* x1,
                                                    const float* y, const float* dy, float* dx0,
                                                    float* dx1, int64_t ow, bool relu_grad) {
  if (lanes == 8) return blocked_pair_max_grad_row_b<8>(x0, x1, y, dy, dx0, dx1, ow, relu_grad);
  blocked_pair_max_grad_row_b<16>(x0, x1, y, dy, dx0, dx1, ow, relu_grad);
}

class BlockedPairMaxPool : public Kernel {
 public:
  explicit BlockedPairMaxPool(const KernelSpec& s)
      : g_(s.input(0).shape, s.node.attrs), lanes_(block_of(s.output_layout(0))) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const int64_t B = lanes_;
    const float* x = in[0].f32();
    float* y = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * channel_blocks(g.c, B); ++plane)
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const float* x0 = x + (plane * g.h + 2 * oy) * g.w * B;
        blocked_pair_max_row(B, x0, x0 + g.w * B, y + (plane * g.oh + oy) * g.ow * B, g.ow);
      }
  }

 private:
  PoolGeometry g_;
  int64_t lanes_;
};

class BlockedPairMaxPoolGrad : public Kernel {
 public:
  explicit BlockedPairMaxPoolGrad(const KernelSpec& s)
      : g_(s.input(1).shape, s.node.attrs),
        relu_grad_(fused_relu_grad(s.node)),
        lanes_(block_of(s.output_layout(0))) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const int64_t B = lanes_;
    const float *dy = in[0].f32(), *x = in[1].f32(), *y = in[2].f32();
    float* dx = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * channel_blocks(g.c, B); ++plane) {
      float* dxp = dx + plane * g.h * g.w * B;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t row = 2 * oy * g.w * B, at = (plane * g.oh + oy) * g.ow * B;
        const float* x0 = x + plane * g.h * g.w * B + row;
        blocked_pair_max_grad_row(B, x0, x0 + g.w * B, y + at, dy + at, dxp + row,
                                  dxp + row + g.w * B, g.ow, relu_grad_);
        for (int64_t r = row; r < row + 2 * g.w * B; r += g.w * B)  // an odd width's last column
          std::fill(dxp + r + 2 * g.ow * B, dxp + r + g.w * B, 0.0f);
      }
      std::fill(dxp + 2 * g.oh * g.w * B, dxp + g.h * g.w * B, 0.0f);  // an odd height's last row
    }
  }

 private:
  PoolGeometry g_;
  bool relu_grad_;  // a fused ReLU's gradient: dy counts only where y > 0
  int64_t lanes_;
};

// One window of a max gradient on a blocked layout: in each of the B lanes (channels), dy goes
// to the first of the window's elements (row-major, row stride `w` pixels) equal to the lane's
// maximum; what is left to give drops to 0 once given, so the other elements add 0.
template <int64_t B>
[[gnu::always_inline]] inline void blocked_window_grad_b(const float* x, float* dx, const float* m,
                                                         const float* dy, int64_t rows,
                                                         int64_t cols, int64_t w) {
  float left[B];
  for (int64_t l = 0; l < B; ++l) left[l] = dy[l];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float* xv = x + (r * w + c) * B;
      float* dv = dx + (r * w + c) * B;
#pragma omp simd
      for (int64_t l = 0; l < B; ++l) {
        const bool hit = xv[l] == m[l];
        dv[l] += hit ? left[l] : 0.0f;
        left[l] = hit ? 0.0f : left[l];
      }
    }
}

MYELIN_VECTOR_CLONES void blocked_window_grad(int64_t lanes, const float* x, float* dx,
                                              const float* m, const float* dy, int64_t rows,
                                              int64_t cols, int64_t w) {
  if (lanes == 8) return blocked_window_grad_b<8>(x, dx, m, dy, rows, cols, w);
  blocked_window_grad_b<16>(x, dx, m, dy, rows, cols, w);
}

// max_pool2d_grad on a blocked layout: MaxPoolGrad's rule on planes of 16- or 8-channel vectors.
// Windows are visited in the same order as there, so every dx element sums the same terms in the
// same order. Padding channels (x, y and dy zero) get zeros.
class BlockedMaxPoolGrad : public Kernel {
 public:
  explicit BlockedMaxPoolGrad(const KernelSpec& s)
      : g_(s.input(1).shape, s.node.attrs), lanes_(block_of(s.output_layout(0))) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const int64_t B = lanes_;
    const float *dy = in[0].f32(), *x = in[1].f32(), *y = in[2].f32();
    float* dx = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * channel_blocks(g.c, B); ++plane) {
      const float* xp = x + plane * g.h * g.w * B;
      float* dxp = dx + plane * g.h * g.w * B;
      std::fill_n(dxp, g.h * g.w * B, 0.0f);
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t at = ((plane * g.oh + oy) * g.ow + ox) * B;
          const int64_t corner = (g.rows.begin[oy] * g.w + g.cols.begin[ox]) * B;
          blocked_window_grad(B, xp + corner, dxp + corner, y + at, dy + at,
                              g.rows.end[oy] - g.rows.begin[oy], g.cols.end[ox] - g.cols.begin[ox],
                              g.w);
        }
    }
  }

 private:
  PoolGeometry g_;
  int64_t lanes_;
};

}  // namespace

std::unique_ptr<Kernel> make_blocked_max_pool(const KernelSpec& s) {
  return std::make_unique<BlockedPairMaxPool>(s);
}

std::unique_ptr<Kernel> make_blocked_max_pool_grad(const KernelSpec& s) {
  if (is_pair_pool(PoolGeometry(s.input(1).shape, s.node.attrs)))
    return std::make_unique<BlockedPairMaxPoolGrad>(s);
  return std::make_unique<BlockedMaxPoolGrad>(s);
}

}  // namespace myelin::cpu
