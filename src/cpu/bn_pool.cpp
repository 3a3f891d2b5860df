// Batch norm + ReLU + 2x2 stride-2 max pooling in one kernel, and their gradient in one (the
// nodes fuse.cpp makes: "pool" = "max2"). Why: in a ResNet stem these three stream the network's
// largest activations, and apart they read and write them many times: batch norm reads x three
// times and writes z = relu(bn(x)), the pooling reads z; backward, the pooling gradient reads z
// and writes dz, batch norm's gradient reads dz and x twice and writes dx. Fused, z and dz are
// never stored: forward reads x twice (statistics, then the pooled output), backward reads x
// twice (sums, then dx) and writes dx, recomputing z from x where it needs the windows' maxima.
//
// The work goes by units of one image's channel block: a tile of h*w pixels x L lanes (L = 16 or
// 8, the blocked operands' block; 16 where all are plain), made from plain rows where an operand
// is plain (blocked.h), in the calling thread's buffers. Sums over the batch go to per-image
// partials first, added in image order, so results do not depend on the thread count. The
// statistics combine per-image means and centred sums of squares (moments.h), one pass over x.
//
// The gradient recomputes each window's four values z = max(x * scale + shift, 0) with the
// forward's scale and shift (both from the rounded mean and invstd outputs, so the same floats)
// and sends dp to the first maximum, where the maximum is above 0 (the ReLU's gradient), as the
// unfused pooling gradient does. Rows and columns past the last window (odd sizes) get none.
//
// A thin convolution in front ("conv" = "stem", StemConv below) is computed inside both kernels,
// so x is never stored at all: the forward computes it once per tile for the pooling, its
// statistics come from the image's, and the gradient writes the convolution's weight gradient in
// dx's place. For 9 taps (3x3 on one channel) the convolution runs inside the window loops
// themselves (stem_pool_l, stem_grad_l). The small ResNet's stem (conv1, bn1, relu1, pool1) went
// from 0.8 + 1.0 + 0.26 ms forward and 1.0 + 1.8 + 1.0 ms backward to 0.7 and 1.4 ms (2 threads,
// batch 128, Xeon with AVX-512).
#include "cpu/bn_pool.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "cpu/blocked.h"
#include "cpu/cpu_backend.h"
#include "cpu/moments.h"
#include "cpu/simd.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

struct Geometry {
  int64_t n, c, h, w, oh, ow, lanes;
  Geometry(const Shape& x, const Shape& p, int64_t lanes_)
      : n(x[0]), c(x[1]), h(x[2]), w(x[3]), oh(p[2]), ow(p[3]), lanes(lanes_) {}
  int64_t blocks() const { return channel_blocks(c, lanes); }
  int64_t padded() const { return blocks() * lanes; }  // per-channel arrays, lanes included
  int64_t units() const { return n * blocks(); }
  int64_t real(int64_t c0) const { return std::min(lanes, c - c0); }
  double per_channel() const { return static_cast<double>(n * h * w); }
};

// The block of the operands stored blocked, or 16 where none is (the tiles convert them all).
int64_t tile_lanes(const KernelSpec& s) {
  int64_t lanes = 0;
  for (size_t i = 0; i < s.node.inputs.size(); ++i)
    lanes = std::max(lanes, block_of(s.input_layout(i)));
  for (size_t i = 0; i < s.node.outputs.size(); ++i)
    lanes = std::max(lanes, block_of(s.output_layout(i)));
  return lanes ? lanes : kChannelBlock;
}

// One activation operand of `pixels` pixels a channel: a blocked one is read and written in
// place, a plain one through a tile of the calling thread (`buf`).
struct Operand {
  float* base;
  bool blocked;
  int64_t pixels;
  int64_t tile_at(const Geometry& g, int64_t n, int64_t c0) const {
    return (n * g.blocks() + c0 / g.lanes) * g.lanes * pixels;
  }
  const float* read(const Geometry& g, int64_t n, int64_t c0, float* buf) const {
    if (blocked) return base + tile_at(g, n, c0);
    rows_to_tile(base + (n * g.c + c0) * pixels, pixels, g.real(c0), buf, g.lanes);
    return buf;
  }
  float* target(const Geometry& g, int64_t n, int64_t c0, float* buf) const {
    return blocked ? base + tile_at(g, n, c0) : buf;
  }
  void written(const Geometry& g, int64_t n, int64_t c0, const float* buf) const {
    if (!blocked) tile_to_rows(buf, pixels, g.real(c0), base + (n * g.c + c0) * pixels, g.lanes);
  }
};

Operand operand(const Tensor& t, Layout layout, const Shape& shape) {
  return {t.f32(), is_blocked(layout), shape[2] * shape[3]};
}

// --- Lane loops on tiles ([pixel][L]), one channel per lane. ---

constexpr int64_t kSumPixels = 256;  // pixels summed in float before going to double

// L floats as one GCC vector: the window and convolution loops work on these rather than in
// `omp simd` loops over the lanes, which GCC left scalar for L = 8 in the AVX-512 clone (it tried
// 16-float vectors). Vector selects (c ? a : b) are branch-free.
template <int64_t L>
struct LanesOf {
  typedef float type __attribute__((vector_size(L * sizeof(float))));
};
template <int64_t L>
using Lanes = typename LanesOf<L>::type;

// GCC warns that passing such vectors by value has another ABI without AVX; these helpers are
// always inlined into the clones that use them, so no call passes one.
#pragma GCC diagnostic ignored "-Wpsabi"

