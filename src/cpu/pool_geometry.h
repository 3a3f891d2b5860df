// What the CPU pooling kernels share (pool.cpp: plain layouts and oneDNN; pool_blocked.cpp: our
// max pooling kernels on nChw16c / nChw8c): each axis's windows, precomputed, and the pair-pool
// rule.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "ops/params.h"

namespace myelin::cpu {

// One axis of the windows: for each output position, the real input range [begin, end) and the
// divisor factor (the window clipped to [-pad, in + pad) with count_include_pad, else the real
// count). Precomputed once, so the kernels' loops do no window arithmetic per element.
struct PoolAxis {
  std::vector<int64_t> begin, end, divisor;
  PoolAxis(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad, bool include_pad) {
    for (int64_t o = 0; o < out; ++o) {
      int64_t s = o * stride - pad;
      begin.push_back(std::max<int64_t>(s, 0));
      end.push_back(std::min(s + kernel, in));
      divisor.push_back(include_pad ? std::min(s + kernel, in + pad) - s
                                    : end.back() - begin.back());
    }
  }
};

struct PoolGeometry {
  int64_t n, c, h, w, oh, ow;
  PoolParams p;
  PoolAxis rows, cols;
  PoolGeometry(const Shape& x, const Attrs& a)
      : n(x[0]),
        c(x[1]),
        h(x[2]),
        w(x[3]),
        oh(PoolParams(a).out_h(h)),
        ow(PoolParams(a).out_w(w)),
        p(a),
        rows(h, oh, p.kernel_h, p.stride_h, p.pad_h, p.count_include_pad),
        cols(w, ow, p.kernel_w, p.stride_w, p.pad_w, p.count_include_pad) {}
  // Padding on the right/bottom that oneDNN needs to produce oh x ow windows.
  int64_t pad_r_h() const {
    return std::max<int64_t>(0, (oh - 1) * p.stride_h + p.kernel_h - h - p.pad_h);
  }
  int64_t pad_r_w() const {
    return std::max<int64_t>(0, (ow - 1) * p.stride_w + p.kernel_w - w - p.pad_w);
  }
  bool overhangs() const { return pad_r_h() > p.pad_h || pad_r_w() > p.pad_w; }
  float divisor(int64_t oy, int64_t ox) const {
    return static_cast<float>(rows.divisor[oy] * cols.divisor[ox]);
  }
};

// 2x2 windows with stride 2, no padding, all inside the input (LeNet's and the ResNet's
// pools): every input element lies in at most one window, so both passes stream whole rows, and
// the gradient writes each dx element exactly once (no zero fill, no scatter). Rows and columns
// past the last window (odd sizes) get no gradient.
inline bool is_pair_pool(const PoolGeometry& g) {
  const PoolParams& p = g.p;
  return p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 &&
         p.pad_w == 0 && 2 * g.oh <= g.h && 2 * g.ow <= g.w;
}

// The gradient of a ReLU before the pooling, fused into its gradient (CpuBackend::fuse; pair
// pools only): a window's dy goes to its maximum only where that is above 0.
inline bool fused_relu_grad(const Node& n) {
  return n.attrs.s("post", "") == "relu_grad";
}

// Max pooling and its gradient on a blocked layout (pool_blocked.cpp): the pair kernels where
// is_pair_pool holds, else (gradient only; oneDNN pools forward) the general window gradient.
std::unique_ptr<Kernel> make_blocked_max_pool(const KernelSpec& s);
std::unique_ptr<Kernel> make_blocked_max_pool_grad(const KernelSpec& s);

}  // namespace myelin::cpu
