// Device kernels of the embedding lookup (embedding.cu), fp32. Ids outside [0, rows) give zero
// rows and add nothing to the gradient: a device kernel cannot throw, so the trainer checks the
// data's vocabulary against the network's before the first step.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace myelin::cuda {

void embedding_forward(const int32_t* ids, int64_t count, const float* table, int64_t rows,
                       int64_t width, float* y, cudaStream_t s);
// dtable = 0, then each id's row of dy added into its row (atomically: ids repeat).
void embedding_backward(const float* dy, const int32_t* ids, int64_t count, int64_t rows,
                        int64_t width, float* dtable, cudaStream_t s);

}  // namespace myelin::cuda
