// Activations kept in oneDNN's blocked layouts between the CPU engine's kernels (Layout::nchw16c,
// and Layout::nchw8c for channel counts that are a multiple of 8 but not of 16: blocked_layout;
// chosen by CpuBackend::choose_storage in storage.cpp from what each kernel registers). Where a
// kernel file runs some nodes of an op on kernels that take the blocked layout and others on
// kernels that do not, it says which (the `when` of its registered KernelStorage::layout), so the
// plan and the kernels agree.
//
// Channels that are not a multiple of the block are stored padded to whole blocks (stored_numel,
// core/planner.h), as oneDNN pads them: the padding channels hold zeros. Every kernel that writes
// a blocked value writes its padding as zeros (oneDNN's primitives and reorders do), and may rely
// on them being zero where it reads one. A kernel that cannot keep that (LRN mixes channels; a
// fill or an activation such as the sigmoid that maps 0 elsewhere) takes the blocked layout only
// for whole blocks of 16 (whole_blocks below).
#pragma once
#include <algorithm>
#include <type_traits>

#include "core/backend.h"
#include "core/graph.h"

namespace myelin::cpu {

constexpr int64_t kChannelBlock = 16;  // nChw16c: what oneDNN's AVX-512 convolutions choose

// Blocks of `block` channels that hold c channels (the last one padded).
constexpr int64_t channel_blocks(int64_t c, int64_t block = kChannelBlock) {
  return (c + block - 1) / block;
}
constexpr int64_t padded_channels(int64_t c, int64_t block = kChannelBlock) {
  return channel_blocks(c, block) * block;
}

// Channels per block of a layout: 16, 8, or 0 where it is not blocked.
constexpr int64_t block_of(Layout layout) {
  return layout == Layout::nchw16c ? 16 : layout == Layout::nchw8c ? 8 : 0;
}
constexpr bool is_blocked(Layout layout) {
  return block_of(layout) != 0;
}
// The blocked layout of a value with c channels: nchw8c where c is a multiple of 8 but not of 16
// (24 channels: oneDNN's 8-channel kernels beat padding to 32 on AVX-512, bench/RESULTS.md),
// nchw16c otherwise. MYELIN_CPU_BLOCK8=0 keeps nchw16c for every value (for A/B timing).
Layout blocked_layout(int64_t c);

// Calls f with std::integral_constant<int64_t, block> for a block of 8 or 16 channels, so that
// kernels compile their lane loops for each block size.
template <class F>
[[gnu::always_inline]] inline decltype(auto) with_block(int64_t block, F&& f) {
  if (block == 8) return f(std::integral_constant<int64_t, 8>{});
  return f(std::integral_constant<int64_t, 16>{});
}

// A convolution node (any pass) that runs on oneDNN's blocked kernels (conv.cpp).
bool conv_takes_blocked(const Node& n, const Graph& g);
// A pooling node (any pass) whose kernel takes nchw16c (pool.cpp).
bool pool_takes_blocked(const Node& n, const Graph& g);
// Every 4-D operand of n has a multiple of 16 channels (no padding).
bool whole_blocks(const Node& n, const Graph& g);
// The block of a kernel's operands stored blocked (all of one channel count, so of one layout),
// or 0 where none is.
int64_t blocked_lanes(const KernelSpec& s);

// A 24-channel input that 3x3 convolutions to 48 channels convert to nChw16c, converted once by
// the first one's forward as its second output (fuse_x16.cpp; MYELIN_CPU_SHARE_X16=0: not), and
// that output stored nChw16c where it is blocked (after CpuBackend::choose_storage).
void share_wide_inputs(Graph& g);
void store_wide_inputs(Graph& g);

// One channel block of plain rows (row k at rows + k * s, for the `real` channels present) and
// its blocked tile ([s][block], block 8 or 16; lanes from `real` on are zero) made from each
// other.
void rows_to_tile(const float* rows, int64_t s, int64_t real, float* tile,
                  int64_t block = kChannelBlock);
void tile_to_rows(const float* tile, int64_t s, int64_t real, float* rows,
                  int64_t block = kChannelBlock);

// x[n, c, hw] stored in blocks of `from` channels (8 or 16) into blocks of `to` (16 or 8): lanes of
// padding written as zeros, read ones dropped. OpenMP over images. Twice as fast as oneDNN 2.6's
// reorder between nChw8c and nChw16c (jit:uni): 128x24x14x14 on 2 threads, 0.11 vs 0.20 ms.
void reblock(const float* src, int64_t from, float* dst, int64_t to, int64_t n, int64_t c,
             int64_t hw);

}  // namespace myelin::cpu
