// Launch shapes and grid-stride loops shared by the engine's .cu files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/device_kernels.h"

namespace myelin::cuda {

constexpr int kThreads = 256;

// Enough blocks for one element per thread, capped; kernels loop with grid_stride().
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > (1 << 16)) b = 1 << 16;
  return static_cast<unsigned>(b);
}

// One thread per element, no cap: for kernels without a grid-stride loop.
inline unsigned blocks_for_all(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

__device__ __forceinline__ int64_t global_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Element i of an fp32, bf16 or fp16 tensor, in fp32 (the type is uniform across a launch, so the
// branch costs no divergence).
__device__ __forceinline__ float ld(FPtr a, int64_t i) {
  if (a.type == 1) return __bfloat162float(static_cast<const __nv_bfloat16*>(a.p)[i]);
  if (a.type == 2) return __half2float(static_cast<const __half*>(a.p)[i]);
  return static_cast<const float*>(a.p)[i];
}

__device__ __forceinline__ void st(FPtr a, int64_t i, float v) {
  if (a.type == 1)
    static_cast<__nv_bfloat16*>(a.p)[i] = __float2bfloat16_rn(v);
  else if (a.type == 2)
    static_cast<__half*>(a.p)[i] = __float2half_rn(v);
  else
    static_cast<float*>(a.p)[i] = v;
}

// Typed storage, for kernels templated on it (where runtime-typed FPtr loads in fully unrolled
// loops would multiply the code).
__device__ __forceinline__ float to_float(float v) {
  return v;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float to_float(__half v) {
  return __half2float(v);
}
template <class T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16_rn(v);
  else if constexpr (std::is_same_v<T, __half>)
    return __float2half_rn(v);
  else
    return v;
}

// fn(T{}) for a storage type code (FPtr::type).
template <class Fn>
void with_type(int type, Fn&& fn) {
  if (type == 1)
    fn(__nv_bfloat16{});
  else if (type == 2)
    fn(__half{});
  else
    fn(float{});
}

// fn(T{}) for an element type: fp32, bf16 or fp16.
template <class Fn>
void with_type(DType type, Fn&& fn) {
  with_type(type == DType::bf16 ? 1 : type == DType::f16 ? 2 : 0, fn);
}

// 16 bytes of a tensor of T (element i of it as a vector of 16 / sizeof(T)), in fp32.
template <class T>
constexpr int kPer16 = 16 / sizeof(T);

template <class T>
__device__ __forceinline__ void load16(const void* p, int64_t i, float (&v)[kPer16<T>]) {
  const uint4 u = static_cast<const uint4*>(p)[i];
  const T* t = reinterpret_cast<const T*>(&u);
#pragma unroll
  for (int k = 0; k < kPer16<T>; ++k) v[k] = to_float(t[k]);
}

template <class T>
__device__ __forceinline__ void store16(void* p, int64_t i, const float (&v)[kPer16<T>]) {
  uint4 u;
  T* t = reinterpret_cast<T*>(&u);
#pragma unroll
  for (int k = 0; k < kPer16<T>; ++k) t[k] = from_float<T>(v[k]);
  static_cast<uint4*>(p)[i] = u;
}

// v rounded to `type`'s precision (0: f32, 1: bf16, 2: f16), as st() would store it.
__device__ __forceinline__ float rounded(int type, float v) {
  if (type == 1) return __bfloat162float(__float2bfloat16_rn(v));
  if (type == 2) return __half2float(__float2half_rn(v));
  return v;
}

}  // namespace myelin::cuda
