// The tile loops of the fused batch norm + ReLU + max pooling kernels (bn_pool_tiles.h): one
// template per loop for L = 8 or 16 lanes, compiled into each clone of the function that runs it.
#include "cpu/bn_pool_tiles.h"

#include <algorithm>

#include "cpu/bn_pool_window.h"
#include "cpu/moments.h"

namespace myelin::cpu::bn_pool {

int64_t tile_lanes(const KernelSpec& s) {
  const int64_t lanes = blocked_lanes(s);
  return lanes ? lanes : kChannelBlock;
}

namespace {

template <int64_t L>
[[gnu::always_inline]] inline void tile_pool_l(const float* x, float* p, int64_t w, int64_t oh,
                                               int64_t ow, const float* scale, const float* shift) {
  const Lanes<L> sc = load<L>(scale), sh = load<L>(shift);
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const float* x0 = x + (2 * oy * w + 2 * ox) * L;
      const Window<L> win(x0, x0 + w * L);
      Lanes<L> m = activated_v<L>(win.x[0], sc, sh);
      for (int j = 1; j < 4; ++j) m = max_v<L>(m, activated_v<L>(win.x[j], sc, sh));
      store<L>(p + (oy * ow + ox) * L, m);
    }
}

// Per lane: sum(dz) and sum(dz * (x - mean)) of one tile, added to the running totals.
template <int64_t L>
[[gnu::always_inline]] inline void tile_grad_sums_l(const float* x, const float* dp, int64_t w,
                                                    int64_t oh, int64_t ow, const float* scale,
                                                    const float* shift, const float* mean,
                                                    double* sum_dz, double* sum_dxm) {
  const Lanes<L> sc = load<L>(scale), sh = load<L>(shift), mn = load<L>(mean);
  Lanes<L> sdz = {}, sdxm = {};
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const float* x0 = x + (2 * oy * w + 2 * ox) * L;
      const WindowPick<L> p(Window<L>(x0, x0 + w * L), load<L>(dp + (oy * ow + ox) * L), sc, sh);
      sdz += p.dz;
      sdxm += p.dz * (p.x - mn);
    }
  for (int64_t k = 0; k < L; ++k) sum_dz[k] += sdz[k], sum_dxm[k] += sdxm[k];
}

// dx = ga * dz + gb * x + gk over one tile of h * w pixels, dz nonzero only at the windows'
// maxima: each window's four elements at once, then the row and column past the last window
// (odd sizes), where dz is 0.
template <int64_t L>
[[gnu::always_inline]] inline void tile_grad_input_l(const float* x, const float* dp, float* dx,
                                                     int64_t h, int64_t w, int64_t oh, int64_t ow,
                                                     const float* scale, const float* shift,
                                                     const float* ga, const float* gb,
                                                     const float* gk) {
  const Lanes<L> sc = load<L>(scale), sh = load<L>(shift), a = load<L>(ga), b = load<L>(gb),
                 k = load<L>(gk), zero = {};
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t at = (2 * oy * w + 2 * ox) * L,
                    row[4] = {at, at + L, at + w * L, at + w * L + L};
      const Window<L> win(x + at, x + at + w * L);
      const WindowPick<L> p(win, load<L>(dp + (oy * ow + ox) * L), sc, sh);
      // The select keeps a * dz a product of its own (not fused into the sum's multiply-add).
      for (int j = 0; j < 4; ++j)
        store<L>(dx + row[j], b * win.x[j] + k + (p.dz_at[j] != zero ? a * p.dz_at[j] : zero));
    }
    for (int64_t r = 2 * oy; r < 2 * oy + 2; ++r)
      for (int64_t i = r * w + 2 * ow; i < (r + 1) * w; ++i)
        store<L>(dx + i * L, b * load<L>(x + i * L) + k);
  }
  for (int64_t i = 2 * oh * w; i < h * w; ++i) store<L>(dx + i * L, b * load<L>(x + i * L) + k);
}

// The pooling and ReLU gradient dz of one tile ([h*w][L]: dp at each window's first maximum of z
// where that is above 0, 0 elsewhere) and its per-lane sum(dz), sum(dz * (x - mean)), added to the
// running totals: tile_grad_sums_l's work, with dz kept for the fused convolution's gradient.
template <int64_t L>
[[gnu::always_inline]] inline void tile_dz_l(const float* x, const float* dp, float* dz, int64_t h,
                                             int64_t w, int64_t oh, int64_t ow, const float* scale,
                                             const float* shift, const float* mean, double* sum_dz,
                                             double* sum_dxm) {
  if (2 * oh != h || 2 * ow != w) std::fill_n(dz, h * w * L, 0.0f);  // rows past the windows
  const Lanes<L> sc = load<L>(scale), sh = load<L>(shift), mn = load<L>(mean);
  Lanes<L> sdz = {}, sdxm = {};
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t at = (2 * oy * w + 2 * ox) * L,
                    row[4] = {at, at + L, at + w * L, at + w * L + L};
      const WindowPick<L> p(Window<L>(x + at, x + at + w * L), load<L>(dp + (oy * ow + ox) * L), sc,
                            sh);
      sdz += p.dz;
      sdxm += p.dz * (p.x - mn);
      for (int j = 0; j < 4; ++j) store<L>(dz + row[j], p.dz_at[j]);
    }
  for (int64_t k = 0; k < L; ++k) sum_dz[k] += sdz[k], sum_dxm[k] += sdxm[k];
}

}  // namespace

MYELIN_VECTOR_CLONES void tile_pool(int64_t lanes, const float* x, float* p, int64_t w, int64_t oh,
                                    int64_t ow, const float* scale, const float* shift) {
  MYELIN_BY_LANES(tile_pool_l, lanes, x, p, w, oh, ow, scale, shift);
}
MYELIN_VECTOR_CLONES void tile_grad_sums(int64_t lanes, const float* x, const float* dp, int64_t w,
                                         int64_t oh, int64_t ow, const float* scale,
                                         const float* shift, const float* mean, double* sum_dz,
                                         double* sum_dxm) {
  MYELIN_BY_LANES(tile_grad_sums_l, lanes, x, dp, w, oh, ow, scale, shift, mean, sum_dz, sum_dxm);
}
MYELIN_VECTOR_CLONES void tile_grad_input(int64_t lanes, const float* x, const float* dp, float* dx,
                                          int64_t h, int64_t w, int64_t oh, int64_t ow,
                                          const float* scale, const float* shift, const float* ga,
                                          const float* gb, const float* gk) {
  MYELIN_BY_LANES(tile_grad_input_l, lanes, x, dp, dx, h, w, oh, ow, scale, shift, ga, gb, gk);
}

MYELIN_VECTOR_CLONES void tile_dz(int64_t lanes, const float* x, const float* dp, float* dz,
                                  int64_t h, int64_t w, int64_t oh, int64_t ow, const float* scale,
                                  const float* shift, const float* mean, double* sum_dz,
                                  double* sum_dxm) {
  MYELIN_BY_LANES(tile_dz_l, lanes, x, dp, dz, h, w, oh, ow, scale, shift, mean, sum_dz, sum_dxm);
}

MYELIN_VECTOR_CLONES void add_tiles(const float* a, const float* b, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

}  // namespace myelin::cpu::bn_pool

namespace myelin::cpu {

MYELIN_VECTOR_CLONES void tile_moments(int64_t lanes, const float* t, int64_t s, double* sum,
                                       double* m2) {
  MYELIN_BY_LANES(tile_moments_l, lanes, t, s, sum, m2);
}

}  // namespace myelin::cpu
