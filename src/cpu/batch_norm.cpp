// Batch normalization on x[N, C, S...] (S = 1 for [N, C]) as OpenMP loops over (n, c) rows, so
// [N, C] and [N, C, H, W] share one code path. Sums run in float vector lanes over blocks of
// kBlock elements, and the blocks add up in double. The forward statistics take one pass over x:
// each row (or tile) gives its sum and its squares about its own mean while in cache, and the
// images' moments combine per channel in image order (moments.h: no cancellation, and the same
// result on any number of threads).
// Own loops rather than oneDNN's primitive because the op's contract (invstd output, running
// statistics updated in place with the unbiased variance, gradient from invstd) would need a
// conversion pass around oneDNN's anyway, and the work is bandwidth-bound.
// On nchw16c or nchw8c (blocked.h) each thread owns a range of channel blocks and streams every
// (n, block) tile of s pixels x 16 (or 8) lanes, one lane per channel, so the blocked convolutions
// around a batch norm need no reorder. Each operand may be stored either way: where they differ
// the elementwise pass converts (plain rows through a per-thread tile), so batch norm is where a
// network goes from an NCHW kernel's output to the blocked layout and back. Padding channels
// (C not a multiple of the block) get zero scale and shift, hence zero outputs and gradients.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/blocked.h"
#include "cpu/bn_pool.h"
#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "cpu/moments.h"
#include "cpu/simd.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

struct BnGeometry {
  int64_t n, c, s;  // batch, channels, elements per (n, c) row
  // Some operand is blocked: the elementwise work goes by (n, channel block) tiles of s pixels
  // x `lanes` (the blocked operands' block: 16 or 8), plain operands converted through per-thread
  // tiles (TileIo). 0 where no operand is blocked.
  int64_t lanes;
  bool tiled;
  BnGeometry(const Shape& x, int64_t lanes_)
      : n(x[0]), c(x[1]), s(x.numel() / (x[0] * x[1])), lanes(lanes_), tiled(lanes_ != 0) {}
  int64_t per_channel() const { return n * s; }
  int64_t padded() const { return padded_channels(c); }  // the statistics' arrays
  int64_t step() const { return tiled ? lanes : 1; }     // channels per row or tile
  int64_t units() const { return tiled ? channel_blocks(c, lanes) : c; }
  int64_t real(int64_t c0) const { return std::min(lanes, c - c0); }  // channels of c0's block
  int64_t plain_row(int64_t in, int64_t ic) const { return (in * c + ic) * s; }
  int64_t tile(int64_t in, int64_t ic) const {
    return (in * channel_blocks(c, lanes) + ic / lanes) * lanes * s;
  }
};

// One activation operand of a tiled pass: a blocked one is read and written in place; a plain
// one goes through the calling thread's tile (`buf`), made from its rows before reading
// (rows_to_tile) or written back to them after writing (tile_to_rows).
struct TileIo {
  float* base;
  bool blocked;
  const float* read(const BnGeometry& g, int64_t n, int64_t c0, float* buf) const {
    if (blocked) return base + g.tile(n, c0);
    rows_to_tile(base + g.plain_row(n, c0), g.s, g.real(c0), buf, g.lanes);
    return buf;
  }
  float* target(const BnGeometry& g, int64_t n, int64_t c0, float* buf) const {
    return blocked ? base + g.tile(n, c0) : buf;
  }
  void written(const BnGeometry& g, int64_t n, int64_t c0, const float* buf) const {
    if (!blocked) tile_to_rows(buf, g.s, g.real(c0), base + g.plain_row(n, c0), g.lanes);
  }
};

TileIo io(const Tensor& t, Layout layout) {
  return {t.f32(), is_blocked(layout)};
}

// The phases of a batch norm pass on `threads` threads, t the thread: prepare(n, c, t) on its
// share of the rows (tiles where tiled), if any (both kernels take their per-image sums there);
// then stats(c0, c1, t) on its share of the channels, taken `stats_step` at a time (c1 may pass c,
// the last block padded), which only combines the images' sums; then pass(n, c, t) on its share
// of the rows. The passes over x are split by rows, not channels: 48 channels (3 blocks) would
// keep one of 2 threads idle for a third of them. Each phase waits for the one before on every
// thread.
struct NoPrepare {
  void operator()(int64_t, int64_t, int64_t) const {}
};

