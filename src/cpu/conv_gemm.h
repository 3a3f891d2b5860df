// Convolution as im2col + SGEMM over batches of images, our own path beside oneDNN's (see
// conv.cpp for which one a node gets). Each thread owns a slice of the batch and runs
// single-threaded SGEMMs on chunks of its images, so one OpenMP region covers a whole pass and
// the products are as large as a chunk of columns (many images), not one image's few pixels.
#pragma once
#include <memory>

#include "core/backend.h"

namespace myelin::cpu {

enum class ConvPass { forward, grad_input, grad_weight };

// One convolution's geometry, whichever pass a kernel computes: x[n, c, h, w] * w[o, c/groups,
// kh, kw] -> y[n, o, oh, ow].
struct ConvShape {
  int64_t n, c, h, w, o, oh, ow, kh, kw;
  int64_t sh, sw, ph, pw, dil_h, dil_w, groups;  // stride, symmetric padding, dilation (1 = dense)
  bool has_bias = false;                         // forward only
  int64_t cg() const { return c / groups; }
  int64_t og() const { return o / groups; }
  int64_t k() const { return cg() * kh * kw; }  // reduction length of one group's product
  int64_t p() const { return oh * ow; }         // output pixels of one image
  bool pointwise() const {  // 1x1, stride 1, no padding: an image is its own column matrix
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
  }
};

ConvShape conv_shape(const Node& n, const Graph& g, ConvPass pass);
inline ConvShape conv_shape(const KernelSpec& s, ConvPass pass) {
  return conv_shape(s.node, s.graph, pass);
}

std::unique_ptr<Kernel> make_gemm_conv(const KernelSpec& s, ConvPass pass);

}  // namespace myelin::cpu
