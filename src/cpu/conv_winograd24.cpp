// A Winograd F(2x2, 3x3) convolution on nChw8c operands (conv_winograd24.h).
#include "cpu/conv_winograd24.h"

// GCC 12's _mm512_castps512_ps256 reads a deliberately uninitialized value: a false warning.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

// Compiled for AVX-512 whatever the build's -march; called only where the CPU has it.
#define MYELIN_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))

namespace myelin::cpu::winograd24 {

namespace {

constexpr int kXi = 16;     // positions of a transformed 4x4 tile
constexpr int kBlock = 14;  // tiles per block: V and M of a block stay in L1

// K output channels as Z zmm lanes (16 channels) and Y ymm lanes (8): 24 = 16 + 8.
template <int K>
struct Lanes {
  static constexpr int Z = K / 16, Y = (K % 16) / 8, ZA = Z > 0 ? Z : 1;
};

// The shape of a pass: c input and k output channels of h x wd images, in 2x2 tiles.
struct Geometry {
  int64_t c, k, h, wd;
  int64_t tiles_per_row() const { return wd / 2; }
  int64_t tiles_per_image() const { return h / 2 * (wd / 2); }
  int64_t plane() const { return h * wd * 8; }
};

// U[xi][i][o] = (G g G^T)[xi] for g = w[o][i] (OIHW, k x c), G = [1 0 0; .5 .5 .5; .5 -.5 .5;
// 0 0 1].
std::vector<float> transform_weights(const float* w, int64_t c, int64_t k) {
  std::vector<float> u(kXi * c * k);
  for (int64_t o = 0; o < k; ++o)
    for (int64_t i = 0; i < c; ++i) {
      const float* g = w + (o * c + i) * 9;
      float t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      for (int r = 0; r < 4; ++r) {
        const float row[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]),
                              0.5f * (t[r][0] - t[r][1] + t[r][2]), t[r][2]};
        for (int s = 0; s < 4; ++s) u[((r * 4 + s) * c + i) * k + o] = row[s];
      }
    }
  return u;
}

// B^T d B of a 4x4 tile d of 8 channels, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], position
// xi stored at v + xi * stride.
MYELIN_AVX512 inline void transform_input(const __m256 (&d)[4][4], float* v, int64_t stride) {
  __m256 t[4][4];
  for (int s = 0; s < 4; ++s) {
    t[0][s] = _mm256_sub_ps(d[0][s], d[2][s]);
    t[1][s] = _mm256_add_ps(d[1][s], d[2][s]);
    t[2][s] = _mm256_sub_ps(d[2][s], d[1][s]);
    t[3][s] = _mm256_sub_ps(d[1][s], d[3][s]);
  }
  for (int r = 0; r < 4; ++r) {
    float* row = v + r * 4 * stride;
    _mm256_storeu_ps(row, _mm256_sub_ps(t[r][0], t[r][2]));
    _mm256_storeu_ps(row + stride, _mm256_add_ps(t[r][1], t[r][2]));
    _mm256_storeu_ps(row + 2 * stride, _mm256_sub_ps(t[r][2], t[r][1]));
    _mm256_storeu_ps(row + 3 * stride, _mm256_sub_ps(t[r][1], t[r][3]));
  }
}

// The transformed input tile (ty, tx) of image x (its first float), all c channels, into
// v[xi * stride + channel]. The tile's pixels start at row 2 ty - 1 and column 2 tx - 1; rows
// outside the image read `zero` (wd * 8 zeros), and where Left / Right its first / last column
// is the padding.
template <bool Left, bool Right>
MYELIN_AVX512 void input_tile(const float* x, const float* zero, const Geometry& g, int64_t ty,
                              int64_t tx, float* v, int64_t stride) {
  for (int64_t cb = 0; cb < g.c / 8; ++cb) {
    __m256 d[4][4];
    for (int r = 0; r < 4; ++r) {
      const int64_t ih = 2 * ty - 1 + r;
      const float* row = ih < 0 || ih >= g.h ? zero : x + cb * g.plane() + ih * g.wd * 8;
      for (int s = 0; s < 4; ++s)
        d[r][s] = (Left && s == 0) || (Right && s == 3)
                      ? _mm256_setzero_ps()
                      : _mm256_loadu_ps(row + (2 * tx - 1 + s) * 8);
    }
    transform_input(d, v + cb * 8, stride);
  }
}

