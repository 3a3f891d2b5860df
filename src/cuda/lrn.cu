// Local response normalisation across channels, fused: one thread per (image, pixel) walks the
// channels once, keeping the window's values in register rings. Forward reads x once and writes
// y; backward reads x, y, dy once and writes dx, recomputing each scale from x:
//   scale_c = k + alpha/size * sum_{|j-c|<=h} x_j^2,   y_c = x_c * scale_c^-beta
//   dx_c = dy_c * scale_c^-beta - 2 alpha beta / size * x_c * sum_{|j-c|<=h} dy_j y_j / scale_j
// The rings are indexed by channel mod S; unrolling the channel loop by S makes every index a
// compile-time constant, so the rings stay in registers.
// In NHWC (channels contiguous) threads take channels and stage each pixel in shared memory
// instead (walking the channels per pixel there made AlexNet's LRN 5x slower than in NCHW).
#include <algorithm>

#include "core/error.h"
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

__device__ __forceinline__ float pow_neg(float scale, float beta) {
  return exp2f(-beta * log2f(scale));
}

// Threads split the channels into chunks of kChunk (with a halo of the window's half on each
// side) so that even a small batch has enough threads in flight; consecutive threads take
// consecutive pixels, so every load and store is coalesced.
constexpr int kChunk = 32;

struct Slice {
  int64_t base;    // offset of channel 0 of this thread's pixel
  int begin, end;  // the channels this thread writes
};

__device__ __forceinline__ bool slice_of(int64_t idx, int64_t n, int c_count, int64_t hw,
                                         Slice& s) {
  int chunks = (c_count + kChunk - 1) / kChunk;
  if (idx >= n * chunks * hw) return false;
  int64_t p = idx % hw, rest = idx / hw;
  int k = static_cast<int>(rest % chunks);
  s.base = rest / chunks * c_count * hw + p;
  s.begin = k * kChunk;
  s.end = min(c_count, s.begin + kChunk);
  return true;
}

template <int S, class T>
__global__ void lrn_forward_kernel(const T* x, T* y, int64_t n, int c_count, int64_t hw,
                                   float alpha_n, float beta, float k) {
  constexpr int H = S / 2;
  Slice sl;
  if (!slice_of(global_index(), n, c_count, hw, sl)) return;
  float sq[S], xr[S];
#pragma unroll
  for (int r = 0; r < S; ++r) sq[r] = xr[r] = 0.f;
  const int first = sl.begin - H, last = sl.end + H;  // leading channels [first, last)
  for (int l0 = first; l0 < last; l0 += S) {
#pragma unroll
    for (int r = 0; r < S; ++r) {
      int l = l0 + r;  // leading channel; the window [l - S + 1, l] is centred at c = l - H
      if (l < last) {
        float v = l >= 0 && l < c_count ? to_float(x[sl.base + l * hw]) : 0.f;
        sq[r] = v * v;
        xr[r] = v;
        int c = l - H;
        if (c >= sl.begin) {
          float sum = 0.f;
#pragma unroll
          for (int j = 0; j < S; ++j) sum += sq[j];
          y[sl.base + c * hw] =
              from_float<T>(xr[(r - H + S) % S] * pow_neg(k + alpha_n * sum, beta));
        }
      }
    }
  }
}

template <int S, class T>
__global__ void lrn_backward_kernel(const T* dy, const T* x, const T* y, T* dx, int64_t n,
                                    int c_count, int64_t hw, float alpha_n, float beta, float k,
                                    float coef, bool relu_mask) {
  constexpr int H = S / 2;
  Slice sl;
  if (!slice_of(global_index(), n, c_count, hw, sl)) return;
  float sq[S], xr[S], pw[S], t[S], dyr[S];
#pragma unroll
  for (int r = 0; r < S; ++r) sq[r] = xr[r] = pw[r] = t[r] = dyr[r] = 0.f;
  const int first = sl.begin - 2 * H, last = sl.end + 2 * H;  // x's leading channels
  for (int l0 = first; l0 < last; l0 += S) {
#pragma unroll
    for (int r = 0; r < S; ++r) {
      int l = l0 + r;
      if (l < last) {
        float v = l >= 0 && l < c_count ? to_float(x[sl.base + l * hw]) : 0.f;
        sq[r] = v * v;
        xr[r] = v;
        int j = l - H;  // the window of squares is centred at j
        const int slot_j = (r - H + S) % S;
        float tj = 0.f, pj = 0.f, dyj = 0.f;
        if (j >= sl.begin - H && j >= 0 && j < c_count) {
          float sum = 0.f;
#pragma unroll
          for (int q = 0; q < S; ++q) sum += sq[q];
          float scale = k + alpha_n * sum;
          pj = pow_neg(scale, beta);
          dyj = to_float(dy[sl.base + j * hw]);
          tj = dyj * to_float(y[sl.base + j * hw]) / scale;
        }
        pw[slot_j] = pj;
        t[slot_j] = tj;
        dyr[slot_j] = dyj;
        int c = j - H;  // the ring of t now holds exactly c's window
        if (c >= sl.begin) {
          const int slot_c = (r - 2 * H + 2 * S) % S;
          float tsum = 0.f;
#pragma unroll
          for (int q = 0; q < S; ++q) tsum += t[q];
          const float g = dyr[slot_c] * pw[slot_c] - coef * xr[slot_c] * tsum;
          dx[sl.base + c * hw] = from_float<T>(relu_mask && xr[slot_c] <= 0.f ? 0.f : g);
        }
      }
    }
  }
}

