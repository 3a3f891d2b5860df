// Our AVX-512 direct stride-2 convolutions from nChw8c to nChw16c (conv_direct_s2.h).
#include "cpu/conv_direct_s2.h"

// GCC 12's _mm512_castps512_ps256 and _mm512_extractf32x8_ps read a deliberately uninitialized
// value: a false warning.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/env.h"
#include "cpu/blocked.h"
#include "cpu/conv_direct.h"
#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "cpu/simd.h"

namespace myelin::cpu {

namespace direct_s2 {

namespace {

constexpr int kRun = 7;                   // output (or dx) pixels of a row kept in registers
constexpr int64_t kChunkImages = 8;       // images per weight-gradient partial: fixed, so sums
                                          // ignore the thread count
alignas(64) const float kZeros[16] = {};  // the x value left of a row

// The geometry of one call: x (or dx) c x h x w in blocks of bx channels, y (or dy) k x oh x ow
// in blocks of 16; the strides computed once (a division per row cost the weight gradient 3%).
struct Geo {
  int64_t c, k, h, w, oh, ow, bx;
  int64_t x_plane, x_image;  // floats of one channel block of x, of one image
  int64_t y_plane, y_image;
  Geo(int64_t c_, int64_t k_, int64_t h_, int64_t w_, int64_t bx_)
      : c(c_), k(k_), h(h_), w(w_), oh((h_ + 1) / 2), ow(w_ / 2), bx(bx_) {
    x_plane = h * w * bx, x_image = padded_channels(c, bx) * h * w;
    y_plane = oh * ow * 16, y_image = k * oh * ow;
  }
};

// ---- forward ----

// y for output pixels [ow0, ow0 + 7) of row oy of one image (x, y: the image's first float):
// the sum over input channels and taps of x * wp[(ci * T * T + tap) * K + o]. Left: the run
// starts at column 0, whose tap kx = 0 reads the padding (skipped at compile time). T = 1: the
// 1x1 convolution of stride 2 without padding, which is the 3x3 one's centre tap.
template <int K, int BX, int T, bool Left>
MYELIN_AVX512 void forward_run(const float* x, const float* wp, const float* bias, float* y,
                               const Geo& g, int64_t oy, int64_t ow0, bool relu, float slope) {
  constexpr int Z = K / 16;
  __m512 a[Z][kRun];
  for (int z = 0; z < Z; ++z) {
    const __m512 v = bias ? _mm512_loadu_ps(bias + 16 * z) : _mm512_setzero_ps();
    for (int p = 0; p < kRun; ++p) a[z][p] = v;
  }
  constexpr int T0 = (3 - T) / 2;  // the first tap, in the 3x3 kernel's terms
  for (int ky = T0; ky < T0 + T; ++ky) {
    const int64_t iy = 2 * oy + ky - 1;
    if (iy < 0 || iy >= g.h) continue;
    for (int64_t c8 = 0; c8 < g.c / 8; ++c8) {
      // Input column iw of these 8 channels at row[iw * BX].
      const float* row = x + (c8 * 8 / BX) * g.x_plane + iy * g.w * BX + c8 * 8 % BX;
      for (int c = 0; c < 8; ++c) {
        const float* wt = wp + ((c8 * 8 + c) * T * T + (ky - T0) * T) * K;
#pragma GCC unroll 3
        for (int kx = T0; kx < T0 + T; ++kx) {
          __m512 wz[Z];
          for (int z = 0; z < Z; ++z) wz[z] = _mm512_loadu_ps(wt + (kx - T0) * K + 16 * z);
#pragma GCC unroll 7
          for (int p = 0; p < kRun; ++p) {
            if (Left && p == 0 && kx == 0) continue;
            const __m512 v = _mm512_set1_ps(row[(2 * (ow0 + p) + kx - 1) * BX + c]);
            for (int z = 0; z < Z; ++z) a[z][p] = _mm512_fmadd_ps(v, wz[z], a[z][p]);
          }
        }
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps(), sl = _mm512_set1_ps(slope);
  float* out = y + (oy * g.ow + ow0) * 16;
  for (int z = 0; z < Z; ++z)
    for (int p = 0; p < kRun; ++p) {
      __m512 v = a[z][p];
      if (relu) v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, sl);
      _mm512_storeu_ps(out + z * g.y_plane + p * 16, v);
    }
}

template <int K, int BX, int T>
MYELIN_AVX512 void forward_rows(const float* x, const float* wp, const float* bias, float* y,
                                const Geo& g, int64_t n, bool relu, float slope, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < n * g.oh; ++r) {
    const int64_t img = r / g.oh, oy = r % g.oh;
    const float* xi = x + img * g.x_image;
    float* yi = y + img * g.y_image;
    forward_run<K, BX, T, true>(xi, wp, bias, yi, g, oy, 0, relu, slope);
    for (int64_t ow0 = kRun; ow0 < g.ow; ow0 += kRun)
      forward_run<K, BX, T, false>(xi, wp, bias, yi, g, oy, ow0, relu, slope);
  }
}

// ---- data gradient ----

// dx[ci, iy, ix] = sum dy[o, oy, ox] w[o, ci, ky, kx] over iy = 2 oy + ky - 1, ix = 2 ox + kx - 1.
// An even dx column 2 j takes tap kx = 1 of dy column j; the odd one beside it, 2 j + 1, taps
// kx = 2 of column j and kx = 0 of column j + 1. So dy column j, broadcast once, feeds the pair
// of pixels (2 j, 2 j + 1) and the odd pixel of the pair before. Per pixel, channels [0, 16 Z)
// are Z zmm of its own (a: even pixel, b: odd); the last 8 (C = 24) of both pixels of a pair
// share one zmm (e), which is also how nChw8c stores them (adjacent pixels of one block): 5 FMAs
// per dy value and (o, ky) where one zmm + ymm per pixel took 6 (90% of the lanes useful, not
// 75%). That alone gained nothing (0.50 ms at batch 128 on 2 threads, both); what the pass
// waited on was its weights (60 KB, more than L1 beside dy): stepped pointers, an image's even
// rows before its odd ones and the weights below without copies took it to 0.455 ms.
//
// Pairs j0 + p, p < 7, of dx row iy. Last: dy column j0 + 7 is past dy's right edge. wp: per
// (o, ky), channels [0, 16 Z) of taps kx = 0, 1, 2 and (Y) the pair weights [kx 1 | kx 2] and
// [0 | kx 0] of the last 8 channels: Stride floats (80 for C = 24: 46 KB for 48 outputs).
template <int C>
struct PairLanes {
  static constexpr int Z = C / 16, Y = (C % 16) / 8, ZA = Z > 0 ? Z : 1;
  static constexpr int64_t Stride = 48 * Z + 32 * Y;
};

template <int C, bool Last>
MYELIN_AVX512 void input_pairs(const float* dy, const float* wp, float* dx, const Geo& g,
                               int64_t iy, int64_t j0) {
  using L = PairLanes<C>;
  constexpr int Z = L::Z, Y = L::Y;
  __m512 a[L::ZA][kRun], b[L::ZA][kRun], e[kRun];
  for (int p = 0; p < kRun; ++p) {
    for (int z = 0; z < Z; ++z) a[z][p] = b[z][p] = _mm512_setzero_ps();
    if constexpr (Y) e[p] = _mm512_setzero_ps();
  }
  for (int ky = 0; ky < 3; ++ky) {
    const int64_t t = iy + 1 - ky;
    if (t & 1) continue;
    const int64_t oy = t / 2;
    if (oy < 0 || oy >= g.oh) continue;
    // dy column j0 + q of channel o at d[q * 16]: constant offsets, and the pointers stepped
    // rather than computed from o (GCC kept those in vector registers: moves on the FMA ports;
    // 0.51 -> 0.49 ms).
    const float* d = dy + oy * g.ow * 16 + j0 * 16;
    const float* wt = wp + ky * L::Stride;
    for (int64_t o = 0; o < g.k; ++o, ++d, wt += 3 * L::Stride) {
      if (o > 0 && o % 16 == 0) d += g.y_plane - 16;
      __m512 w0[L::ZA], w1[L::ZA], w2[L::ZA], e12, e0;
      for (int z = 0; z < Z; ++z) {
        w0[z] = _mm512_loadu_ps(wt + 16 * z);
        w1[z] = _mm512_loadu_ps(wt + 16 * Z + 16 * z);
        w2[z] = _mm512_loadu_ps(wt + 32 * Z + 16 * z);
      }
      if constexpr (Y) {
        e12 = _mm512_loadu_ps(wt + 48 * Z);
        e0 = _mm512_loadu_ps(wt + 48 * Z + 16);
      }
#pragma GCC unroll 8
      for (int q = 0; q <= kRun; ++q) {
        if (Last && q == kRun) continue;
        const __m512 v = _mm512_set1_ps(d[q * 16]);
        if (q < kRun) {
          for (int z = 0; z < Z; ++z) {
            a[z][q] = _mm512_fmadd_ps(v, w1[z], a[z][q]);
            b[z][q] = _mm512_fmadd_ps(v, w2[z], b[z][q]);
          }
          if constexpr (Y) e[q] = _mm512_fmadd_ps(v, e12, e[q]);
        }
        if (q > 0) {
          for (int z = 0; z < Z; ++z) b[z][q - 1] = _mm512_fmadd_ps(v, w0[z], b[z][q - 1]);
          if constexpr (Y) e[q - 1] = _mm512_fmadd_ps(v, e0, e[q - 1]);
        }
      }
    }
  }
  const int64_t plane = g.h * g.w * 8;
  for (int p = 0; p < kRun; ++p) {
    float* out = dx + (iy * g.w + 2 * (j0 + p)) * 8;  // the even pixel; the odd one at out + 8
    for (int z = 0; z < Z; ++z) {
      _mm256_storeu_ps(out + 2 * z * plane, _mm512_castps512_ps256(a[z][p]));
      _mm256_storeu_ps(out + (2 * z + 1) * plane, _mm512_extractf32x8_ps(a[z][p], 1));
      _mm256_storeu_ps(out + 2 * z * plane + 8, _mm512_castps512_ps256(b[z][p]));
      _mm256_storeu_ps(out + (2 * z + 1) * plane + 8, _mm512_extractf32x8_ps(b[z][p], 1));
    }
    if constexpr (Y) _mm512_storeu_ps(out + 2 * Z * plane, e[p]);
  }
}

template <int C>
MYELIN_AVX512 void input_rows(const float* dy, const float* w, float* dx, const Geo& g, int64_t n,
                              int threads) {
  using L = PairLanes<C>;
  std::vector<float> wp(g.k * 3 * L::Stride, 0.f);  // see input_pairs
  for (int64_t o = 0; o < g.k; ++o)
    for (int ky = 0; ky < 3; ++ky) {
      float* row = wp.data() + (o * 3 + ky) * L::Stride;
      auto at = [&](int64_t i, int kx) { return w[((o * C + i) * 3 + ky) * 3 + kx]; };
      for (int kx = 0; kx < 3; ++kx)
        for (int64_t i = 0; i < 16 * L::Z; ++i) row[kx * 16 * L::Z + i] = at(i, kx);
      if constexpr (L::Y)
        for (int64_t i = 0; i < 8; ++i) {
          row[48 * L::Z + i] = at(16 * L::Z + i, 1);
          row[48 * L::Z + 8 + i] = at(16 * L::Z + i, 2);
          row[48 * L::Z + 24 + i] = at(16 * L::Z + i, 0);
        }
    }
  const int64_t runs = g.ow / kRun;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < n * g.h; ++r) {
    // An image's even rows (tap row 1: a third of the weights) before its odd ones (0 and 2),
    // so fewer weights compete for L1 at a time: 0.49 -> 0.46 ms.
    const int64_t img = r / g.h, m = r % g.h, even = (g.h + 1) / 2;
    const int64_t iy = m < even ? 2 * m : 2 * (m - even) + 1;
    const float* dyi = dy + img * g.y_image;
    float* dxi = dx + img * C * g.h * g.w;
    for (int64_t q = 0; q + 1 < runs; ++q)
      input_pairs<C, false>(dyi, wp.data(), dxi, g, iy, q * kRun);
    input_pairs<C, true>(dyi, wp.data(), dxi, g, iy, (runs - 1) * kRun);
  }
}

// ---- weight gradient ----

// dw[o, ci, ky, kx] = sum over images and output pixels of dy[o, oy, ox] x[ci, 2 oy + ky - 1,
// 2 ox + kx - 1]. Partial sums of images [n0, n1) for input channel ci, all 9 taps (27 zmm
// accumulators for K = 48), into part[(ci * 9 + tap) * K + o] (added to it where `add`). Each
// dy pixel, loaded once, meets the 9 x values around it: 3 loads and 9 broadcasts per 27 FMAs.
// One tap row and 2 channels at a time (18 accumulators, dy loaded 3 times as often) took
// 0.49-0.50 ms at batch 128 on 2 threads, this 0.47-0.48 (alternating runs).
template <int K, int BX>
MYELIN_AVX512 void weight_taps(const float* dy, const float* x, float* part, const Geo& g,
                               int64_t n0, int64_t n1, int64_t ci, bool add) {
  constexpr int Z = K / 16;
  __m512 acc[3][3][Z];
  float* out = part + ci * 9 * K;
  for (int t = 0; t < 9; ++t)
    for (int z = 0; z < Z; ++z)
      acc[t / 3][t % 3][z] = add ? _mm512_loadu_ps(out + t * K + 16 * z) : _mm512_setzero_ps();
  for (int64_t n = n0; n < n1; ++n) {
    const float* xc = x + n * g.x_image + (ci / BX) * g.x_plane + ci % BX;
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      const float* d = dy + n * g.y_image + oy * g.ow * 16;
      // Input rows 2 oy - 1 (above the image where oy = 0), 2 oy, 2 oy + 1 (below it where h is
      // odd): column ix of row ky at rows[ky][ix * BX].
      const bool valid[3] = {oy > 0, true, 2 * oy + 1 < g.h};
      const float* mid = xc + 2 * oy * g.w * BX;
      const float* rows[3] = {valid[0] ? mid - g.w * BX : mid, mid,
                              valid[2] ? mid + g.w * BX : mid};
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        __m512 dz[Z];
        for (int z = 0; z < Z; ++z) dz[z] = _mm512_loadu_ps(d + z * g.y_plane + ox * 16);
#pragma GCC unroll 3
        for (int ky = 0; ky < 3; ++ky) {
          if (!valid[ky]) continue;
#pragma GCC unroll 3
          for (int kx = 0; kx < 3; ++kx) {
            // Column 2 ox - 1 is left of the image where ox = 0: zeros.
            const float* p = kx == 0 && ox == 0 ? kZeros : rows[ky] + (2 * ox + kx - 1) * BX;
            const __m512 v = _mm512_set1_ps(*p);
            for (int z = 0; z < Z; ++z) acc[ky][kx][z] = _mm512_fmadd_ps(v, dz[z], acc[ky][kx][z]);
          }
        }
      }
    }
  }
  for (int t = 0; t < 9; ++t)
    for (int z = 0; z < Z; ++z) _mm512_storeu_ps(out + t * K + 16 * z, acc[t / 3][t % 3][z]);
}

// One item of work: a chunk of images and a third of the input channels. Its images go by 2 at
// a time, each pair through every channel of the item (the accumulators stored in the partial
// between pairs), so that the pair's dy (9.4 KB an image at 48 x 7 x 7) and x stay in L1: with
// all the chunk's images per channel group the dy loads came from L2 (0.62 -> 0.58 ms at batch
// 128 on 2 threads, before the other changes); one image at a time spends more on the
// accumulators' loads and stores (0.51 ms against 0.47-0.49 for pairs; 4 images: 0.52-0.54).
// Each sum still adds the images, rows and pixels in the same order whatever the thread count.
constexpr int64_t kPassImages = 2;
constexpr int64_t kChannelParts = 3;

template <int K, int BX>
void weight_partials(const float* dy, const float* x, float* scratch, const Geo& g, int64_t n,
                     int threads) {
  const int64_t chunks = (n + kChunkImages - 1) / kChunkImages;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t it = 0; it < chunks * kChannelParts; ++it) {
    const int64_t chunk = it / kChannelParts, part = it % kChannelParts;
    const int64_t c0 = part * g.c / kChannelParts, c1 = (part + 1) * g.c / kChannelParts;
    const int64_t n0 = chunk * kChunkImages, end = std::min(n, n0 + kChunkImages);
    for (int64_t i = n0; i < end; i += kPassImages)
      for (int64_t ci = c0; ci < c1; ++ci)
        weight_taps<K, BX>(dy, x, scratch + chunk * g.c * 9 * K, g, i,
                           std::min(end, i + kPassImages), ci, i > n0);
  }
}

