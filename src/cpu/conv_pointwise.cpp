// Our gradients of a strided 1x1 convolution on blocked operands (conv_pointwise.h).
#include "cpu/conv_pointwise.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "core/env.h"
#include "cpu/blocked.h"
#include "cpu/conv_direct.h"
#include "cpu/cpu_backend.h"
#include "cpu/simd.h"

namespace myelin::cpu {

namespace pointwise {

namespace {

using v8 = float __attribute__((vector_size(32)));
using v8u = float __attribute__((vector_size(32), aligned(4)));  // an unaligned v8 in memory

constexpr int kPix = 4;     // output pixels of one register tile (grad_input)
constexpr int kOut = 4;     // output channels of one register tile (grad_weight)
constexpr int kMaxVec = 3;  // channel vectors of 8 in one tile: 24 channels
constexpr int kChunk = 8;   // images summed into one partial of the weight gradient

// dx at output pixels q[0..kPix) of image i (pixel[j]: where q[j] lands in dx), channels
// [c0, c0 + 8 * NV): the sum over dy's channels o (at dy_off[o] in a pixel's blocks) of
// dy[o] * wt[o][c] (wt: the weights transposed, [k][dx.padded()], zero in padding lanes, so
// dx's padding lanes come out zero).
template <int NV>
MYELIN_AVX2 void input_tile(const Blocked& dy, const int64_t* dy_off, const float* wt,
                            const Blocked& dx, int64_t i, int64_t c0, const int64_t* q,
                            const int64_t* pixel) {
  v8 acc[kPix][NV] = {};
  const int64_t cp = dx.padded();
  const float* d[kPix];
  for (int j = 0; j < kPix; ++j) d[j] = dy.at(i, 0, q[j]);
  for (int64_t o = 0; o < dy.c; ++o) {
    v8 wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = *reinterpret_cast<const v8u*>(wt + o * cp + c0 + 8 * v);
    for (int j = 0; j < kPix; ++j) {
      const float g = d[j][dy_off[o]];
      for (int v = 0; v < NV; ++v) acc[j][v] += g * wv[v];
    }
  }
  for (int j = 0; j < kPix; ++j)
    for (int v = 0; v < NV; ++v)
      *reinterpret_cast<v8u*>(dx.at(i, c0 + 8 * v, pixel[j])) = acc[j][v];
}

// dw partial rows o0.. (kOut of them; rows past dy.c are computed from row dy.c - 1 and not
// stored), channels [c0, c0 + 8 * NV), over images [i0, i1): sum of dy[o] * x[c] over output
// pixels q, which read input pixel pixel[q] (dy_off as for input_tile).
template <int NV>
MYELIN_AVX2 void weight_tile(const Blocked& dy, const int64_t* dy_off, const Blocked& x,
                             const int64_t* pixel, float* part, int64_t o0, int64_t c0, int64_t i0,
                             int64_t i1) {
  v8 acc[kOut][NV] = {};
  const int64_t pixels = dy.h * dy.w;
  int64_t off[kOut];
  for (int j = 0; j < kOut; ++j) off[j] = dy_off[std::min(o0 + j, dy.c - 1)];
  for (int64_t i = i0; i < i1; ++i) {
    const float* d = dy.at(i, 0, 0);
    const float* xs[NV];
    for (int v = 0; v < NV; ++v) xs[v] = x.at(i, c0 + 8 * v, 0);
    for (int64_t q = 0; q < pixels; ++q) {
      const int64_t p = pixel[q] * x.block;
      v8 xv[NV];
      for (int v = 0; v < NV; ++v) xv[v] = *reinterpret_cast<const v8u*>(xs[v] + p);
      for (int j = 0; j < kOut; ++j) {
        const float g = d[off[j] + q * dy.block];
        for (int v = 0; v < NV; ++v) acc[j][v] += g * xv[v];
      }
    }
  }
  const int64_t cp = x.padded();
  for (int j = 0; j < kOut && o0 + j < dy.c; ++j)
    for (int v = 0; v < NV; ++v)
      *reinterpret_cast<v8u*>(part + (o0 + j) * cp + c0 + 8 * v) = acc[j][v];
}

// Where channel o of a pixel is, from the pixel's first float in dy's blocks, for each o.
std::vector<int64_t> channel_offsets(const Blocked& dy) {
  std::vector<int64_t> off(static_cast<size_t>(dy.c));
  for (int64_t o = 0; o < dy.c; ++o)
    off[o] = (o / dy.block) * dy.h * dy.w * dy.block + o % dy.block;
  return off;
}

// The input pixel that each output pixel reads.
std::vector<int64_t> input_pixels(const Blocked& dy, const Blocked& x, int64_t sh, int64_t sw) {
  std::vector<int64_t> p(static_cast<size_t>(dy.h * dy.w));
  for (int64_t q = 0; q < dy.h * dy.w; ++q) p[q] = (q / dy.w) * sh * x.w + (q % dy.w) * sw;
  return p;
}

// Calls f(integral_constant<int, NV>) for each run of channel vectors of 8 in [0, channels):
// tiles of kMaxVec vectors, the last one shorter.
template <class F>
void over_channel_tiles(int64_t channels, F&& f) {
  for (int64_t c0 = 0; c0 < channels; c0 += 8 * kMaxVec) {
    const int64_t nv = std::min<int64_t>(kMaxVec, (channels - c0) / 8);
    if (nv == 3) f(c0, std::integral_constant<int, 3>{});
    if (nv == 2) f(c0, std::integral_constant<int, 2>{});
    if (nv == 1) f(c0, std::integral_constant<int, 1>{});
  }
}

}  // namespace

void grad_input(const Blocked& dy, const float* w, const Blocked& dx, int64_t n, int64_t sh,
                int64_t sw, int threads) {
  // The weights transposed ([k][padded c], zero padding lanes), on the stack: 1x1 weights of
  // the layers this serves are a few thousand floats.
  const int64_t cp = dx.padded(), k = dy.c, pixels = dy.h * dy.w;
  std::vector<float> wt(static_cast<size_t>(k * cp), 0.f);
  for (int64_t o = 0; o < k; ++o)
    for (int64_t c = 0; c < dx.c; ++c) wt[o * cp + c] = w[o * dx.c + c];
  const std::vector<int64_t> dy_off = channel_offsets(dy), pixel = input_pixels(dy, dx, sh, sw);
  const bool dense = sh == 1 && sw == 1;  // every dx pixel written by a tile
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    if (!dense) std::memset(dx.at(i, 0, 0), 0, sizeof(float) * dx.image());
    for (int64_t q0 = 0; q0 < pixels; q0 += kPix) {
      int64_t q[kPix], at[kPix];  // a last, short tile repeats its last pixel
      for (int j = 0; j < kPix; ++j) {
        q[j] = std::min(q0 + j, pixels - 1);
        at[j] = pixel[q[j]];
      }
      over_channel_tiles(cp, [&](int64_t c0, auto nv) {
        input_tile<decltype(nv)::value>(dy, dy_off.data(), wt.data(), dx, i, c0, q, at);
      });
    }
  }
}

int64_t scratch_floats(int64_t n, int64_t c, int64_t k) {
  return (n + kChunk - 1) / kChunk * k * padded_channels(c);
}

void grad_weight(const Blocked& dy, const Blocked& x, float* dw, float* scratch, int64_t n,
                 int64_t sh, int64_t sw, int threads) {
  const int64_t chunks = (n + kChunk - 1) / kChunk, k = dy.c, cp = x.padded();
  const int64_t rows = (k + kOut - 1) / kOut;
  const std::vector<int64_t> dy_off = channel_offsets(dy), pixel = input_pixels(dy, x, sh, sw);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
  for (int64_t ch = 0; ch < chunks; ++ch)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i0 = ch * kChunk, i1 = std::min(n, i0 + kChunk);
      over_channel_tiles(cp, [&](int64_t c0, auto nv) {
        weight_tile<decltype(nv)::value>(dy, dy_off.data(), x, pixel.data(), scratch + ch * k * cp,
                                         r * kOut, c0, i0, i1);
      });
    }
    // The partials added in chunk order: the same sums whatever the thread count.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t o = 0; o < k; ++o)
    for (int64_t c = 0; c < x.c; ++c) {
      float s = 0.f;
      for (int64_t ch = 0; ch < chunks; ++ch) s += scratch[(ch * k + o) * cp + c];
      dw[o * x.c + c] = s;
    }
}

}  // namespace pointwise

