// A Winograd F(2x2, 3x3) convolution (stride 1, pad 1) on nChw8c activations of at most 32
// channels, a multiple of 8: the small ResNet's 24 -> 24 blocks at 14x14, which conv_direct8
// runs directly. Each 2x2 output tile comes from a 4x4 input tile: 16 products per (tile, input
// channel, output channel) instead of 36, 2.25x fewer multiplies, the rest spent on transforms.
//
// A run of tiles at a time (9 for 24 output channels, across rows and images): the input tiles'
// transforms V, the products M = V U with the transformed weights U at each of the 16 positions,
// then the output transform of M. The positions go in pairs: a 64-bit broadcast of a channel's
// two values in V against a zmm of U holding 8 output channels at both positions, so every FMA
// is a full zmm. Every output is computed by one thread in a fixed order: the same bits whatever
// the thread count.
//
// At batch 128, 24 -> 24 channels at 14x14 on 2 threads (fastest of 200, alternating with
// conv_direct8): forward 0.553-0.570 vs 0.760 ms, data gradient 0.539-0.545 vs 0.760-0.763.
//
// The data gradient is the same algorithm on dy with the weights flipped and transposed. The
// weight gradient sums, over tiles, V against the output gradient's tiles through A (4 x 2), in
// registers over an image's tiles, per chunk of 8 images, the chunks' partials added in order
// (the same bits whatever the thread count); then back through G: 0.72 vs conv_direct8's 0.85 ms
// at batch 128, 24 -> 24 channels at 14x14, 2 threads (0.719-0.721 vs 0.847-0.862 in 3
// alternating rounds).
// The height and width must be even.
//
// conv_direct8 runs its passes with these where the image is of even size.
// MYELIN_CPU_WINOGRAD24=0 turns that off.
#pragma once
#include <cstdint>

#include "cpu/conv_gemm.h"

namespace myelin::cpu {

// Whether conv_direct8's forward and data gradient of this convolution run here.
bool winograd24_applies(const ConvShape& c);

}  // namespace myelin::cpu

namespace myelin::cpu::winograd24 {

// The passes on raw nChw8c buffers. w is OIHW [k][c][3][3]; bias may be null; relu: a leaky
// ReLU of `slope` after the bias.
void forward(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
             int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads);
void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads);
// dw is written, not added to; `scratch` holds scratch_floats(n, c, k) floats.
int64_t scratch_floats(int64_t n, int64_t c, int64_t k);
void grad_weight(const float* dy, const float* x, float* dw, float* scratch, int64_t n, int64_t c,
                 int64_t k, int64_t h, int64_t wd, int threads);

}  // namespace myelin::cpu::winograd24