template <class Stats, class Pass, class Prepare = NoPrepare>
void in_phases(const BnGeometry& g, int threads, int64_t stats_step, Stats stats, Pass pass,
               Prepare prepare = {}) {
  const int64_t units = g.units(), rows = g.n * units;
  const int64_t stat_units = channel_blocks(g.c, stats_step);
  constexpr bool prepares = !std::is_same_v<Prepare, NoPrepare>;
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    if constexpr (prepares) {
      for (int64_t r = r0; r < r1; ++r) prepare(r / units, r % units * g.step(), t);
#pragma omp barrier
    }
    const int64_t c0 = stat_units * t / nt * stats_step,
                  c1 = stat_units * (t + 1) / nt * stats_step;
    if (c0 < c1) stats(c0, c1, t);
#pragma omp barrier
    for (int64_t r = r0; r < r1; ++r) pass(r / units, r % units * g.step(), t);
  }
}

constexpr int64_t kBlock = 4096;  // floats summed in float lanes before going to double

// The statistics' moments of one plain row (moments.h).
MYELIN_VECTOR_CLONES void plain_row_moments(const float* r, int64_t s, double& sum, double& m2) {
  row_moments(r, s, sum, m2);
}

MYELIN_VECTOR_CLONES void row_affine(const float* x, float* y, int64_t len, float a, float b) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) y[i] = x[i] * a + b;
}

// row_affine followed by a fused ReLU (ResNet's conv -> BN -> ReLU), in the same pass.
MYELIN_VECTOR_CLONES void row_affine_relu(const float* x, float* y, int64_t len, float a, float b,
                                          float slope) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) y[i] = relu_with_slope(x[i] * a + b, slope);
}

// The gradient of a ReLU fused after the batch norm (post = "relu_grad" on its gradient node):
// dy counts only where the forward's output was above 0, x * scale + shift > 0 recomputed as
// the forward computed it (the same scale and shift, the same expression). `on` false: no mask.
struct ReluMask {
  bool on = false;
  float scale = 0, shift = 0;
};

[[gnu::always_inline]] inline float masked(float dy, float x, float scale, float shift) {
  return x * scale + shift > 0 ? dy : 0.0f;
}

// y = post(x * a + b + r) over one row: a residual sum fused into the batch norm (its sixth
// input r, ops/fuse.h's fuse_residual_adds), with the ReLU after the sum if fused too.
MYELIN_VECTOR_CLONES void row_affine_residual(const float* x, const float* r, float* y, int64_t len,
                                              float a, float b, const PostRelu& post) {
  if (post.on) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) y[i] = relu_with_slope(x[i] * a + b + r[i], post.slope);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) y[i] = x[i] * a + b + r[i];
}

// Adds sum(dy) and sum(dy * (x - mean)) of one row to the running totals (dy masked where m.on).
template <bool Masked>
[[gnu::always_inline]] inline void row_grad_sums_m(const float* dy, const float* x, int64_t len,
                                                   float mean, ReluMask m, double& sum_dy,
                                                   double& sum_dxm) {
  for (int64_t b = 0; b < len; b += kBlock) {
    const int64_t end = std::min(len, b + kBlock);
    float sdy = 0, sdxm = 0;
#pragma omp simd reduction(+ : sdy, sdxm)
    for (int64_t i = b; i < end; ++i) {
      const float d = Masked ? masked(dy[i], x[i], m.scale, m.shift) : dy[i];
      sdy += d;
      sdxm += d * (x[i] - mean);
    }
    sum_dy += sdy;
    sum_dxm += sdxm;
  }
}

MYELIN_VECTOR_CLONES void row_grad_sums(const float* dy, const float* x, int64_t len, float mean,
                                        ReluMask m, double& sum_dy, double& sum_dxm) {
  if (m.on) return row_grad_sums_m<true>(dy, x, len, mean, m, sum_dy, sum_dxm);
  row_grad_sums_m<false>(dy, x, len, mean, m, sum_dy, sum_dxm);
}

