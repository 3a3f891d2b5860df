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
// statistics combine per-image means and centred sums of squares (Chan et al.'s pairwise
// formula), one pass over x instead of the unfused kernel's two.
//
// The gradient recomputes each window's four values z = max(x * scale + shift, 0) with the
// forward's scale and shift (both from the rounded mean and invstd outputs, so the same floats)
// and sends dp to the first maximum, where the maximum is above 0 (the ReLU's gradient), as the
// unfused pooling gradient does. Rows and columns past the last window (odd sizes) get none.
#include "cpu/bn_pool.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/blocked.h"
#include "cpu/cpu_backend.h"
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

// The forward's y = x * scale + shift of a channel from the statistics as the outputs hold
// them (rounded to float), so that the gradient, which reads those, recomputes the same z.
void affine_of(float gamma, float beta, float mean, float invstd, float& scale, float& shift) {
  scale = gamma * invstd;
  shift = beta - mean * scale;
}

// --- Lane loops on tiles ([pixel][L]), one channel per lane. ---

constexpr int64_t kSumPixels = 256;  // pixels summed in float before going to double

// z of one element: the ReLU of the batch norm's output. Forward and gradient both call this.
[[gnu::always_inline]] inline float activated(float x, float scale, float shift) {
  return std::max(x * scale + shift, 0.0f);
}

// Per lane: the tile's sum and its sum of squares about the tile's own mean.
template <int64_t L>
[[gnu::always_inline]] inline void tile_moments_l(const float* t, int64_t s, double* sum,
                                                  double* m2) {
  double total[L] = {};
  for (int64_t b = 0; b < s; b += kSumPixels) {
    float acc[L] = {};
    for (int64_t i = b; i < std::min(s, b + kSumPixels); ++i)
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) acc[k] += t[i * L + k];
    for (int64_t k = 0; k < L; ++k) total[k] += acc[k];
  }
  float mean[L];
  for (int64_t k = 0; k < L; ++k) mean[k] = static_cast<float>(total[k] / s);
  double sq[L] = {};
  for (int64_t b = 0; b < s; b += kSumPixels) {
    float acc[L] = {};
    for (int64_t i = b; i < std::min(s, b + kSumPixels); ++i)
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) {
        const float d = t[i * L + k] - mean[k];
        acc[k] += d * d;
      }
    for (int64_t k = 0; k < L; ++k) sq[k] += acc[k];
  }
  // The sum about the float mean, moved to the exact one: m2 = sq - s * (mean_exact - mean)^2.
  for (int64_t k = 0; k < L; ++k) {
    const double shift = total[k] / s - mean[k];
    sum[k] = total[k];
    m2[k] = std::max(0.0, sq[k] - s * shift * shift);
  }
}

// The pooled z of one tile: p[oy][ox] = max of the window's four z.
template <int64_t L>
[[gnu::always_inline]] inline void tile_pool_l(const float* x, float* p, int64_t w, int64_t oh,
                                               int64_t ow, const float* scale, const float* shift) {
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const float* x0 = x + (2 * oy * w + 2 * ox) * L;
      const float* x1 = x0 + w * L;
      float* po = p + (oy * ow + ox) * L;
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) {
        const float a = activated(x0[k], scale[k], shift[k]),
                    b = activated(x0[L + k], scale[k], shift[k]),
                    c = activated(x1[k], scale[k], shift[k]),
                    d = activated(x1[L + k], scale[k], shift[k]);
        po[k] = std::max(std::max(a, b), std::max(c, d));
      }
    }
}

// One window's gradient, per lane: which of its four elements (row-major) is the first maximum of
// z, as the pooling gradient picks, as one-hot factors 1 or 0, the x there, and dz there: dp where
// the maximum is above 0, else 0. Products by the factors, not nested selects: GCC leaves nested
// selects as branches in the 8-lane loops, which then do not vectorise.
struct WindowPick {
  float a, b, c, d;
  float x, dz;
};

[[gnu::always_inline]] inline WindowPick pick(float x00, float x01, float x10, float x11, float dp,
                                              float scale, float shift) {
  const float za = activated(x00, scale, shift), zb = activated(x01, scale, shift),
              zc = activated(x10, scale, shift), zd = activated(x11, scale, shift);
  const float m = std::max(std::max(za, zb), std::max(zc, zd));
  const int ia = za == m, ib = (zb == m) & !ia, ic = (zc == m) & !(ia | ib), id = !(ia | ib | ic);
  const float a = static_cast<float>(ia), b = static_cast<float>(ib), c = static_cast<float>(ic),
              d = static_cast<float>(id);
  return {a, b, c, d, a * x00 + b * x01 + c * x10 + d * x11, m > 0 ? dp : 0.0f};
}

