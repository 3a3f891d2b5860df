// A Winograd F(2x2, 3x3) convolution on nChw8c operands (conv_winograd24.h).
#include "cpu/conv_winograd24.h"

// GCC 12's _mm512_shuffle_f32x4 reads a deliberately uninitialized value: a false warning.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "core/env.h"
#include "cpu/simd.h"

namespace myelin::cpu::winograd24 {

namespace {

// The 16 positions xi = 4 r + s of a transformed 4x4 tile, in 8 pairs pp = 2 r + s / 2 (s and
// s + 1 for even s): V, U and M hold a pair's two values of a channel side by side.
constexpr int kPairs = 8;

// The accumulators of the products: G zmm a tile for K = 8 G output channels, each lane an
// (output channel, position of the pair) (see products). Up to kMaxT tiles at a time (T G
// accumulators, G weight vectors and the broadcast in 32 registers).
template <int K>
struct Lanes {
  static constexpr int G = K / 8;
  static constexpr int kMaxT = std::min(14, (31 - G) / G);
  static constexpr int64_t kMStride = kMaxT * K * 2;  // floats of M a pair of positions
};

// Floats aligned to 64 bytes: the zmm loads and stores of U, V and M never split a cache line
// (with std::vector's 16-byte alignment an earlier version's products took 0.94 instead of
// 0.75 ms in a one-thread microbenchmark).
class Floats {
 public:
  explicit Floats(size_t n)
      : p_(static_cast<float*>(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64))) {
    std::fill(p_.get(), p_.get() + n, 0.f);
  }
  float* data() const { return p_.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> p_;
};

// The shape of a pass: c input and k output channels of h x wd images, in 2x2 tiles.
struct Geometry {
  int64_t c, k, h, wd;
  int64_t tiles_per_row() const { return wd / 2; }
  int64_t plane() const { return h * wd * 8; }
};

// U[pp][i][g][2 a + j] = (G g G^T)[4 r + 2 h + j] for pp = 2 r + h and g = w[8 g + a][i] (OIHW,
// k x c), with G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]: a zmm of U holds 8 output channels of
// an input channel at both positions of a pair, the order of the accumulators' lanes.
Floats transform_weights(const float* w, int64_t c, int64_t k) {
  Floats u(16 * c * k);
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
      const int64_t lane = (i * (k / 8) + o / 8) * 16 + o % 8 * 2;
      for (int r = 0; r < 4; ++r) {
        const float row[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]),
                              0.5f * (t[r][0] - t[r][1] + t[r][2]), t[r][2]};
        for (int s = 0; s < 4; ++s) u.data()[(r * 2 + s / 2) * c * k * 2 + lane + s % 2] = row[s];
      }
    }
  return u;
}

// Input column j of 8 channels through the first stage of B^T d B (B^T = [1 0 -1 0; 0 1 1 0;
// 0 -1 1 0; 0 1 0 -1]) down the 4 rows rows[r]; zeros for a column of padding.
MYELIN_AVX512 inline void column(const float* const (&rows)[4], int64_t j, int64_t wd,
                                 __m256 (&t)[4]) {
  if (j < 0 || j >= wd) {
    for (__m256& v : t) v = _mm256_setzero_ps();
    return;
  }
  __m256 e[4];
  for (int r = 0; r < 4; ++r) e[r] = _mm256_loadu_ps(rows[r] + j * 8);
  t[0] = _mm256_sub_ps(e[0], e[2]);
  t[1] = _mm256_add_ps(e[1], e[2]);
  t[2] = _mm256_sub_ps(e[2], e[1]);
  t[3] = _mm256_sub_ps(e[1], e[3]);
}

// [a0 b0 a1 b1 .. a7 b7]: a pair's values of 8 channels, side by side.
MYELIN_AVX512 inline __m512 interleave(__m256 a, __m256 b) {
  const __m512i idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  return _mm512_permutex2var_ps(_mm512_zextps256_ps512(a), idx, _mm512_zextps256_ps512(b));
}