template <int64_t L>
[[gnu::always_inline]] inline Lanes<L> load(const float* p) {
  Lanes<L> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int64_t L>
[[gnu::always_inline]] inline void store(float* p, Lanes<L> v) {
  std::memcpy(p, &v, sizeof v);
}

// z of a vector of elements: the ReLU of the batch norm's output. Forward and gradient both
// compute z by this, so alike.
template <int64_t L>
[[gnu::always_inline]] inline Lanes<L> activated_v(Lanes<L> x, Lanes<L> scale, Lanes<L> shift) {
  const Lanes<L> v = x * scale + shift, zero = {};
  return v < zero ? zero : v;
}

template <int64_t L>
[[gnu::always_inline]] inline Lanes<L> max_v(Lanes<L> a, Lanes<L> b) {
  return a < b ? b : a;
}

// One window's four rows of lanes: its elements (row-major) at x0, x0 + L, x1, x1 + L.
template <int64_t L>
struct Window {
  Lanes<L> x[4];
  Window(const float* x0, const float* x1)
      : x{load<L>(x0), load<L>(x0 + L), load<L>(x1), load<L>(x1 + L)} {}
  explicit Window(const Lanes<L> (&v)[4]) : x{v[0], v[1], v[2], v[3]} {}
};

// The pooled z of one tile: p[oy][ox] = max of the window's four z.
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

// One window's gradient, per lane: which of its four elements is the first maximum of z, as the
// pooling gradient picks (one-hot masks), the x there, and dz there: dp where the maximum is above
// 0, else 0.
template <int64_t L>
struct WindowPick {
  using Mask = decltype(Lanes<L>{} < Lanes<L>{});
  Mask hit[4];
  Lanes<L> x, dz;
  WindowPick(const Window<L>& win, Lanes<L> dp, Lanes<L> scale, Lanes<L> shift) {
    Lanes<L> z[4];
    for (int j = 0; j < 4; ++j) z[j] = activated_v<L>(win.x[j], scale, shift);
    const Lanes<L> m = max_v<L>(max_v<L>(z[0], z[1]), max_v<L>(z[2], z[3])), zero = {};
    Mask taken = z[0] != z[0];  // all false
    x = win.x[3];
    for (int j = 0; j < 4; ++j) {
      hit[j] = j < 3 ? (z[j] == m) & ~taken : ~taken;
      taken |= hit[j];
    }
    for (int j = 2; j >= 0; --j) x = hit[j] ? win.x[j] : x;
    dz = m > zero ? dp : zero;
  }
};

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
      const Lanes<L> add = a * p.dz;
      for (int j = 0; j < 4; ++j) store<L>(dx + row[j], b * win.x[j] + k + (p.hit[j] ? add : zero));
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
  const Lanes<L> sc = load<L>(scale), sh = load<L>(shift), mn = load<L>(mean), zero = {};
  Lanes<L> sdz = {}, sdxm = {};
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t at = (2 * oy * w + 2 * ox) * L,
                    row[4] = {at, at + L, at + w * L, at + w * L + L};
      const WindowPick<L> p(Window<L>(x + at, x + at + w * L), load<L>(dp + (oy * ow + ox) * L), sc,
                            sh);
      sdz += p.dz;
      sdxm += p.dz * (p.x - mn);
      for (int j = 0; j < 4; ++j) store<L>(dz + row[j], p.hit[j] ? p.dz : zero);
    }
  for (int64_t k = 0; k < L; ++k) sum_dz[k] += sdz[k], sum_dxm[k] += sdxm[k];
}

// Pixels a convolution loop keeps in flight: independent accumulators, so that it runs at the
// multiply-add units' throughput rather than at one add's latency per tap.
constexpr int64_t kPixels = 4;

// One tile of the fused stem convolution: x[pixel][k] = sum over taps t of wt[t][k] * the image
// element that tap reads for the pixel (pimg: the image zero-padded, so every tap reads inside
// it; off[t]: each tap's offset there). kPixels pixels of a row at a time, then the row's rest.
template <int64_t L>
[[gnu::always_inline]] inline void conv_tile_l(const float* pimg, const int64_t* off, int64_t taps,
                                               const float* wt, int64_t oh, int64_t ow, int64_t sh,
                                               int64_t sw, int64_t wp, float* x) {
  for (int64_t oy = 0; oy < oh; ++oy) {
    const float* row = pimg + oy * sh * wp;
    float* xr = x + oy * ow * L;
    int64_t ox = 0;
    for (; ox + kPixels <= ow; ox += kPixels) {
      Lanes<L> acc[kPixels] = {};
      for (int64_t t = 0; t < taps; ++t) {
        const Lanes<L> w = load<L>(wt + t * L);
        for (int64_t j = 0; j < kPixels; ++j) acc[j] += w * row[(ox + j) * sw + off[t]];
      }
      for (int64_t j = 0; j < kPixels; ++j) store<L>(xr + (ox + j) * L, acc[j]);
    }
    for (; ox < ow; ++ox) {
      Lanes<L> acc = {};
      for (int64_t t = 0; t < taps; ++t) acc += load<L>(wt + t * L) * row[ox * sw + off[t]];
      store<L>(xr + ox * L, acc);
    }
  }
}

// The fused convolution's weight gradient term of one tile, added to the running totals: per tap
// t and lane k, g1 += sum(dz * col_t), col_t the image elements tap t reads. By linearity of
// dx = a * dz + b * (x - mean) + k', dW = a * g1 + b * sum((x - mean) * col) + k' * sum(col), and
// the last two come from the image's moments (StemConv), so dx itself is never formed.
template <int64_t L>
[[gnu::always_inline]] inline void conv_grad_tile_l(const float* pimg, const int64_t* off,
                                                    int64_t taps, const float* dz, int64_t oh,
                                                    int64_t ow, int64_t sh, int64_t sw, int64_t wp,
                                                    double* g1) {
  for (int64_t t = 0; t < taps; ++t) {
    Lanes<L> acc[kPixels] = {};
    for (int64_t oy = 0; oy < oh; ++oy) {
      const float* col = pimg + oy * sh * wp + off[t];
      const float* d = dz + oy * ow * L;
      int64_t ox = 0;
      for (; ox + kPixels <= ow; ox += kPixels)
        for (int64_t j = 0; j < kPixels; ++j)
          acc[j] += load<L>(d + (ox + j) * L) * col[(ox + j) * sw];
      for (; ox < ow; ++ox) acc[0] += load<L>(d + ox * L) * col[ox * sw];
    }
    for (int64_t j = 1; j < kPixels; ++j) acc[0] += acc[j];
    for (int64_t k = 0; k < L; ++k) g1[t * L + k] += acc[0][k];
  }
}

// Sum of a row of floats: float lanes over blocks, the blocks added in double.
MYELIN_VECTOR_CLONES double row_total(const float* r, int64_t len) {
  double total = 0;
  for (int64_t b = 0; b < len; b += kSumPixels * 4) {
    // Four vector accumulators: one would wait on its own add every step.
    const int64_t end = std::min(len, b + kSumPixels * 4);
    Lanes<8> acc[4] = {};
    int64_t i = b;
    for (; i + 32 <= end; i += 32)
      for (int j = 0; j < 4; ++j) acc[j] += load<8>(r + i + 8 * j);
    float sum = 0;
    for (; i < end; ++i) sum += r[i];
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 8; ++k) sum += acc[j][k];
    total += sum;
  }
  return total;
}

