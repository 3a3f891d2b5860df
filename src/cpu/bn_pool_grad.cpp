// The gradient of batch norm + ReLU + 2x2 max pooling in one kernel (bn_pool.cpp says why and
// how), with the stem convolution's weight gradient in dx's place where it is fused.
#include <atomic>

#include "core/env.h"
#include "core/error.h"
#include "cpu/bn_pool.h"
#include "cpu/bn_pool_tiles.h"
#include "cpu/cpu_backend.h"
#include "cpu/stem_conv.h"

namespace myelin::cpu {

namespace {

using namespace bn_pool;

// dx = gamma*invstd * (dz - mean(dz) - xhat * mean(dz * xhat)), dz the pooling and ReLU gradient
// of dp, as a*dz + b*x + k per channel. With the stem convolution fused, the kernel writes the
// convolution's weight gradient in dx's place, from sums taken in the same pass (StemConv::grad,
// grad_tile) and the image's moments.
class BatchNormPoolGrad : public Kernel {
  static constexpr int kWeights = 6;  // the fused convolution's weights, after beta

 public:
  explicit BatchNormPoolGrad(const KernelSpec& s)
      : conv_(s, 1, kWeights),
        g_(conv_.on() ? conv_.x_shape() : s.input(1).shape, s.input(0).shape, tile_lanes(s)),
        layouts_{s.input_layout(0), s.input_layout(1), s.output_layout(0)},
        stats_(conv_.on() && s.node.attrs.i("stem_stats", 0) != 0 ? kWeights + 1 : -1),
        picks_(conv_.on() && s.node.attrs.i("stem_picks", 0) != 0
                   ? kWeights + 1 + (stats_ >= 0 ? 1 : 0)
                   : -1),
        addend_(s.node.attrs.i("dp_sum", 0) != 0 ? static_cast<int>(s.node.inputs.size()) - 1 : -1),
        addend_layout_(addend_ >= 0 ? s.input_layout(addend_) : Layout::nchw),
        pairs_(conv_.on() && conv_.dense() && g_.lanes == 8 && is_blocked(layouts_[0]) &&
               (addend_ < 0 || is_blocked(addend_layout_)) &&
               !env_is("MYELIN_CPU_STEM_PAIRS", "0")),
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
    // The image's statistics from the forward, or computed again below.
    ImageStats image = stats_ >= 0 ? conv_.load_stats(in[stats_].f32()) : ImageStats{};
    std::atomic<bool> ok{true};  // no exceptions inside OpenMP
#pragma omp parallel num_threads(threads_)
    {
      int64_t padded = -1;  // the image in this thread's pimg
      if (conv_.on() && stats_ < 0) {
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g_.n; ++n)
          if (!conv_.image_moments(in[1].f32(), n, tiles.image(omp_get_thread_num()), sums.moments,
                                   padded))
            ok = false;
#pragma omp single nowait
        image = conv_.batch_stats(sums.moments);
      }
      // Unit (n, c0)'s sums.
      auto unit_sums = [&](int64_t n, int64_t c0, int64_t t) {
        const float* dpt = dp_tile(n, c0, t);
        const int64_t at = n * cp + c0;
        std::fill_n(sums.dz + at, g_.lanes, 0.0);
        std::fill_n(sums.dxm + at, g_.lanes, 0.0);
        if (conv_.windowed()) {
          double* g1 = sums.g1 + at * taps;
          std::fill_n(g1, taps * g_.lanes, 0.0);
          if (picks_ >= 0)
            conv_.grad_picks(g_, xs.image(n, tiles.image(t), padded), wt, c0, 1, dpt, nullptr,
                             picks_at(in, n, c0), mean + c0, sums.dz + at, sums.dxm + at, g1);
          else
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
      };
      if (pairs_) {
        for_my_groups(g_, 2, [&](int64_t n, int64_t c0, int64_t blocks, int64_t t) {
          if (blocks < 2) return unit_sums(n, c0, t);
          const int64_t at = n * cp + c0;
          std::fill_n(sums.dz + at, 2 * g_.lanes, 0.0);
          std::fill_n(sums.dxm + at, 2 * g_.lanes, 0.0);
          std::fill_n(sums.g1 + at * taps, 2 * taps * g_.lanes, 0.0);
          // dp's and its addend's tiles of the two blocks, one after the other (both blocked),
          // added in the window loop.
          const int64_t tile = dp.tile_at(g_, n, c0);
          if (picks_ >= 0)
            return conv_.grad_picks(
                g_, xs.image(n, tiles.image(t), padded), wt, c0, 2, dp.base + tile,
                addend_ < 0 ? nullptr : in[addend_].f32() + tile, picks_at(in, n, c0), mean + c0,
                sums.dz + at, sums.dxm + at, sums.g1 + at * taps);
          conv_.grad_pair(g_, xs.image(n, tiles.image(t), padded), wt, c0, dp.base + tile,
                          addend_ < 0 ? nullptr : in[addend_].f32() + tile, scale + c0, shift + c0,
                          mean + c0, sums.dz + at, sums.dxm + at, sums.g1 + at * taps);
        });
      } else {
        for_my_units(g_, unit_sums);
      }
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

  // Unit (n, c0)'s picks from the forward.
  const uint8_t* picks_at(const std::vector<Tensor>& in, int64_t n, int64_t c0) const {
    return reinterpret_cast<const uint8_t*>(in[picks_].f32()) + bn_pool::picks_at(g_, n, c0);
  }

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
  int stats_;          // the input of the stem's image statistics ("stem_stats"), or -1
  int picks_;          // the input of the forward's picks ("stem_picks"), or -1
  int addend_;         // dp's second addend's input ("dp_sum"), or -1
  Layout addend_layout_;
  // A dense stem's blocks of 8 lanes taken two at a time as 16 (StemConv::grad_pair), where dp is
  // blocked: the 24 channels of the small ResNet's stem as 16 + 8 lanes rather than 3 x 8, the
  // same bits in fewer instructions (bn1 backward 0.910 -> 0.700 ms; its forward, pool_pair,
  // 0.469 -> 0.450 ms). MYELIN_CPU_STEM_PAIRS=0: one block at a time.
  bool pairs_;
  int threads_;
  Workspace ws_;
};

}  // namespace

std::unique_ptr<Kernel> make_batch_norm_pool_grad(const KernelSpec& s) {
  const bool stem = s.node.attrs.s("conv", "") == "stem";
  const size_t inputs =
      (stem ? 7 + (s.node.attrs.i("stem_stats", 0) != 0) + (s.node.attrs.i("stem_picks", 0) != 0)
            : 6) +
      (s.node.attrs.i("dp_sum", 0) != 0);
  if (s.node.attrs.s("pool", "") != "max2" || s.node.inputs.size() != inputs)
    throw UnsupportedError("batch_norm_grad '" + s.node.name + "': unknown fused pooling");
  return std::make_unique<BatchNormPoolGrad>(s);
}

}  // namespace myelin::cpu
