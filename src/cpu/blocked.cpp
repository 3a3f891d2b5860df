// Helpers of blocked.h: which nodes have whole channel blocks, and plain rows <-> blocked tiles
// (16 x 16 transposes in AVX-512 registers, 8 x 8 in AVX2 registers, where the CPU has them).
#include "cpu/blocked.h"

#include <immintrin.h>

#include "core/env.h"
#include "cpu/simd.h"

namespace myelin::cpu {

Layout blocked_layout(int64_t c) {
  const bool block8 = !env_is("MYELIN_CPU_BLOCK8", "0");
  return block8 && c % 8 == 0 && c % 16 != 0 ? Layout::nchw8c : Layout::nchw16c;
}

int64_t blocked_lanes(const KernelSpec& s) {
  int64_t lanes = 0;
  for (size_t i = 0; i < s.node.inputs.size(); ++i)
    lanes = std::max(lanes, block_of(s.input_layout(i)));
  for (size_t i = 0; i < s.node.outputs.size(); ++i)
    lanes = std::max(lanes, block_of(s.output_layout(i)));
  return lanes;
}

bool whole_blocks(const Node& n, const Graph& g) {
  auto whole = [&](ValueId v) {
    const Shape& s = g.value(v).shape;
    return s.rank() != 4 || s[1] % kChannelBlock == 0;
  };
  return std::all_of(n.inputs.begin(), n.inputs.end(), whole) &&
         std::all_of(n.outputs.begin(), n.outputs.end(), whole);
}

namespace {

constexpr int64_t B = kChannelBlock;

// r[k] holds row k of a 16 x 16 block on entry and its column k on exit: pairs of rows
// interleaved, then groups of 4 (u[g][j]: rows 4g..4g+3 at columns j, j+4, j+8, j+12), then
// 128-bit lanes gathered across the groups.
__attribute__((target("avx512f"))) inline void transpose16(__m512 r[16]) {
  __m512 u[4][4];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    const __m512 lo0 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]);
    const __m512 hi0 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
    const __m512 lo1 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
    const __m512 hi1 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
    u[g][0] = _mm512_shuffle_ps(lo0, lo1, 0x44);
    u[g][1] = _mm512_shuffle_ps(lo0, lo1, 0xEE);
    u[g][2] = _mm512_shuffle_ps(hi0, hi1, 0x44);
    u[g][3] = _mm512_shuffle_ps(hi0, hi1, 0xEE);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[0][j], u[1][j], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[0][j], u[1][j], 0xDD);
    const __m512 v2 = _mm512_shuffle_f32x4(u[2][j], u[3][j], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(u[2][j], u[3][j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[j + 4] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[j + 12] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

__attribute__((target("avx512f"))) int64_t rows_to_tile_avx512(const float* rows, int64_t s,
                                                               int64_t real, float* tile) {
  int64_t i = 0;
  for (; i + B <= s; i += B) {
    __m512 r[B];
#pragma GCC unroll 16
    for (int64_t k = 0; k < B; ++k)
      r[k] = k < real ? _mm512_loadu_ps(rows + k * s + i) : _mm512_setzero_ps();
    transpose16(r);
#pragma GCC unroll 16
    for (int64_t j = 0; j < B; ++j) _mm512_storeu_ps(tile + (i + j) * B, r[j]);
  }
  return i;
}

__attribute__((target("avx512f"))) int64_t tile_to_rows_avx512(const float* tile, int64_t s,
                                                               int64_t real, float* rows) {
  int64_t i = 0;
  for (; i + B <= s; i += B) {
    __m512 r[B];
#pragma GCC unroll 16
    for (int64_t j = 0; j < B; ++j) r[j] = _mm512_loadu_ps(tile + (i + j) * B);
    transpose16(r);
#pragma GCC unroll 16
    for (int64_t k = 0; k < real; ++k) _mm512_storeu_ps(rows + k * s + i, r[k]);
  }
  return i;
}

// r[k] holds row k of an 8 x 8 block on entry and its column k on exit.
__attribute__((target("avx2"))) inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
    u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
    u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
  }
}

constexpr int64_t B8 = 8;

__attribute__((target("avx2"))) int64_t rows_to_tile_avx2(const float* rows, int64_t s,
                                                          int64_t real, float* tile) {
  int64_t i = 0;
  for (; i + B8 <= s; i += B8) {
    __m256 r[B8];
    for (int64_t k = 0; k < B8; ++k)
      r[k] = k < real ? _mm256_loadu_ps(rows + k * s + i) : _mm256_setzero_ps();
    transpose8(r);
    for (int64_t j = 0; j < B8; ++j) _mm256_storeu_ps(tile + (i + j) * B8, r[j]);
  }
  return i;
}

__attribute__((target("avx2"))) int64_t tile_to_rows_avx2(const float* tile, int64_t s,
                                                          int64_t real, float* rows) {
  int64_t i = 0;
  for (; i + B8 <= s; i += B8) {
    __m256 r[B8];
    for (int64_t j = 0; j < B8; ++j) r[j] = _mm256_loadu_ps(tile + (i + j) * B8);
    transpose8(r);
    for (int64_t k = 0; k < real; ++k) _mm256_storeu_ps(rows + k * s + i, r[k]);
  }
  return i;
}

// The pixels [0, done) of a tile by registers, or none.
int64_t rows_to_tile_fast(const float* rows, int64_t s, int64_t real, float* tile, int64_t b) {
  if (b == B && cpu_has_avx512()) return rows_to_tile_avx512(rows, s, real, tile);
  if (b == B8 && cpu_has_avx2()) return rows_to_tile_avx2(rows, s, real, tile);
  return 0;
}

int64_t tile_to_rows_fast(const float* tile, int64_t s, int64_t real, float* rows, int64_t b) {
  if (b == B && cpu_has_avx512()) return tile_to_rows_avx512(tile, s, real, rows);
  if (b == B8 && cpu_has_avx2()) return tile_to_rows_avx2(tile, s, real, rows);
  return 0;
}

}  // namespace