// dx = a * dy + b * x + k over one row (dy masked where m.on). dy and dx may be the same row.
MYELIN_VECTOR_CLONES void row_grad_input(const float* dy, const float* x, float* dx, int64_t len,
                                         float a, float b, float k, ReluMask m) {
  if (m.on) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i)
      dx[i] = a * masked(dy[i], x[i], m.scale, m.shift) + b * x[i] + k;
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) dx[i] = a * dy[i] + b * x[i] + k;
}

// --- The same on blocked tiles: s pixels of L channels (16 or 8), one channel per lane. Each
// cloned function runs the loops of its block size (MYELIN_BY_LANES). ---

template <int64_t L>
constexpr int64_t kTileBlock = kBlock / L;  // pixels summed in float lanes

// r: the residual tile (fuse_residual_adds), added before the ReLU; null where none.
template <int64_t L>
[[gnu::always_inline]] inline void tile_affine_l(const float* x, const float* r, float* y,
                                                 int64_t s, const float* a, const float* b,
                                                 const PostRelu& post) {
  for (int64_t i = 0; i < s; ++i) {
    const float* xi = x + i * L;
    float* yi = y + i * L;
    if (r) {
      const float* ri = r + i * L;
      if (post.on) {
#pragma omp simd
        for (int64_t k = 0; k < L; ++k)
          yi[k] = relu_with_slope(xi[k] * a[k] + b[k] + ri[k], post.slope);
      } else {
#pragma omp simd
        for (int64_t k = 0; k < L; ++k) yi[k] = xi[k] * a[k] + b[k] + ri[k];
      }
    } else if (post.on) {
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) yi[k] = relu_with_slope(xi[k] * a[k] + b[k], post.slope);
    } else {
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) yi[k] = xi[k] * a[k] + b[k];
    }
  }
}

// sc, sh: the ReLU mask's scale and shift per lane, or null (no mask).
template <int64_t L>
[[gnu::always_inline]] inline void tile_grad_sums_l(const float* dy, const float* x, int64_t s,
                                                    const float* mean, const float* sc,
                                                    const float* sh, double* sum_dy,
                                                    double* sum_dxm) {
  // kMomentChains sums a lane, as in tile_moments_l: with one, each pixel's add waited on the last
  // one's. Masked or not, the same sums in the same order (a ReLU fused or apart gives the same
  // bits); the mask by the omp simd loop it always had, so that it rounds x * scale + shift as
  // tile_affine_l and tile_grad_input_l do.
  constexpr int64_t C = kMomentChains;
  static_assert(C == 4, "the blocks add the four sums pairwise");
  const Lanes<L> mn = load<L>(mean);
  float dm[C * L];  // dy of up to C pixels, masked
  auto dy_of = [&](int64_t i, int64_t pixels) -> const float* {
    if (!sc) return dy + i * L;
    for (int64_t j = 0; j < pixels; ++j)
#pragma omp simd
      for (int64_t k = 0; k < L; ++k)
        dm[j * L + k] = masked(dy[(i + j) * L + k], x[(i + j) * L + k], sc[k], sh[k]);
    return dm;
  };
  for (int64_t b = 0; b < s; b += kTileBlock<L>) {
    const int64_t end = std::min(s, b + kTileBlock<L>);
    Lanes<L> ady[C] = {}, adxm[C] = {};
    int64_t i = b;
    for (; i + C <= end; i += C) {
      const float* d = dy_of(i, C);
      for (int64_t j = 0; j < C; ++j) {
        const Lanes<L> dv = load<L>(d + j * L);
        ady[j] += dv;
        adxm[j] += dv * (load<L>(x + (i + j) * L) - mn);
      }
    }
    for (; i < end; ++i) {
      const Lanes<L> dv = load<L>(dy_of(i, 1));
      ady[0] += dv;
      adxm[0] += dv * (load<L>(x + i * L) - mn);
    }
    const Lanes<L> sdy = (ady[0] + ady[1]) + (ady[2] + ady[3]),
                   sdxm = (adxm[0] + adxm[1]) + (adxm[2] + adxm[3]);
    for (int64_t k = 0; k < L; ++k) sum_dy[k] += sdy[k], sum_dxm[k] += sdxm[k];
  }
}

