// Stride folding (space-to-depth) for the thin strided convolutions (ops_conv.cpp): a convolution
// with stride s over C channels equals a stride-1 convolution over C*s*s channels of the input cut
// into s x s blocks, with the filter cut the same way:
//   x'[n, (c, by, bx), Y, X] = x[n, c, s*Y + by - pad, s*X + bx - pad]   (0 outside x)
//   w'[k, (c, by, bx), ay, ax] = w[k, c, s*ay + by, s*ax + bx]          (0 past the filter)
// x' and w' are written as cuDNN takes them: NHWC and KRSC (16 bits, or fp32 under tf32 in
// channels-last networks), or fp32 NCHW and KCRS.
#include "core/error.h"
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

// Element i of a [n, c, h, w] tensor stored channels-last or not, as (n, c, y, x).
struct At {
  int64_t n;
  int c, y, x;
};
__device__ __forceinline__ At at_of(int64_t i, bool last, int c, int h, int w) {
  if (last) {
    const int64_t p = i / c;
    return {p / (int64_t{w} * h), static_cast<int>(i % c), static_cast<int>(p / w % h),
            static_cast<int>(p % w)};
  }
  const int64_t p = i / (int64_t{w} * h);
  return {p / c, static_cast<int>(p % c), static_cast<int>(i / w % h), static_cast<int>(i % w)};
}

// One thread per (image, folded pixel, c, by): the s values bx = 0..s-1 of x' that come from one
// run of s input columns. Threads run along (c, by) then pixels where x' is channels-last (so a
// warp writes whole pixels), along pixels where it is NCHW; either way neighbouring threads read
// neighbouring input columns. Indices are 32-bit within an image (fold_input checks).
template <class T, bool kOutNhwc>
__global__ void fold_input_kernel(FPtr x, bool nhwc, T* out, FoldDims d) {
  const unsigned s = d.stride, runs = static_cast<unsigned>(d.c) * s;
  const unsigned pixels = static_cast<unsigned>(d.fh * d.fw), total = pixels * runs;
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= total) return;
  const unsigned run = kOutNhwc ? t % runs : t / pixels, p = kOutNhwc ? t / runs : t % pixels;
  const unsigned c = run / s, by = run % s, Y = p / d.fw, X = p % d.fw;
  const int64_t n = blockIdx.y;
  const int iy = static_cast<int>(s * Y + by) - d.pad_h, ix0 = static_cast<int>(s * X) - d.pad_w;
  const bool row_inside = iy >= 0 && iy < d.h;
  const int64_t row = nhwc ? (n * d.h + iy) * d.w : ((n * d.c + c) * d.h + iy) * d.w;
  const int64_t cf0 = static_cast<int64_t>(run) * s;  // x' channel of bx = 0
  const int64_t cf_count = d.cf;
  for (unsigned bx = 0; bx < s; ++bx) {
    const int ix = ix0 + static_cast<int>(bx);
    float v = 0.f;
    if (row_inside && ix >= 0 && ix < d.w) v = ld(x, nhwc ? (row + ix) * d.c + c : row + ix);
    const int64_t o =
        kOutNhwc ? (n * pixels + p) * cf_count + cf0 + bx : (n * cf_count + cf0 + bx) * pixels + p;
    out[o] = from_float<T>(v);
  }
}

// w [k, c, kh, kw] fp32 <-> w' [k, cf, fkh, fkw] in KRSC (krsc) or KCRS order (to_folded),
// each thread one w' element.
template <class T>
__global__ void fold_filter_kernel(float* w, T* wf, bool krsc, FoldDims d, int64_t k_count,
                                   bool to_folded) {
  const int s = d.stride, folded = static_cast<int>(d.c) * s * s;
  const int64_t total = k_count * d.fkh * d.fkw * d.cf;
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    const At a = at_of(i, krsc, d.cf, d.fkh, d.fkw);
    const int c = a.c / (s * s), r = s * a.y + a.c / s % s, t = s * a.x + a.c % s;
    const bool inside = a.c < folded && r < d.kh && t < d.kw;
    const int64_t at = ((a.n * d.c + c) * d.kh + r) * d.kw + t;
    if (to_folded)
      wf[i] = from_float<T>(inside ? w[at] : 0.f);
    else if (inside)
      w[at] = to_float(wf[i]);
  }
}

template <class T>
void launch_filter(float* w, void* wf, bool krsc, const FoldDims& d, int64_t k, bool to_folded,
                   cudaStream_t s) {
  fold_filter_kernel<<<blocks_for(k * d.fkh * d.fkw * d.cf), kThreads, 0, s>>>(
      w, static_cast<T*>(wf), krsc, d, k, to_folded);
}

}  // namespace

void fold_input(FPtr x, bool x_nhwc, void* out, DType type, const FoldDims& d, cudaStream_t s) {
  const int64_t per_image = int64_t{d.fh} * d.fw * d.c * d.stride;
  if (per_image * d.stride >= (int64_t{1} << 31) || d.n > 65535)
    throw DeviceError("fold_input: more than 2^31 folded elements per image or 65535 images");
  const dim3 grid(blocks_for_all(per_image), static_cast<unsigned>(d.n));
  if (d.cf > d.c * d.stride * d.stride)  // the padding channels are zeros
    check(cudaMemsetAsync(out, 0, d.n * int64_t{d.fh} * d.fw * d.cf * (type == DType::f32 ? 4 : 2),
                          s),
          "cudaMemsetAsync", "fold_input");
  with_type(type, [&](auto t) {
    using T = decltype(t);
    if (d.nhwc)
      fold_input_kernel<T, true><<<grid, kThreads, 0, s>>>(x, x_nhwc, static_cast<T*>(out), d);
    else
      fold_input_kernel<T, false><<<grid, kThreads, 0, s>>>(x, x_nhwc, static_cast<T*>(out), d);
  });
  check_launch("fold_input", "");
}

void fold_filter(const float* w, void* wf, DType type, const FoldDims& d, int64_t k,
                 cudaStream_t s) {
  float* wm = const_cast<float*>(w);  // only read when folding
  with_type(type, [&](auto t) { launch_filter<decltype(t)>(wm, wf, d.nhwc, d, k, true, s); });
  check_launch("fold_filter", "");
}

void unfold_filter(const void* wf, float* w, DType type, const FoldDims& d, int64_t k,
                   cudaStream_t s) {
  void* src = const_cast<void*>(wf);  // only read when unfolding
  with_type(type, [&](auto t) { launch_filter<decltype(t)>(w, src, d.nhwc, d, k, false, s); });
  check_launch("unfold_filter", "");
}

}  // namespace myelin::cuda
