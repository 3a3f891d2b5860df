// C[m, n] (+)= sum_l A[m, l] B[n, l]: a product with a small output and a long reduction, such
// as the weight gradient of a convolution with few channels (LeNet's conv1: 20 x 25 outputs
// over 36,864 pixels), where SGEMM's kernels, tiled for large m and n, reach a fifth of the
// machine. Single-threaded: callers split the reduction between threads.
#pragma once
#include <cstdint>

namespace myelin::cpu {

// True when this CPU runs the vector kernel (AVX-512F); otherwise use SGEMM.
bool small_gemm_available();

// C = beta * C + A B^T with A [m, len] (rows lda apart), B [n, len] (rows ldb apart), C [m, n]
// (rows ldc apart); beta is 0 or 1. Requires small_gemm_available().
void small_gemm_nt(int64_t m, int64_t n, int64_t len, const float* a, int64_t lda, const float* b,
                   int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace myelin::cpu
