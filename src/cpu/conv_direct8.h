// Our AVX-512 direct 3x3 convolution (stride 1, pad 1, no dilation or groups) on nChw8c
// activations of at most 32 channels, a multiple of 8 (the small ResNet's 24 -> 24 blocks at
// 14x14). oneDNN runs its AVX2 kernel on nChw8c operands: 3 ymm FMAs for 24 output channels of
// a pixel. Here one zmm FMA covers 16 of them and a ymm FMA the other 8, both fed by one
// broadcast of the input value, so 24 products take 2 FMAs instead of 3: forward 1.65 vs 2.62
// ms at batch 128, one thread (a standalone benchmark, commit 27f0546). The backward data pass is
// the same kernel on dy with the weights flipped and transposed. At batch 128 on 2 threads
// (24 -> 24, 14x14, fastest of 200) both take 0.755-0.765 ms, 340-345 GFLOP/s. A variant with
// every FMA a full zmm (lanes of output channel x input channel pair, x read by 64-bit
// broadcasts, the two halves of each sum added at the end) measured the same, 0.76 ms in
// alternating runs: on this CPU the ymm FMA beside the zmm one does not cost a full slot.
//
// The weight gradient does use such lanes (conv_direct8_grad.cpp): 0.92 -> 0.83 ms.
//
// The weight gradient sums fixed chunks of images into partials and adds the partials in chunk
// order, so its rounding does not depend on the thread count (bit-exact resume).
//
// Used by conv.cpp where the CPU has AVX-512 and both x and y are stored nChw8c; the image width
// must be a multiple of 7 (pixel runs of 7 kept in registers), at least 14.
// MYELIN_CPU_DIRECT24=0 turns it off. Its passes run conv_winograd24's Winograd F(2x2, 3x3)
// where the image is of even size (MYELIN_CPU_WINOGRAD24=0: these kernels).
#pragma once
#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "cpu/conv_gemm.h"

namespace myelin::cpu {

// Whether our direct kernel takes this convolution (x8, y8: x and y stored nChw8c).
bool direct8_applies(const ConvShape& c, bool x8, bool y8);

std::unique_ptr<Kernel> make_direct8_conv(const KernelSpec& s, ConvPass pass);

// Kernels made so far in this process (tests check that a graph used them), and those of them
// that run the Winograd kernel (conv_winograd24.h).
int64_t direct8_kernels_made();
int64_t winograd24_passes_made();

namespace direct8 {

// The passes on raw nChw8c buffers (exposed for tests). w is OIHW [k][c][3][3]; bias may be
// null; relu applies the leaky ReLU of `slope`. dw is written, not added to. `scratch` holds
// scratch_floats(n, c, k) floats.
void forward(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
             int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads);
void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads);
int64_t scratch_floats(int64_t n, int64_t c, int64_t k);
void grad_weight(const float* dy, const float* x, float* dw, float* scratch, int64_t n, int64_t c,
                 int64_t k, int64_t h, int64_t wd, int threads);

}  // namespace direct8

}  // namespace myelin::cpu
