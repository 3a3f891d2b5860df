// What our own convolution kernels (conv_direct8, conv_direct_s2, conv_direct48, conv_pointwise)
// share: the blocks of a pass's operands, and the weight gradient's partials summed in order.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "cpu/conv_gemm.h"

namespace myelin::cpu {

// The channel block (8, 16; 0: not blocked) of x in a pass (dx for grad_input, an input
// otherwise), and of y (the output of forward, dy otherwise).
int64_t conv_x_block(const KernelSpec& s, ConvPass pass);
int64_t conv_y_block(const KernelSpec& s, ConvPass pass);

// Weight-gradient partials of fixed image chunks ([chunk][ci][tap][k], k <= 48 output channels)
// added in chunk order into dw (OIHW, 3x3): the same sums whatever the thread count. A (ci, tap)
// row of k at a time, in vectors (a scalar loop over dw's order, reading the partials strided,
// took 0.06 ms more for 24 -> 48 channels at batch 128). Needs AVX-512 (cpu_has_avx512).
void add_tap_partials(const float* scratch, float* dw, int64_t chunks, int64_t c, int64_t k,
                      int threads);

// 3x3 weights (OIHW [k][c][3][3]) packed for the direct kernels: by_input as [c][tap][k] (a
// tap's output channels contiguous: the forward's), flipped as [k][tap][c] with tap t read from
// 8 - t (the data gradient: the forward on dy with the kernel flipped and the channels swapped).
std::vector<float> taps_by_input(const float* w, int64_t c, int64_t k);
std::vector<float> taps_flipped(const float* w, int64_t c, int64_t k);

// The passes of a direct 3x3 stride-1 kernel on raw blocked buffers (conv_direct8,
// conv_direct48): w is OIHW [k][c][3][3]; bias may be null; relu applies the leaky ReLU of `slope`;
// dw is written, not added to, with scratch_floats(n, c, k) floats of scratch.
struct DirectPasses {
  void (*forward)(const float* x, const float* w, const float* bias, float* y, int64_t n, int64_t c,
                  int64_t k, int64_t h, int64_t wd, bool relu, float slope, int threads);
  void (*grad_input)(const float* dy, const float* w, float* dx, int64_t n, int64_t c, int64_t k,
                     int64_t h, int64_t wd, int threads);
  int64_t (*scratch_floats)(int64_t n, int64_t c, int64_t k);
  void (*grad_weight)(const float* dy, const float* x, float* dw, float* scratch, int64_t n,
                      int64_t c, int64_t k, int64_t h, int64_t wd, int threads);
};

// A node's pass (its fused ReLU with the forward) run by those passes.
std::unique_ptr<Kernel> make_direct_conv(const KernelSpec& s, ConvPass pass,
                                         const DirectPasses& passes);

}  // namespace myelin::cpu
