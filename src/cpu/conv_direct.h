// What our own convolution kernels (conv_direct8, conv_direct_s2, conv_direct48, conv_pointwise)
// share: the blocks of a pass's operands, and the weight gradient's partials summed in order.
#pragma once
#include <cstdint>

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

}  // namespace myelin::cpu
