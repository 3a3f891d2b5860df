// Local response normalization across channels (Caffe's and oneDNN's convention, alpha divided
// by size): y_c = x_c * s_c^-beta, s_c = k + alpha/size * sum_{|j-c| <= size/2} x_j^2, and
//   dx_i = dy_i * s_i^-beta - 2*alpha*beta/size * x_i * sum_{|c-i| <= size/2} dy_c * y_c / s_c
// Forward is oneDNN's lrn on the tensors as stored, NCHW or nChw16c (blocked.h; its JIT kernels;
// measured faster than a loop here and than its blocked kernel plus reorders). The gradient is an
// OpenMP loop over tiles of kTile pixels x all channels (the sliding channel sums vectorize over
// pixels, or over channels when blocked) from x, y and dy alone: oneDNN's backward wants the
// forward's workspace, which no other op keeps, and recomputing it blocked (two reorders in, one
// out) measured slower than this loop.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/blocked.h"
#include "cpu/dnnl_util.h"
#include "cpu/simd.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

class LrnForward : public Kernel {
 public:
  explicit LrnForward(const KernelSpec& s) : seq_(cpu_backend(s), s.node) {
    LrnParams p(s.node.attrs);
    dnnl_call(s.node, "lrn_forward", [&] {
      auto md = stored_desc(s.input(0).shape, s.input_layout(0));
      dnnl::lrn_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::lrn_across_channels, md, p.size,
          static_cast<float>(p.alpha), static_cast<float>(p.beta), static_cast<float>(p.k));
      dnnl::lrn_forward::primitive_desc pd(d, user_scratchpad_attr(), cpu_backend(s).engine());
      seq_.add(dnnl::lrn_forward(pd),
               {{DNNL_ARG_SRC, seq_.input(0, md)}, {DNNL_ARG_DST, seq_.output(0, md)}},
               pd.scratchpad_desc(), "lrn_forward");
    });
  }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    seq_.run(in, out, ctx.workspace);
  }
  size_t workspace_bytes() const override { return seq_.workspace_bytes(); }

 private:
  DnnlSequence seq_;
};

// The LRN gradient over tiles of kTile pixels of one image, each thread with its own scratch (two
// c x kTile blocks); Layout::tile does the arithmetic in its layout.
template <class Layout>
class TiledLrnGrad : public Kernel {
 public:
  static constexpr int64_t kTile = 64;

  explicit TiledLrnGrad(const KernelSpec& s)
      : p_(s.node.attrs), threads_(cpu_backend(s).threads()) {
    const Shape& x = s.input(0).shape;
    n_ = x[0], c_ = x[1], hw_ = x[2] * x[3];
  }
  size_t workspace_bytes() const override {
    return static_cast<size_t>(threads_) * 2 * c_ * kTile * sizeof(float);
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    int64_t tiles = (hw_ + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int64_t t = 0; t < n_ * tiles; ++t) {
      float* scratch = static_cast<float*>(ctx.workspace) + omp_get_thread_num() * 2 * c_ * kTile;
      int64_t n = t / tiles, p0 = (t % tiles) * kTile;
      static_cast<const Layout*>(this)->tile(n, p0, std::min(kTile, hw_ - p0), in, out, scratch,
                                             scratch + c_ * kTile);
    }
  }

 protected:
  LrnParams p_;
  int threads_;
  int64_t n_ = 0, c_ = 0, hw_ = 0;
};

// lrn_grad(dy, x, y) -> dx on NCHW tensors.
class LrnGrad : public TiledLrnGrad<LrnGrad> {
 public:
  using TiledLrnGrad::TiledLrnGrad;

  // Per tile: the scale s and dy*y/s, c_ rows of kTile each.
  void tile(int64_t n, int64_t p0, int64_t len, const std::vector<Tensor>& in,
            const std::vector<Tensor>& out, float* scale, float* rows) const {
    int64_t base = n * c_ * hw_ + p0;
    backward(Tile{len, scale, rows}, in[0].f32() + base, in[1].f32() + base, in[2].f32() + base,
             out[0].f32() + base);
  }

 private:
  struct Tile {
    int64_t len;          // pixels in this tile
    float *scale, *rows;  // c_ x kTile each
  };

  // Sums rows [c - size/2, c + size/2] of `rows` into `sums` (c_ rows of kTile).
  void window_sums(const float* rows, float* sums, int64_t len) const {
    int64_t half = p_.size / 2;
    for (int64_t c = 0; c < c_; ++c) {
      float* s = sums + c * kTile;
      std::fill_n(s, len, 0.0f);
      for (int64_t j = std::max<int64_t>(0, c - half); j <= std::min(c_ - 1, c + half); ++j)
        for (int64_t i = 0; i < len; ++i) s[i] += rows[j * kTile + i];
    }
  }

  // t.scale <- s = k + alpha/size * window sums of x^2.
  void scales(const Tile& t, const float* x) const {
    const float a = static_cast<float>(p_.alpha / p_.size), k = static_cast<float>(p_.k);
    for (int64_t c = 0; c < c_; ++c)
      for (int64_t i = 0; i < t.len; ++i) t.rows[c * kTile + i] = x[c * hw_ + i] * x[c * hw_ + i];
    window_sums(t.rows, t.scale, t.len);
    for (int64_t c = 0; c < c_; ++c)
      for (int64_t i = 0; i < t.len; ++i) t.scale[c * kTile + i] = k + a * t.scale[c * kTile + i];
  }