// A^T m A of the K-channel products m[xi * stride + channel] of tile (ty, tx), A^T = [1 1 1 0;
// 0 1 -1 -1], plus the bias and the leaky ReLU, into the 2x2 pixels of image y (its first float).
template <int K>
MYELIN_AVX512 void output_tile(const float* m, int64_t stride, const float* bias, float* y,
                               const Geometry& g, int64_t ty, int64_t tx, bool relu, float slope) {
  const __m256 zero = _mm256_setzero_ps(), sl = _mm256_set1_ps(slope);
  for (int kb = 0; kb < K / 8; ++kb) {
    __m256 a[2][4];
    for (int s = 0; s < 4; ++s) {
      __m256 e[4];
      for (int r = 0; r < 4; ++r) e[r] = _mm256_loadu_ps(m + (r * 4 + s) * stride + kb * 8);
      a[0][s] = _mm256_add_ps(_mm256_add_ps(e[0], e[1]), e[2]);
      a[1][s] = _mm256_sub_ps(_mm256_sub_ps(e[1], e[2]), e[3]);
    }
    const __m256 b = bias ? _mm256_loadu_ps(bias + kb * 8) : zero;
    for (int r = 0; r < 2; ++r) {
      __m256 out[2] = {_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), a[r][2]),
                       _mm256_sub_ps(_mm256_sub_ps(a[r][1], a[r][2]), a[r][3])};
      float* dst = y + kb * g.plane() + ((2 * ty + r) * g.wd + 2 * tx) * 8;
      for (int s = 0; s < 2; ++s) {
        __m256 o = _mm256_add_ps(out[s], b);
        if (relu) o = _mm256_mask_mul_ps(o, _mm256_cmp_ps_mask(o, zero, _CMP_LT_OQ), o, sl);
        _mm256_storeu_ps(dst + s * 8, o);
      }
    }
  }
}

