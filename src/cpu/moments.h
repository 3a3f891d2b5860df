// Batch-norm statistics in one pass over x: each piece of x (a plain row of one channel, or a
// blocked tile of s pixels x L channels, one per lane) gives its sum and its sum of squares about
// its own mean, from two sweeps over the piece while it is in cache; the pieces of a channel then
// combine in a fixed order by Chan et al.'s pairwise formula, m2 = sum(m2_i + s_i * (mean_i -
// mean)^2), which cancels nothing. Floats are summed in blocks, the blocks added in double.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/lanes.h"

namespace myelin::cpu {

constexpr int64_t kMomentBlock = 256;  // elements (pixels of a tile) summed in float at a time

// Independent float sums per lane in a tile's sweeps: pixel i goes to sum i % kMomentChains,
// added up in a fixed order at the end of each block. With one, each pixel's add waited on the
// last one's (4 cycles), and a 14x14 tile of 8 lanes took 1,600 cycles for its two sweeps: the
// small ResNet's res1_bn1 forward 0.176 -> 0.147 ms, res1_bn2 (with its residual sum) 0.246 ->
// 0.210 ms (min of 12 alternating `myelin time` runs, batch 128, 2 threads, Xeon shared with other
// benchmarks). Per tile, so still the same on any number of threads.
constexpr int64_t kMomentChains = 4;

// Per lane: the tile's sum and its sum of squares about the tile's own mean.
template <int64_t L>
[[gnu::always_inline]] inline void tile_moments_l(const float* t, int64_t s, double* sum,
                                                  double* m2) {
  constexpr int64_t C = kMomentChains;
  static_assert(C == 4, "the blocks add the four sums pairwise");
  double total[L] = {};
  for (int64_t b = 0; b < s; b += kMomentBlock) {
    const int64_t end = std::min(s, b + kMomentBlock);
    Lanes<L> acc[C] = {};
    int64_t i = b;
    for (; i + C <= end; i += C)
      for (int64_t j = 0; j < C; ++j) acc[j] += load<L>(t + (i + j) * L);
    for (; i < end; ++i) acc[0] += load<L>(t + i * L);
    const Lanes<L> block = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (int64_t k = 0; k < L; ++k) total[k] += block[k];
  }
  Lanes<L> mean;
  for (int64_t k = 0; k < L; ++k) mean[k] = static_cast<float>(total[k] / s);
  double sq[L] = {};
  for (int64_t b = 0; b < s; b += kMomentBlock) {
    const int64_t end = std::min(s, b + kMomentBlock);
    Lanes<L> acc[C] = {};
    int64_t i = b;
    for (; i + C <= end; i += C)
      for (int64_t j = 0; j < C; ++j) {
        const Lanes<L> d = load<L>(t + (i + j) * L) - mean;
        acc[j] += d * d;
      }
    for (; i < end; ++i) {
      const Lanes<L> d = load<L>(t + i * L) - mean;
      acc[0] += d * d;
    }
    const Lanes<L> block = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (int64_t k = 0; k < L; ++k) sq[k] += block[k];
  }
  // The sum about the float mean, moved to the exact one: m2 = sq - s * (mean_exact - mean)^2.
  for (int64_t k = 0; k < L; ++k) {
    const double shift = total[k] / s - mean[k];
    sum[k] = total[k];
    m2[k] = std::max(0.0, sq[k] - s * shift * shift);
  }
}

// tile_moments_l for a tile of `lanes` (8 or 16) lanes, in the clone for the running CPU
// (bn_pool_tiles.cpp).
void tile_moments(int64_t lanes, const float* t, int64_t s, double* sum, double* m2);

// The same for one plain row of s elements.
[[gnu::always_inline]] inline void row_moments(const float* r, int64_t s, double& sum, double& m2) {
  double total = 0, sq = 0;
  for (int64_t b = 0; b < s; b += 4 * kMomentBlock) {
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = b; i < std::min(s, b + 4 * kMomentBlock); ++i) acc += r[i];
    total += acc;
  }
  const float mean = static_cast<float>(total / s);
  for (int64_t b = 0; b < s; b += 4 * kMomentBlock) {
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = b; i < std::min(s, b + 4 * kMomentBlock); ++i)
      acc += (r[i] - mean) * (r[i] - mean);
    sq += acc;
  }
  const double shift = total / s - mean;
  sum = total;
  m2 = std::max(0.0, sq - s * shift * shift);
}

// The mean and variance of `pieces` pieces of s elements each, from their sums and m2 (the
// i-th at sum[i * stride], m2[i * stride]), combined in piece order.
inline void combine_moments(const double* sum, const double* m2, int64_t pieces, int64_t stride,
                            int64_t s, double& mean, double& var) {
  const double m = static_cast<double>(pieces * s);
  double total = 0;
  for (int64_t i = 0; i < pieces; ++i) total += sum[i * stride];
  mean = total / m;
  double sq = 0;
  for (int64_t i = 0; i < pieces; ++i) {
    const double d = sum[i * stride] / s - mean;
    sq += m2[i * stride] + s * d * d;
  }
  var = sq / m;
}

}  // namespace myelin::cpu