// The transformed input tiles tx0 .. tx0 + count - 1 of tile row ty of image x (its first
// float), tile t's positions 4 r + s at v[(2 r + s / 2) * stride + (t * c + channel) * 2 + s % 2].
// A tile's 4x4 pixels start at row 2 ty - 1, column 2 tx - 1: adjacent tiles share 2 columns, whose
// first stage is done once. Rows outside the image read `zero` (wd * 8 zeros).
MYELIN_AVX512 void input_tiles(const float* x, const float* zero, const Geometry& g, int64_t ty,
                               int64_t tx0, int64_t count, float* v, int64_t stride) {
  for (int64_t cb = 0; cb < g.c / 8; ++cb) {
    const float* rows[4];
    for (int r = 0; r < 4; ++r) {
      const int64_t ih = 2 * ty - 1 + r;
      rows[r] = ih < 0 || ih >= g.h ? zero : x + cb * g.plane() + ih * g.wd * 8;
    }
    __m256 d[4][4];  // [column][row]
    column(rows, 2 * tx0 - 1, g.wd, d[0]);
    column(rows, 2 * tx0, g.wd, d[1]);
    for (int64_t t = 0; t < count; ++t) {
      const int64_t tx = tx0 + t;
      column(rows, 2 * tx + 1, g.wd, d[2]);
      column(rows, 2 * tx + 2, g.wd, d[3]);
      float* vt = v + (t * g.c + cb * 8) * 2;
      for (int r = 0; r < 4; ++r) {
        float* row = vt + r * 2 * stride;
        _mm512_storeu_ps(
            row, interleave(_mm256_sub_ps(d[0][r], d[2][r]), _mm256_add_ps(d[1][r], d[2][r])));
        _mm512_storeu_ps(row + stride, interleave(_mm256_sub_ps(d[2][r], d[1][r]),
                                                  _mm256_sub_ps(d[1][r], d[3][r])));
      }
      for (int r = 0; r < 4; ++r) d[0][r] = d[2][r], d[1][r] = d[3][r];
    }
  }
}

// M[pp][t][g] = sum over input channels i of V[pp][t][i] U[pp][i][g] for T tiles: one 64-bit
// broadcast of V (a channel's values at the two positions of pair pp) against a zmm of U, every
// FMA a full zmm whose lanes are (output channel, position). The whole forward (batch 128,
// 24 -> 24 at 14x14, 2 threads) took 0.73 ms with a zmm and a ymm FMA a broadcast (16 + 8 output
// lanes, one position), 0.645 ms with lanes (output channel, input channel parity) whose sums
// were added after the output transform (M twice the size), 0.555 ms with these.
template <int K, int T>
MYELIN_AVX512 MYELIN_NO_PCOM void products(const float* v, const float* u, float* m, int64_t c) {
  constexpr int G = K / 8;
  for (int pp = 0; pp < kPairs; ++pp) {
    const float* vp = v + pp * Lanes<K>::kMaxT * c * 2;
    const float* up = u + pp * c * K * 2;
    __m512 a[T][G];
    for (int t = 0; t < T; ++t)
      for (int g = 0; g < G; ++g) a[t][g] = _mm512_setzero_ps();
    for (int64_t i = 0; i < c; ++i) {
      __m512 w[G];
      for (int g = 0; g < G; ++g) w[g] = _mm512_loadu_ps(up + (i * G + g) * 16);
#pragma GCC unroll 14
      for (int t = 0; t < T; ++t) {
        double pair;
        std::memcpy(&pair, vp + (t * c + i) * 2, sizeof pair);
        const __m512 s = _mm512_castpd_ps(_mm512_set1_pd(pair));
        for (int g = 0; g < G; ++g) a[t][g] = _mm512_fmadd_ps(s, w[g], a[t][g]);
      }
    }
    float* mp = m + pp * Lanes<K>::kMStride;
    for (int t = 0; t < T; ++t)
      for (int g = 0; g < G; ++g) _mm512_storeu_ps(mp + (t * G + g) * 16, a[t][g]);
  }
}

