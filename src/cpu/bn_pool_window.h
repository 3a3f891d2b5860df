// One 2x2 window of the fused batch norm + ReLU + max pooling (bn_pool.cpp), forward and gradient:
// the tile loops (bn_pool_tiles.cpp) and the stem convolution's window loops (stem_conv.cpp,
// stem_conv_grad.cpp) all build on these, so every path computes z and picks the maximum alike.
#pragma once
#include "cpu/lanes.h"

namespace myelin::cpu {

// z of a vector of elements: the ReLU of the batch norm's output. Forward and gradient both
// compute z by this, so alike.
template <int64_t L>
[[gnu::always_inline]] inline Lanes<L> activated_v(Lanes<L> x, Lanes<L> scale, Lanes<L> shift) {
  const Lanes<L> v = x * scale + shift, zero = {};
  return v < zero ? zero : v;
}

// One window's four rows of lanes: its elements (row-major) at x0, x0 + L, x1, x1 + L.
template <int64_t L>
struct Window {
  Lanes<L> x[4];
  Window(const float* x0, const float* x1)
      : x{load<L>(x0), load<L>(x0 + L), load<L>(x1), load<L>(x1 + L)} {}
  explicit Window(const Lanes<L> (&v)[4]) : x{v[0], v[1], v[2], v[3]} {}
};

// One window's gradient, per lane: which of its four elements is the first maximum of z, as the
// pooling gradient picks, the x there, dz there (dp where the maximum is above 0, else 0), and
// each element's dz (dz_at: dz at the first maximum, 0 elsewhere).
//
// Every step is a select on a fresh comparison: with one-hot masks kept in an array and combined
// (and, or, not), GCC lowered the 16-lane selects to scalar code lane by lane in the AVX-512
// clone, which made the fused gradient 5x slower wherever the lanes are 16 (a stem of 16, 32 or
// 64 channels: 7.9 against 1.4 ms for the small ResNet's stem with MYELIN_CPU_BLOCK8=0).
template <int64_t L>
struct WindowPick {
  Lanes<L> x, dz, dz_at[4];
  WindowPick(const Window<L>& win, Lanes<L> dp, Lanes<L> scale, Lanes<L> shift) {
    Lanes<L> z[4];
    for (int j = 0; j < 4; ++j) z[j] = activated_v<L>(win.x[j], scale, shift);
    const Lanes<L> m = max_v<L>(max_v<L>(z[0], z[1]), max_v<L>(z[2], z[3])), zero = {};
    dz = m > zero ? dp : zero;
    x = win.x[3];
    for (int j = 2; j >= 0; --j) x = z[j] == m ? win.x[j] : x;  // the lowest j with z = m last
    Lanes<L> left = dz;  // what the elements after the first maximum get: nothing
    for (int j = 0; j < 3; ++j) {
      dz_at[j] = z[j] == m ? left : zero;
      left = z[j] == m ? zero : left;
    }
    dz_at[3] = left;
  }
};

}  // namespace myelin::cpu
