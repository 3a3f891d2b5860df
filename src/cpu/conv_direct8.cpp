// Our AVX-512 direct 3x3 convolution on nChw8c operands (conv_direct8.h).
#include "cpu/conv_direct8.h"

// GCC 12's _mm512_castps512_ps256 reads a deliberately uninitialized value: a false warning.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#include <omp.h>

#include <atomic>
#include <vector>

#include "core/env.h"
#include "cpu/conv_direct.h"
#include "cpu/conv_winograd24.h"
#include "cpu/simd.h"

namespace myelin::cpu {

namespace direct8 {

namespace {

constexpr int kRun = 7;  // output pixels of a row kept in registers

// K output channels as Z zmm lanes (16 channels) and Y ymm lanes (8): 24 = 16 + 8.
template <int K>
struct Lanes {
  static constexpr int Z = K / 16, Y = (K % 16) / 8, ZA = Z > 0 ? Z : 1;
};

// y (or dx) for output pixels [ow0, ow0 + 7) of row oh of one image: the sum over ci input
// channels (ci / 8 blocks of `plane` floats from x) and 3x3 taps of wp[(ci * 9 + tap) * K + o].
// Left / Right: the run touches the left / right padding, whose taps are skipped at compile
// time (p + kx is the input column + 1 - ow0).
template <int K, bool Left, bool Right>
MYELIN_AVX512 void run7(const float* x, const float* wp, const float* bias, float* y, int64_t ci,
                        int64_t plane, int64_t h, int64_t wd, int64_t oh, int64_t ow0, bool relu,
                        float slope) {
  using L = Lanes<K>;
  __m512 a[L::ZA][kRun];
  __m256 b[kRun];
  for (int z = 0; z < L::Z; ++z) {
    const __m512 v = bias ? _mm512_loadu_ps(bias + 16 * z) : _mm512_setzero_ps();
    for (int p = 0; p < kRun; ++p) a[z][p] = v;
  }
  if constexpr (L::Y) {
    const __m256 v = bias ? _mm256_loadu_ps(bias + 16 * L::Z) : _mm256_setzero_ps();
    for (int p = 0; p < kRun; ++p) b[p] = v;
  }
  for (int ky = 0; ky < 3; ++ky) {
    const int64_t ih = oh + ky - 1;
    if (ih < 0 || ih >= h) continue;
    for (int64_t cb = 0; cb < ci / 8; ++cb) {
      // Input pixel ow0 + p + kx - 1 is at row + (p + kx) * 8 (read only inside the image).
      const float* row = x + cb * plane + (ih * wd + ow0 - 1) * 8;
      for (int c = 0; c < 8; ++c) {
        const float* wt = wp + ((cb * 8 + c) * 9 + ky * 3) * K;
        __m512 wz[3][L::ZA];
        __m256 wy[3];
        for (int kx = 0; kx < 3; ++kx) {
          for (int z = 0; z < L::Z; ++z) wz[kx][z] = _mm512_loadu_ps(wt + kx * K + 16 * z);
          if constexpr (L::Y) wy[kx] = _mm256_loadu_ps(wt + kx * K + 16 * L::Z);
        }
#pragma GCC unroll 7
        for (int p = 0; p < kRun; ++p) {
#pragma GCC unroll 3
          for (int kx = 0; kx < 3; ++kx) {
            if ((Left && p + kx == 0) || (Right && p + kx == kRun + 1)) continue;
            // One broadcast feeds both widths (the ymm FMA reads its low half).
            const __m512 v = _mm512_set1_ps(row[(p + kx) * 8 + c]);
            for (int z = 0; z < L::Z; ++z) a[z][p] = _mm512_fmadd_ps(v, wz[kx][z], a[z][p]);
            if constexpr (L::Y) b[p] = _mm256_fmadd_ps(_mm512_castps512_ps256(v), wy[kx], b[p]);
          }
        }
      }
    }
  }
  const __m256 zero = _mm256_setzero_ps(), sl = _mm256_set1_ps(slope);
  float* out = y + (oh * wd + ow0) * 8;
  for (int p = 0; p < kRun; ++p) {
    __m256 v[4];
    for (int z = 0; z < L::Z; ++z) {
      v[2 * z] = _mm512_castps512_ps256(a[z][p]);
      v[2 * z + 1] = _mm512_extractf32x8_ps(a[z][p], 1);
    }
    if constexpr (L::Y) v[2 * L::Z] = b[p];
    for (int j = 0; j < K / 8; ++j) {
      if (relu) {
        const __mmask8 neg = _mm256_cmp_ps_mask(v[j], zero, _CMP_LT_OQ);
        v[j] = _mm256_mask_mul_ps(v[j], neg, v[j], sl);
      }
      _mm256_storeu_ps(out + j * plane + p * 8, v[j]);
    }
  }
}

// Rows of images [0, n): y (K channels) from x (ci channels) and packed weights.
template <int K>
MYELIN_AVX512 void conv_rows(const float* x, const float* wp, const float* bias, float* y,
                             int64_t n, int64_t ci, int64_t h, int64_t wd, bool relu, float slope,
                             int threads) {
  const int64_t plane = h * wd * 8, runs = wd / kRun;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < n * h; ++r) {
    const int64_t img = r / h, oh = r % h;
    const float* xi = x + img * ci * h * wd;
    float* yi = y + img * K * h * wd;
    run7<K, true, false>(xi, wp, bias, yi, ci, plane, h, wd, oh, 0, relu, slope);
    for (int64_t q = 1; q + 1 < runs; ++q)
      run7<K, false, false>(xi, wp, bias, yi, ci, plane, h, wd, oh, q * kRun, relu, slope);
    run7<K, false, true>(xi, wp, bias, yi, ci, plane, h, wd, oh, wd - kRun, relu, slope);
  }
}

void conv_any(const float* x, const float* wp, const float* bias, float* y, int64_t n, int64_t ci,
              int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  switch (k) {
    case 8:
      return conv_rows<8>(x, wp, bias, y, n, ci, h, wd, relu, slope, threads);
    case 16:
      return conv_rows<16>(x, wp, bias, y, n, ci, h, wd, relu, slope, threads);
    case 24:
      return conv_rows<24>(x, wp, bias, y, n, ci, h, wd, relu, slope, threads);
    default:
      return conv_rows<32>(x, wp, bias, y, n, ci, h, wd, relu, slope, threads);
  }
}

}  // namespace

void forward(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
             int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  const std::vector<float> wp = taps_by_input(w, c, k);
  conv_any(x, wp.data(), bias, y, n, c, k, h, wd, relu, slope, threads);
}

// dx[i, ih, iw] = sum dy[o, ih - ky + 1, iw - kx + 1] w[o, i, ky, kx]: the forward convolution
// of dy with the taps flipped (ky -> 2 - ky) and the channel roles swapped.
void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads) {
  const std::vector<float> wp = taps_flipped(w, c, k);
  conv_any(dy, wp.data(), nullptr, dx, n, k, c, h, wd, false, 0.f, threads);
}

}  // namespace direct8