template <int64_t L>
[[gnu::always_inline]] inline void tile_grad_input_l(const float* dy, const float* x, float* dx,
                                                     int64_t s, const float* a, const float* b,
                                                     const float* k, const float* sc,
                                                     const float* sh) {
  if (sc) {
    for (int64_t i = 0; i < s; ++i)
#pragma omp simd
      for (int64_t l = 0; l < L; ++l)
        dx[i * L + l] =
            a[l] * masked(dy[i * L + l], x[i * L + l], sc[l], sh[l]) + b[l] * x[i * L + l] + k[l];
    return;
  }
  for (int64_t i = 0; i < s; ++i)
#pragma omp simd
    for (int64_t l = 0; l < L; ++l)
      dx[i * L + l] = a[l] * dy[i * L + l] + b[l] * x[i * L + l] + k[l];
}

MYELIN_VECTOR_CLONES void tile_affine(int64_t lanes, const float* x, const float* r, float* y,
                                      int64_t s, const float* a, const float* b,
                                      const PostRelu& post) {
  MYELIN_BY_LANES(tile_affine_l, lanes, x, r, y, s, a, b, post);
}
MYELIN_VECTOR_CLONES void tile_grad_sums(int64_t lanes, const float* dy, const float* x, int64_t s,
                                         const float* mean, const float* sc, const float* sh,
                                         double* sum_dy, double* sum_dxm) {
  MYELIN_BY_LANES(tile_grad_sums_l, lanes, dy, x, s, mean, sc, sh, sum_dy, sum_dxm);
}
MYELIN_VECTOR_CLONES void tile_grad_input(int64_t lanes, const float* dy, const float* x, float* dx,
                                          int64_t s, const float* a, const float* b, const float* k,
                                          const float* sc, const float* sh) {
  MYELIN_BY_LANES(tile_grad_input_l, lanes, dy, x, dx, s, a, b, k, sc, sh);
}

// Three tiles per thread for the plain operands of a tiled pass, at the start of the workspace.
struct TileBuffers {
  int64_t floats = 0;  // of one tile; 0 where the pass is not tiled
  size_t bytes(int threads) const {
    return static_cast<size_t>(3 * floats * threads) * sizeof(float);
  }
  float* of(void* workspace, int64_t t, int k) const {
    return static_cast<float*>(workspace) + (3 * t + k) * floats;
  }
};

TileBuffers tile_buffers(const BnGeometry& g) {
  return {g.tiled ? g.s * g.lanes : 0};
}