// A^T m A (A^T = [1 1 1 0; 0 1 -1 -1]) of tile (ty, tx) from its products m[pp * kMStride +
// g * 16 + lane] (lanes as in products), plus the bias b[g] (8 channels, twice) and the leaky
// ReLU, into the 2x2 pixels of image y (its first float): a zmm holds the two pixels of an output
// row, 8 channels each.
template <int K>
MYELIN_AVX512 void output_tile(const float* m, const __m512 (&b)[K / 8], float* y,
                               const Geometry& g, int64_t ty, int64_t tx, bool relu, float slope) {
  constexpr int64_t stride = Lanes<K>::kMStride;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 zero = _mm512_setzero_ps(), sl = _mm512_set1_ps(slope);
#pragma GCC unroll 4
  for (int gb = 0; gb < K / 8; ++gb) {
    __m512 a[2][2];  // [output row][h]: lanes (channel, s = 2 h, 2 h + 1) of A^T m
    for (int h = 0; h < 2; ++h) {
      __m512 e[4];
      for (int r = 0; r < 4; ++r) e[r] = _mm512_loadu_ps(m + (2 * r + h) * stride + gb * 16);
      a[0][h] = _mm512_add_ps(_mm512_add_ps(e[0], e[1]), e[2]);
      a[1][h] = _mm512_sub_ps(_mm512_sub_ps(e[1], e[2]), e[3]);
    }
    for (int r = 0; r < 2; ++r) {
      // Columns s = 0 .. 3 of row r as e02 = [s0 | s2], o13 = [s1 | s3] (8 channels each).
      const __m512 e02 = _mm512_permutex2var_ps(a[r][0], even, a[r][1]);
      const __m512 o13 = _mm512_permutex2var_ps(a[r][0], odd, a[r][1]);
      const __m512 sum = _mm512_add_ps(e02, o13);                 // [s0 + s1 | s2 + s3]
      const __m512 cross = _mm512_shuffle_f32x4(e02, o13, 0x4E);  // [s2 | s1]
      // [s0 + s1 + s2 | s1 - s2 - s3]: the row's two output pixels.
      __m512 o = _mm512_mask_sub_ps(_mm512_add_ps(sum, cross), 0xFF00, cross, sum);
      o = _mm512_add_ps(o, b[gb]);
      if (relu) o = _mm512_mask_mul_ps(o, _mm512_cmp_ps_mask(o, zero, _CMP_LT_OQ), o, sl);
      _mm512_storeu_ps(y + gb * g.plane() + ((2 * ty + r) * g.wd + 2 * tx) * 8, o);
    }
  }
}

using ProductsFn = void (*)(const float*, const float*, float*, int64_t);

// products<K, T> for T = 1 .. kMaxT, at index T - 1.
template <int K, size_t... I>
constexpr std::array<ProductsFn, sizeof...(I)> products_table(std::index_sequence<I...>) {
  return {&products<K, static_cast<int>(I) + 1>...};
}

// Where a tile of the batch is (tiles in order of image, row, column).
struct TilePos {
  int64_t img, ty, tx;
};