// Per lane: sum(dz) and sum(dz * (x - mean)) of one tile, added to the running totals.
template <int64_t L>
[[gnu::always_inline]] inline void tile_grad_sums_l(const float* x, const float* dp, int64_t w,
                                                    int64_t oh, int64_t ow, const float* scale,
                                                    const float* shift, const float* mean,
                                                    double* sum_dz, double* sum_dxm) {
  float sdz[L] = {}, sdxm[L] = {};
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const float* x0 = x + (2 * oy * w + 2 * ox) * L;
      const float* x1 = x0 + w * L;
      const float* d = dp + (oy * ow + ox) * L;
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) {
        const WindowPick p = pick(x0[k], x0[L + k], x1[k], x1[L + k], d[k], scale[k], shift[k]);
        sdz[k] += p.dz;
        sdxm[k] += p.dz * (p.x - mean[k]);
      }
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
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t at = (2 * oy * w + 2 * ox) * L;
      const float *x0 = x + at, *x1 = x0 + w * L, *d = dp + (oy * ow + ox) * L;
      float *dx0 = dx + at, *dx1 = dx0 + w * L;
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) {
        const WindowPick p = pick(x0[k], x0[L + k], x1[k], x1[L + k], d[k], scale[k], shift[k]);
        const float add = ga[k] * p.dz;
        dx0[k] = gb[k] * x0[k] + gk[k] + p.a * add;
        dx0[L + k] = gb[k] * x0[L + k] + gk[k] + p.b * add;
        dx1[k] = gb[k] * x1[k] + gk[k] + p.c * add;
        dx1[L + k] = gb[k] * x1[L + k] + gk[k] + p.d * add;
      }
    }
    for (int64_t r = 2 * oy; r < 2 * oy + 2; ++r)
      for (int64_t i = r * w + 2 * ow; i < (r + 1) * w; ++i)
#pragma omp simd
        for (int64_t k = 0; k < L; ++k) dx[i * L + k] = gb[k] * x[i * L + k] + gk[k];
  }
  for (int64_t i = 2 * oh * w; i < h * w; ++i)
#pragma omp simd
    for (int64_t k = 0; k < L; ++k) dx[i * L + k] = gb[k] * x[i * L + k] + gk[k];
}

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

#undef lanes_call

// The workspace of both kernels: two per-image partial sums per channel (doubles), `arrays`
// per-channel float arrays, then `tiles` tiles for each thread, each of the given sizes.
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

class BatchNormPool : public Kernel {
 public:
  explicit BatchNormPool(const KernelSpec& s)
      : g_(s.input(0).shape, s.output(0).shape, tile_lanes(s)),
        x_(s.input_layout(0)),
        p_layout_(s.output_layout(0)),
        bn_(s.node.attrs),
        threads_(cpu_backend(s).threads()),
        ws_{2 * g_.n * g_.padded(), 2 * g_.padded(), (g_.h * g_.w + g_.oh * g_.ow) * g_.lanes,
            threads_} {}
  size_t workspace_bytes() const override { return ws_.bytes(); }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const int64_t cp = g_.padded(), hw = g_.h * g_.w;
    double *sum = ws_.partials(ctx.workspace), *m2 = sum + g_.n * cp;
    float *scale = ws_.channels(ctx.workspace), *shift = scale + cp;
    const Operand x = operand(in[0], x_, in[0].shape()),
                  p = operand(out[0], p_layout_, out[0].shape());
    std::fill(scale, scale + cp, 0.0f);  // padding channels: z = 0
    std::fill(shift, shift + cp, 0.0f);
#pragma omp parallel num_threads(threads_)
    {
      if (bn_.training) {
        for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
          const float* xt = x.read(g_, n, c0, ws_.tiles(ctx.workspace, t));
          tile_moments(g_.lanes, xt, hw, sum + n * cp + c0, m2 + n * cp + c0);
        });
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t c = 0; c < g_.c; ++c) statistics(in, out, sum, m2, c, scale[c], shift[c]);
      } else {
#pragma omp for schedule(static)
        for (int64_t c = 0; c < g_.c; ++c) running_affine(in, c, scale[c], shift[c]);
      }
      for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
        float* buf = ws_.tiles(ctx.workspace, t);
        float* pt = p.target(g_, n, c0, buf + hw * g_.lanes);
        tile_pool(g_.lanes, x.read(g_, n, c0, buf), pt, g_.w, g_.oh, g_.ow, scale + c0, shift + c0);
        p.written(g_, n, c0, pt);
      });
    }
  }

 private:
  // Channel c's batch mean and variance from the per-image partials; the outputs, the running
  // statistics and the affine form.
  void statistics(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const double* sum,
                  const double* m2, int64_t c, float& scale, float& shift) const {
    const int64_t cp = g_.padded();
    const double m = g_.per_channel(), s = static_cast<double>(g_.h * g_.w);
    double total = 0;
    for (int64_t n = 0; n < g_.n; ++n) total += sum[n * cp + c];
    const double mean = total / m;
    double sq = 0;
    for (int64_t n = 0; n < g_.n; ++n) {
      const double d = sum[n * cp + c] / s - mean;
      sq += m2[n * cp + c] + s * d * d;
    }
    const double var = sq / m;
    const float mean_f = static_cast<float>(mean),
                invstd_f = static_cast<float>(1.0 / std::sqrt(var + bn_.eps));
    out[1].f32()[c] = mean_f;
    out[2].f32()[c] = invstd_f;
    affine_of(in[1].f32()[c], in[2].f32()[c], mean_f, invstd_f, scale, shift);
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

  Geometry g_;
  Layout x_, p_layout_;
  BatchNormParams bn_;
  int threads_;
  Workspace ws_;
};