// batch_norm(x, gamma, beta, running_mean, running_var) -> y [, mean, invstd]. x and y may be
// stored alike or not: batch norm converts between NCHW and a blocked layout in its elementwise
// pass.
class BatchNormForward : public Kernel {
 public:
  explicit BatchNormForward(const KernelSpec& s)
      : g_(s.input(0).shape, blocked_lanes(s)),
        x_layout_(s.input_layout(0)),
        y_layout_(s.output_layout(0)),
        p_(s.node.attrs),
        post_(s.node.attrs),
        residual_(s.node.inputs.size() > 5),
        r_layout_(residual_ ? s.input_layout(5) : Layout::nchw),
        threads_(cpu_backend(s).threads()),
        tiles_(tile_buffers(g_)) {}
  // The tiles, then per channel (padded): two doubles of statistics, two doubles of moments per
  // image, two floats of scale and shift.
  size_t workspace_bytes() const override {
    return tiles_.bytes(threads_) +
           g_.padded() * ((2 + 2 * g_.n) * sizeof(double) + 2 * sizeof(float));
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const int64_t cp = g_.padded();
    auto* mean =
        reinterpret_cast<double*>(static_cast<char*>(ctx.workspace) + tiles_.bytes(threads_));
    double *var = mean + cp, *psum = var + cp, *pm2 = psum + g_.n * cp;
    auto* scale = reinterpret_cast<float*>(pm2 + g_.n * cp);
    float* shift = scale + cp;
    const float *x = in[0].f32(), *gamma = in[1].f32(), *beta = in[2].f32();
    float *run_mean = in[3].f32(), *run_var = in[4].f32();
    std::fill(scale + g_.c, scale + cp, 0.0f);  // padding channels stay zero
    std::fill(shift + g_.c, shift + cp, 0.0f);
    if (!p_.training) {
      for (int64_t c = 0; c < g_.c; ++c) {
        scale[c] = static_cast<float>(gamma[c] / std::sqrt(double(run_var[c]) + p_.eps));
        shift[c] = beta[c] - run_mean[c] * scale[c];
      }
    }
    auto moments = [&](int64_t n, int64_t c, int64_t) {
      if (p_.training) unit_moments(x, n, c, psum, pm2);
    };
    auto statistics = [&](int64_t c0, int64_t c1, int64_t) {
      if (!p_.training) return;
      for (int64_t c = c0; c < std::min(c1, g_.c); ++c) {
        combine_moments(psum + c, pm2 + c, g_.n, cp, g_.s, mean[c], var[c]);
        double invstd = 1.0 / std::sqrt(var[c] + p_.eps);
        out[1].f32()[c] = static_cast<float>(mean[c]);
        out[2].f32()[c] = static_cast<float>(invstd);
        bn_affine(gamma[c], beta[c], out[1].f32()[c], out[2].f32()[c], scale[c], shift[c]);
        update_running(run_mean[c], run_var[c], mean[c], var[c]);
      }
    };
    const TileIo xio = io(in[0], x_layout_), yio = io(out[0], y_layout_);
    const int64_t stats_step = is_blocked(x_layout_) ? g_.lanes : 1;
    in_phases(
        g_, threads_, stats_step, statistics,
        [&](int64_t n, int64_t c, int64_t t) {
          if (!g_.tiled) {
            const int64_t o = g_.plain_row(n, c);
            if (residual_)
              row_affine_residual(x + o, in[5].f32() + o, out[0].f32() + o, g_.s, scale[c],
                                  shift[c], post_);
            else if (post_.on)
              row_affine_relu(x + o, out[0].f32() + o, g_.s, scale[c], shift[c], post_.slope);
            else
              row_affine(x + o, out[0].f32() + o, g_.s, scale[c], shift[c]);
            return;
          }
          float* y = yio.target(g_, n, c, tiles_.of(ctx.workspace, t, 1));
          const float* r = residual_
                               ? io(in[5], r_layout_).read(g_, n, c, tiles_.of(ctx.workspace, t, 2))
                               : nullptr;
          tile_affine(g_.lanes, xio.read(g_, n, c, tiles_.of(ctx.workspace, t, 0)), r, y, g_.s,
                      scale + c, shift + c, post_);
          yio.written(g_, n, c, y);
        },
        moments);
  }

 private:
  // The moments (moments.h) of image n's unit from channel c (a tile where x is blocked, else the
  // unit's plain rows) into the per-image partials psum, pm2 ([n][padded channels]).
  void unit_moments(const float* x, int64_t n, int64_t c, double* psum, double* pm2) const {
    const int64_t at = n * g_.padded() + c;
    if (is_blocked(x_layout_))
      return tile_moments(g_.lanes, x + g_.tile(n, c), g_.s, psum + at, pm2 + at);
    for (int64_t i = 0; i < (g_.tiled ? g_.real(c) : 1); ++i)
      plain_row_moments(x + g_.plain_row(n, c + i), g_.s, psum[at + i], pm2[at + i]);
  }

  // running = momentum * running + (1 - momentum) * batch, with the unbiased batch variance.
  void update_running(float& run_mean, float& run_var, double mean, double var) const {
    double m = static_cast<double>(g_.per_channel());
    double unbiased = m > 1 ? var * m / (m - 1) : var;
    run_mean = static_cast<float>(p_.momentum * run_mean + (1 - p_.momentum) * mean);
    run_var = static_cast<float>(p_.momentum * run_var + (1 - p_.momentum) * unbiased);
  }