namespace {

std::atomic<int64_t> made{0}, winograd_made{0};

bool switched_on() {
  return !env_is("MYELIN_CPU_DIRECT24", "0");
}

}  // namespace

bool direct8_applies(const ConvShape& c, bool x8, bool y8) {
  const bool geometry = c.kh == 3 && c.kw == 3 && c.sh == 1 && c.sw == 1 && c.ph == 1 &&
                        c.pw == 1 && c.dil_h == 1 && c.dil_w == 1 && c.groups == 1 &&
                        c.c % 8 == 0 && c.o % 8 == 0 && c.c <= 32 && c.o <= 32 && c.oh == c.h &&
                        c.ow == c.w && c.w % 7 == 0 && c.w >= 14;
  return geometry && x8 && y8 && cpu_has_avx512() && switched_on();
}

std::unique_ptr<Kernel> make_direct8_conv(const KernelSpec& s, ConvPass pass) {
  ++made;
  if (winograd24_applies(conv_shape(s, pass))) {
    ++winograd_made;
    return make_direct_conv(s, pass,
                            {winograd24::forward, winograd24::grad_input,
                             winograd24::scratch_floats, winograd24::grad_weight});
  }
  return make_direct_conv(
      s, pass,
      {direct8::forward, direct8::grad_input, direct8::scratch_floats, direct8::grad_weight});
}

int64_t direct8_kernels_made() {
  return made.load();
}

int64_t winograd24_passes_made() {
  return winograd_made.load();
}

}  // namespace myelin::cpu