// dx = gamma*invstd * (dz - mean(dz) - xhat * mean(dz * xhat)), dz the pooling and ReLU gradient
// of dp, as a*dz + b*x + k per channel.
class BatchNormPoolGrad : public Kernel {
 public:
  explicit BatchNormPoolGrad(const KernelSpec& s)
      : g_(s.input(1).shape, s.input(0).shape, tile_lanes(s)),
        layouts_{s.input_layout(0), s.input_layout(1), s.output_layout(0)},
        threads_(cpu_backend(s).threads()),
        ws_{2 * g_.n * g_.padded(), 6 * g_.padded(), (2 * g_.h * g_.w + g_.oh * g_.ow) * g_.lanes,
            threads_} {}
  size_t workspace_bytes() const override { return ws_.bytes(); }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const int64_t cp = g_.padded(), hw = g_.h * g_.w;
    double *sdz = ws_.partials(ctx.workspace), *sdxm = sdz + g_.n * cp;
    float* arrays = ws_.channels(ctx.workspace);
    float *scale = arrays, *shift = scale + cp, *mean = shift + cp, *a = mean + cp, *b = a + cp,
          *k = b + cp;
    std::fill(arrays, arrays + 6 * cp, 0.0f);  // padding channels: dx = 0
    for (int64_t c = 0; c < g_.c; ++c) {
      mean[c] = in[3].f32()[c];
      affine_of(in[2].f32()[c], in[5].f32()[c], mean[c], in[4].f32()[c], scale[c], shift[c]);
    }
    const Operand dp = operand(in[0], layouts_[0], in[0].shape()),
                  x = operand(in[1], layouts_[1], in[1].shape()),
                  dx = operand(out[0], layouts_[2], out[0].shape());
    auto tiles = [&](int64_t n, int64_t c0, int64_t t, const float*& xt, const float*& dpt) {
      float* buf = ws_.tiles(ctx.workspace, t);
      xt = x.read(g_, n, c0, buf);
      dpt = dp.read(g_, n, c0, buf + 2 * hw * g_.lanes);
    };
#pragma omp parallel num_threads(threads_)
    {
      for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
        const float *xt, *dpt;
        tiles(n, c0, t, xt, dpt);
        std::fill_n(sdz + n * cp + c0, g_.lanes, 0.0);
        std::fill_n(sdxm + n * cp + c0, g_.lanes, 0.0);
        tile_grad_sums(g_.lanes, xt, dpt, g_.w, g_.oh, g_.ow, scale + c0, shift + c0, mean + c0,
                       sdz + n * cp + c0, sdxm + n * cp + c0);
      });
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t c = 0; c < g_.c; ++c) coefficients(in, out, sdz, sdxm, c, a[c], b[c], k[c]);
      for_my_units(g_, [&](int64_t n, int64_t c0, int64_t t) {
        const float *xt, *dpt;
        tiles(n, c0, t, xt, dpt);
        float* dxt = dx.target(g_, n, c0, ws_.tiles(ctx.workspace, t) + hw * g_.lanes);
        tile_grad_input(g_.lanes, xt, dpt, dxt, g_.h, g_.w, g_.oh, g_.ow, scale + c0, shift + c0,
                        a + c0, b + c0, k + c0);
        dx.written(g_, n, c0, dxt);
      });
    }
  }

 private:
  // Channel c's sums over the batch, dgamma, dbeta and dx's coefficients.
  void coefficients(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                    const double* sdz, const double* sdxm, int64_t c, float& a, float& b,
                    float& k) const {
    const int64_t cp = g_.padded();
    double sum_dz = 0, sum_dxm = 0;
    for (int64_t n = 0; n < g_.n; ++n) sum_dz += sdz[n * cp + c], sum_dxm += sdxm[n * cp + c];
    const double m = g_.per_channel(), is = in[4].f32()[c], gi = in[2].f32()[c] * is,
                 mean = in[3].f32()[c];
    a = static_cast<float>(gi);
    b = static_cast<float>(-gi * is * is * sum_dxm / m);
    k = static_cast<float>(-gi * sum_dz / m + gi * is * is * sum_dxm * mean / m);
    out[1].f32()[c] = static_cast<float>(sum_dxm * is);
    out[2].f32()[c] = static_cast<float>(sum_dz);
  }

  Geometry g_;
  Layout layouts_[3];  // dp, x, dx
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
  if (s.node.attrs.s("pool", "") != "max2" || s.node.inputs.size() != 6)
    throw UnsupportedError("batch_norm_grad '" + s.node.name + "': unknown fused pooling");
  return std::make_unique<BatchNormPoolGrad>(s);
}

}  // namespace myelin::cpu