// dst[i] = src[i * stride], i < len: vector copies where the stride is 1 (the small runs of a
// padded image and its columns, which std::copy sent to a memmove call each; inline, as a call
// per run cost as much).
[[gnu::always_inline]] inline void copy_run(const float* src, int64_t stride, int64_t len,
                                            float* dst) {
  int64_t i = 0;
  if (stride == 1)
    for (; i + 8 <= len; i += 8) store<8>(dst + i, load<8>(src + i));
  for (; i < len; ++i) dst[i] = src[i * stride];
}

// One image's column moments: cols holds its `taps` columns (rows of s pixels); sum[t] = their
// sums, co[t][u] = the sums of products about the image's own means (cols centred in place; the
// products by one SGEMM, `gram` its float result).
bool column_moments(float* cols, int64_t taps, int64_t s, float* gram, double* sum, double* co) {
  std::vector<double> shift(taps);
  for (int64_t t = 0; t < taps; ++t) {
    float* r = cols + t * s;
    sum[t] = row_total(r, s);
    const float mean = static_cast<float>(sum[t] / s);
    shift[t] = sum[t] / s - mean;  // what the float mean misses of the exact one
    for (int64_t i = 0; i < s; ++i) r[i] -= mean;
  }
  if (dnnl_sgemm('N', 'T', taps, taps, s, 1.0f, cols, s, cols, s, 0.0f, gram, taps) != dnnl_success)
    return false;
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t u = 0; u < taps; ++u)
      co[t * taps + u] = gram[t * taps + u] - s * shift[t] * shift[u];
  return true;
}

// The convolution's clones: MYELIN_VECTOR_CLONES' AVX-512 and AVX2 targets leave out FMA, and
// these loops are bound by multiply-adds. Forward and gradient compute x by the same clone, so
// alike.
#define MYELIN_FMA_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

// f<16>(args...) or f<8>(args...) by `lanes`, inside the calling clone.
#define lanes_call(f, lanes, ...) ((lanes) == 8 ? f<8>(__VA_ARGS__) : f<16>(__VA_ARGS__))

MYELIN_VECTOR_CLONES void tile_moments(int64_t lanes, const float* t, int64_t s, double* sum,
                                       double* m2) {
  lanes_call(tile_moments_l, lanes, t, s, sum, m2);
}
MYELIN_VECTOR_CLONES void tile_pool(int64_t lanes, const float* x, float* p, int64_t w, int64_t oh,
                                    int64_t ow, const float* scale, const float* shift) {
  lanes_call(tile_pool_l, lanes, x, p, w, oh, ow, scale, shift);
}
MYELIN_VECTOR_CLONES void tile_grad_sums(int64_t lanes, const float* x, const float* dp, int64_t w,
                                         int64_t oh, int64_t ow, const float* scale,
                                         const float* shift, const float* mean, double* sum_dz,
                                         double* sum_dxm) {
  lanes_call(tile_grad_sums_l, lanes, x, dp, w, oh, ow, scale, shift, mean, sum_dz, sum_dxm);
}
MYELIN_VECTOR_CLONES void tile_grad_input(int64_t lanes, const float* x, const float* dp, float* dx,
                                          int64_t h, int64_t w, int64_t oh, int64_t ow,
                                          const float* scale, const float* shift, const float* ga,
                                          const float* gb, const float* gk) {
  lanes_call(tile_grad_input_l, lanes, x, dp, dx, h, w, oh, ow, scale, shift, ga, gb, gk);
}

MYELIN_VECTOR_CLONES void tile_dz(int64_t lanes, const float* x, const float* dp, float* dz,
                                  int64_t h, int64_t w, int64_t oh, int64_t ow, const float* scale,
                                  const float* shift, const float* mean, double* sum_dz,
                                  double* sum_dxm) {
  lanes_call(tile_dz_l, lanes, x, dp, dz, h, w, oh, ow, scale, shift, mean, sum_dz, sum_dxm);
}
MYELIN_FMA_CLONES void conv_tile(int64_t lanes, const float* pimg, const int64_t* off, int64_t taps,
                                 const float* wt, int64_t oh, int64_t ow, int64_t sh, int64_t sw,
                                 int64_t wp, float* x) {
  lanes_call(conv_tile_l, lanes, pimg, off, taps, wt, oh, ow, sh, sw, wp, x);
}
MYELIN_FMA_CLONES void conv_grad_tile(int64_t lanes, const float* pimg, const int64_t* off,
                                      int64_t taps, const float* dz, int64_t oh, int64_t ow,
                                      int64_t sh, int64_t sw, int64_t wp, double* g1) {
  lanes_call(conv_grad_tile_l, lanes, pimg, off, taps, dz, oh, ow, sh, sw, wp, g1);
}

// --- The stem convolution of T taps (3x3 on one channel: T = 9) fused into the window loops: each
// window's four x computed in registers from the padded image, used there and dropped, so x and
// dz never go through a tile. The weights and, in the gradient, the T weight-gradient accumulators
// stay in registers (T known at compile time). ---

// The image elements of tap t for a window's four pixels: at[j] + off[t], at[j] the pixel's
// corner in the padded image.
struct WindowPixels {
  int64_t at[4];
  WindowPixels(int64_t oy, int64_t ox, int64_t sh, int64_t sw, int64_t wp) {
    for (int j = 0; j < 4; ++j) at[j] = (2 * oy + j / 2) * sh * wp + (2 * ox + j % 2) * sw;
  }
};

template <int64_t L, int64_t T>
[[gnu::always_inline]] inline void window_x(const float* pimg, const int64_t* off,
                                            const Lanes<L> (&w)[T], const WindowPixels& px,
                                            Lanes<L> (&x)[4]) {
  // Unrolled, so that the weights and accumulators stay in registers.
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    Lanes<L> acc = {};
#pragma GCC unroll 16
    for (int64_t t = 0; t < T; ++t) acc += w[t] * pimg[px.at[j] + off[t]];
    x[j] = acc;
  }
}