// M[xi][t][o] = sum over i of V[xi][t][i] U[xi][i][o] for the T tiles of a block: V holds
// kBlock * c floats a position, M kBlock * K. The accumulators of a position's T tiles stay in
// registers (T = 14, K = 24: 14 zmm + 14 ymm); one broadcast of V feeds both widths.
template <int K, int T>
MYELIN_AVX512 void products(const float* v, const float* u, float* m, int64_t c) {
  using L = Lanes<K>;
  for (int xi = 0; xi < kXi; ++xi) {
    const float* vx = v + xi * kBlock * c;
    const float* ux = u + xi * c * K;
    __m512 a[T][L::ZA];
    __m256 b[T];
    for (int t = 0; t < T; ++t) {
      for (int z = 0; z < L::Z; ++z) a[t][z] = _mm512_setzero_ps();
      if constexpr (L::Y) b[t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < c; ++i) {
      __m512 wz[L::ZA];
      __m256 wy;
      for (int z = 0; z < L::Z; ++z) wz[z] = _mm512_loadu_ps(ux + i * K + 16 * z);
      if constexpr (L::Y) wy = _mm256_loadu_ps(ux + i * K + 16 * L::Z);
#pragma GCC unroll 14
      for (int t = 0; t < T; ++t) {
        const __m512 s = _mm512_set1_ps(vx[t * c + i]);
        for (int z = 0; z < L::Z; ++z) a[t][z] = _mm512_fmadd_ps(s, wz[z], a[t][z]);
        if constexpr (L::Y) b[t] = _mm256_fmadd_ps(_mm512_castps512_ps256(s), wy, b[t]);
      }
    }
    float* mx = m + xi * kBlock * K;
    for (int t = 0; t < T; ++t) {
      for (int z = 0; z < L::Z; ++z) _mm512_storeu_ps(mx + t * K + 16 * z, a[t][z]);
      if constexpr (L::Y) _mm256_storeu_ps(mx + t * K + 16 * L::Z, b[t]);
    }
  }
}

using ProductsFn = void (*)(const float*, const float*, float*, int64_t);

// products<K, T> for T = 1 .. kBlock, at index T - 1 (the last block may be short).
template <int K, size_t... I>
constexpr std::array<ProductsFn, sizeof...(I)> products_table(std::index_sequence<I...>) {
  return {&products<K, static_cast<int>(I) + 1>...};
}

// Tile t of the batch (images in order, rows of tiles in order) transformed into v.
MYELIN_AVX512 void input_of(const float* x, const float* zero, const Geometry& g, int64_t t,
                            float* v) {
  const int64_t per = g.tiles_per_image(), tw = g.tiles_per_row();
  const int64_t img = t / per, ty = t % per / tw, tx = t % tw;
  const float* xi = x + img * g.c * g.h * g.wd;
  const int64_t stride = kBlock * g.c;
  const bool left = tx == 0, right = tx == tw - 1;
  if (left && right) return input_tile<true, true>(xi, zero, g, ty, tx, v, stride);
  if (left) return input_tile<true, false>(xi, zero, g, ty, tx, v, stride);
  if (right) return input_tile<false, true>(xi, zero, g, ty, tx, v, stride);
  input_tile<false, false>(xi, zero, g, ty, tx, v, stride);
}

// y from x and the transformed weights u, the batch's tiles in blocks of kBlock, a block per
// item of work.
template <int K>
MYELIN_AVX512 void conv(const float* x, const float* u, const float* bias, float* y, int64_t n,
                        int64_t c, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  const Geometry g{c, K, h, wd};
  const int64_t per = g.tiles_per_image(), tw = g.tiles_per_row(), tiles = n * per;
  const int64_t blocks = (tiles + kBlock - 1) / kBlock;
  static constexpr auto table = products_table<K>(std::make_index_sequence<kBlock>{});
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> v(kXi * kBlock * c), m(kXi * kBlock * K), zero(wd * 8, 0.f);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t t0 = b * kBlock, count = std::min<int64_t>(kBlock, tiles - t0);
      for (int64_t j = 0; j < count; ++j) input_of(x, zero.data(), g, t0 + j, v.data() + j * c);
      table[count - 1](v.data(), u, m.data(), c);
      for (int64_t j = 0; j < count; ++j) {
        const int64_t t = t0 + j, img = t / per, ty = t % per / tw, tx = t % tw;
        output_tile<K>(m.data() + j * K, kBlock * K, bias, y + img * K * h * wd, g, ty, tx, relu,
                       slope);
      }
    }
  }
}

void conv_any(const float* x, const float* u, const float* bias, float* y, int64_t n, int64_t c,
              int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  switch (k) {
    case 8:
      return conv<8>(x, u, bias, y, n, c, h, wd, relu, slope, threads);
    case 16:
      return conv<16>(x, u, bias, y, n, c, h, wd, relu, slope, threads);
    case 24:
      return conv<24>(x, u, bias, y, n, c, h, wd, relu, slope, threads);
    default:
      return conv<32>(x, u, bias, y, n, c, h, wd, relu, slope, threads);
  }
}

}  // namespace

void forward(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
             int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  const std::vector<float> u = transform_weights(w, c, k);
  conv_any(x, u.data(), bias, y, n, c, k, h, wd, relu, slope, threads);
}

// dx is the forward convolution of dy (k channels in, c out) with the weights flipped
// (tap t -> 8 - t) and transposed: wf[i][o] = w[o][i].
void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads) {
  std::vector<float> wf(k * c * 9);
  for (int64_t o = 0; o < k; ++o)
    for (int64_t i = 0; i < c; ++i)
      for (int t = 0; t < 9; ++t) wf[(i * k + o) * 9 + t] = w[(o * c + i) * 9 + 8 - t];
  const std::vector<float> u = transform_weights(wf.data(), k, c);
  conv_any(dy, u.data(), nullptr, dx, n, k, c, h, wd, false, 0.f, threads);
}

}  // namespace myelin::cpu::winograd24
