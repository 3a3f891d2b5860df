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
// With a dense stem convolution fused (below) the forward stores each window's pick instead
// ("stem_picks", a byte a channel), and the gradient reads it rather than computing x and z
// again: bn1 backward 0.68 -> 0.44 ms, forward 0.45 -> 0.51 ms (min of 8 alternating `myelin time`
// runs, batch 128, 2 threads, Xeon shared with other benchmarks; MYELIN_CPU_STEM_PICKS=0: off).
//
// A thin convolution in front ("conv" = "stem", StemConv) is computed inside both kernels,
// so x is never stored at all: the forward computes it once per tile for the pooling, its
// statistics come from the image's, and the gradient writes the convolution's weight gradient in
// dx's place. For 9 taps (3x3 on one channel) the convolution runs inside the window loops
// themselves. The small ResNet's stem (conv1, bn1, relu1, pool1) went from 0.8 + 1.0 + 0.26 ms
// forward and 1.0 + 1.8 + 1.0 ms backward to 0.7 and 1.4 ms (2 threads, batch 128, Xeon with
// AVX-512).
//
// Files: this one the forward kernel, bn_pool_grad.cpp the gradient's; bn_pool_tiles.h the units,
// workspace and tile loops both run (bn_pool_window.h: one window, lanes.h: the lane vectors);
// stem_conv.h the fused convolution.
#include "cpu/bn_pool.h"

#include <atomic>
#include <cmath>

#include "core/env.h"
#include "core/error.h"
#include "cpu/bn_pool_tiles.h"
#include "cpu/cpu_backend.h"
#include "cpu/moments.h"
#include "cpu/stem_conv.h"

namespace myelin::cpu {

namespace {

using namespace bn_pool;

class BatchNormPool : public Kernel {
  static constexpr int kWeights = 5;       // the fused convolution's weights, after running_var
  static constexpr size_t kStemStats = 3;  // the output of its image statistics, after invstd

 public:
  explicit BatchNormPool(const KernelSpec& s)
      : conv_(s, 0, kWeights),
        g_(conv_.on() ? conv_.x_shape() : s.input(0).shape, s.output(0).shape, tile_lanes(s)),
        x_(s.input_layout(0)),
        p_layout_(s.output_layout(0)),
        bn_(s.node.attrs),
        // A dense stem's blocks of 8 lanes two at a time as 16 (StemConv::pool_pair) where p is
        // blocked; MYELIN_CPU_STEM_PAIRS=0: one at a time (bn_pool_grad.cpp says why).
        picks_(conv_.on() && s.node.attrs.i("stem_picks", 0) != 0),
        pairs_(conv_.on() && conv_.dense() && g_.lanes == 8 && is_blocked(p_layout_) &&
               !env_is("MYELIN_CPU_STEM_PAIRS", "0")),
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
        {
          image = conv_.batch_stats(moments);
          if (out.size() > kStemStats + (picks_ ? 1 : 0))
            conv_.save_stats(image, out[kStemStats].f32());
        }
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
      // Unit (n, c0)'s pooled output.
      auto unit_pool = [&](int64_t n, int64_t c0, int64_t t) {
        float* buf = ws_.tiles(ctx.workspace, t);
        float* pt = p.target(g_, n, c0, buf + hw * g_.lanes);
        if (conv_.windowed())
          conv_.pool(g_, xs.image(n, scratch, padded), wt, c0, scale + c0, shift + c0, pt,
                     picks_at(out, n, c0));
        else
          tile_pool(g_.lanes, xs.get(n, c0, buf, scratch, padded), pt, g_.w, g_.oh, g_.ow,
                    scale + c0, shift + c0);
        p.written(g_, n, c0, pt);
      };
      if (pairs_) {
        for_my_groups(g_, 2, [&](int64_t n, int64_t c0, int64_t blocks, int64_t t) {
          if (blocks < 2) return unit_pool(n, c0, t);
          conv_.pool_pair(g_, xs.image(n, scratch, padded), wt, c0, scale + c0, shift + c0,
                          p.base + p.tile_at(g_, n, c0), picks_at(out, n, c0));
        });
      } else {
        for_my_units(g_, unit_pool);
      }
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

  // Unit (n, c0)'s picks in the last output, or null.
  uint8_t* picks_at(const std::vector<Tensor>& out, int64_t n, int64_t c0) const {
    if (!picks_) return nullptr;
    return reinterpret_cast<uint8_t*>(out.back().f32()) + bn_pool::picks_at(g_, n, c0);
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
  bool picks_;  // the last output: each window's pick ("stem_picks", fuse.cpp), for the gradient
  bool pairs_;
  int threads_;
  Workspace ws_;
};

}  // namespace

std::unique_ptr<Kernel> make_batch_norm_pool(const KernelSpec& s) {
  if (s.node.attrs.s("pool", "") != "max2" || s.node.attrs.s("post", "") != "relu")
    throw UnsupportedError("batch_norm '" + s.node.name + "': unknown fused pooling");
  return std::make_unique<BatchNormPool>(s);
}

}  // namespace myelin::cpu