// Calls f(integral_constant<int, K>) for k of 16, 32 or 48.
template <class F>
void with_k(int64_t k, F&& f) {
  if (k == 16) return f(std::integral_constant<int, 16>{});
  if (k == 32) return f(std::integral_constant<int, 32>{});
  return f(std::integral_constant<int, 48>{});
}

}  // namespace

void forward(const float* x, int64_t bx, const float* w, const float* bias, float* y, int64_t n,
             int64_t c, int64_t k, int64_t h, int64_t wd, int64_t ksize, bool relu, float slope,
             int threads) {
  const int64_t taps = ksize * ksize;
  std::vector<float> wp(c * taps * k);  // [c][tap][k]: a tap's output channels contiguous
  for (int64_t o = 0; o < k; ++o)
    for (int64_t i = 0; i < c; ++i)
      for (int64_t t = 0; t < taps; ++t) wp[(i * taps + t) * k + o] = w[(o * c + i) * taps + t];
  const Geo g(c, k, h, wd, bx);
  with_k(k, [&](auto kk) {
    constexpr int K = decltype(kk)::value;
    auto rows = [&](auto bb, auto tt) {
      forward_rows<K, decltype(bb)::value, decltype(tt)::value>(x, wp.data(), bias, y, g, n, relu,
                                                                slope, threads);
    };
    using I8 = std::integral_constant<int, 8>;
    using I16 = std::integral_constant<int, 16>;
    using T1 = std::integral_constant<int, 1>;
    using T3 = std::integral_constant<int, 3>;
    if (bx == 8)
      ksize == 1 ? rows(I8{}, T1{}) : rows(I8{}, T3{});
    else
      ksize == 1 ? rows(I16{}, T1{}) : rows(I16{}, T3{});
  });
}

