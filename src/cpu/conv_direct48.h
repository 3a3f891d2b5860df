// Our AVX-512 direct 3x3 convolution of stride 1 (pad 1, no dilation or groups) between
// activations stored in 16-channel blocks (nChw16c), 16 to 48 channels on each side: the small
// ResNet's res2_conv2, 48 -> 48 channels at 7x7. The register blocking is conv_direct_s2.h's:
//  - forward: 7 output pixels of a row x 48 channels (3 zmm) stay in registers; each broadcast
//    input value feeds 3 FMAs. An image at a time, its x and y in L1, the weights (83 KB) from
//    L2;
//  - data gradient: the forward on dy with the weights flipped and transposed;
//  - weight gradient: for one input channel, the 9 taps' rows of 48 output channels (27 zmm)
//    stay in registers while 2 images' dy pixels stream by. It sums fixed chunks of 8 images
//    into partials added in chunk order, so its rounding does not depend on the thread count.
// At batch 128 on 2 threads (AVX-512, the fastest of 200 runs, alternating with oneDNN's fastest
// execution in ONEDNN_VERBOSE over 20 steps, 9 pairs; the machine's speed varied between runs):
// forward 0.685-0.718 ms (360-380 GFLOP/s) against oneDNN's 0.785-0.835, data gradient
// 0.681-0.713 against 0.79-0.82, weight gradient 0.805-0.863 (300-325 GFLOP/s) against
// 0.842-0.925 (faster in 8 of the 9 pairs, by up to 10%; 0.6% slower in one). oneDNN's times leave
// out its reorders of the weights; ours include their packing.
//
// Used by conv.cpp where the CPU has AVX-512; the width must be a multiple of 7.
// MYELIN_CPU_DIRECT48=0 turns it off.
#pragma once
#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "cpu/conv_gemm.h"

namespace myelin::cpu {

// Whether our kernel takes this pass of a convolution whose x and y are stored with blocks of
// bx and by channels (0: not blocked).
bool direct48_applies(const ConvShape& c, int64_t bx, int64_t by);

// direct48_applies for a node's pass with its stored layouts.
bool direct48_takes(const KernelSpec& s, ConvPass pass);

std::unique_ptr<Kernel> make_direct48_conv(const KernelSpec& s, ConvPass pass);

// Kernels made so far in this process (tests check that a graph used them).
int64_t direct48_kernels_made();

namespace direct48 {

// The passes on raw buffers (exposed for tests): x (or dx) n x c x h x w and y (or dy)
// n x k x h x w, both nChw16c (c, k multiples of 16, at most 48). w is OIHW [k][c][3][3]; bias
// may be null; relu applies the leaky ReLU of `slope`. dw is written, not added to. `scratch`
// holds scratch_floats(n, c, k) floats.
void forward(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
             int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads);
void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads);
int64_t scratch_floats(int64_t n, int64_t c, int64_t k);
void grad_weight(const float* dy, const float* x, float* dw, float* scratch, int64_t n, int64_t c,
                 int64_t k, int64_t h, int64_t wd, int threads);

}  // namespace direct48

}  // namespace myelin::cpu
