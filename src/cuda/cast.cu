// fp32 <-> bf16/fp16 conversions for the reduced-precision convolution path (inputs and weights
// go down to 16 bits in the kernel's workspace; results come back to fp32, with the bias fused).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }

template <class H>
__global__ void to_half_kernel(const float* x, H* y, int64_t n) {
  // Four elements per step when aligned: the casts are pure bandwidth.
  int64_t n4 = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  for (int64_t i = global_index(); i < n4; i += grid_stride()) {
    float4 v = x4[i];
    store(y + 4 * i, v.x);
    store(y + 4 * i + 1, v.y);
    store(y + 4 * i + 2, v.z);
    store(y + 4 * i + 3, v.w);
  }
  for (int64_t i = 4 * n4 + global_index(); i < n; i += grid_stride()) store(y + i, x[i]);
}

template <class H>
__global__ void from_half_kernel(const H* x, float* y, const float* b, int64_t n,
                                 int64_t channels, int64_t inner) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) {
    float v = load(x + i);
    if (b) v += b[(i / inner) % channels];
    y[i] = v;
  }
}

}  // namespace

void cast_to_half(const float* x, void* y, DType half_type, int64_t n, cudaStream_t s) {
  unsigned blocks = blocks_for((n + 3) / 4);
  if (half_type == DType::bf16)
    to_half_kernel<<<blocks, kThreads, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n);
  else
    to_half_kernel<<<blocks, kThreads, 0, s>>>(x, static_cast<__half*>(y), n);
  check_launch("to_half_kernel", "");
}

void cast_from_half(const void* x, DType half_type, float* y, const float* b, int64_t outer,
                    int64_t channels, int64_t inner, cudaStream_t s) {
  int64_t n = outer * channels * inner;
  if (half_type == DType::bf16)
    from_half_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x), y,
                                                        b, n, channels, inner);
  else
    from_half_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const __half*>(x), y, b, n,
                                                        channels, inner);
  check_launch("from_half_kernel", "");
}

}  // namespace myelin::cuda