void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads) {
  const Geo g(c, k, h, wd, 8);
  switch (c) {
    case 8:
      return input_rows<8>(dy, w, dx, g, n, threads);
    case 16:
      return input_rows<16>(dy, w, dx, g, n, threads);
    default:
      return input_rows<24>(dy, w, dx, g, n, threads);
  }
}

int64_t scratch_floats(int64_t n, int64_t c, int64_t k) {
  return (n + kChunkImages - 1) / kChunkImages * c * 9 * k;
}

void grad_weight(const float* dy, const float* x, int64_t bx, float* dw, float* scratch, int64_t n,
                 int64_t c, int64_t k, int64_t h, int64_t wd, int threads) {
  const Geo g(c, k, h, wd, bx);
  with_k(k, [&](auto kk) {
    constexpr int K = decltype(kk)::value;
    if (bx == 8)
      weight_partials<K, 8>(dy, x, scratch, g, n, threads);
    else
      weight_partials<K, 16>(dy, x, scratch, g, n, threads);
  });
  add_tap_partials(scratch, dw, (n + kChunkImages - 1) / kChunkImages, c, k, threads);
}

}  // namespace direct_s2

namespace {

std::atomic<int64_t> made{0};

class DirectS2Conv : public Kernel {
 public:
  DirectS2Conv(const KernelSpec& s, ConvPass pass)
      : c_(conv_shape(s, pass)),
        pass_(pass),
        threads_(cpu_backend(s).threads()),
        bx_(conv_x_block(s, pass)),
        post_(pass == ConvPass::forward ? s.node.attrs : Attrs{}) {}

