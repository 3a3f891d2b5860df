// One 2x2 window of the fused batch norm + ReLU + max pooling (bn_pool.cpp), forward and gradient:
// the tile loops (bn_pool_tiles.cpp) and the stem convolution's window loops (stem_conv.cpp) both
// build on these, so every path computes z and picks the maximum alike.
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
// pooling gradient picks (one-hot masks), the x there, and dz there: dp where the maximum is above
// 0, else 0.
template <int64_t L>
struct WindowPick {
  using Mask = decltype(Lanes<L>{} < Lanes<L>{});
  Mask hit[4];
  Lanes<L> x, dz;
  WindowPick(const Window<L>& win, Lanes<L> dp, Lanes<L> scale, Lanes<L> shift) {
    Lanes<L> z[4];
    for (int j = 0; j < 4; ++j) z[j] = activated_v<L>(win.x[j], scale, shift);
    const Lanes<L> m = max_v<L>(max_v<L>(z[0], z[1]), max_v<L>(z[2], z[3])), zero = {};
    Mask taken = z[0] != z[0];  // all false
    x = win.x[3];
    for (int j = 0; j < 4; ++j) {
      hit[j] = j < 3 ? (z[j] == m) & ~taken : ~taken;
      taken |= hit[j];
    }
    for (int j = 2; j >= 0; --j) x = hit[j] ? win.x[j] : x;
    dz = m > zero ? dp : zero;
  }
};

}  // namespace myelin::cpu