namespace {

std::atomic<int64_t> made{0};

class PointwiseConv : public Kernel {
 public:
  PointwiseConv(const KernelSpec& s, ConvPass pass)
      : c_(conv_shape(s, pass)),
        pass_(pass),
        threads_(cpu_backend(s).threads()),
        by_(conv_y_block(s, pass)),
        bx_(conv_x_block(s, pass)) {}

  size_t workspace_bytes() const override {
    if (pass_ != ConvPass::grad_weight) return 0;
    return static_cast<size_t>(pointwise::scratch_floats(c_.n, c_.c, c_.o)) * sizeof(float);
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const pointwise::Blocked dy{const_cast<float*>(in[0].f32()), by_, c_.o, c_.oh, c_.ow};
    if (pass_ == ConvPass::grad_input)
      pointwise::grad_input(dy, in[1].f32(), {out[0].f32(), bx_, c_.c, c_.h, c_.w}, c_.n, c_.sh,
                            c_.sw, threads_);
    if (pass_ == ConvPass::grad_weight)
      pointwise::grad_weight(dy, {const_cast<float*>(in[1].f32()), bx_, c_.c, c_.h, c_.w},
                             out[0].f32(), static_cast<float*>(ctx.workspace), c_.n, c_.sh, c_.sw,
                             threads_);
  }

 private:
  ConvShape c_;
  ConvPass pass_;
  int threads_;
  int64_t by_, bx_;
};

}  // namespace

bool pointwise_applies(const ConvShape& c, ConvPass pass, int64_t bx, int64_t by) {
  const bool geometry = c.kh == 1 && c.kw == 1 && c.ph == 0 && c.pw == 0 && c.dil_h == 1 &&
                        c.dil_w == 1 && c.groups == 1 && (c.sh > 1 || c.sw > 1);
  return pass != ConvPass::forward && geometry && bx != 0 && by != 0 && cpu_has_avx2() &&
         !env_is("MYELIN_CPU_POINTWISE", "0");
}

std::unique_ptr<Kernel> make_pointwise_conv(const KernelSpec& s, ConvPass pass) {
  ++made;
  return std::make_unique<PointwiseConv>(s, pass);
}

int64_t pointwise_kernels_made() {
  return made.load();
}

}  // namespace myelin::cpu