// y from x and the transformed weights u. An item of work is a run of kMaxT tiles of the batch
// (the last one may be short), which may span rows and images.
template <int K>
MYELIN_AVX512 void conv(const float* x, const float* u, const float* bias, float* y, int64_t n,
                        int64_t c, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  constexpr int T = Lanes<K>::kMaxT;
  const Geometry g{c, K, h, wd};
  const int64_t tw = g.tiles_per_row(), th = h / 2, tiles = n * th * tw;
  const int64_t x_image = c * h * wd, y_image = K * h * wd;
  static constexpr auto table = products_table<K>(std::make_index_sequence<T>{});
  __m512 b[K / 8];  // the bias of 8 channels, twice
  for (int gb = 0; gb < K / 8; ++gb)
    b[gb] = bias ? _mm512_broadcast_f32x8(_mm256_loadu_ps(bias + gb * 8)) : _mm512_setzero_ps();
#pragma omp parallel num_threads(threads)
  {
    Floats v(kPairs * T * c * 2), m(kPairs * Lanes<K>::kMStride), zero(wd * 8);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < (tiles + T - 1) / T; ++item) {
      const int64_t t0 = item * T, count = std::min<int64_t>(T, tiles - t0);
      const TilePos first{t0 / (th * tw), t0 / tw % th, t0 % tw};
      TilePos p = first;
      for (int64_t j = 0; j < count;) {  // the run's pieces of tile rows
        const int64_t piece = std::min(count - j, tw - p.tx);
        input_tiles(x + p.img * x_image, zero.data(), g, p.ty, p.tx, piece, v.data() + j * c * 2,
                    T * c * 2);
        j += piece;
        p = {p.img + (p.ty + 1) / th, (p.ty + 1) % th, 0};
      }
      table[count - 1](v.data(), u, m.data(), c);
      p = first;
      for (int64_t j = 0; j < count; ++j) {
        output_tile<K>(m.data() + j * K * 2, b, y + p.img * y_image, g, p.ty, p.tx, relu, slope);
        if (++p.tx == tw) p = {p.img + (p.ty + 1) / th, (p.ty + 1) % th, 0};
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

// The weight gradient: dU[xi][i][o] = sum over tiles of V[xi][tile][i] D[xi][tile][o], with D the
// output gradient's tiles through A (4 x 2: D = A dy A^T), then dw = G^T dU G. Images in fixed
// chunks, each chunk's sums a partial, the partials added in chunk order: the same bits whatever
// the thread count.
constexpr int64_t kChunkImages = 8;

// The 2x2 output-gradient tile (ty, tx) of image dy (its first float, K channels) through
// A = [1 0; 1 1; 1 -1; 0 -1] on both sides, position 4 r + s at d[(2 r + s / 2) * stride +
// channel * 2 + s % 2].
template <int K>
MYELIN_AVX512 void grad_tile(const float* dy, const Geometry& g, int64_t ty, int64_t tx, float* d,
                             int64_t stride) {
  for (int kb = 0; kb < K / 8; ++kb) {
    const float* p = dy + kb * g.plane() + (2 * ty * g.wd + 2 * tx) * 8;
    const __m256 p00 = _mm256_loadu_ps(p), p01 = _mm256_loadu_ps(p + 8);
    const __m256 p10 = _mm256_loadu_ps(p + g.wd * 8), p11 = _mm256_loadu_ps(p + g.wd * 8 + 8);
    const __m256 zero = _mm256_setzero_ps();
    // e[r][b]: rows through A.
    const __m256 e[4][2] = {{p00, p01},
                            {_mm256_add_ps(p00, p10), _mm256_add_ps(p01, p11)},
                            {_mm256_sub_ps(p00, p10), _mm256_sub_ps(p01, p11)},
                            {_mm256_sub_ps(zero, p10), _mm256_sub_ps(zero, p11)}};
    for (int r = 0; r < 4; ++r) {
      float* row = d + r * 2 * stride + kb * 16;
      _mm512_storeu_ps(row, interleave(e[r][0], _mm256_add_ps(e[r][0], e[r][1])));
      _mm512_storeu_ps(row + stride,
                       interleave(_mm256_sub_ps(e[r][0], e[r][1]), _mm256_sub_ps(zero, e[r][1])));
    }
  }
}

// part[((pp * c + i) * G + g) * 16 + lane] (+)= sum over `tiles` tiles of V[pp][t][i]
// D[pp][t][g] for input channels [i0, i0 + CB): one 64-bit broadcast of V against a zmm of D,
// lanes (output channel, position) as in products; the accumulators stay in registers over the
// tiles.
template <int K, int CB>
MYELIN_AVX512 MYELIN_NO_PCOM void weight_products(const float* v, const float* d, float* part,
                                                  int64_t c, int64_t tiles, int pp, int64_t i0,
                                                  bool add) {
  constexpr int G = K / 8;
  const float* vp = v + pp * tiles * c * 2 + i0 * 2;
  const float* dp = d + pp * tiles * K * 2;
  float* out = part + (pp * c + i0) * G * 16;
  __m512 a[CB][G];
  for (int i = 0; i < CB; ++i)
    for (int g = 0; g < G; ++g)
      a[i][g] = add ? _mm512_loadu_ps(out + (i * G + g) * 16) : _mm512_setzero_ps();
  for (int64_t t = 0; t < tiles; ++t) {
    __m512 w[G];
    for (int g = 0; g < G; ++g) w[g] = _mm512_loadu_ps(dp + (t * G + g) * 16);
#pragma GCC unroll 8
    for (int i = 0; i < CB; ++i) {
      double pair;
      std::memcpy(&pair, vp + (t * c + i) * 2, sizeof pair);
      const __m512 s = _mm512_castpd_ps(_mm512_set1_pd(pair));
      for (int g = 0; g < G; ++g) a[i][g] = _mm512_fmadd_ps(s, w[g], a[i][g]);
    }
  }
  for (int i = 0; i < CB; ++i)
    for (int g = 0; g < G; ++g) _mm512_storeu_ps(out + (i * G + g) * 16, a[i][g]);
}

// Each chunk of images into its partial (16 c K floats of scratch), an image at a time: its
// tiles' V and D (75 KB each at 24 channels, 14x14), then their products, a pair of positions at
// a time (V and D of a pair, 19 KB, stay in L1 for the passes over the input channels). At batch
// 128 on 2 threads: 0.79 ms; with the whole chunk's V and D (1.2 MB) at once, 1.1 ms; with 2 images
// at a time 0.73, 4 0.84 (these with the partials added in vectors: 0.71).
template <int K>
MYELIN_AVX512 void weight_partials(const float* dy, const float* x, float* scratch, int64_t n,
                                   int64_t c, int64_t h, int64_t wd, int threads) {
  constexpr int CB = K > 24 ? 4 : 8;  // input channels a pass: CB G accumulators
  const Geometry g{c, K, h, wd};
  const int64_t tw = g.tiles_per_row(), th = h / 2, tiles = th * tw;
  const int64_t chunks = (n + kChunkImages - 1) / kChunkImages;
#pragma omp parallel num_threads(threads)
  {
    Floats v(kPairs * tiles * c * 2), d(kPairs * tiles * K * 2), zero(wd * 8);
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t n0 = chunk * kChunkImages, n1 = std::min(n, n0 + kChunkImages);
      float* part = scratch + chunk * 16 * c * K;
      for (int64_t i = n0; i < n1; ++i) {
        for (int64_t ty = 0; ty < th; ++ty) {
          input_tiles(x + i * c * h * wd, zero.data(), g, ty, 0, tw, v.data() + ty * tw * c * 2,
                      tiles * c * 2);
          for (int64_t tx = 0; tx < tw; ++tx)
            grad_tile<K>(dy + i * K * h * wd, g, ty, tx, d.data() + (ty * tw + tx) * K * 2,
                         tiles * K * 2);
        }
        for (int pp = 0; pp < kPairs; ++pp)
          for (int64_t i0 = 0; i0 < c; i0 += CB)
            weight_products<K, CB>(v.data(), d.data(), part, c, tiles, pp, i0, i > n0);
      }
    }
  }
}

// Sixteen lanes of the partials added in chunk order into the first chunk's (a function of its
// own: clang does not carry a target attribute into an OpenMP region's outlined body).
MYELIN_AVX512 void add_chunk_lanes(float* scratch, int64_t per, int64_t chunks, int64_t e) {
  __m512 sum = _mm512_loadu_ps(scratch + e);
  for (int64_t q = 1; q < chunks; ++q)
    sum = _mm512_add_ps(sum, _mm512_loadu_ps(scratch + q * per + e));
  _mm512_storeu_ps(scratch + e, sum);
}

// The partials added in chunk order (in vectors, into the first chunk's), then dw[o][i] =
// G^T dU G (OIHW).
void add_weight_partials(float* scratch, float* dw, int64_t chunks, int64_t c, int64_t k,
                         int threads) {
  const int64_t per = 16 * c * k, G = k / 8;
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (int64_t e = 0; e < per; e += 16) add_chunk_lanes(scratch, per, chunks, e);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < c * k; ++r) {
      const int64_t o = r / c, i = r % c;
      float du[4][4];
      for (int xi = 0; xi < 16; ++xi) {
        const int64_t pp = xi / 4 * 2 + xi % 4 / 2;
        du[xi / 4][xi % 4] = scratch[((pp * c + i) * G + o / 8) * 16 + o % 8 * 2 + xi % 2];
      }
      float t[3][4];  // G^T dU, G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
      for (int s = 0; s < 4; ++s) {
        t[0][s] = du[0][s] + 0.5f * (du[1][s] + du[2][s]);
        t[1][s] = 0.5f * (du[1][s] - du[2][s]);
        t[2][s] = 0.5f * (du[1][s] + du[2][s]) + du[3][s];
      }
      float* out = dw + (o * c + i) * 9;
      for (int a = 0; a < 3; ++a) {
        out[a * 3] = t[a][0] + 0.5f * (t[a][1] + t[a][2]);
        out[a * 3 + 1] = 0.5f * (t[a][1] - t[a][2]);
        out[a * 3 + 2] = 0.5f * (t[a][1] + t[a][2]) + t[a][3];
      }
    }
  }
}

}  // namespace