  BnGeometry g_;
  Layout x_layout_, y_layout_;
  BatchNormParams p_;
  PostRelu post_;
  bool residual_;  // a sixth input r added before the ReLU (fuse_residual_adds)
  Layout r_layout_;
  int threads_;
  TileBuffers tiles_;
};

// batch_norm_grad(dy, x, gamma, mean, invstd) -> dx, dgamma, dbeta, through the batch
// statistics: dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy * xhat)). dy, x and dx may be
// stored alike or not, as in the forward pass.
class BatchNormGrad : public Kernel {
 public:
  explicit BatchNormGrad(const KernelSpec& s)
      : g_(s.input(0).shape, blocked_lanes(s)),
        layouts_{s.input_layout(0), s.input_layout(1), s.output_layout(0)},
        staged_(is_blocked(layouts_[0]) && layouts_[1] == Layout::nchw &&
                layouts_[2] == Layout::nchw),
        relu_grad_(s.node.attrs.s("post", "") == "relu_grad"),
        threads_(cpu_backend(s).threads()),
        tiles_(staged_ ? TileBuffers{} : tile_buffers(g_)) {
    if (s.node.attrs.has("post") && !(relu_grad_ && s.node.inputs.size() == 6))
      throw UnsupportedError("batch_norm_grad '" + s.node.name + "': unknown fused post-op");
  }
  // The tiles, then per image and channel (padded) the two sums, then per channel dx's
  // coefficients a, b, k, the ReLU mask's scale and shift and the mean.
  size_t workspace_bytes() const override {
    return tiles_.bytes(threads_) + g_.padded() * (2 * g_.n * sizeof(double) + 6 * sizeof(float));
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const int64_t cp = g_.padded();
    const float *dy = in[0].f32(), *x = in[1].f32(), *gamma = in[2].f32(), *mean = in[3].f32(),
                *invstd = in[4].f32();
    float *dgamma = out[1].f32(), *dbeta = out[2].f32();
    // Per image: sum(dy) and sum(dy * (x - mean)) of each channel, summed over the images in order.
    auto* psdy =
        reinterpret_cast<double*>(static_cast<char*>(ctx.workspace) + tiles_.bytes(threads_));
    double* psdxm = psdy + g_.n * cp;
    // dx = a*dy + b*x + k per channel; zero on padding channels, so their dx is zero.
    auto* a = reinterpret_cast<float*>(psdxm + g_.n * cp);
    float *b = a + cp, *k = b + cp, *sc = k + cp, *sh = sc + cp, *meanp = sh + cp;
    for (float* p : {a, b, k, sc, sh, meanp}) std::fill(p + g_.c, p + cp, 0.0f);
    std::copy(mean, mean + g_.c, meanp);
    if (relu_grad_)  // y > 0 where x * sc + sh > 0, as the forward computed y
      for (int64_t c = 0; c < g_.c; ++c)
        bn_affine(gamma[c], in[5].f32()[c], mean[c], invstd[c], sc[c], sh[c]);
    const Mask mask{relu_grad_, sc, sh};
    const TileIo dyio = io(in[0], layouts_[0]), xio = io(in[1], layouts_[1]),
                 dxio = io(out[0], layouts_[2]);
    float* dx_rows = out[0].f32();  // where dx is plain
    // The sums of image n's unit from channel c; where staged, dy made plain in dx's rows first.
    auto sums = [&](int64_t n, int64_t c, int64_t t) {
      const int64_t at = n * cp + c;
      if (g_.tiled && !staged_) {
        std::fill_n(psdy + at, g_.lanes, 0.0);
        std::fill_n(psdxm + at, g_.lanes, 0.0);
        tile_grad_sums(g_.lanes, dyio.read(g_, n, c, tiles_.of(ctx.workspace, t, 0)),
                       xio.read(g_, n, c, tiles_.of(ctx.workspace, t, 1)), g_.s, meanp + c,
                       mask.lanes(sc, c), mask.lanes(sh, c), psdy + at, psdxm + at);
        return;
      }
      if (staged_)
        tile_to_rows(dy + g_.tile(n, c), g_.s, g_.real(c), dx_rows + g_.plain_row(n, c), g_.lanes);
      const float* from = staged_ ? dx_rows : dy;
      for (int64_t i = c; i < c + (staged_ ? g_.real(c) : 1); ++i) {
        const int64_t o = g_.plain_row(n, i);
        psdy[n * cp + i] = psdxm[n * cp + i] = 0;
        row_grad_sums(from + o, x + o, g_.s, mean[i], mask.row(i), psdy[n * cp + i],
                      psdxm[n * cp + i]);
      }
    };
    auto coefficients = [&](int64_t c0, int64_t c1, int64_t) {
      double m = static_cast<double>(g_.per_channel());
      for (int64_t c = c0; c < std::min(c1, g_.c); ++c) {
        double sdy = 0, sdxm = 0;
        for (int64_t n = 0; n < g_.n; ++n) sdy += psdy[n * cp + c], sdxm += psdxm[n * cp + c];
        double is = invstd[c], gi = gamma[c] * is;
        a[c] = static_cast<float>(gi);
        b[c] = static_cast<float>(-gi * is * is * sdxm / m);
        k[c] = static_cast<float>(-gi * sdy / m + gi * is * is * sdxm * mean[c] / m);
        dgamma[c] = static_cast<float>(sdxm * is);
        dbeta[c] = static_cast<float>(sdy);
      }
    };
    auto pass = [&](int64_t n, int64_t c, int64_t t) {
      if (!g_.tiled || staged_) {
        const float* from = staged_ ? dx_rows : dy;
        for (int64_t i = c; i < c + (staged_ ? g_.real(c) : 1); ++i) {
          const int64_t o = g_.plain_row(n, i);
          row_grad_input(from + o, x + o, dx_rows + o, g_.s, a[i], b[i], k[i], mask.row(i));
        }
        return;
      }
      float* dx = dxio.target(g_, n, c, tiles_.of(ctx.workspace, t, 2));
      tile_grad_input(g_.lanes, dyio.read(g_, n, c, tiles_.of(ctx.workspace, t, 0)),
                      xio.read(g_, n, c, tiles_.of(ctx.workspace, t, 1)), dx, g_.s, a + c, b + c,
                      k + c, mask.lanes(sc, c), mask.lanes(sh, c));
      dxio.written(g_, n, c, dx);
    };
    in_phases(g_, threads_, 1, coefficients, pass, sums);
  }