  size_t workspace_bytes() const override {
    if (pass_ != ConvPass::grad_weight) return 0;
    return static_cast<size_t>(direct_s2::scratch_floats(c_.n, c_.c, c_.o)) * sizeof(float);
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    if (pass_ == ConvPass::forward) {
      direct_s2::forward(in[0].f32(), bx_, in[1].f32(), c_.has_bias ? in[2].f32() : nullptr,
                         out[0].f32(), c_.n, c_.c, c_.o, c_.h, c_.w, c_.kh, post_.on, post_.slope,
                         threads_);
    }
    if (pass_ == ConvPass::grad_input)
      direct_s2::grad_input(in[0].f32(), in[1].f32(), out[0].f32(), c_.n, c_.c, c_.o, c_.h, c_.w,
                            threads_);
    if (pass_ == ConvPass::grad_weight)
      direct_s2::grad_weight(in[0].f32(), in[1].f32(), bx_, out[0].f32(),
                             static_cast<float*>(ctx.workspace), c_.n, c_.c, c_.o, c_.h, c_.w,
                             threads_);
  }

 private:
  ConvShape c_;
  ConvPass pass_;
  int threads_;
  int64_t bx_;
  PostRelu post_;
};

}  // namespace

bool direct_s2_applies(const ConvShape& c, ConvPass pass, int64_t bx, int64_t by) {
  // 3x3 with padding 1, or (forward only) 1x1 without: its centre tap.
  const bool taps = (c.kh == 3 && c.kw == 3 && c.ph == 1 && c.pw == 1) ||
                    (c.kh == 1 && c.kw == 1 && c.ph == 0 && c.pw == 0 && pass == ConvPass::forward);
  const bool geometry = taps && c.sh == 2 && c.sw == 2 && c.dil_h == 1 && c.dil_w == 1 &&
                        c.groups == 1 && c.c % 8 == 0 && c.c <= 24 &&
                        (c.o == 16 || c.o == 32 || c.o == 48) && c.ow % 7 == 0 && c.w == 2 * c.ow &&
                        c.oh == (c.h + 1) / 2;
  // dx is written in 8-channel blocks; x is read in either.
  const bool layouts = by == 16 && (bx == 8 || (bx == 16 && pass != ConvPass::grad_input));
  return geometry && layouts && cpu_has_avx512() && !env_is("MYELIN_CPU_DIRECT_S2", "0");
}

std::unique_ptr<Kernel> make_direct_s2_conv(const KernelSpec& s, ConvPass pass) {
  ++made;
  return std::make_unique<DirectS2Conv>(s, pass);
}

int64_t direct_s2_kernels_made() {
  return made.load();
}

bool direct_s2_takes(const KernelSpec& s, ConvPass pass) {
  // A forward that writes the shared nChw16c copy of x (fuse_x16.cpp, which leaves the
  // convolutions we take alone) stays on oneDNN.
  if (s.node.attrs.has("x16_out")) return false;
  return direct_s2_applies(conv_shape(s, pass), pass, conv_x_block(s, pass), conv_y_block(s, pass));
}

}  // namespace myelin::cpu