void forward(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
             int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads) {
  const Floats u = transform_weights(w, c, k);
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
  const Floats u = transform_weights(wf.data(), k, c);
  conv_any(dy, u.data(), nullptr, dx, n, k, c, h, wd, false, 0.f, threads);
}

int64_t scratch_floats(int64_t n, int64_t c, int64_t k) {
  return (n + kChunkImages - 1) / kChunkImages * 16 * c * k;
}

void grad_weight(const float* dy, const float* x, float* dw, float* scratch, int64_t n, int64_t c,
                 int64_t k, int64_t h, int64_t wd, int threads) {
  switch (k) {
    case 8:
      weight_partials<8>(dy, x, scratch, n, c, h, wd, threads);
      break;
    case 16:
      weight_partials<16>(dy, x, scratch, n, c, h, wd, threads);
      break;
    case 24:
      weight_partials<24>(dy, x, scratch, n, c, h, wd, threads);
      break;
    default:
      weight_partials<32>(dy, x, scratch, n, c, h, wd, threads);
  }
  add_weight_partials(scratch, dw, (n + kChunkImages - 1) / kChunkImages, c, k, threads);
}

}  // namespace myelin::cpu::winograd24

namespace myelin::cpu {

bool winograd24_applies(const ConvShape& c) {
  return c.h % 2 == 0 && c.w % 2 == 0 && !env_is("MYELIN_CPU_WINOGRAD24", "0");
}

}  // namespace myelin::cpu
