#include "cpu/small_gemm.h"
#include "cpu/simd.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

// GCC 12's _mm512_reduce_add_ps starts from _mm256_undefined_pd(), which -Wuninitialized
// reports as a use of an uninitialised value.
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace myelin::cpu {

namespace {

// Reduction block: the rows of every tile of one block stay in L2 (45 rows of LeNet's conv1 x
// 16 KiB), and each tile's horizontal sums are amortised over 256 vector steps.
constexpr int64_t kBlock = 4096;
constexpr int kTileM = 4, kTileN = 6;  // 24 accumulators + 4 A rows + 1 B row: 29 of 32 zmm

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);

// One vector step of a tile: 16 (or the masked tail of) reduction positions from l.
template <int MT, int NT>
__attribute__((target("avx512f"), always_inline)) inline void tile_step(__m512 (&acc)[MT][NT],
                                                                        int64_t l, __mmask16 mask,
                                                                        const float* a, int64_t lda,
                                                                        const float* b,
                                                                        int64_t ldb) {
  __m512 av[MT];
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i) av[i] = _mm512_maskz_loadu_ps(mask, a + i * lda + l);
#pragma GCC unroll 6
  for (int j = 0; j < NT; ++j) {
    __m512 bv = _mm512_maskz_loadu_ps(mask, b + j * ldb + l);
#pragma GCC unroll 4
    for (int i = 0; i < MT; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
  }
}

// C[MT, NT] += A[MT, len] B[NT, len]^T, one 16-lane accumulator per output, summed at the end.
template <int MT, int NT>
__attribute__((target("avx512f"))) void tile(int64_t len, const float* a, int64_t lda,
                                             const float* b, int64_t ldb, float* c, int64_t ldc) {
  __m512 acc[MT][NT];
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t l = 0;
  for (; l + 16 <= len; l += 16) tile_step<MT, NT>(acc, l, 0xFFFF, a, lda, b, ldb);
  if (l < len)
    tile_step<MT, NT>(acc, l, static_cast<__mmask16>((1u << (len - l)) - 1), a, lda, b, ldb);
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < NT; ++j) c[i * ldc + j] += _mm512_reduce_add_ps(acc[i][j]);
}

template <int MT, int... NT>
constexpr std::array<TileFn, sizeof...(NT)> tile_row(std::integer_sequence<int, NT...>) {
  return {tile<MT, NT + 1>...};
}

TileFn tile_for(int64_t mt, int64_t nt) {
  static const std::array<std::array<TileFn, kTileN>, kTileM> table = {
      tile_row<1>(std::make_integer_sequence<int, kTileN>()),
      tile_row<2>(std::make_integer_sequence<int, kTileN>()),
      tile_row<3>(std::make_integer_sequence<int, kTileN>()),
      tile_row<4>(std::make_integer_sequence<int, kTileN>())};
  return table[mt - 1][nt - 1];
}

}  // namespace

bool small_gemm_available() {
  return cpu_has_avx512();
}

void small_gemm_nt(int64_t m, int64_t n, int64_t len, const float* a, int64_t lda, const float* b,
                   int64_t ldb, float beta, float* c, int64_t ldc) {
  if (beta == 0)
    for (int64_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, 0.0f);
  for (int64_t l0 = 0; l0 < len; l0 += kBlock) {
    const int64_t lb = std::min(kBlock, len - l0);
    for (int64_t i = 0; i < m; i += kTileM)
      for (int64_t j = 0; j < n; j += kTileN)
        tile_for(std::min<int64_t>(kTileM, m - i), std::min<int64_t>(kTileN, n - j))(
            lb, a + i * lda + l0, lda, b + j * ldb + l0, ldb, c + i * ldc + j, ldc);
  }
}

}  // namespace myelin::cpu