// NHWC: a block row (threadIdx.y) takes one pixel, its threads its channels. The pixel's channels
// are staged in shared memory with the window's half of zeros on each side, so every window is S
// unrolled reads without bounds checks; loads and stores are coalesced along the channels.
struct NhwcLaunch {
  dim3 block;
  unsigned blocks;
  int row;  // floats per staged row: c + 2 * (size / 2)
};

NhwcLaunch nhwc_launch(const LrnDims& d, int rows_per_pixel) {
  const int c = static_cast<int>(d.c), bx = std::min(256, (c + 31) / 32 * 32);
  const int by = std::max(1, 256 / bx);
  NhwcLaunch l{dim3(bx, by), static_cast<unsigned>((d.n * d.hw + by - 1) / by),
               c + 2 * (d.size / 2)};
  if (sizeof(float) * l.row * rows_per_pixel * by > 48 * 1024)
    throw DeviceError("lrn: " + std::to_string(c) + " channels in NHWC (at most 6000)");
  return l;
}

template <int S, class T>
__global__ void lrn_forward_nhwc(const T* x, T* y, int64_t pixels, int c_count, float alpha_n,
                                 float beta, float k) {
  constexpr int H = S / 2;
  extern __shared__ float smem[];
  const int r = c_count + 2 * H;
  float* xr = smem + threadIdx.y * r;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = p < pixels;
  for (int i = threadIdx.x; i < r; i += blockDim.x) {
    const int c = i - H;
    xr[i] = live && c >= 0 && c < c_count ? to_float(x[p * c_count + c]) : 0.f;
  }
  __syncthreads();
  if (!live) return;
  for (int c = threadIdx.x; c < c_count; c += blockDim.x) {
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < S; ++j) sum += xr[c + j] * xr[c + j];
    y[p * c_count + c] = from_float<T>(xr[c + H] * pow_neg(k + alpha_n * sum, beta));
  }
}

template <int S, class T>
__global__ void lrn_backward_nhwc(const T* dy, const T* x, const T* y, T* dx, int64_t pixels,
                                  int c_count, float alpha_n, float beta, float k, float coef,
                                  bool relu_mask) {
  constexpr int H = S / 2;
  extern __shared__ float smem[];
  const int r = c_count + 2 * H;
  float* xr = smem + threadIdx.y * 2 * r;  // x
  float* tr = xr + r;                      // dy * y / scale
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = p < pixels;
  const int64_t base = p * c_count;
  for (int i = threadIdx.x; i < r; i += blockDim.x) {
    const int c = i - H;
    xr[i] = live && c >= 0 && c < c_count ? to_float(x[base + c]) : 0.f;
    tr[i] = 0.f;
  }
  __syncthreads();
  auto scale_of = [&](int c) {
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < S; ++j) sum += xr[c + j] * xr[c + j];
    return k + alpha_n * sum;
  };
  if (live)
    for (int c = threadIdx.x; c < c_count; c += blockDim.x)
      tr[c + H] = to_float(dy[base + c]) * to_float(y[base + c]) / scale_of(c);
  __syncthreads();
  if (!live) return;
  for (int c = threadIdx.x; c < c_count; c += blockDim.x) {
    float tsum = 0.f;
#pragma unroll
    for (int j = 0; j < S; ++j) tsum += tr[c + j];
    const float g = to_float(dy[base + c]) * pow_neg(scale_of(c), beta) - coef * xr[c + H] * tsum;
    dx[base + c] = from_float<T>(relu_mask && xr[c + H] <= 0.f ? 0.f : g);
  }
}

template <int S, class T>
void launch_forward_nhwc(FPtr x, FPtr y, const LrnDims& d, cudaStream_t s) {
  NhwcLaunch l = nhwc_launch(d, 1);
  lrn_forward_nhwc<S, T><<<l.blocks, l.block, sizeof(float) * l.row * l.block.y, s>>>(
      static_cast<const T*>(x.p), static_cast<T*>(y.p), d.n * d.hw, static_cast<int>(d.c),
      d.alpha / d.size, d.beta, d.k);
}