// The forward: the pooled z of one unit straight from the image (conv_tile_l and tile_pool_l in
// one loop).
template <int64_t L, int64_t T>
[[gnu::always_inline]] inline void stem_pool_l(const float* pimg, const int64_t* off,
                                               const float* wt, int64_t oh, int64_t ow, int64_t sh,
                                               int64_t sw, int64_t wp, const float* scale,
                                               const float* shift, float* p) {
  Lanes<L> w[T];
#pragma GCC unroll 16
  for (int64_t t = 0; t < T; ++t) w[t] = load<L>(wt + t * L);
  const Lanes<L> sc = load<L>(scale), shv = load<L>(shift);
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      Lanes<L> x[4];
      window_x<L, T>(pimg, off, w, WindowPixels(oy, ox, sh, sw, wp), x);
      Lanes<L> m = activated_v<L>(x[0], sc, shv);
      for (int j = 1; j < 4; ++j) m = max_v<L>(m, activated_v<L>(x[j], sc, shv));
      store<L>(p + (oy * ow + ox) * L, m);
    }
}

// The gradient: per lane sum(dz), sum(dz * (x - mean)) and per tap g1 = sum(dz * col_t) of one
// unit (tile_dz_l and conv_grad_tile_l in one loop), added to the running totals.
template <int64_t L, int64_t T>
[[gnu::always_inline]] inline void stem_grad_l(const float* pimg, const int64_t* off,
                                               const float* wt, const float* dp, int64_t oh,
                                               int64_t ow, int64_t sh, int64_t sw, int64_t wp,
                                               const float* scale, const float* shift,
                                               const float* mean, double* sum_dz, double* sum_dxm,
                                               double* g1) {
  Lanes<L> w[T], g[T] = {};
#pragma GCC unroll 16
  for (int64_t t = 0; t < T; ++t) w[t] = load<L>(wt + t * L);
  const Lanes<L> sc = load<L>(scale), shv = load<L>(shift), mn = load<L>(mean), zero = {};
  Lanes<L> sdz = {}, sdxm = {};
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const WindowPixels px(oy, ox, sh, sw, wp);
      Lanes<L> x[4];
      window_x<L, T>(pimg, off, w, px, x);
      const WindowPick<L> p(Window<L>(x), load<L>(dp + (oy * ow + ox) * L), sc, shv);
      sdz += p.dz;
      sdxm += p.dz * (p.x - mn);
      Lanes<L> d[4];
      for (int j = 0; j < 4; ++j) d[j] = p.hit[j] ? p.dz : zero;
#pragma GCC unroll 16
      for (int64_t t = 0; t < T; ++t)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) g[t] += d[j] * pimg[px.at[j] + off[t]];
    }
  for (int64_t k = 0; k < L; ++k) sum_dz[k] += sdz[k], sum_dxm[k] += sdxm[k];
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < L; ++k) g1[t * L + k] += g[t][k];
}

constexpr int64_t kStemTaps = 9;  // the taps the fused window loops are compiled for

MYELIN_FMA_CLONES void stem_pool(int64_t lanes, const float* pimg, const int64_t* off,
                                 const float* wt, int64_t oh, int64_t ow, int64_t sh, int64_t sw,
                                 int64_t wp, const float* scale, const float* shift, float* p) {
  if (lanes == 8)
    return stem_pool_l<8, kStemTaps>(pimg, off, wt, oh, ow, sh, sw, wp, scale, shift, p);
  stem_pool_l<16, kStemTaps>(pimg, off, wt, oh, ow, sh, sw, wp, scale, shift, p);
}

MYELIN_FMA_CLONES void stem_grad(int64_t lanes, const float* pimg, const int64_t* off,
                                 const float* wt, const float* dp, int64_t oh, int64_t ow,
                                 int64_t sh, int64_t sw, int64_t wp, const float* scale,
                                 const float* shift, const float* mean, double* sum_dz,
                                 double* sum_dxm, double* g1) {
  if (lanes == 8)
    return stem_grad_l<8, kStemTaps>(pimg, off, wt, dp, oh, ow, sh, sw, wp, scale, shift, mean,
                                     sum_dz, sum_dxm, g1);
  stem_grad_l<16, kStemTaps>(pimg, off, wt, dp, oh, ow, sh, sw, wp, scale, shift, mean, sum_dz,
                             sum_dxm, g1);
}

#undef lanes_call

