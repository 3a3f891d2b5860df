// Our AVX-512 direct 3x3 convolution of stride 2 (pad 1, no dilation or groups) from an
// activation of 8-channel blocks (nChw8c: 8, 16 or 24 channels) to one of 16 to 48 channels in
// nChw16c: the small ResNet's res2_conv1, 24 -> 48 channels, 14x14 -> 7x7. oneDNN 2.6 runs it
// with its AVX-512 kernel on x converted to nChw16c (padded to 32 channels: a third of its work
// on zeros) and converts the data gradient back; here every pass reads x and writes dx in
// 8-channel blocks as stored:
//  - forward: 7 output pixels of a row x 48 channels (3 zmm, one 16-channel block each) stay in
//    registers; each broadcast input value feeds 3 FMAs;
//  - data gradient: 7 pairs of dx pixels (columns 2 j, 2 j + 1) of a row in registers, the first
//    16 channels of each pixel in a zmm of its own and the last 8 of both pixels in one; each dy
//    value, broadcast once, feeds the taps of the 3 pixels it reaches (5 FMAs);
//  - weight gradient: for one input channel, the 9 taps' rows of 48 output channels (27 zmm)
//    stay in registers while 2 images' dy pixels stream by. It sums fixed chunks of 8 images
//    into partials added in chunk order, so its rounding does not depend on the thread count
//    (bit-exact resume).
// At batch 128 on 2 threads (AVX-512, the fastest of 200 runs): forward / data / weight
// gradient 0.35-0.39 / 0.44-0.46 / 0.46-0.48 ms, 335-370 / 285-294 / 270-283 GFLOP/s (the
// machine's speed varied between runs); oneDNN's 0.73 ms forward and 1.64 ms backward in
// `myelin time` included its conversions.
// Forward and weight gradient also read x in 16-channel blocks (x stored so: MYELIN_CPU_BLOCK8=0).
//
// The forward also runs the 1x1 stride-2 projection beside it (res2_proj, the 3x3 kernel's
// centre tap; its gradients are conv_pointwise.h's): 0.06 ms standalone. The graph then keeps
// no nChw16c copy of x for the projection (fuse_x16.cpp): making it cost res2_conv1's forward
// 0.2 ms; without it oneDNN's projection read x as nChw8c in 0.27-0.30 ms (0.15 from the
// copy), ours does in 0.12-0.155 ms (`myelin time` rows, batch 128, 2 threads).
//
// Used by conv.cpp where the CPU has AVX-512; the output width must be a multiple of 7 and the
// input width twice it. MYELIN_CPU_DIRECT_S2=0 turns it off.
#pragma once
#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "cpu/conv_gemm.h"

namespace myelin::cpu {

// Whether our kernel takes this pass of a convolution whose x and y are stored with blocks of
// bx and by channels (8 or 16; 0: not blocked).
bool direct_s2_applies(const ConvShape& c, ConvPass pass, int64_t bx, int64_t by);

// direct_s2_applies for a node's pass with its stored layouts.
bool direct_s2_takes(const KernelSpec& s, ConvPass pass);

std::unique_ptr<Kernel> make_direct_s2_conv(const KernelSpec& s, ConvPass pass);

// Kernels made so far in this process (tests check that a graph used them).
int64_t direct_s2_kernels_made();

namespace direct_s2 {

// The passes on raw buffers (exposed for tests): x (or dx) n x c x h x w in blocks of bx
// channels (8 or 16 where read, 8 where written; padding lanes of a 16-channel block are
// neither read nor written), y (or dy) n x k x oh x ow in nChw16c with oh = (h + 1) / 2,
// ow = w / 2. w is OIHW [k][c][3][3] (the forward: [k][c][ksize][ksize], ksize 3 or 1); bias
// may be null; slope < 0 means no fused ReLU. dw is written, not added to. `scratch` holds
// scratch_floats(n, c, k) floats.
void forward(const float* x, int64_t bx, const float* w, const float* bias, float* y, int64_t n,
             int64_t c, int64_t k, int64_t h, int64_t wd, int64_t ksize, bool relu, float slope,
             int threads);
void grad_input(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                int64_t h, int64_t wd, int threads);
int64_t scratch_floats(int64_t n, int64_t c, int64_t k);
void grad_weight(const float* dy, const float* x, int64_t bx, float* dw, float* scratch, int64_t n,
                 int64_t c, int64_t k, int64_t h, int64_t wd, int threads);

}  // namespace direct_s2

}  // namespace myelin::cpu
