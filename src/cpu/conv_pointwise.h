// Our gradients of a 1x1 convolution of any stride (no padding, dilation or groups) between
// blocked activations (nChw8c / nChw16c, either side): the small ResNet's projection shortcut,
// 24 -> 48 channels at stride 2. oneDNN 2.6 runs its backward data on an nChw8c dx with its AVX2
// 1x1 kernel, reordering on the way. Both gradients are small products (48 x 24 per pixel): a
// loop over pixels with the weights in L1 does them in 0.12 and 0.10 ms at batch 128 on 2
// threads; the small ResNet's step gains 2.6% (bench/RESULTS.md).
//
// grad_input writes every pixel of dx (those no output pixel reads from are zero). The weight
// gradient sums fixed chunks of images into partials and adds the partials in chunk order, so
// its rounding does not depend on the thread count (bit-exact resume).
//
// Used by conv.cpp where the CPU has AVX2 and FMA; MYELIN_CPU_POINTWISE=0 turns it off.
#pragma once
#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "cpu/conv_gemm.h"

namespace myelin::cpu {

// Whether our kernel takes this pass of a convolution whose x and y are stored with blocks of
// bx and by channels (8 or 16; 0: not blocked).
bool pointwise_applies(const ConvShape& c, ConvPass pass, int64_t bx, int64_t by);

std::unique_ptr<Kernel> make_pointwise_conv(const KernelSpec& s, ConvPass pass);

// Kernels made so far in this process (tests check that a graph used them).
int64_t pointwise_kernels_made();

namespace pointwise {

// A blocked activation: n images of c channels in blocks of `block` (the last one padded with
// zero lanes) over h x w pixels.
struct Blocked {
  float* data;
  int64_t block, c, h, w;
  int64_t blocks() const { return (c + block - 1) / block; }
  int64_t padded() const { return blocks() * block; }
  int64_t image() const { return padded() * h * w; }  // floats of one image
  // Channel ch (a multiple of 8) of pixel p of image i: 8 consecutive channels start here.
  float* at(int64_t i, int64_t ch, int64_t p) const {
    return data + i * image() + ((ch / block) * h * w + p) * block + ch % block;
  }
};

// The passes on raw blocked buffers (exposed for tests). w is [k][c] (OIHW with 1x1). dw is
// written, not added to. `scratch` holds scratch_floats(n, c, k) floats.
void grad_input(const Blocked& dy, const float* w, const Blocked& dx, int64_t n, int64_t sh,
                int64_t sw, int threads);
int64_t scratch_floats(int64_t n, int64_t c, int64_t k);
void grad_weight(const Blocked& dy, const Blocked& x, float* dw, float* scratch, int64_t n,
                 int64_t sh, int64_t sw, int threads);

}  // namespace pointwise

}  // namespace myelin::cpu
