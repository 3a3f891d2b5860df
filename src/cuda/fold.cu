// Stride folding (space-to-depth) for the thin strided convolutions (ops_conv.cpp): a convolution
// with stride s over C channels equals a stride-1 convolution over C*s*s channels of the input cut
// into s x s blocks, with the filter cut the same way:
//   x'[n, (c, by, bx), Y, X] = x[n, c, s*Y + by - pad, s*X + bx - pad]   (0 outside x)
//   w'[k, (c, by, bx), ay, ax] = w[k, c, s*ay + by, s*ax + bx]          (0 past the filter)
// x' is written NHWC and w' KRSC, 16-bit, ready for cuDNN's tensor-core kernels.
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

template <class T>
__global__ void fold_input_kernel(FPtr x, bool nhwc, T* out, FoldDims d) {
  const int s = d.stride, cf = static_cast<int>(d.c) * s * s;
  const int64_t total = d.n * d.fh * d.fw * cf;
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    const int k = static_cast<int>(i % cf);
    const int64_t p = i / cf;
    const int fx = static_cast<int>(p % d.fw), fy = static_cast<int>(p / d.fw % d.fh);
    const int64_t n = p / (d.fw * d.fh);
    const int c = k / (s * s), iy = s * fy + k / s % s - d.pad_h, ix = s * fx + k % s - d.pad_w;
    float v = 0.f;
    if (iy >= 0 && iy < d.h && ix >= 0 && ix < d.w)
      v = ld(x,
             nhwc ? ((n * d.h + iy) * d.w + ix) * d.c + c : ((n * d.c + c) * d.h + iy) * d.w + ix);
    out[i] = from_float<T>(v);
  }
}

// w [k, c, kh, kw] fp32 <-> w' [k, fkh, fkw, c*s*s] 16-bit (to_folded), each thread one w' element.
template <class T>
__global__ void fold_filter_kernel(float* w, T* wf, FoldDims d, int64_t k_count, bool to_folded) {
  const int s = d.stride, cf = static_cast<int>(d.c) * s * s;
  const int64_t total = k_count * d.fkh * d.fkw * cf;
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    const int j = static_cast<int>(i % cf);
    const int64_t p = i / cf;
    const int ax = static_cast<int>(p % d.fkw), ay = static_cast<int>(p / d.fkw % d.fkh);
    const int64_t k = p / (d.fkw * d.fkh);
    const int c = j / (s * s), r = s * ay + j / s % s, t = s * ax + j % s;
    const bool inside = r < d.kh && t < d.kw;
    const int64_t at = ((k * d.c + c) * d.kh + r) * d.kw + t;
    if (to_folded)
      wf[i] = from_float<T>(inside ? w[at] : 0.f);
    else if (inside)
      w[at] = to_float(wf[i]);
  }
}

template <class T>
void launch_filter(float* w, void* wf, const FoldDims& d, int64_t k, bool to_folded,
                   cudaStream_t s) {
  fold_filter_kernel<<<blocks_for(k * d.fkh * d.fkw * d.c * d.stride * d.stride), kThreads, 0, s>>>(
      w, static_cast<T*>(wf), d, k, to_folded);
}

}  // namespace

void fold_input(FPtr x, bool x_nhwc, void* out, DType half_type, const FoldDims& d,
                cudaStream_t s) {
  unsigned blocks = blocks_for(d.n * d.fh * d.fw * d.c * d.stride * d.stride);
  if (half_type == DType::bf16)
    fold_input_kernel<<<blocks, kThreads, 0, s>>>(x, x_nhwc, static_cast<__nv_bfloat16*>(out), d);
  else
    fold_input_kernel<<<blocks, kThreads, 0, s>>>(x, x_nhwc, static_cast<__half*>(out), d);
  check_launch("fold_input", "");
}

void fold_filter(const float* w, void* wf, DType half_type, const FoldDims& d, int64_t k,
                 cudaStream_t s) {
  float* wm = const_cast<float*>(w);  // only read when folding
  if (half_type == DType::bf16)
    launch_filter<__nv_bfloat16>(wm, wf, d, k, true, s);
  else
    launch_filter<__half>(wm, wf, d, k, true, s);
  check_launch("fold_filter", "");
}

void unfold_filter(const void* wf, float* w, DType half_type, const FoldDims& d, int64_t k,
                   cudaStream_t s) {
  void* src = const_cast<void*>(wf);  // only read when unfolding
  if (half_type == DType::bf16)
    launch_filter<__nv_bfloat16>(w, src, d, k, false, s);
  else
    launch_filter<__half>(w, src, d, k, false, s);
  check_launch("unfold_filter", "");
}

}  // namespace myelin::cuda