// y = a + b over n floats (y may be a): dp made of its two addends.
MYELIN_VECTOR_CLONES void add_tiles(const float* a, const float* b, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

// The workspace of both kernels: per-image partial sums (doubles), per-channel float arrays,
// then each thread's tiles.
struct Workspace {
  int64_t partial_doubles, channel_floats, tile_floats;
  int threads;
  size_t bytes() const {
    return static_cast<size_t>(partial_doubles) * sizeof(double) +
           static_cast<size_t>(channel_floats + tile_floats * threads) * sizeof(float);
  }
  double* partials(void* ws) const { return static_cast<double*>(ws); }
  float* channels(void* ws) const {
    return reinterpret_cast<float*>(partials(ws) + partial_doubles);
  }
  float* tiles(void* ws, int64_t t) const {
    return channels(ws) + channel_floats + t * tile_floats;
  }
};

// Runs unit(n, c0, t) on the calling thread t's share of the (image, channel block) units.
template <class Unit>
void for_my_units(const Geometry& g, Unit unit) {
  const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads(), units = g.units();
  for (int64_t r = units * t / nt; r < units * (t + 1) / nt; ++r)
    unit(r / g.blocks(), r % g.blocks() * g.lanes, t);
}

// The stem convolution fused in front of the batch norm (fuse.cpp: "conv" = "stem" on both nodes,
// the image in x's place and the weights w[o, cin, kh, kw] as the last input): a convolution of
// few taps (a gray or RGB image's first layer), so x is cheaper to compute again tile by tile from
// the image, which stays in cache, than to store and read back. Each thread zero-pads the image it
// works on once, so that every tap reads inside the padded copy.
//
// x is linear in the image's columns (col_t: what tap t reads for each pixel), so its batch
// statistics follow from theirs: mean_c = w_c . mu and var_c = w_c' Cov w_c, mu and Cov the
// columns' mean and covariance over the batch, from one cheap pass over the image (T columns
// instead of C channels). The forward pass then computes x once (for the pooling), and the
// gradient's sum((x - mean) * col_t) = m * (Cov w_c)[t] + m * mu_t * (w_c . mu - mean) needs no
// pass at all.
struct ImageStats {
  std::vector<double> mu, cov;  // T, T x T
};

class StemConv {
 public:
  StemConv(const KernelSpec& s, int image_input, int weight_input)
      : on_(s.node.attrs.s("conv", "") == "stem"), cp_(s.node.attrs) {
    if (!on_) return;
    const Shape &img = s.input(image_input).shape, &w = s.input(weight_input).shape;
    n_ = img[0], cin_ = img[1], h_ = img[2], w_ = img[3], o_ = w[0], kh_ = w[2], kw_ = w[3];
    oh_ = (h_ + 2 * cp_.pad_h - cp_.dil_h * (kh_ - 1) - 1) / cp_.stride_h + 1;
    ow_ = (w_ + 2 * cp_.pad_w - cp_.dil_w * (kw_ - 1) - 1) / cp_.stride_w + 1;
    hp_ = (oh_ - 1) * cp_.stride_h + (kh_ - 1) * cp_.dil_h + 1;
    wp_ = (ow_ - 1) * cp_.stride_w + (kw_ - 1) * cp_.dil_w + 1;
    for (int64_t ci = 0; ci < cin_; ++ci)
      for (int64_t ky = 0; ky < kh_; ++ky)
        for (int64_t kx = 0; kx < kw_; ++kx)
          off_.push_back((ci * hp_ + ky * cp_.dil_h) * wp_ + kx * cp_.dil_w);
  }
  bool on() const { return on_; }
  Shape x_shape() const { return Shape{n_, o_, oh_, ow_}; }
  int64_t taps() const { return on_ ? cin_ * kh_ * kw_ : 0; }
  // A thread's scratch: the padded image, then its columns.
  int64_t image_floats() const { return on_ ? cin_ * hp_ * wp_ : 0; }
  int64_t scratch_floats() const { return image_floats() + taps() * oh_ * ow_ + taps() * taps(); }
  // The per-image moments: sums (T) and co-moments (T x T).
  int64_t moment_doubles() const { return n_ * (taps() + taps() * taps()); }

  // wt[block][tap][lane]: the weights of each channel block by tap, padding channels 0.
  void transpose_weights(const Geometry& g, const float* w, float* wt) const {
    const int64_t taps = this->taps();
    for (int64_t c = 0; c < g.padded(); ++c)
      for (int64_t t = 0; t < taps; ++t)
        wt[(c / g.lanes * taps + t) * g.lanes + c % g.lanes] = c < g.c ? w[c * taps + t] : 0.0f;
  }
  // Image n of img, zero-padded, into pimg (cin x hp x wp).
  void pad(const float* img, int64_t n, float* pimg) const {
    std::fill_n(pimg, image_floats(), 0.0f);
    const int64_t x1 = std::min(w_, wp_ - cp_.pad_w);
    for (int64_t ci = 0; ci < cin_; ++ci)
      for (int64_t y = 0; y < h_ && y + cp_.pad_h < hp_; ++y) {
        const float* row = img + ((n * cin_ + ci) * h_ + y) * w_;
        copy_run(row, 1, x1, pimg + (ci * hp_ + y + cp_.pad_h) * wp_ + cp_.pad_w);
      }
  }
  // x's tile of channels from c0, from the padded image.
  void tile(const Geometry& g, const float* pimg, const float* wt, int64_t c0, float* x) const {
    conv_tile(g.lanes, pimg, off_.data(), taps(), wt + c0 * taps(), oh_, ow_, cp_.stride_h,
              cp_.stride_w, wp_, x);
  }
  // Whether the window loops with the convolution inside (stem_pool, stem_grad) apply: T taps.
  bool windowed() const { return taps() == kStemTaps; }
  // The pooled z of unit c0 from the padded image (stem_pool_l).
  void pool(const Geometry& g, const float* pimg, const float* wt, int64_t c0, const float* scale,
            const float* shift, float* p) const {
    stem_pool(g.lanes, pimg, off_.data(), wt + c0 * taps(), g.oh, g.ow, cp_.stride_h, cp_.stride_w,
              wp_, scale, shift, p);
  }
  // The gradient sums of unit c0 from the padded image (stem_grad_l).
  void grad(const Geometry& g, const float* pimg, const float* wt, int64_t c0, const float* dp,
            const float* scale, const float* shift, const float* mean, double* sum_dz,
            double* sum_dxm, double* g1) const {
    stem_grad(g.lanes, pimg, off_.data(), wt + c0 * taps(), dp, g.oh, g.ow, cp_.stride_h,
              cp_.stride_w, wp_, scale, shift, mean, sum_dz, sum_dxm, g1);
  }
  // The weight gradient term g1 of that tile (conv_grad_tile_l).
  void grad_tile(const Geometry& g, const float* pimg, const float* dz, double* g1) const {
    conv_grad_tile(g.lanes, pimg, off_.data(), taps(), dz, oh_, ow_, cp_.stride_h, cp_.stride_w,
                   wp_, g1);
  }

  // The moments of image n's columns into moments (moment_doubles: sums, then co-moments, by
  // image), through the thread's scratch; the padded image stays there (`padded`: n). False where
  // the SGEMM failed.
  bool image_moments(const float* img, int64_t n, float* scratch, double* moments,
                     int64_t& padded) const {
    const int64_t taps = this->taps(), s = oh_ * ow_;
    float *pimg = scratch, *cols = scratch + image_floats(), *gram = cols + taps * s;
    pad(img, n, pimg);
    padded = n;
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t oy = 0; oy < oh_; ++oy) {
        copy_run(pimg + oy * cp_.stride_h * wp_ + off_[t], cp_.stride_w, ow_,
                 cols + t * s + oy * ow_);
      }
    return column_moments(cols, taps, s, gram, moments + n * taps,
                          moments + n_ * taps + n * taps * taps);
  }

  // The columns' mean and covariance over the batch: the images' moments combined in image order
  // (Chan et al.'s formula, as for the batch norm's own statistics).
  ImageStats batch_stats(const double* moments) const {
    const int64_t taps = this->taps();
    const double s = static_cast<double>(oh_ * ow_), m = s * n_;
    ImageStats st{std::vector<double>(taps, 0.0), std::vector<double>(taps * taps, 0.0)};
    for (int64_t n = 0; n < n_; ++n)
      for (int64_t t = 0; t < taps; ++t) st.mu[t] += moments[n * taps + t];
    for (double& v : st.mu) v /= m;
    for (int64_t n = 0; n < n_; ++n) {
      const double *sum = moments + n * taps, *co = moments + n_ * taps + n * taps * taps;
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t u = 0; u < taps; ++u)
          st.cov[t * taps + u] +=
              co[t * taps + u] + s * (sum[t] / s - st.mu[t]) * (sum[u] / s - st.mu[u]);
    }
    for (double& v : st.cov) v /= m;
    return st;
  }

  // Channel c's batch mean and variance (w: the weights, [o][T]).
  void channel_stats(const ImageStats& st, const float* w, int64_t c, double& mean,
                     double& var) const {
    const int64_t taps = this->taps();
    const float* wc = w + c * taps;
    mean = var = 0;
    for (int64_t t = 0; t < taps; ++t) {
      mean += wc[t] * st.mu[t];
      for (int64_t u = 0; u < taps; ++u) var += wc[t] * st.cov[t * taps + u] * wc[u];
    }
    var = std::max(var, 0.0);
  }

  // sum((x_c - mean) * col_t) over the batch, and sum(col_t) (g2 and g3 of the weight gradient).
  void centred_sums(const ImageStats& st, const float* w, int64_t c, double mean, int64_t t,
                    double& g2, double& g3) const {
    const int64_t taps = this->taps();
    const float* wc = w + c * taps;
    const double m = static_cast<double>(oh_ * ow_ * n_);
    double cov_w = 0, w_mu = 0;
    for (int64_t u = 0; u < taps; ++u)
      cov_w += st.cov[t * taps + u] * wc[u], w_mu += wc[u] * st.mu[u];
    g2 = m * cov_w + m * st.mu[t] * (w_mu - mean);
    g3 = m * st.mu[t];
  }

 private:
  bool on_;
  ConvParams cp_;
  int64_t n_ = 0, cin_ = 0, h_ = 0, w_ = 0, o_ = 0, kh_ = 0, kw_ = 0, oh_ = 0, ow_ = 0, hp_ = 0,
          wp_ = 0;
  std::vector<int64_t> off_;  // per tap: its offset in the padded image
};

