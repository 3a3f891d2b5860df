// Stride folding (space-to-depth) for the thin strided convolutions (ops_conv.cpp): a convolution
// with stride s over C channels equals a stride-1 convolution over C*s*s channels of the input cut
// into s x s blocks, with the filter cut the same way:
//   x'[n, (c, by, bx), Y, X] = x[n, c, s*Y + by - pad, s*X + bx - pad]   (0 outside x)
//   w'[k, (c, by, bx), ay, ax] = w[k, c, s*ay + by, s*ax + bx]          (0 past the filter)
// x' and w' are written as cuDNN takes them: 16-bit NHWC and KRSC, or fp32 NCHW and KCRS.
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

template <class T>
__global__ void fold_input_kernel(FPtr x, bool nhwc, T* out, bool out_nhwc, FoldDims d) {
  const int s = d.stride, cf = static_cast<int>(d.c) * s * s;
  const int64_t total = d.n * d.fh * d.fw * cf;
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    const At a = at_of(i, out_nhwc, cf, d.fh, d.fw);
    const int c = a.c / (s * s), iy = s * a.y + a.c / s % s - d.pad_h,
              ix = s * a.x + a.c % s - d.pad_w;
    float v = 0.f;
    if (iy >= 0 && iy < d.h && ix >= 0 && ix < d.w)
      v = ld(x, nhwc ? ((a.n * d.h + iy) * d.w + ix) * d.c + c
                     : ((a.n * d.c + c) * d.h + iy) * d.w + ix);
    out[i] = from_float<T>(v);
  }
}

// w [k, c, kh, kw] fp32 <-> w' [k, c*s*s, fkh, fkw] in KRSC (krsc) or KCRS order (to_folded),
// each thread one w' element.
template <class T>
__global__ void fold_filter_kernel(float* w, T* wf, bool krsc, FoldDims d, int64_t k_count,
                                   bool to_folded) {
  const int s = d.stride, cf = static_cast<int>(d.c) * s * s;
  const int64_t total = k_count * d.fkh * d.fkw * cf;
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    const At a = at_of(i, krsc, cf, d.fkh, d.fkw);
    const int c = a.c / (s * s), r = s * a.y + a.c / s % s, t = s * a.x + a.c % s;
    const bool inside = r < d.kh && t < d.kw;
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
  fold_filter_kernel<<<blocks_for(k * d.fkh * d.fkw * d.c * d.stride * d.stride), kThreads, 0, s>>>(
      w, static_cast<T*>(wf), krsc, d, k, to_folded);
}

// f(T) for the element type of `type`: fp32, bf16 or fp16.
template <class F>
void with_type(DType type, F&& f) {
  if (type == DType::f32)
    f(float{});
  else if (type == DType::bf16)
    f(__nv_bfloat16{});
  else
    f(__half{});
}

}  // namespace

void fold_input(FPtr x, bool x_nhwc, void* out, DType type, const FoldDims& d, cudaStream_t s) {
  const bool out_nhwc = type != DType::f32;
  unsigned blocks = blocks_for(d.n * d.fh * d.fw * d.c * d.stride * d.stride);
  with_type(type, [&](auto t) {
    using T = decltype(t);
    fold_input_kernel<<<blocks, kThreads, 0, s>>>(x, x_nhwc, static_cast<T*>(out), out_nhwc, d);
  });
  check_launch("fold_input", "");
}

void fold_filter(const float* w, void* wf, DType type, const FoldDims& d, int64_t k,
                 cudaStream_t s) {
  float* wm = const_cast<float*>(w);  // only read when folding
  with_type(type,
            [&](auto t) { launch_filter<decltype(t)>(wm, wf, type != DType::f32, d, k, true, s); });
  check_launch("fold_filter", "");
}

void unfold_filter(const void* wf, float* w, DType type, const FoldDims& d, int64_t k,
                   cudaStream_t s) {
  void* src = const_cast<void*>(wf);  // only read when unfolding
  with_type(type, [&](auto t) {
    launch_filter<decltype(t)>(w, src, type != DType::f32, d, k, false, s);
  });
  check_launch("unfold_filter", "");
}

}  // namespace myelin::cuda
