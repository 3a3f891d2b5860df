// The weight gradient of our AVX-512 direct 3x3 convolution (conv_direct8.h):
// dw[o, i, ky, kx] = sum over images and pixels of dy[o, oh, ow] x[i, oh + ky - 1, ow + kx - 1].
// For one ky and P pairs of input channels, the accumulators of all their (channel, kx, output)
// products stay in registers while the pixels of an image stream by, every FMA a full zmm: each
// accumulator lane holds one (output, input channel), an x broadcast covers 2 input channels and
// a dy vector 8 output channels, each twice (see Acc).
// GCC 12's _mm512_castps256_ps512 leaves the upper half undefined on purpose: a false warning.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/conv_direct8.h"
#include "cpu/simd.h"

namespace myelin::cpu::direct8 {

namespace {

constexpr int64_t kChunkImages = 8;  // images per partial: fixed, so sums ignore thread count

// Lane 2 a + j of the accumulator for output block g and input channel pair q holds
// dw[8 g + a, 2 q + j]: the x values of channels 2 q and 2 q + 1 (adjacent in nChw8c) come in
// one 64-bit broadcast (a plain load), and dy's 8 channels of block g are permuted into
// [d0 d0 d1 d1 ... d7 d7] once per pixel (one shuffle for 3 P FMAs). The former kernel used
// 16 + 8 output lanes (a zmm and a ymm FMA per x broadcast, dy's blocks joined by an insert):
// its inner loop ran at 73 G lane-FMAs/s per core in a microbenchmark of the pattern, this one
// at 90. Standalone at res1_conv1's shape (batch 128, 24 -> 24, 14x14, 2 threads, fastest of
// 200, alternating runs): 0.89-0.91 -> 0.83-0.85 ms. With dy staged in the permuted layout
// (twice dy's size: 37.6 KB an image beside x, more than L1) it took 0.93-0.95 ms; with 2
// channel pairs per group instead of 3 (18 accumulators, dy permuted 1.5 times as often), 0.87.
// Registers for K = 24, P = 3: 27 accumulators, 3 dy vectors, the broadcast, the permutation.
template <int K, int P>
struct Acc {
  static constexpr int G = K / 8;
  __m512 a[P][3][G];
};

// Partial sums of image dy (its first float) for tap row ky and channel pairs [q0, q0 + P)
// into part[((q * 9 + tap) * G + g) * 16 + lane] (added to it where `add`). xp: the image's x
// with a zero column either side, block b's row ih at xp[(b * h + ih) * (wd + 2) * 8].
// No predictive commoning: GCC otherwise carries a broadcast's x pair to the next pixel in a
// general register, and a broadcast from a register is a shuffle on an FMA port (1.03 ms).
template <int K, int P>
MYELIN_AVX512 MYELIN_NO_PCOM void taps(const float* dy, const float* xp, float* part, int64_t h,
                                       int64_t wd, int ky, int64_t q0, bool add) {
  constexpr int G = K / 8;
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  Acc<K, P> acc;
  for (int p = 0; p < P; ++p)
    for (int t = 0; t < 3; ++t)
      for (int g = 0; g < G; ++g) {
        const float* in = part + (((q0 + p) * 9 + ky * 3 + t) * G + g) * 16;
        acc.a[p][t][g] = add ? _mm512_loadu_ps(in) : _mm512_setzero_ps();
      }
  for (int64_t oh = 0; oh < h; ++oh) {
    const int64_t ih = oh + ky - 1;
    if (ih < 0 || ih >= h) continue;
    const float* d = dy + oh * wd * 8;
    const float* xs[P];  // input column iw of pair q0 + p at xs[p][(iw + 1) * 8]
    for (int p = 0; p < P; ++p) {
      const int64_t ch = 2 * (q0 + p);
      xs[p] = xp + ((ch / 8) * h + ih) * (wd + 2) * 8 + ch % 8;
    }
    for (int64_t ow = 0; ow < wd; ++ow) {
      __m512 dz[G];
      for (int g = 0; g < G; ++g)
        dz[g] = _mm512_permutexvar_ps(
            dup, _mm512_castps256_ps512(_mm256_loadu_ps(d + g * h * wd * 8 + ow * 8)));
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p) {
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx) {
          double pair;
          std::memcpy(&pair, xs[p] + (ow + kx) * 8, sizeof pair);
          const __m512 v = _mm512_castpd_ps(_mm512_set1_pd(pair));
          for (int g = 0; g < G; ++g) acc.a[p][kx][g] = _mm512_fmadd_ps(v, dz[g], acc.a[p][kx][g]);
        }
      }
    }
  }
  for (int p = 0; p < P; ++p)
    for (int t = 0; t < 3; ++t)
      for (int g = 0; g < G; ++g)
        _mm512_storeu_ps(part + (((q0 + p) * 9 + ky * 3 + t) * G + g) * 16, acc.a[p][t][g]);
}