template <int S, class T>
void launch_backward_nhwc(FPtr dy, FPtr x, FPtr y, FPtr dx, const LrnDims& d, cudaStream_t s) {
  NhwcLaunch l = nhwc_launch(d, 2);
  lrn_backward_nhwc<S, T><<<l.blocks, l.block, sizeof(float) * 2 * l.row * l.block.y, s>>>(
      static_cast<const T*>(dy.p), static_cast<const T*>(x.p), static_cast<const T*>(y.p),
      static_cast<T*>(dx.p), d.n * d.hw, static_cast<int>(d.c), d.alpha / d.size, d.beta, d.k,
      2.f * d.alpha * d.beta / d.size, d.relu_mask);
}

int64_t lrn_threads(const LrnDims& d) {
  return d.n * ((d.c + kChunk - 1) / kChunk) * d.hw;
}

template <int S, class T>
void launch_forward(FPtr x, FPtr y, const LrnDims& d, cudaStream_t s) {
  lrn_forward_kernel<S, T><<<blocks_for_all(lrn_threads(d)), kThreads, 0, s>>>(
      static_cast<const T*>(x.p), static_cast<T*>(y.p), d.n, static_cast<int>(d.c), d.hw,
      d.alpha / d.size, d.beta, d.k);
}

template <int S, class T>
void launch_backward(FPtr dy, FPtr x, FPtr y, FPtr dx, const LrnDims& d, cudaStream_t s) {
  lrn_backward_kernel<S, T><<<blocks_for_all(lrn_threads(d)), kThreads, 0, s>>>(
      static_cast<const T*>(dy.p), static_cast<const T*>(x.p), static_cast<const T*>(y.p),
      static_cast<T*>(dx.p), d.n, static_cast<int>(d.c), d.hw, d.alpha / d.size, d.beta, d.k,
      2.f * d.alpha * d.beta / d.size, d.relu_mask);
}

}  // namespace

bool lrn_size_supported(int size) {
  return size >= 1 && size <= 15 && size % 2 == 1;
}

bool lrn16_size_supported(int size) {
  return size == 3 || size == 5;
}

// Every (size, storage type) pair with a kernel: F(size, element type, FPtr type code). Each pair
// is a fully unrolled kernel, so 16-bit storage has sizes 3 and 5 only (all of them would make
// this file slow to build). All operands share one storage type.
// clang-format off
#define MYELIN_LRN_KERNELS(F)                                                      \
  F(1, float, 0) F(3, float, 0) F(5, float, 0) F(7, float, 0) F(9, float, 0)       \
  F(11, float, 0) F(13, float, 0) F(15, float, 0)                                  \
  F(3, __nv_bfloat16, 1) F(5, __nv_bfloat16, 1) F(3, __half, 2) F(5, __half, 2)
// clang-format on

void lrn_forward(FPtr x, FPtr y, const LrnDims& d, cudaStream_t s) {
  if (x.type != y.type || (x.type != 0 && !lrn16_size_supported(d.size)))
    throw DeviceError("lrn: no kernel for these storage types at size " + std::to_string(d.size));
  switch (d.size * 4 + x.type) {
#define CASE(S, T, K)                        \
  case S * 4 + K:                            \
    if (d.nhwc)                              \
      launch_forward_nhwc<S, T>(x, y, d, s); \
    else                                     \
      launch_forward<S, T>(x, y, d, s);      \
    break;
    MYELIN_LRN_KERNELS(CASE)
#undef CASE
    default:
      throw DeviceError("lrn: size " + std::to_string(d.size) + " is not supported on CUDA");
  }
  check_launch("lrn_forward", "");
}

void lrn_backward(FPtr dy, FPtr x, FPtr y, FPtr dx, const LrnDims& d, cudaStream_t s) {
  if (dy.type != x.type || y.type != x.type || dx.type != x.type ||
      (x.type != 0 && !lrn16_size_supported(d.size)))
    throw DeviceError("lrn_grad: no kernel for these storage types at size " +
                      std::to_string(d.size));
  switch (d.size * 4 + x.type) {
#define CASE(S, T, K)                                 \
  case S * 4 + K:                                     \
    if (d.nhwc)                                       \
      launch_backward_nhwc<S, T>(dy, x, y, dx, d, s); \
    else                                              \
      launch_backward<S, T>(dy, x, y, dx, d, s);      \
    break;
    MYELIN_LRN_KERNELS(CASE)
#undef CASE
    default:
      throw DeviceError("lrn_grad: size " + std::to_string(d.size) + " is not supported on CUDA");
  }
  check_launch("lrn_backward", "");
}

}  // namespace myelin::cuda
