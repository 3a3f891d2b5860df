// The embedding lookup and its gradient: one thread per output element, coalesced along rows.
#include "cuda/cuda_check.h"
#include "cuda/embedding_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

__global__ void gather_rows(const int32_t* ids, int64_t count, const float* table, int64_t rows,
                            int64_t width, float* y) {
  for (int64_t i = global_index(); i < count * width; i += grid_stride()) {
    int64_t id = ids[i / width];
    y[i] = id >= 0 && id < rows ? table[id * width + i % width] : 0.0f;
  }
}

__global__ void scatter_rows(const float* dy, const int32_t* ids, int64_t count, int64_t rows,
                             int64_t width, float* dtable) {
  for (int64_t i = global_index(); i < count * width; i += grid_stride()) {
    int64_t id = ids[i / width];
    if (id >= 0 && id < rows) atomicAdd(&dtable[id * width + i % width], dy[i]);
  }
}

}  // namespace

void embedding_forward(const int32_t* ids, int64_t count, const float* table, int64_t rows,
                       int64_t width, float* y, cudaStream_t s) {
  gather_rows<<<blocks_for(count * width), kThreads, 0, s>>>(ids, count, table, rows, width, y);
  check_launch("gather_rows", "embedding");
}

void embedding_backward(const float* dy, const int32_t* ids, int64_t count, int64_t rows,
                        int64_t width, float* dtable, cudaStream_t s) {
  MYELIN_CHECK(cudaMemsetAsync(dtable, 0, rows * width * sizeof(float), s), "embedding_grad");
  scatter_rows<<<blocks_for(count * width), kThreads, 0, s>>>(dy, ids, count, rows, width, dtable);
  check_launch("scatter_rows", "embedding_grad");
}

}  // namespace myelin::cuda