// xp (see taps) of image i: its x rows with a zero column either side (the pads, written once,
// stay zero), so the edge pixels run the same code as the others.
void pad_x(const float* x, float* xp, int64_t c, int64_t h, int64_t wd, int64_t i) {
  const int64_t hw = h * wd;
  const float* xi = x + i * c * hw;
  for (int64_t b = 0; b < c / 8; ++b)
    for (int64_t ih = 0; ih < h; ++ih)
      std::memcpy(xp + ((b * h + ih) * (wd + 2) + 1) * 8, xi + (b * hw + ih * wd) * 8,
                  wd * 8 * sizeof(float));
}

// One item of work per chunk of images (16 for batch 128: 8 per thread on 2), its images one at
// a time, each through every tap row and channel group, the accumulators kept in the partial
// between images, so that the image's dy (18.8 KB at 24 x 14 x 14) and padded x stay in L1.
// Each sum adds the images, rows and pixels in the same order whatever the thread count.
template <int K, int P>
void partials(const float* dy, const float* x, float* scratch, int64_t n, int64_t c, int64_t h,
              int64_t wd, int threads) {
  const int64_t chunks = (n + kChunkImages - 1) / kChunkImages, groups = c / 2 / P;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> xp(c * h * (wd + 2), 0.f);
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t n0 = chunk * kChunkImages, n1 = std::min(n, n0 + kChunkImages);
      for (int64_t i = n0; i < n1; ++i) {
        pad_x(x, xp.data(), c, h, wd, i);
        for (int ky = 0; ky < 3; ++ky)
          for (int64_t g = 0; g < groups; ++g)
            taps<K, P>(dy + i * K * h * wd, xp.data(), scratch + chunk * c * 9 * K, h, wd, ky,
                       g * P, i > n0);
      }
    }
  }
}

// The partials ([chunk][q][tap][g][lane], see taps) added in chunk order, into dw (OIHW): a
// (q, tap) row of 2 k values at a time.
MYELIN_AVX512 void add_partials(const float* scratch, float* dw, int64_t chunks, int64_t c,
                                int64_t k, int threads) {
  const int64_t per = c * 9 * k;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < c / 2 * 9; ++r) {
    float s[64];
    for (int64_t e = 0; e < 2 * k; ++e) s[e] = scratch[r * 2 * k + e];
    for (int64_t q = 1; q < chunks; ++q)
      for (int64_t e = 0; e < 2 * k; ++e) s[e] += scratch[q * per + r * 2 * k + e];
    const int64_t pair = r / 9, t = r % 9;
    for (int64_t e = 0; e < 2 * k; ++e) {
      const int64_t o = e / 16 * 8 + e % 16 / 2, i = 2 * pair + e % 2;
      dw[(o * c + i) * 9 + t] = s[e];
    }
  }
}

}  // namespace

int64_t scratch_floats(int64_t n, int64_t c, int64_t k) {
  return (n + kChunkImages - 1) / kChunkImages * c * 9 * k;
}

void grad_weight(const float* dy, const float* x, float* dw, float* scratch, int64_t n, int64_t c,
                 int64_t k, int64_t h, int64_t wd, int threads) {
  // 3 channel pairs per group where they divide the channels and fit the registers (up to 27
  // accumulators for 24 outputs), else 2.
  const bool three = c % 6 == 0 && k <= 24;
  switch (k) {
    case 8:
      three ? partials<8, 3>(dy, x, scratch, n, c, h, wd, threads)
            : partials<8, 2>(dy, x, scratch, n, c, h, wd, threads);
      break;
    case 16:
      three ? partials<16, 3>(dy, x, scratch, n, c, h, wd, threads)
            : partials<16, 2>(dy, x, scratch, n, c, h, wd, threads);
      break;
    case 24:
      three ? partials<24, 3>(dy, x, scratch, n, c, h, wd, threads)
            : partials<24, 2>(dy, x, scratch, n, c, h, wd, threads);
      break;
    default:
      partials<32, 2>(dy, x, scratch, n, c, h, wd, threads);
  }
  add_partials(scratch, dw, (n + kChunkImages - 1) / kChunkImages, c, k, threads);
}

}  // namespace myelin::cpu::direct8
