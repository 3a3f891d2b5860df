// The weight gradient of our AVX-512 direct 3x3 convolution (conv_direct8.h):
// dw[o, i, ky, kx] = sum over images and pixels of dy[o, oh, ow] x[i, oh + ky - 1, ow + kx - 1].
// For one ky and 4 input channels, the 12 (channel, kx) rows of K output channels stay in
// registers while the pixels stream by: each dy pixel is loaded once (blocks of 8 channels
// joined into zmm lanes) and each x value broadcast into its FMAs.
// GCC 12's _mm512_castps512_ps256 reads a deliberately uninitialized value: a false warning.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "cpu/conv_direct8.h"

#define MYELIN_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#define MYELIN_AVX512_INLINE MYELIN_AVX512 inline __attribute__((always_inline))

namespace myelin::cpu::direct8 {

namespace {

constexpr int64_t kChunkImages = 8;  // images per partial: fixed, so sums ignore thread count
constexpr int kChannels = 4;         // input channels accumulated at once

template <int K>
struct Acc {
  static constexpr int Z = K / 16, Y = (K % 16) / 8, ZA = Z > 0 ? Z : 1;
  __m512 a[kChannels][3][ZA];
  __m256 b[kChannels][3];
};

// Zeros in place of the x values left and right of a row: the edge pixels run the same code
// as the others (specialised edge code made GCC spill the accumulators around it).
alignas(64) const float kZeros[8] = {};

// One dy pixel (d: its first block) times the x values around it: xl, xm, xr point at input
// channel c0 of the 4 in the pixel to its left, itself and to its right.
template <int K>
MYELIN_AVX512_INLINE void pixel(Acc<K>& acc, const float* d, const float* xl, const float* xm,
                                const float* xr, int64_t plane) {
  __m512 dz[Acc<K>::ZA];
  __m256 dyy;
  for (int z = 0; z < Acc<K>::Z; ++z)
    dz[z] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(d + 2 * z * plane)),
                               _mm256_loadu_ps(d + (2 * z + 1) * plane), 1);
  if constexpr (Acc<K>::Y) dyy = _mm256_loadu_ps(d + 2 * Acc<K>::Z * plane);
  const float* xs[3] = {xl, xm, xr};
#pragma GCC unroll 4
  for (int i = 0; i < kChannels; ++i) {
#pragma GCC unroll 3
    for (int kx = 0; kx < 3; ++kx) {
      const __m512 v = _mm512_set1_ps(xs[kx][i]);
      for (int z = 0; z < Acc<K>::Z; ++z)
        acc.a[i][kx][z] = _mm512_fmadd_ps(v, dz[z], acc.a[i][kx][z]);
      if constexpr (Acc<K>::Y)
        acc.b[i][kx] = _mm256_fmadd_ps(_mm512_castps512_ps256(v), dyy, acc.b[i][kx]);
    }
  }
}

// Partial sums of images [n0, n1) for tap row ky and input channels [c0, c0 + 4) into
// part[(i * 9 + tap) * K + o].
template <int K>
MYELIN_AVX512 void rows(const float* dy, const float* x, float* part, int64_t c, int64_t h,
                        int64_t wd, int64_t n0, int64_t n1, int ky, int64_t c0) {
  Acc<K> acc;
  for (int i = 0; i < kChannels; ++i)
    for (int kx = 0; kx < 3; ++kx) {
      for (int z = 0; z < Acc<K>::Z; ++z) acc.a[i][kx][z] = _mm512_setzero_ps();
      if constexpr (Acc<K>::Y) acc.b[i][kx] = _mm256_setzero_ps();
    }
  const int64_t plane = h * wd * 8;
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t oh = 0; oh < h; ++oh) {
      const int64_t ih = oh + ky - 1;
      if (ih < 0 || ih >= h) continue;
      const float* d = dy + n * K * h * wd + oh * wd * 8;
      const float* xrow = x + n * c * h * wd + (c0 / 8) * plane + ih * wd * 8 + c0 % 8;
      for (int64_t ow = 0; ow < wd; ++ow) {
        const float* xl = ow > 0 ? xrow + (ow - 1) * 8 : kZeros;
        const float* xr = ow + 1 < wd ? xrow + (ow + 1) * 8 : kZeros;
        pixel<K>(acc, d + ow * 8, xl, xrow + ow * 8, xr, plane);
      }
    }
  }
  for (int i = 0; i < kChannels; ++i)
    for (int kx = 0; kx < 3; ++kx) {
      float* out = part + ((c0 + i) * 9 + ky * 3 + kx) * K;
      for (int z = 0; z < Acc<K>::Z; ++z) _mm512_storeu_ps(out + 16 * z, acc.a[i][kx][z]);
      if constexpr (Acc<K>::Y) _mm256_storeu_ps(out + 16 * Acc<K>::Z, acc.b[i][kx]);
    }
}

template <int K>
void partials(const float* dy, const float* x, float* scratch, int64_t n, int64_t c, int64_t h,
              int64_t wd, int threads) {
  const int64_t chunks = (n + kChunkImages - 1) / kChunkImages, groups = c / kChannels;
  const int64_t items = chunks * groups * 3;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t chunk = it / (groups * 3), g = it / 3 % groups;
    const int ky = static_cast<int>(it % 3);
    const int64_t n0 = chunk * kChunkImages, n1 = std::min(n, n0 + kChunkImages);
    rows<K>(dy, x, scratch + chunk * c * 9 * K, c, h, wd, n0, n1, ky, g * kChannels);
  }
}

// The partials ([chunk][i][tap][k]) added in chunk order, into dw (OIHW): a (i, tap) row of k
// output channels at a time, in vectors. A scalar loop over dw's order, reading the partials
// strided, took 0.03 ms more (batch 128, 2 threads).
MYELIN_AVX512 void add_partials(const float* scratch, float* dw, int64_t chunks, int64_t c,
                                int64_t k, int threads) {
  const int64_t per = c * 9 * k;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < c * 9; ++r) {
    float s[32];
    for (int64_t o = 0; o < k; ++o) s[o] = scratch[r * k + o];
    for (int64_t q = 1; q < chunks; ++q)
      for (int64_t o = 0; o < k; ++o) s[o] += scratch[q * per + r * k + o];
    const int64_t i = r / 9, t = r % 9;
    for (int64_t o = 0; o < k; ++o) dw[(o * c + i) * 9 + t] = s[o];
  }
}

}  // namespace

int64_t scratch_floats(int64_t n, int64_t c, int64_t k) {
  return (n + kChunkImages - 1) / kChunkImages * c * 9 * k;
}

void grad_weight(const float* dy, const float* x, float* dw, float* scratch, int64_t n, int64_t c,
                 int64_t k, int64_t h, int64_t wd, int threads) {
  switch (k) {
    case 8:
      partials<8>(dy, x, scratch, n, c, h, wd, threads);
      break;
    case 16:
      partials<16>(dy, x, scratch, n, c, h, wd, threads);
      break;
    case 24:
      partials<24>(dy, x, scratch, n, c, h, wd, threads);
      break;
    default:
      partials<32>(dy, x, scratch, n, c, h, wd, threads);
  }
  add_partials(scratch, dw, (n + kChunkImages - 1) / kChunkImages, c, k, threads);
}

}  // namespace myelin::cpu::direct8