// The x tile of unit (n, c0) for thread t: read (converted where x is plain), or computed by the
// fused convolution from image n, padded into pimg when the thread's image changes (`padded`).
struct XTiles {
  const Geometry& g;
  const StemConv& conv;
  Operand x;  // x itself, or the image where the convolution is fused
  const float* wt;
  const float* get(int64_t n, int64_t c0, float* buf, float* pimg, int64_t& padded) const {
    if (!conv.on()) return x.read(g, n, c0, buf);
    conv.tile(g, image(n, pimg, padded), wt, c0, buf);
    return buf;
  }
  // Image n padded in pimg (the fused convolution).
  const float* image(int64_t n, float* pimg, int64_t& padded) const {
    if (padded != n) conv.pad(x.base, n, pimg), padded = n;
    return pimg;
  }
};

class BatchNormPool : public Kernel {
  static constexpr int kWeights = 5;  // the fused convolution's weights, after running_var

 public:
  explicit BatchNormPool(const KernelSpec& s)
      : conv_(s, 0, kWeights),
        g_(conv_.on() ? conv_.x_shape() : s.input(0).shape, s.output(0).shape, tile_lanes(s)),
        x_(s.input_layout(0)),
        p_layout_(s.output_layout(0)),
        bn_(s.node.attrs),
        threads_(cpu_backend(s).threads()),
        ws_{2 * g_.n * g_.padded() + conv_.moment_doubles(),
            2 * g_.padded() + g_.padded() * conv_.taps(),
            (g_.h * g_.w + g_.oh * g_.ow) * g_.lanes + conv_.scratch_floats(), threads_} {}
  size_t workspace_bytes() const override { return ws_.bytes(); }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const int64_t cp = g_.padded(), hw = g_.h * g_.w, phw = g_.oh * g_.ow;
    double *sum = ws_.partials(ctx.workspace), *m2 = sum + g_.n * cp, *moments = m2 + g_.n * cp;
    float *scale = ws_.channels(ctx.workspace), *shift = scale + cp, *wt = shift + cp;
    if (conv_.on()) conv_.transpose_weights(g_, in[kWeights].f32(), wt);
    const XTiles xs{g_, conv_, operand(in[0], x_, in[0].shape()), wt};
    const Operand p = operand(out[0], p_layout_, out[0].shape());
    std::fill(scale, scale + cp, 0.0f);  // padding channels: z = 0
    std::fill(shift, shift + cp, 0.0f);
    ImageStats image;
    std::atomic<bool> ok{true};  // no exceptions inside OpenMP
#pragma omp parallel num_threads(threads_)
    {
      int64_t padded = -1;  // the image in this thread's pimg
      float* scratch = ws_.tiles(ctx.workspace, omp_get_thread_num()) + (hw + phw) * g_.lanes;
      if (bn_.training && conv_.on()) {
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g_.n; ++n)
          if (!conv_.image_moments(in[0].f32(), n, scratch, moments, padded)) ok = false;
#pragma omp single
        image = conv_.batch_stats(moments);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < g_.c; ++c) {
          double mean, var;
          conv_.channel_stats(image, in[kWeights].f32(), c, mean, var);
          statistics(in, out, mean, var, c, scale[c], shift[c]);
        }
      } else if (bn_.training) {
        for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
          const float* xt = xs.get(n, c0, ws_.tiles(ctx.workspace, t), scratch, padded);
          tile_moments(g_.lanes, xt, hw, sum + n * cp + c0, m2 + n * cp + c0);
        });
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t c = 0; c < g_.c; ++c) {
          double mean, var;
          combine_moments(sum + c, m2 + c, g_.n, cp, g_.h * g_.w, mean, var);
          statistics(in, out, mean, var, c, scale[c], shift[c]);
        }
      } else {
#pragma omp for schedule(static)
        for (int64_t c = 0; c < g_.c; ++c) running_affine(in, c, scale[c], shift[c]);
      }
      for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
        float* buf = ws_.tiles(ctx.workspace, t);
        float* pt = p.target(g_, n, c0, buf + hw * g_.lanes);
        if (conv_.windowed())
          conv_.pool(g_, xs.image(n, scratch, padded), wt, c0, scale + c0, shift + c0, pt);
        else
          tile_pool(g_.lanes, xs.get(n, c0, buf, scratch, padded), pt, g_.w, g_.oh, g_.ow,
                    scale + c0, shift + c0);
        p.written(g_, n, c0, pt);
      });
    }
    if (!ok) throw DeviceError("oneDNN sgemm failed in the stem's moments");
  }

 private:
  // Channel c's outputs, running statistics and affine form from its batch mean and variance.
  void statistics(const std::vector<Tensor>& in, const std::vector<Tensor>& out, double mean,
                  double var, int64_t c, float& scale, float& shift) const {
    const double m = g_.per_channel();
    const float mean_f = static_cast<float>(mean),
                invstd_f = static_cast<float>(1.0 / std::sqrt(var + bn_.eps));
    out[1].f32()[c] = mean_f;
    out[2].f32()[c] = invstd_f;
    bn_affine(in[1].f32()[c], in[2].f32()[c], mean_f, invstd_f, scale, shift);
    // running = momentum * running + (1 - momentum) * batch, with the unbiased variance
    float &run_mean = in[3].f32()[c], &run_var = in[4].f32()[c];
    const double unbiased = m > 1 ? var * m / (m - 1) : var;
    run_mean = static_cast<float>(bn_.momentum * run_mean + (1 - bn_.momentum) * mean);
    run_var = static_cast<float>(bn_.momentum * run_var + (1 - bn_.momentum) * unbiased);
  }

  // Inference: the affine form from the running statistics.
  void running_affine(const std::vector<Tensor>& in, int64_t c, float& scale, float& shift) const {
    const float gamma = in[1].f32()[c], beta = in[2].f32()[c];
    scale = static_cast<float>(gamma / std::sqrt(double(in[4].f32()[c]) + bn_.eps));
    shift = beta - in[3].f32()[c] * scale;
  }

  StemConv conv_;
  Geometry g_;
  Layout x_, p_layout_;
  BatchNormParams bn_;
  int threads_;
  Workspace ws_;
};

