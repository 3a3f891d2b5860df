// A ReLU fused into the op that produces its input (CpuBackend::fuse, fuse.cpp): the producing
// node carries attrs "post" = "relu" (and "post_slope" for a leaky ReLU) and writes the ReLU's
// output itself. Convolution, inner product and batch norm kernels apply it in their epilogue.
#pragma once
#include <algorithm>

#include "core/attrs.h"
#include "core/error.h"
#include "core/graph.h"

namespace myelin::cpu {

// slope 0: a plain ReLU. Branch-free min and max, so that loops over it vectorise: written as a
// select (v > 0 ? v : v * slope), GCC compiled AlexNet's conv1 epilogue to a scalar loop with a
// branch taken at random, which took 13 ms of the 25 ms the convolution took without it.
inline float relu_with_slope(float v, float slope) {
  return std::max(v, 0.0f) + slope * std::min(v, 0.0f);
}

struct PostRelu {
  bool on = false;
  float slope = 0;  // the leaky ReLU's slope below 0; 0 for a plain ReLU
  explicit PostRelu(const Attrs& a)
      : on(a.s("post", "") == "relu"), slope(static_cast<float>(a.f("post_slope", 0.0))) {
    if (a.has("post") && !on)
      throw UnsupportedError("fused post-op '" + a.s("post", "") +
                             "': the CPU engine has relu only");
  }
  float operator()(float v) const { return relu_with_slope(v, slope); }
};

// A max-pooling gradient node whose kernel can apply the gradient of a ReLU before the pooling
// (its "post" = "relu_grad", ops/fuse.h): 2x2 windows with stride 2 (pool.cpp).
bool pool_grad_takes_relu_grad(const Node& n, const Graph& g);

}  // namespace myelin::cpu
