// Activations kept in oneDNN's blocked layout between the CPU engine's kernels (Layout::nchw16c,
// chosen by CpuBackend::choose_storage in storage.cpp from what each kernel registers). Where a
// kernel file runs some nodes of an op on kernels that take the blocked layout and others on
// kernels that do not, it says which (the `when` of its registered KernelStorage::layout), so the
// plan and the kernels agree.
//
// Channels that are not a multiple of 16 are stored padded to whole blocks (stored_numel,
// core/planner.h), as oneDNN pads them: the padding channels hold zeros. Every kernel that writes
// a blocked value writes its padding as zeros (oneDNN's primitives and reorders do), and may rely
// on them being zero where it reads one. A kernel that cannot keep that (LRN mixes channels; a
// fill or an activation such as the sigmoid that maps 0 elsewhere) takes the blocked layout only
// for whole blocks (whole_blocks below).
#pragma once
#include <algorithm>

#include "core/graph.h"

namespace myelin::cpu {

constexpr int64_t kChannelBlock = 16;  // nChw16c: what oneDNN's AVX-512 convolutions choose

// Blocks of 16 that hold c channels (the last one padded).
constexpr int64_t channel_blocks(int64_t c) {
  return (c + kChannelBlock - 1) / kChannelBlock;
}
constexpr int64_t padded_channels(int64_t c) {
  return channel_blocks(c) * kChannelBlock;
}

// A convolution node (any pass) that runs on oneDNN's blocked kernels (conv.cpp).
bool conv_takes_blocked(const Node& n, const Graph& g);
// A pooling node (any pass) whose kernel takes nchw16c (pool.cpp).
bool pool_takes_blocked(const Node& n, const Graph& g);
// Every 4-D operand of n has a multiple of 16 channels (no padding).
bool whole_blocks(const Node& n, const Graph& g);

// One channel block of plain rows (row k at rows + k * s, for the `real` channels present) and
// its nchw16c tile ([s][16]; lanes from `real` on are zero) made from each other.
void rows_to_tile(const float* rows, int64_t s, int64_t real, float* tile);
void tile_to_rows(const float* tile, int64_t s, int64_t real, float* rows);

}  // namespace myelin::cpu