// dx = gamma*invstd * (dz - mean(dz) - xhat * mean(dz * xhat)), dz the pooling and ReLU gradient
// of dp, as a*dz + b*x + k per channel. With the stem convolution fused, the kernel writes the
// convolution's weight gradient in dx's place, from sums taken in the same pass (conv_grad_tile_l)
// and the image's moments (StemConv).
class BatchNormPoolGrad : public Kernel {
  static constexpr int kWeights = 6;  // the fused convolution's weights, after beta

 public:
  explicit BatchNormPoolGrad(const KernelSpec& s)
      : conv_(s, 1, kWeights),
        g_(conv_.on() ? conv_.x_shape() : s.input(1).shape, s.input(0).shape, tile_lanes(s)),
        layouts_{s.input_layout(0), s.input_layout(1), s.output_layout(0)},
        addend_(s.node.attrs.i("dp_sum", 0) != 0 ? (conv_.on() ? kWeights + 1 : kWeights) : -1),
        addend_layout_(addend_ >= 0 ? s.input_layout(addend_) : Layout::nchw),
        threads_(cpu_backend(s).threads()),
        ws_{(2 + conv_.taps()) * g_.n * g_.padded() + conv_.moment_doubles(),
            (6 + conv_.taps()) * g_.padded(),
            (2 * g_.h * g_.w + 2 * g_.oh * g_.ow) * g_.lanes + conv_.scratch_floats(), threads_} {
    if (conv_.on() && is_blocked(layouts_[2]))
      throw UnsupportedError("batch_norm_grad '" + s.node.name + "': blocked weight gradient");
  }
  size_t workspace_bytes() const override { return ws_.bytes(); }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const int64_t cp = g_.padded(), hw = g_.h * g_.w, taps = conv_.taps();
    Sums sums{ws_.partials(ctx.workspace), g_.n * cp, taps};
    float* arrays = ws_.channels(ctx.workspace);
    float *scale = arrays, *shift = scale + cp, *mean = shift + cp, *a = mean + cp, *b = a + cp,
          *k = b + cp, *wt = k + cp;
    std::fill(arrays, arrays + 6 * cp, 0.0f);  // padding channels: dx = 0
    for (int64_t c = 0; c < g_.c; ++c) {
      mean[c] = in[3].f32()[c];
      bn_affine(in[2].f32()[c], in[5].f32()[c], mean[c], in[4].f32()[c], scale[c], shift[c]);
    }
    if (conv_.on()) conv_.transpose_weights(g_, in[kWeights].f32(), wt);
    const XTiles xs{g_, conv_, operand(in[1], layouts_[1], in[1].shape()), wt};
    const Operand dp = operand(in[0], layouts_[0], in[0].shape()),
                  dx = operand(out[0], layouts_[2], out[0].shape());
    const Tiles tiles{g_, hw, ws_, ctx.workspace};
    // dp's tile of unit (n, c0); with "dp_sum" the sum of the two addends (cpu/fuse.cpp), made in
    // the thread's dp tile.
    auto dp_tile = [&](int64_t n, int64_t c0, int64_t t) {
      const float* first = dp.read(g_, n, c0, tiles.dp(t));
      if (addend_ < 0) return first;
      const Operand second = operand(in[addend_], addend_layout_, in[addend_].shape());
      add_tiles(first, second.read(g_, n, c0, tiles.addend(t)), tiles.dp(t),
                g_.oh * g_.ow * g_.lanes);
      return static_cast<const float*>(tiles.dp(t));
    };
    ImageStats image;
    std::atomic<bool> ok{true};  // no exceptions inside OpenMP
#pragma omp parallel num_threads(threads_)
    {
      int64_t padded = -1;  // the image in this thread's pimg
      if (conv_.on()) {
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g_.n; ++n)
          if (!conv_.image_moments(in[1].f32(), n, tiles.image(omp_get_thread_num()), sums.moments,
                                   padded))
            ok = false;
#pragma omp single nowait
        image = conv_.batch_stats(sums.moments);
      }
      for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
        const float* dpt = dp_tile(n, c0, t);
        const int64_t at = n * cp + c0;
        std::fill_n(sums.dz + at, g_.lanes, 0.0);
        std::fill_n(sums.dxm + at, g_.lanes, 0.0);
        if (conv_.windowed()) {
          double* g1 = sums.g1 + at * taps;
          std::fill_n(g1, taps * g_.lanes, 0.0);
          conv_.grad(g_, xs.image(n, tiles.image(t), padded), wt, c0, dpt, scale + c0, shift + c0,
                     mean + c0, sums.dz + at, sums.dxm + at, g1);
          return;
        }
        const float* xt = xs.get(n, c0, tiles.x(t), tiles.image(t), padded);
        if (!conv_.on()) {
          tile_grad_sums(g_.lanes, xt, dpt, g_.w, g_.oh, g_.ow, scale + c0, shift + c0, mean + c0,
                         sums.dz + at, sums.dxm + at);
          return;
        }
        tile_dz(g_.lanes, xt, dpt, tiles.dx(t), g_.h, g_.w, g_.oh, g_.ow, scale + c0, shift + c0,
                mean + c0, sums.dz + at, sums.dxm + at);
        double* g1 = sums.g1 + at * taps;
        std::fill_n(g1, taps * g_.lanes, 0.0);
        conv_.grad_tile(g_, tiles.image(t), tiles.dx(t), g1);
      });
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t c = 0; c < g_.c; ++c) {
        coefficients(in, out, sums, c, a[c], b[c], k[c]);
        if (conv_.on()) weight_gradient(in, out, sums, image, c);
      }
      if (!conv_.on())
        for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
          const float* xt = xs.get(n, c0, tiles.x(t), tiles.image(t), padded);
          const float* dpt = dp_tile(n, c0, t);
          float* dxt = dx.target(g_, n, c0, tiles.dx(t));
          tile_grad_input(g_.lanes, xt, dpt, dxt, g_.h, g_.w, g_.oh, g_.ow, scale + c0, shift + c0,
                          a + c0, b + c0, k + c0);
          dx.written(g_, n, c0, dxt);
        });
    }
    if (!ok) throw DeviceError("oneDNN sgemm failed in the stem's moments");
  }

 private:
  // The per-image partial sums: dz and dxm by [image][channel]; with the convolution g1 by
  // [image][channel block][tap][lane], then the image moments.
  struct Sums {
    double *dz, *dxm, *g1, *moments;
    Sums(double* base, int64_t per_sum, int64_t taps)
        : dz(base), dxm(dz + per_sum), g1(dxm + per_sum), moments(g1 + per_sum * taps) {}
  };

  // Thread t's buffers: the x tile, dz or dx tile, dp tile and the convolution's scratch.
  struct Tiles {
    const Geometry& g;
    int64_t hw;
    const Workspace& ws;
    void* base;
    float* x(int64_t t) const { return ws.tiles(base, t); }
    float* dx(int64_t t) const { return x(t) + hw * g.lanes; }
    float* dp(int64_t t) const { return x(t) + 2 * hw * g.lanes; }
    float* addend(int64_t t) const { return x(t) + (2 * hw + g.oh * g.ow) * g.lanes; }
    float* image(int64_t t) const { return x(t) + (2 * hw + 2 * g.oh * g.ow) * g.lanes; }
  };

  // Channel c's sums over the batch, in image order.
  void channel_sums(const Sums& s, int64_t c, double& sum_dz, double& sum_dxm) const {
    const int64_t cp = g_.padded();
    sum_dz = sum_dxm = 0;
    for (int64_t n = 0; n < g_.n; ++n) sum_dz += s.dz[n * cp + c], sum_dxm += s.dxm[n * cp + c];
  }

  // Channel c's dgamma, dbeta and dx's coefficients.
  void coefficients(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const Sums& s,
                    int64_t c, float& a, float& b, float& k) const {
    double sum_dz, sum_dxm;
    channel_sums(s, c, sum_dz, sum_dxm);
    const double m = g_.per_channel(), is = in[4].f32()[c], gi = in[2].f32()[c] * is,
                 mean = in[3].f32()[c];
    a = static_cast<float>(gi);
    b = static_cast<float>(-gi * is * is * sum_dxm / m);
    k = static_cast<float>(-gi * sum_dz / m + gi * is * is * sum_dxm * mean / m);
    out[1].f32()[c] = static_cast<float>(sum_dxm * is);
    out[2].f32()[c] = static_cast<float>(sum_dz);
  }

  // The fused convolution's weight gradient of output channel c: dW = sum(dx * col) with
  // dx = gi * dz + b * (x - mean) + k', k' = -gi * sum(dz) / m.
  void weight_gradient(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const Sums& s,
                       const ImageStats& image, int64_t c) const {
    const int64_t cp = g_.padded(), taps = conv_.taps(), lane = c % g_.lanes;
    double sum_dz, sum_dxm;
    channel_sums(s, c, sum_dz, sum_dxm);
    const double m = g_.per_channel(), is = in[4].f32()[c], gi = in[2].f32()[c] * is;
    const double b = -gi * is * is * sum_dxm / m, k = -gi * sum_dz / m;
    for (int64_t t = 0; t < taps; ++t) {
      double g1 = 0, g2, g3;
      for (int64_t n = 0; n < g_.n; ++n)
        g1 += s.g1[(n * cp + c - lane) * taps + t * g_.lanes + lane];
      conv_.centred_sums(image, in[kWeights].f32(), c, in[3].f32()[c], t, g2, g3);
      out[0].f32()[c * taps + t] = static_cast<float>(gi * g1 + b * g2 + k * g3);
    }
  }

  StemConv conv_;
  Geometry g_;
  Layout layouts_[3];  // dp, x, dx
  int addend_;         // dp's second addend's input ("dp_sum"), or -1
  Layout addend_layout_;
  int threads_;
  Workspace ws_;
};

}  // namespace

std::unique_ptr<Kernel> make_batch_norm_pool(const KernelSpec& s) {
  if (s.node.attrs.s("pool", "") != "max2" || s.node.attrs.s("post", "") != "relu")
    throw UnsupportedError("batch_norm '" + s.node.name + "': unknown fused pooling");
  return std::make_unique<BatchNormPool>(s);
}

std::unique_ptr<Kernel> make_batch_norm_pool_grad(const KernelSpec& s) {
  const size_t inputs =
      (s.node.attrs.s("conv", "") == "stem" ? 7 : 6) + (s.node.attrs.i("dp_sum", 0) != 0);
  if (s.node.attrs.s("pool", "") != "max2" || s.node.inputs.size() != inputs)
    throw UnsupportedError("batch_norm_grad '" + s.node.name + "': unknown fused pooling");
  return std::make_unique<BatchNormPoolGrad>(s);
}

}  // namespace myelin::cpu
