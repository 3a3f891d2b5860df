// The pieces the stem convolution's forward (stem_conv.cpp) and gradient (stem_conv_grad.cpp)
// loops share: how many pixels a tile loop keeps in flight, and for the convolution fused into
// the pooling's window loops, the image elements a window's taps read, its four x, the loads of
// split units and the picks' codes. Private to those two files.
#pragma once
#include <cstdint>

#include "cpu/lanes.h"

namespace myelin::cpu::bn_pool {

// Pixels a convolution loop keeps in flight: independent accumulators, so that it runs at the
// multiply-add units' throughput rather than at one add's latency per tap.
constexpr int64_t kPixels = 4;

// --- The stem convolution of T taps (3x3 on one channel: T = 9) fused into the window loops: each
// window's four x computed in registers from the padded image, used there and dropped, so x and
// dz never go through a tile. The weights and, in the gradient, the T weight-gradient accumulators
// stay in registers (T known at compile time). ---

// The image elements of tap t for a window's four pixels: at[j] + off[t], at[j] the pixel's
// corner in the padded image.
struct WindowPixels {
  int64_t at[4];
  WindowPixels(int64_t oy, int64_t ox, int64_t sh, int64_t sw, int64_t wp) {
    for (int j = 0; j < 4; ++j) at[j] = (2 * oy + j / 2) * sh * wp + (2 * ox + j % 2) * sw;
  }
};

// The element tap t reads for the window's pixel j. Dense: one input channel, 3x3, stride 1 and
// no dilation (a gray image's stem), where that is at[0] + (j / 2 + t / 3) * wp + j % 2 + t % 3:
// the same address as at[j] + off[t], but the window's 4x4 patch at four row pointers and
// constant columns. With off[] and at[] at run time GCC kept the 13 addresses on the stack and
// spilled the gradient's accumulators around them. Same addresses, same order: same results.
template <bool Dense>
[[gnu::always_inline]] inline float tap_of(const float* pimg, const int64_t* off,
                                           const WindowPixels& px, int64_t wp, int j, int64_t t) {
  if constexpr (Dense) return pimg[px.at[0] + (j / 2 + t / 3) * wp + j % 2 + t % 3];
  return pimg[px.at[j] + off[t]];
}

template <int64_t L, int64_t T, bool Dense>
[[gnu::always_inline]] inline void window_x(const float* pimg, const int64_t* off,
                                            const Lanes<L> (&w)[T], const WindowPixels& px,
                                            int64_t wp, Lanes<L> (&x)[4]) {
  // Unrolled, so that the weights and accumulators stay in registers.
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    Lanes<L> acc = {};
#pragma GCC unroll 16
    for (int64_t t = 0; t < T; ++t) acc += w[t] * tap_of<Dense>(pimg, off, px, wp, j, t);
    x[j] = acc;
  }
}

// L lanes at p; Split (L = 16): two blocks of 8 lanes, the first 8 at p and the rest at p + hi.
template <int64_t L, bool Split>
[[gnu::always_inline]] inline Lanes<L> load_halves(const float* p, int64_t hi) {
  if constexpr (Split) {
    static_assert(L == 16);
    return __builtin_shufflevector(load<8>(p), load<8>(p + hi), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                   11, 12, 13, 14, 15);
  } else {
    return load<L>(p);
  }
}

// The window's pick per lane, as WindowPick makes it, in a byte a lane: 4 + j, j the first
// maximum of z, where that is above 0, else 0 (no gradient). The forward stores them ("stem_picks",
// StemConv::pool with picks), so that the gradient need not compute x and z again.
template <int64_t L>
struct CodesOf {
  typedef int32_t type __attribute__((vector_size(L * sizeof(int32_t))));
  typedef uint8_t bytes __attribute__((vector_size(L)));
};

}  // namespace myelin::cpu::bn_pool