 private:
  // The fused ReLU's mask (post = "relu_grad"), per channel; off where none is fused.
  struct Mask {
    bool on;
    const float *sc, *sh;
    ReluMask row(int64_t c) const { return on ? ReluMask{true, sc[c], sh[c]} : ReluMask{}; }
    const float* lanes(const float* p, int64_t c) const { return on ? p + c : nullptr; }
  };

  BnGeometry g_;
  Layout layouts_[3];  // dy, x, dx
  // dy blocked, x and dx plain (the gradient of a batch norm that converts to a blocked layout): dy
  // is made plain once, in dx's memory, unit by unit just before its sums, and dx computed there
  // in place.
  bool staged_;
  bool relu_grad_;  // post = "relu_grad": the gradient of a ReLU after the batch norm, beta 6th
  int threads_;
  TileBuffers tiles_;
};

}  // namespace

// x, y and a fused residual r (forward), dy, x and dx (gradient): each NCHW or blocked, alike or
// not (batch norm converts between them). Nodes with a fused pooling ("pool") go to bn_pool.cpp's
// kernels.
MYELIN_REGISTER_OPS {
  register_kernel("batch_norm", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    if (s.node.attrs.has("pool")) return make_batch_norm_pool(s);
                    return std::make_unique<BatchNormForward>(s);
                  },
                  {.layout = takes_each({0, 5}, {0})});
  register_kernel("batch_norm_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    if (s.node.attrs.has("pool")) return make_batch_norm_pool_grad(s);
                    return std::make_unique<BatchNormGrad>(s);
                  },
                  // 6 to 9: dp's second addend where fused (bn_pool.cpp: the last input, after
                  // the stem's weights, image statistics and picks where those are fused)
                  {.layout = takes_each({0, 1, 6, 7, 8, 9}, {0})});
}

}  // namespace myelin::cpu