  // out = in * s^-beta; beta = 0.75 (AlexNet's) as two square roots, cheaper than pow.
  void times_pow(const Tile& t, const float* in, float* out) const {
    const float b = static_cast<float>(p_.beta);
    bool three_quarters = p_.beta == 0.75;
    for (int64_t c = 0; c < c_; ++c) {
      const float* s = t.scale + c * kTile;
      if (three_quarters)
        for (int64_t i = 0; i < t.len; ++i)
          out[c * hw_ + i] = in[c * hw_ + i] / std::sqrt(s[i] * std::sqrt(s[i]));
      else
        for (int64_t i = 0; i < t.len; ++i) out[c * hw_ + i] = in[c * hw_ + i] * std::pow(s[i], -b);
    }
  }

  void backward(const Tile& t, const float* dy, const float* x, const float* y, float* dx) const {
    scales(t, x);
    for (int64_t c = 0; c < c_; ++c)  // rows <- dy*y/s
      for (int64_t i = 0; i < t.len; ++i)
        t.rows[c * kTile + i] = dy[c * hw_ + i] * y[c * hw_ + i] / t.scale[c * kTile + i];
    times_pow(t, dy, dx);                 // dx <- dy * s^-beta
    window_sums(t.rows, t.scale, t.len);  // scale <- window sums of dy*y/s
    const float coeff = static_cast<float>(2 * p_.alpha * p_.beta / p_.size);
    for (int64_t c = 0; c < c_; ++c)
      for (int64_t i = 0; i < t.len; ++i)
        dx[c * hw_ + i] -= coeff * x[c * hw_ + i] * t.scale[c * kTile + i];
  }
};

// The window sums of BlockedLrnGrad over one pixel's channels (contiguous), adding the terms in
// LrnGrad's order (channel c - size/2 first), so that both layouts give the same sums.
MYELIN_VECTOR_CLONES void channel_window_sums(const float* row, float* sums, int64_t c,
                                              int64_t half) {
  std::fill_n(sums, c, 0.0f);
  for (int64_t d = -half; d <= half; ++d)
    for (int64_t j = std::max<int64_t>(0, -d); j < std::min(c, c - d); ++j) sums[j] += row[j + d];
}

// lrn_grad(dy, x, y) -> dx on nChw16c tensors: LrnGrad's arithmetic on tiles of kTile pixels whose
// scratch rows hold each pixel's channels together ([pixel][channel]), so every loop runs over 16
// contiguous channels of a block and the window sums over a pixel's contiguous channels.
class BlockedLrnGrad : public TiledLrnGrad<BlockedLrnGrad> {
 public:
  static constexpr int64_t B = kChannelBlock;
  using TiledLrnGrad::TiledLrnGrad;

  void tile(int64_t n, int64_t p0, int64_t len, const std::vector<Tensor>& in,
            const std::vector<Tensor>& out, float* scale, float* rows) const {
    int64_t base = n * c_ * hw_ + p0 * B;
    backward(len, in[0].f32() + base, in[1].f32() + base, in[2].f32() + base, out[0].f32() + base,
             scale, rows);
  }

 private:
  // f(element offset in the tensors from the tile's start, index in the scratch rows) over the
  // tile's len pixels x all channels, block by block.
  template <class F>
  void each(int64_t len, F f) const {
    for (int64_t cb = 0; cb < c_ / B; ++cb)
      for (int64_t i = 0; i < len; ++i)
#pragma omp simd
        for (int64_t l = 0; l < B; ++l) f(cb * hw_ * B + i * B + l, i * c_ + cb * B + l);
  }

  void window_sums(const float* rows, float* sums, int64_t len) const {
    for (int64_t i = 0; i < len; ++i)
      channel_window_sums(rows + i * c_, sums + i * c_, c_, p_.size / 2);
  }

  void backward(int64_t len, const float* dy, const float* x, const float* y, float* dx,
                float* scale, float* rows) const {
    const float a = static_cast<float>(p_.alpha / p_.size), k = static_cast<float>(p_.k);
    const float b = static_cast<float>(p_.beta);
    const bool three_quarters = p_.beta == 0.75;
    each(len, [&](int64_t e, int64_t r) { rows[r] = x[e] * x[e]; });
    window_sums(rows, scale, len);
    each(len, [&](int64_t, int64_t r) { scale[r] = k + a * scale[r]; });
    each(len, [&](int64_t e, int64_t r) { rows[r] = dy[e] * y[e] / scale[r]; });
    if (three_quarters)  // as LrnGrad::times_pow
      each(len, [&](int64_t e, int64_t r) {
        dx[e] = dy[e] / std::sqrt(scale[r] * std::sqrt(scale[r]));
      });
    else
      each(len, [&](int64_t e, int64_t r) { dx[e] = dy[e] * std::pow(scale[r], -b); });
    window_sums(rows, scale, len);
    const float coeff = static_cast<float>(2 * p_.alpha * p_.beta / p_.size);
    each(len, [&](int64_t e, int64_t r) { dx[e] -= coeff * x[e] * scale[r]; });
  }
};

}  // namespace

// LRN (oneDNN forward, our gradient on pixel-major tiles) takes nchw16c where all its operands
// have it, with whole channel blocks (its windows would reach into padding channels).
MYELIN_REGISTER_OPS {
  register_kernel("lrn", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<LrnForward>(s);
                  },
                  {.layout = takes_alike({0}, {0}, whole_blocks)});
  register_kernel("lrn_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    if (is_blocked(s.input_layout(0))) return std::make_unique<BlockedLrnGrad>(s);
                    return std::make_unique<LrnGrad>(s);
                  },
                  {.layout = takes_alike({0, 1, 2}, {0}, whole_blocks)});
}

}  // namespace myelin::cpu
