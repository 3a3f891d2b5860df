// Our AVX-512 direct 3x3 stride-1 convolutions between nChw16c activations (conv_direct48.h).
#include "cpu/conv_direct48.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/env.h"
#include "cpu/blocked.h"
#include "cpu/conv_direct.h"
#include "cpu/simd.h"

namespace myelin::cpu {

namespace direct48 {

namespace {

alignas(64) const float kZeros[16] = {};  // the x value beyond a row's ends
constexpr int kRun = 7;                   // output pixels of a row kept in registers
constexpr int64_t kChunkImages = 8;  // images per weight-gradient partial: fixed, so sums ignore
                                     // the thread count

// The geometry of one call: an input of `in` channels and an output of `out`, both h x w in
// blocks of 16 channels.
struct Geo {
  int64_t in, out, h, w;
  int64_t plane;                // floats of one channel block
  int64_t in_image, out_image;  // floats of one image
  Geo(int64_t in_, int64_t out_, int64_t h_, int64_t w_) : in(in_), out(out_), h(h_), w(w_) {
    plane = h * w * 16, in_image = in * h * w, out_image = out * h * w;
  }
};

// ---- forward (and data gradient) ----

// y for output pixels [ow0, ow0 + 7) of row oy of one image (x, y: the image's first float): the
// sum over input channels and taps of x * wp[(ci * 9 + tap) * K + o]. Left / Right: the run starts
// at column 0 / ends at the last column, whose taps kx = 0 / kx = 2 read the padding (skipped at
// compile time).
template <int K, bool Left, bool Right>
MYELIN_AVX512 void forward_run(const float* x, const float* wp, const float* bias, float* y,
                               const Geo& g, int64_t oy, int64_t ow0, bool relu, float slope) {
  constexpr int Z = K / 16;
  float* out = y + (oy * g.w + ow0) * 16;
  __m512 a[Z][kRun];
  for (int z = 0; z < Z; ++z) {
    const __m512 v = bias ? _mm512_loadu_ps(bias + 16 * z) : _mm512_setzero_ps();
    for (int p = 0; p < kRun; ++p) a[z][p] = v;
  }
  for (int ky = 0; ky < 3; ++ky) {
    const int64_t iy = oy + ky - 1;
    if (iy < 0 || iy >= g.h) continue;
    for (int64_t ci = 0; ci < g.in; ++ci) {
      // Input column ix of channel ci at row[ix * 16].
      const float* row = x + (ci / 16) * g.plane + iy * g.w * 16 + ci % 16;
      const float* wt = wp + (ci * 9 + ky * 3) * K;
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) {
        __m512 wz[Z];
        for (int z = 0; z < Z; ++z) wz[z] = _mm512_loadu_ps(wt + kx * K + 16 * z);
#pragma GCC unroll 7
        for (int p = 0; p < kRun; ++p) {
          if (Left && p == 0 && kx == 0) continue;
          if (Right && p == kRun - 1 && kx == 2) continue;
          const __m512 v = _mm512_set1_ps(row[(ow0 + p + kx - 1) * 16]);
          for (int z = 0; z < Z; ++z) a[z][p] = _mm512_fmadd_ps(v, wz[z], a[z][p]);
        }
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps(), sl = _mm512_set1_ps(slope);
  for (int z = 0; z < Z; ++z)
    for (int p = 0; p < kRun; ++p) {
      __m512 v = a[z][p];
      if (relu) v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, sl);
      _mm512_storeu_ps(out + z * g.plane + p * 16, v);
    }
}

// An image at a time: its x and y (9.4 KB each at 48 x 7 x 7) stay in L1 while the weights
// (83 KB) come from L2. Passes over the image's rows with 16 input channels each, whose
// weights fit L1, the partial sums kept in y between them, took 0.69-0.75 ms at batch 128 on 2
// threads against 0.63-0.655 (8 channels: 0.725-0.755).
template <int K>
MYELIN_AVX512 void forward_rows(const float* x, const float* wp, const float* bias, float* y,
                                const Geo& g, int64_t n, bool relu, float slope, int threads) {
  const int64_t runs = g.w / kRun;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t img = 0; img < n; ++img) {
    const float* xi = x + img * g.in_image;
    float* yi = y + img * g.out_image;
    for (int64_t oy = 0; oy < g.h; ++oy) {
      if (runs == 1) {
        forward_run<K, true, true>(xi, wp, bias, yi, g, oy, 0, relu, slope);
        continue;
      }
      forward_run<K, true, false>(xi, wp, bias, yi, g, oy, 0, relu, slope);
      for (int64_t q = 1; q + 1 < runs; ++q)
        forward_run<K, false, false>(xi, wp, bias, yi, g, oy, q * kRun, relu, slope);
      forward_run<K, false, true>(xi, wp, bias, yi, g, oy, (runs - 1) * kRun, relu, slope);
    }
  }
}

// Calls f(integral_constant<int, K>) for k of 16, 32 or 48.
template <class F>
void with_k(int64_t k, F&& f) {
  if (k == 16) return f(std::integral_constant<int, 16>{});
  if (k == 32) return f(std::integral_constant<int, 32>{});
  return f(std::integral_constant<int, 48>{});
}

// The forward from `in` to `out` channels with packed weights wp[(ci * 9 + tap) * out + o].
void forward_packed(const float* x, const float* wp, const float* bias, float* y, int64_t n,
                    int64_t in, int64_t out, int64_t h, int64_t wd, bool relu, float slope,
                    int threads) {
  const Geo g(in, out, h, wd);
  with_k(out, [&](auto kk) {
    forward_rows<decltype(kk)::value>(x, wp, bias, y, g, n, relu, slope, threads);
  });
}

// ---- weight gradient ----

// dw[o, ci, ky, kx] = sum over images and pixels of dy[o, oy, ox] x[ci, oy + ky - 1, ox + kx - 1].
// Partial sums of images [n0, n1) for input channel ci, all 9 taps (27 zmm accumulators for
// K = 48), into part[(ci * 9 + tap) * K + o] (added to it where `add`). Each dy pixel, loaded
// once, meets the 9 x values around it: 3 loads and 9 broadcasts per 27 FMAs.
template <int K>
MYELIN_AVX512 void weight_taps(const float* dy, const float* x, float* part, const Geo& g,
                               int64_t n0, int64_t n1, int64_t ci, bool add) {
  constexpr int Z = K / 16;
  __m512 acc[3][3][Z];
  float* out = part + ci * 9 * K;
  for (int t = 0; t < 9; ++t)
    for (int z = 0; z < Z; ++z)
      acc[t / 3][t % 3][z] = add ? _mm512_loadu_ps(out + t * K + 16 * z) : _mm512_setzero_ps();
  for (int64_t n = n0; n < n1; ++n) {
    const float* xc = x + n * g.in_image + (ci / 16) * g.plane + ci % 16;
    for (int64_t oy = 0; oy < g.h; ++oy) {
      const float* d = dy + n * g.out_image + oy * g.w * 16;
      // Input rows oy - 1, oy, oy + 1 (outside the image at its top and bottom): column ix of
      // row ky at rows[ky][ix * 16].
      const bool valid[3] = {oy > 0, true, oy + 1 < g.h};
      const float* mid = xc + oy * g.w * 16;
      const float* rows[3] = {valid[0] ? mid - g.w * 16 : mid, mid,
                              valid[2] ? mid + g.w * 16 : mid};
      for (int64_t ox = 0; ox < g.w; ++ox) {
        __m512 dz[Z];
        for (int z = 0; z < Z; ++z) dz[z] = _mm512_loadu_ps(d + z * g.plane + ox * 16);
#pragma GCC unroll 3
        for (int ky = 0; ky < 3; ++ky) {
          if (!valid[ky]) continue;
#pragma GCC unroll 3
          for (int kx = 0; kx < 3; ++kx) {
            // Columns -1 and w are outside the image: zeros. The empty asm keeps this a select of
            // pointers: GCC otherwise branched around a scalar load and broadcast the value from
            // a register, a uop on an FMA port (0.915-0.93 -> 0.905-0.918 ms at batch 128 on 2
            // threads, alternating runs).
            const bool outside = (kx == 0 && ox == 0) || (kx == 2 && ox == g.w - 1);
            const float* p = outside ? kZeros : rows[ky] + (ox + kx - 1) * 16;
            asm("" : "+r"(p));
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
// between pairs), so that the pair's dy and x stay in L1. Each sum adds the images, rows and
// pixels in the same order whatever the thread count.
constexpr int64_t kPassImages = 2;
constexpr int64_t kChannelParts = 3;

template <int K>
void weight_partials(const float* dy, const float* x, float* scratch, const Geo& g, int64_t n,
                     int threads) {
  const int64_t chunks = (n + kChunkImages - 1) / kChunkImages;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t it = 0; it < chunks * kChannelParts; ++it) {
    const int64_t chunk = it / kChannelParts, part = it % kChannelParts;
    const int64_t c0 = part * g.in / kChannelParts, c1 = (part + 1) * g.in / kChannelParts;
    const int64_t n0 = chunk * kChunkImages, end = std::min(n, n0 + kChunkImages);
    for (int64_t i = n0; i < end; i += kPassImages)
      for (int64_t ci = c0; ci < c1; ++ci)
        weight_taps<K>(dy, x, scratch + chunk * g.in * 9 * K, g, i, std::min(end, i + kPassImages),
                       ci, i > n0);
  }
}

}  // namespace

void forward(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
             int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  const std::vector<float> wp = taps_by_input(w, c, k);
  forward_packed(x, wp.data(), bias, y, n, c, k, h, wd, relu, slope, threads);
}

// dx[ci, iy, ix] = sum dy[o, iy + 1 - ky, ix + 1 - kx] w[o, ci, ky, kx]: the forward on dy with
// the kernel flipped (tap 8 - t) and its channels swapped.
void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads) {
  const std::vector<float> wp = taps_flipped(w, c, k);
  forward_packed(dy, wp.data(), nullptr, dx, n, k, c, h, wd, false, 0.f, threads);
}

int64_t scratch_floats(int64_t n, int64_t c, int64_t k) {
  return (n + kChunkImages - 1) / kChunkImages * c * 9 * k;
}

void grad_weight(const float* dy, const float* x, float* dw, float* scratch, int64_t n, int64_t c,
                 int64_t k, int64_t h, int64_t wd, int threads) {
  const Geo g(c, k, h, wd);
  with_k(k, [&](auto kk) { weight_partials<decltype(kk)::value>(dy, x, scratch, g, n, threads); });
  add_tap_partials(scratch, dw, (n + kChunkImages - 1) / kChunkImages, c, k, threads);
}

}  // namespace direct48

namespace {

std::atomic<int64_t> made{0};

}  // namespace

bool direct48_applies(const ConvShape& c, int64_t bx, int64_t by) {
  auto channels = [](int64_t ch) { return ch == 16 || ch == 32 || ch == 48; };
  const bool geometry = c.kh == 3 && c.kw == 3 && c.sh == 1 && c.sw == 1 && c.ph == 1 &&
                        c.pw == 1 && c.dil_h == 1 && c.dil_w == 1 && c.groups == 1 &&
                        channels(c.c) && channels(c.o) && c.oh == c.h && c.ow == c.w &&
                        c.w % 7 == 0 && c.w > 0;
  return geometry && bx == 16 && by == 16 && cpu_has_avx512() &&
         !env_is("MYELIN_CPU_DIRECT48", "0");
}

std::unique_ptr<Kernel> make_direct48_conv(const KernelSpec& s, ConvPass pass) {
  ++made;
  return make_direct_conv(
      s, pass,
      {direct48::forward, direct48::grad_input, direct48::scratch_floats, direct48::grad_weight});
}

int64_t direct48_kernels_made() {
  return made.load();
}

bool direct48_takes(const KernelSpec& s, ConvPass pass) {
  // A forward that writes a shared nChw16c copy of x (fuse_x16.cpp) stays on oneDNN.
  if (s.node.attrs.has("x16_out")) return false;
  return direct48_applies(conv_shape(s, pass), conv_x_block(s, pass), conv_y_block(s, pass));
}

}  // namespace myelin::cpu