void rows_to_tile(const float* rows, int64_t s, int64_t real, float* tile, int64_t block) {
  const int64_t done = rows_to_tile_fast(rows, s, real, tile, block);
  for (int64_t i = done; i < s; ++i)
    for (int64_t k = 0; k < block; ++k) tile[i * block + k] = k < real ? rows[k * s + i] : 0.0f;
}

// One target block of one image, pixel by pixel, so that each pixel's `to` lanes are written at
// once (a whole cache line for 16): lanes [j * step, (j + 1) * step) from src[j] (blocks of
// `from`, already at the run's first lane), or zeros where src[j] is null (padding).
MYELIN_VECTOR_CLONES void reblock_block(const float* const* src, int64_t from, float* dst,
                                        int64_t to, int64_t hw, int64_t step) {
  for (int64_t p = 0; p < hw; ++p)
    for (int64_t j = 0; j < to / step; ++j) {
      float* d = dst + p * to + j * step;
      if (!src[j]) {
#pragma omp simd
        for (int64_t k = 0; k < step; ++k) d[k] = 0.0f;
        continue;
      }
#pragma omp simd
      for (int64_t k = 0; k < step; ++k) d[k] = src[j][p * from + k];
    }
}

void reblock(const float* src, int64_t from, float* dst, int64_t to, int64_t n, int64_t c,
             int64_t hw) {
  const int64_t step = std::min(from, to);
  const int64_t from_blocks = channel_blocks(c, from), to_blocks = channel_blocks(c, to);
#pragma omp parallel for schedule(static)
  for (int64_t u = 0; u < n * to_blocks; ++u) {
    const int64_t i = u / to_blocks, b = u % to_blocks;
    const float* runs[kChannelBlock / 8] = {};
    for (int64_t j = 0; j < to / step; ++j) {
      const int64_t c0 = b * to + j * step;  // the run's first channel
      if (c0 / from < from_blocks)           // else padding of the larger target block: zeros
        runs[j] = src + ((i * from_blocks + c0 / from) * hw) * from + c0 % from;
    }
    reblock_block(runs, from, dst + u * hw * to, to, hw, step);
  }
}

void tile_to_rows(const float* tile, int64_t s, int64_t real, float* rows, int64_t block) {
  const int64_t done = tile_to_rows_fast(tile, s, real, rows, block);
  for (int64_t k = 0; k < real; ++k)
    for (int64_t i = done; i < s; ++i) rows[k * s + i] = tile[i * block + k];
}

}  // namespace myelin::cpu
