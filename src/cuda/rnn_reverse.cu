// A batch-first sequence reversed along time, for the reverse direction of a recurrent layer
// (ops_rnn.cpp): cuDNN's unidirectional RNN only runs from the first step to the last.
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

// y[b, t - 1 - s, :] = x[b, s, :] over rows of c elements of type V (float, or float4 where the
// rows allow it).
template <class V>
__global__ void reverse_time_kernel(const V* x, V* y, int64_t n, int64_t t, int64_t c) {
  const int64_t total = n * t * c;
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    int64_t k = i % c, row = i / c;
    int64_t s = row % t, b = row / t;
    y[(b * t + (t - 1 - s)) * c + k] = x[i];
  }
}

}  // namespace

void reverse_time(const float* x, float* y, int64_t n, int64_t t, int64_t c, cudaStream_t s) {
  if (n * t * c == 0) return;
  bool vec4 = c % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(y) % 16 == 0;
  if (vec4) {
    int64_t c4 = c / 4;
    reverse_time_kernel<<<blocks_for(n * t * c4), kThreads, 0, s>>>(
        reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y), n, t, c4);
  } else {
    reverse_time_kernel<<<blocks_for(n * t * c), kThreads, 0, s>>>(x, y, n, t, c);
  }
  check_launch("reverse_time_kernel", "");
}

}  // namespace myelin::cuda
