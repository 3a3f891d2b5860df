// Helpers of blocked.h: which nodes have whole channel blocks, and plain rows <-> nchw16c tiles.
#include "cpu/blocked.h"

#include "cpu/simd.h"

namespace myelin::cpu {

bool whole_blocks(const Node& n, const Graph& g) {
  auto whole = [&](ValueId v) {
    const Shape& s = g.value(v).shape;
    return s.rank() != 4 || s[1] % kChannelBlock == 0;
  };
  return std::all_of(n.inputs.begin(), n.inputs.end(), whole) &&
         std::all_of(n.outputs.begin(), n.outputs.end(), whole);
}

// Lane k reads row min(k, real - 1), so that no lane reads past the rows present.
MYELIN_VECTOR_CLONES void rows_to_tile(const float* rows, int64_t s, int64_t real, float* tile) {
  constexpr int64_t B = kChannelBlock;
  for (int64_t i = 0; i < s; ++i)
#pragma omp simd
    for (int64_t k = 0; k < B; ++k)
      tile[i * B + k] = k < real ? rows[std::min(k, real - 1) * s + i] : 0.0f;
}

MYELIN_VECTOR_CLONES void tile_to_rows(const float* tile, int64_t s, int64_t real, float* rows) {
  constexpr int64_t B = kChannelBlock;
  for (int64_t k = 0; k < real; ++k)
#pragma omp simd
    for (int64_t i = 0; i < s; ++i) rows[k * s + i] = tile[i * B + k];
}

}  // namespace myelin::cpu
