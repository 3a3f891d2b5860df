// Max and average pooling (NCHW) with the CPU engine's windows: output o covers input rows
// [o*stride - pad, +kernel), clipped to the input; with count_include_pad the divisor counts the
// window clipped to [-pad, in + pad) (Caffe/PyTorch). Backward max gives each dy to the first
// element of its window equal to y; backward average gathers, so it needs no atomics.
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

struct Win {
  int h0, h1, w0, w1, divisor;
};

__device__ __forceinline__ Win window(const PoolDims& d, int oy, int ox) {
  int hs = oy * d.sh - d.ph, ws = ox * d.sw - d.pw;
  Win w{max(hs, 0), min(hs + d.kh, static_cast<int>(d.h)), max(ws, 0),
        min(ws + d.kw, static_cast<int>(d.w)), 0};
  if (d.include_pad)
    w.divisor = (min(hs + d.kh, static_cast<int>(d.h) + d.ph) - hs) *
                (min(ws + d.kw, static_cast<int>(d.w) + d.pw) - ws);
  else
    w.divisor = (w.h1 - w.h0) * (w.w1 - w.w0);
  return w;
}

__global__ void max_forward(FPtr x, FPtr y, PoolDims d) {
  int64_t total = d.planes * d.oh * d.ow;
  for (int64_t o = global_index(); o < total; o += grid_stride()) {
    int ox = static_cast<int>(o % d.ow), oy = static_cast<int>(o / d.ow % d.oh);
    const int64_t xp = o / (d.oh * d.ow) * d.h * d.w;
    Win w = window(d, oy, ox);
    float m = -INFINITY;
    for (int iy = w.h0; iy < w.h1; ++iy)
      for (int ix = w.w0; ix < w.w1; ++ix) m = fmaxf(m, ld(x, xp + iy * d.w + ix));
    st(y, o, m);
  }
}

// Each dy goes to the first element of its window equal to y, compared in y's precision (y may
// be stored in fewer bits than x), added with atomics into fp32 dx (windows may overlap).
__global__ void max_backward(FPtr dy, FPtr x, FPtr y, float* dx, PoolDims d) {
  int64_t total = d.planes * d.oh * d.ow;
  for (int64_t o = global_index(); o < total; o += grid_stride()) {
    int ox = static_cast<int>(o % d.ow), oy = static_cast<int>(o / d.ow % d.oh);
    int64_t plane = o / (d.oh * d.ow) * d.h * d.w;
    Win w = window(d, oy, ox);
    float m = ld(y, o);
    for (int iy = w.h0; iy < w.h1; ++iy)
      for (int ix = w.w0; ix < w.w1; ++ix)
        if (rounded(y.type, ld(x, plane + iy * d.w + ix)) == m) {
          atomicAdd(dx + plane + iy * d.w + ix, ld(dy, o));
          iy = w.h1;  // first match only
          break;
        }
  }
}

__global__ void store_kernel(const float* x, FPtr y, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) st(y, i, x[i]);
}

__global__ void avg_forward(FPtr x, FPtr y, PoolDims d) {
  int64_t total = d.planes * d.oh * d.ow;
  for (int64_t o = global_index(); o < total; o += grid_stride()) {
    int ox = static_cast<int>(o % d.ow), oy = static_cast<int>(o / d.ow % d.oh);
    const int64_t xp = o / (d.oh * d.ow) * d.h * d.w;
    Win w = window(d, oy, ox);
    float sum = 0;
    for (int iy = w.h0; iy < w.h1; ++iy)
      for (int ix = w.w0; ix < w.w1; ++ix) sum += ld(x, xp + iy * d.w + ix);
    st(y, o, sum / static_cast<float>(w.divisor));
  }
}

// The outputs whose window covers input row i: o*s - p <= i < o*s - p + k.
__device__ __forceinline__ void covering(int i, int k, int s, int p, int out, int& lo, int& hi) {
  int num = i + p - k + 1;
  lo = num <= 0 ? 0 : (num + s - 1) / s;
  hi = min((i + p) / s, out - 1);
}

__global__ void avg_backward(FPtr dy, FPtr dx, PoolDims d) {
  int64_t total = d.planes * d.h * d.w;
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    int ix = static_cast<int>(i % d.w), iy = static_cast<int>(i / d.w % d.h);
    const int64_t dyp = i / (d.h * d.w) * d.oh * d.ow;
    int y0, y1, x0, x1;
    covering(iy, d.kh, d.sh, d.ph, static_cast<int>(d.oh), y0, y1);
    covering(ix, d.kw, d.sw, d.pw, static_cast<int>(d.ow), x0, x1);
    float sum = 0;
    for (int oy = y0; oy <= y1; ++oy)
      for (int ox = x0; ox <= x1; ++ox)
        sum += ld(dy, dyp + oy * d.ow + ox) / static_cast<float>(window(d, oy, ox).divisor);
    st(dx, i, sum);
  }
}

}  // namespace

void max_pool_forward(FPtr x, FPtr y, const PoolDims& d, cudaStream_t s) {
  max_forward<<<blocks_for(d.planes * d.oh * d.ow), kThreads, 0, s>>>(x, y, d);
  check_launch("max_pool_forward", "");
}

void max_pool_backward(FPtr dy, FPtr x, FPtr y, FPtr dx, float* scratch, const PoolDims& d,
                       cudaStream_t s) {
  int64_t n = d.planes * d.h * d.w;
  float* acc = dx.type == 0 ? static_cast<float*>(dx.p) : scratch;
  MYELIN_CHECK(cudaMemsetAsync(acc, 0, sizeof(float) * n, s), "max_pool_backward");
  max_backward<<<blocks_for(d.planes * d.oh * d.ow), kThreads, 0, s>>>(dy, x, y, acc, d);
  check_launch("max_pool_backward", "");
  if (acc != dx.p) {
    store_kernel<<<blocks_for(n), kThreads, 0, s>>>(acc, dx, n);
    check_launch("max_pool_backward (store)", "");
  }
}

void avg_pool_forward(FPtr x, FPtr y, const PoolDims& d, cudaStream_t s) {
  avg_forward<<<blocks_for(d.planes * d.oh * d.ow), kThreads, 0, s>>>(x, y, d);
  check_launch("avg_pool_forward", "");
}

void avg_pool_backward(FPtr dy, FPtr dx, const PoolDims& d, cudaStream_t s) {
  avg_backward<<<blocks_for(d.planes * d.h * d.w), kThreads, 0, s>>>(dy, dx, d);
  check_launch("avg_pool_backward", "");
}

}  // namespace myelin::cuda
