// Batch norm, its ReLU and a 2x2 stride-2 max pooling as one kernel, and the gradient of the three
// as one (bn_pool.cpp): the nodes CpuBackend::fuse makes of such a chain (fuse.cpp, attribute
// "pool" = "max2" on batch_norm and batch_norm_grad), with a thin convolution in front of it
// possibly fused too ("conv" = "stem": the image in x's place, the weights as the last input, the
// gradient writing the weight gradient in dx's place).
#pragma once
#include <memory>

#include "core/backend.h"

namespace myelin::cpu {

// A training batch norm's y = x * scale + shift for one channel, from its statistics as the
// outputs hold them (rounded to float): every kernel that recomputes y from x (a fused ReLU's or
// pooling's gradient) gets the same floats as the forward pass, which computes them so too.
inline void bn_affine(float gamma, float beta, float mean, float invstd, float& scale,
                      float& shift) {
  scale = gamma * invstd;
  shift = beta - mean * scale;
}

// The floats of the stem's image statistics that the forward kernel passes to the gradient's
// ("stem_stats"): the image columns' mean (T) and covariance (T x T), as doubles, two floats each
// (the graph has no f64 values). T: the convolution's taps.
constexpr int64_t stem_stats_floats(int64_t taps) {
  return 2 * (taps + taps * taps);
}

// The floats of a dense stem's picks ("stem_picks", stem_conv.h): a byte per pooled pixel and
// channel, the channels padded to 16 (the widest block), p the pooled output's shape.
inline int64_t stem_picks_floats(const Shape& p) {
  return p[0] * (p[1] + 15) / 16 * 16 * p[2] * p[3] / 4;
}

// batch_norm+relu+pool(x, gamma, beta, running_mean, running_var) -> p [, mean, invstd]; with the
// stem convolution (image, gamma, beta, running_mean, running_var, w) -> p, mean, invstd
// [, stem_stats] [, stem_picks].
std::unique_ptr<Kernel> make_batch_norm_pool(const KernelSpec& s);
// batch_norm_grad+pool(dp, x, gamma, mean, invstd, beta) -> dx, dgamma, dbeta; with the stem
// convolution (dp, image, gamma, mean, invstd, beta, w [, stem_stats] [, stem_picks]) -> dw,
// dgamma, dbeta. With "dp_sum" dp's second addend follows as the last input.
std::unique_ptr<Kernel> make_batch_norm_pool_grad(const KernelSpec& s);

}  // namespace myelin::cpu
