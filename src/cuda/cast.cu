// fp32 <-> bf16/fp16 conversions for the reduced-precision convolution path (inputs and weights
// go down to 16 bits in the kernel's workspace; results come back to fp32, with the bias fused),
// and the same layout changes in fp32 for tf32's channels-last path (ops_conv.cpp).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/error.h"
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

template <class H>
__global__ void to_staged_kernel(const float* x, H* y, int64_t n) {
  // Four elements per step when aligned: the casts are pure bandwidth.
  int64_t n4 = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  for (int64_t i = global_index(); i < n4; i += grid_stride()) {
    float4 v = x4[i];
    y[4 * i] = from_float<H>(v.x);
    y[4 * i + 1] = from_float<H>(v.y);
    y[4 * i + 2] = from_float<H>(v.z);
    y[4 * i + 3] = from_float<H>(v.w);
  }
  for (int64_t i = 4 * n4 + global_index(); i < n; i += grid_stride()) y[i] = from_float<H>(x[i]);
}

template <class H>
__global__ void from_staged_kernel(const H* x, float* y, const float* b, int64_t n,
                                   int64_t channels, int64_t inner, bool relu) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) {
    float v = to_float(x[i]);
    if (b) v += b[(i / inner) % channels];
    y[i] = relu ? fmaxf(v, 0.f) : v;
  }
}

// The result of a convolution: plus its bias, through its fused ReLU.
__device__ __forceinline__ float epilogue(float v, const float* b, int c, bool relu) {
  v += b ? b[c] : 0.f;
  return relu ? fmaxf(v, 0.f) : v;
}

// [n][c][hw] fp32 -> [n][hw][c] 16-bit through a 32x32 shared-memory tile: reads coalesced
// along hw, writes along c.
// Channels c_count..c_pad-1 of the output are zeros (tensor cores want a multiple of 8).
template <class H>
__global__ void nchw_to_nhwc_kernel(FPtr x, H* y, int c_count, int c_pad, int hw_count) {
  __shared__ float tile[32][33];
  int hw0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
  const size_t xp = static_cast<size_t>(blockIdx.z) * c_count * hw_count;
  H* yp = y + static_cast<size_t>(blockIdx.z) * c_pad * hw_count;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    int c = c0 + j, hw = hw0 + threadIdx.x;
    if (c < c_count && hw < hw_count) tile[j][threadIdx.x] = ld(x, xp + size_t(c) * hw_count + hw);
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    int hw = hw0 + j, c = c0 + threadIdx.x;
    if (c < c_pad && hw < hw_count)
      yp[size_t(hw) * c_pad + c] = from_float<H>(c < c_count ? tile[threadIdx.x][j] : 0.f);
  }
}

// [n][hw][c] 16-bit -> [n][c][hw] fp32 (+ b[c]).
// Reads channels [0, c_count) of rows c_pad long.
template <class H>
__global__ void nhwc_to_nchw_kernel(const H* x, FPtr y, const float* b, int c_count, int c_pad,
                                    int hw_count, bool relu) {
  __shared__ float tile[32][33];
  int hw0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
  const H* xp = x + static_cast<size_t>(blockIdx.z) * c_pad * hw_count;
  const size_t yp = static_cast<size_t>(blockIdx.z) * c_count * hw_count;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    int hw = hw0 + j, c = c0 + threadIdx.x;
    if (c < c_count && hw < hw_count) tile[j][threadIdx.x] = to_float(xp[size_t(hw) * c_pad + c]);
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    int c = c0 + j, hw = hw0 + threadIdx.x;
    if (c < c_count && hw < hw_count)
      st(y, yp + size_t(c) * hw_count + hw, epilogue(tile[threadIdx.x][j], b, c, relu));
  }
}

// Few channels (an image's 3): one thread per pixel, looping over the channels.
template <class H>
__global__ void nchw_to_nhwc_narrow(FPtr x, H* y, int c_count, int c_pad, int64_t hw_count,
                                    int64_t pixels) {
  for (int64_t i = global_index(); i < pixels; i += grid_stride()) {
    int64_t n = i / hw_count, hw = i % hw_count;
    const int64_t xp = n * c_count * hw_count + hw;
    H* yp = y + i * c_pad;
    for (int c = 0; c < c_pad; ++c)
      yp[c] = from_float<H>(c < c_count ? ld(x, xp + c * hw_count) : 0.f);
  }
}

template <class H>
__global__ void nhwc_to_nchw_narrow(const H* x, FPtr y, const float* b, int c_count, int c_pad,
                                    int64_t hw_count, int64_t pixels, bool relu) {
  for (int64_t i = global_index(); i < pixels; i += grid_stride()) {
    int64_t n = i / hw_count, hw = i % hw_count;
    const int64_t yp = n * c_count * hw_count + hw;
    const H* xp = x + i * c_pad;
    for (int c = 0; c < c_count; ++c)
      st(y, yp + c * hw_count, epilogue(to_float(xp[c]), b, c, relu));
  }
}

constexpr int kNarrow = 8;

dim3 tile_grid(int64_t n, int64_t c, int64_t hw) {
  return dim3(static_cast<unsigned>((hw + 31) / 32), static_cast<unsigned>((c + 31) / 32),
              static_cast<unsigned>(n));
}

template <class H>
void to_nhwc(FPtr x, H* y, int64_t n, int64_t c, int64_t c_pad, int64_t hw, cudaStream_t s) {
  int ci = static_cast<int>(c), pi = static_cast<int>(c_pad);
  if (c <= kNarrow)
    nchw_to_nhwc_narrow<<<blocks_for(n * hw), kThreads, 0, s>>>(x, y, ci, pi, hw, n * hw);
  else
    nchw_to_nhwc_kernel<<<tile_grid(n, c, hw), dim3(32, 8), 0, s>>>(x, y, ci, pi,
                                                                    static_cast<int>(hw));
}

template <class H>
void from_nhwc(const H* x, FPtr y, const float* b, int64_t n, int64_t c, int64_t c_pad, int64_t hw,
               cudaStream_t s, bool relu) {
  int ci = static_cast<int>(c), pi = static_cast<int>(c_pad);
  if (c <= kNarrow)
    nhwc_to_nchw_narrow<<<blocks_for(n * hw), kThreads, 0, s>>>(x, y, b, ci, pi, hw, n * hw, relu);
  else
    nhwc_to_nchw_kernel<<<tile_grid(n, c, hw), dim3(32, 8), 0, s>>>(x, y, b, ci, pi,
                                                                    static_cast<int>(hw), relu);
}

}  // namespace

void cast_to_staged_nhwc(FPtr x, void* y, DType staged_type, int64_t n, int64_t c, int64_t c_pad,
                         int64_t hw, cudaStream_t s) {
  if (n > 65535) throw DeviceError("cast_to_staged_nhwc: more than 65535 images");
  with_type(staged_type,
            [&](auto t) { to_nhwc(x, static_cast<decltype(t)*>(y), n, c, c_pad, hw, s); });
  check_launch("cast_to_staged_nhwc", "");
}

void cast_from_staged_nhwc(const void* x, DType staged_type, FPtr y, const float* b, int64_t n,
                           int64_t c, int64_t c_pad, int64_t hw, cudaStream_t s, bool relu) {
  if (n > 65535) throw DeviceError("cast_from_staged_nhwc: more than 65535 images");
  with_type(staged_type, [&](auto t) {
    from_nhwc(static_cast<const decltype(t)*>(x), y, b, n, c, c_pad, hw, s, relu);
  });
  check_launch("cast_from_staged_nhwc", "");
}

void cast_to_staged(const float* x, void* y, DType staged_type, int64_t n, cudaStream_t s) {
  with_type(staged_type, [&](auto t) {
    to_staged_kernel<<<blocks_for((n + 3) / 4), kThreads, 0, s>>>(x, static_cast<decltype(t)*>(y),
                                                                  n);
  });
  check_launch("to_staged_kernel", "");
}

void cast_from_staged(const void* x, DType staged_type, float* y, const float* b, int64_t outer,
                      int64_t channels, int64_t inner, cudaStream_t s, bool relu) {
  int64_t n = outer * channels * inner;
  with_type(staged_type, [&](auto t) {
    from_staged_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const decltype(t)*>(x), y, b,
                                                          n, channels, inner, relu);
  });
  check_launch("from_staged_kernel", "");
}

}  // namespace myelin::cuda
