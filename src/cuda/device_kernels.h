// Launchers of the engine's own CUDA kernels (llm.c style: plain functions of pointers, sizes and
// a stream, implemented in the .cu files beside this). They never synchronise or allocate, so
// they may be captured into a CUDA graph; each checks its launch and throws DeviceError.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "cuda/cuda_backend.h"
#include "ops/params.h"

namespace myelin::cuda {

// A floating-point tensor's storage for the kernels that take fp32, bf16 or fp16 operands (under
// --precision bf16/fp16 activations and their gradients are stored in 16 bits, see
// CudaBackend::choose_storage). Kernels load and store through it and compute in fp32.
struct FPtr {
  void* p;
  int type;  // 0: f32, 1: bf16, 2: f16
};
FPtr fptr(const Tensor& t);  // throws UnsupportedError unless t is f32, bf16 or f16
inline FPtr fptr(float* p) {
  return FPtr{p, 0};
}

// --- elementwise.cu ---------------------------------------------------------------------------
// y = a + b, then max(y, 0) when relu (a fused ReLU: Backend::fuse); where mask.p is set, 0 where
// mask <= 0 (a ReLU's gradient fused into the sum of two gradients, mask the ReLU's output).
void add_any(FPtr a, FPtr b, FPtr y, int64_t n, cudaStream_t s, bool relu = false, FPtr mask = {});
void mul_f32(const float* a, const float* b, float* y, int64_t n, cudaStream_t s);
void accumulate_f32(float* acc, const float* g, int64_t n, cudaStream_t s);
// y[o, c, i] = x[o, c, i] + b[c] (x may equal y; b may be null), then max(y, 0) when relu (an op's
// fused ReLU: Backend::fuse).
void bias_add(FPtr x, const float* b, FPtr y, int64_t outer, int64_t channels, int64_t inner,
              cudaStream_t s, bool relu = false);
// db[c] = sum over o and i of dy[o, c, i]; `partials` holds bias_grad_partials() floats.
void bias_grad(FPtr dy, float* db, int64_t outer, int64_t channels, int64_t inner, float* partials,
               cudaStream_t s);
size_t bias_grad_partials(int64_t outer, int64_t channels, int64_t inner);
void fill(void* p, DType t, double value, int64_t n, cudaStream_t s);
void activation_forward(ActKind k, float alpha, FPtr x, FPtr y, int64_t n, cudaStream_t s);
void activation_backward(ActKind k, float alpha, FPtr dy, FPtr x, FPtr y, FPtr dx, int64_t n,
                         cudaStream_t s);
// y = keep ? x * scale : 0 with the mask of ops/params.h keyed by the device's {seed, step}.
void dropout(FPtr x, FPtr y, int64_t n, const unsigned long long* step_state, int node,
             uint32_t threshold, float scale, cudaStream_t s);
void write_step_state(unsigned long long* state, uint64_t seed, uint64_t step, cudaStream_t s);

// --- cast.cu: fp32 operands to and from the staged copies cuDNN and cuBLASLt compute on ----------
// `staged_type` is DType::bf16 or DType::f16 (the reduced-precision paths), or DType::f32 for the
// same copies and layout changes in fp32 (tf32's channels-last convolutions).
void cast_to_staged(const float* x, void* y, DType staged_type, int64_t n, cudaStream_t s);
// y = float(x16) (+ b[c] when b is not null, laid out [outer, channels, inner]); max(y, 0) when
// relu.
void cast_from_staged(const void* x, DType staged_type, float* y, const float* b, int64_t outer,
                      int64_t channels, int64_t inner, cudaStream_t s, bool relu = false);

// The same with a layout change: x [n, c, hw] fp32 <-> [n, hw, c_pad] 16-bit (NHWC for cuDNN's
// tensor-core convolutions; filters [K, C, R, S] <-> [K, R, S, C] likewise). Channels
// [c, c_pad) are written as zeros and skipped on the way back. n <= 65535.
void cast_to_staged_nhwc(FPtr x, void* y, DType staged_type, int64_t n, int64_t c, int64_t c_pad,
                         int64_t hw, cudaStream_t s);
void cast_from_staged_nhwc(const void* x, DType staged_type, FPtr y, const float* b, int64_t n,
                           int64_t c, int64_t c_pad, int64_t hw, cudaStream_t s, bool relu = false);

// --- fold.cu: stride folding (space-to-depth) for thin strided convolutions -----------------
struct FoldDims {
  int64_t n, c;
  int h, w;    // the input
  int kh, kw;  // the filter
  int stride, pad_h, pad_w;
  int fh, fw;    // the folded input: output size + folded filter size - 1
  int fkh, fkw;  // the folded filter: ceil(kh / stride), ceil(kw / stride)
  // x' and w' channels: c*s*s, or in 16 bits that rounded up to a multiple of 8 (zeros), as
  // tensor cores take them (ResNet's 7x7 stem at stride 2: 3 channels fold into 12, padded to 16).
  int cf;
  bool nhwc;  // x' and w' channels-last (NHWC, KRSC) as the staged path takes them, or NCHW, KCRS
};
// x (NCHW or NHWC, any float type) -> x' of type `type`: [n, fh, fw, cf] (d.nhwc) or
// [n, c*s*s, fh, fw], as cuDNN convolves each.
void fold_input(FPtr x, bool x_nhwc, void* out, DType type, const FoldDims& d, cudaStream_t s);
// w [k, c, kh, kw] fp32 -> w' [k, fkh, fkw, cf] (d.nhwc) or [k, c*s*s, fkh, fkw], and a
// gradient back (the taps past the filter and the padding channels are dropped).
void fold_filter(const float* w, void* wf, DType type, const FoldDims& d, int64_t k,
                 cudaStream_t s);
void unfold_filter(const void* wf, float* w, DType type, const FoldDims& d, int64_t k,
                   cudaStream_t s);

// --- pool.cu ----------------------------------------------------------------------------------
struct PoolDims {
  int64_t n, c, h, w, oh, ow;
  int kh, kw, sh, sw, ph, pw;
  bool include_pad;
  bool x_nhwc, y_nhwc, dx_nhwc, dy_nhwc;  // each operand's layout
  // Max backward: dy and dx (and x and y without picks) NHWC of one type, c a multiple of the
  // channels in 16 bytes: each dx gathers the dy of the windows that pick it (max_pool_gathers).
  bool gather;
  // Max forward: x and y NHWC of one type, c a multiple of the channels in 16 bytes; a thread
  // takes 16 bytes of channels of one output (MYELIN_CUDA_POOL_VEC=0: a thread per element).
  bool vectorized;
  // Max backward without picks, where it gathers and kh * kw < 256: the picks found first from x
  // (a byte per element of y in `scratch`), then gathered by as with picks
  // (MYELIN_CUDA_POOL_ARGMAX=0: each covering window's x rescanned instead).
  bool argmax;
};
// y = each window's maximum; where `picks` is not null, also the position of its first maximum in
// the unclipped window, row by row, a byte per element of y in NHWC order whatever y's layout
// (pass_max_pool_picks in ops/fuse.h: windows of fewer than 256 elements).
void max_pool_forward(FPtr x, FPtr y, uint8_t* picks, const PoolDims& d, cudaStream_t s);
// Each dy goes to the first element of its window equal to y (the CPU engine's rule). With
// d.argmax, each window's pick is found from x first (into `scratch`, a byte per element of y),
// then gathered by as max_pool_backward_picks does. With d.gather otherwise, each dx sums the dy
// of the windows covering it that pick it, scanning their x up to it
// (channels-last, 16 bytes of channels per thread: ResNet-50's pool1 backward needs no fp32
// scratch and no atomics). Otherwise dy is added with atomics into fp32: into dx itself, or into
// `scratch` (n * c * h * w floats) when dx is 16-bit, then stored. (Gathering in NCHW, each dx
// scanning the windows that cover it one element at a time, made AlexNet's pool1 backward 5x
// slower.)
void max_pool_backward(FPtr dy, FPtr x, FPtr y, FPtr dx, float* scratch, const PoolDims& d,
                       cudaStream_t s);
// The same from the forward pass's picks: each dy goes to the element its byte names (gathering
// with d.gather, else by atomics as above), and no window of x is scanned again.
void max_pool_backward_picks(FPtr dy, const uint8_t* picks, FPtr dx, float* scratch,
                             const PoolDims& d, cudaStream_t s);
void avg_pool_forward(FPtr x, FPtr y, const PoolDims& d, cudaStream_t s);
void avg_pool_backward(FPtr dy, FPtr dx, const PoolDims& d, cudaStream_t s);

// --- lrn.cu: across channels, y = x / (k + alpha/size * sum x^2)^beta --------------------------
struct LrnDims {
  int64_t n, c, hw;
  int size;
  float alpha, beta, k;
  bool nhwc;  // every operand's layout (they agree)
  // Backward: the LRN's input is a ReLU's output and the ReLU's gradient is fused in (dx = 0
  // where x <= 0; CudaBackend::fuse).
  bool relu_mask = false;
};
bool lrn_size_supported(int size);    // odd sizes up to 15
bool lrn16_size_supported(int size);  // with 16-bit storage (one type for every operand): 3, 5
void lrn_forward(FPtr x, FPtr y, const LrnDims& d, cudaStream_t s);
void lrn_backward(FPtr dy, FPtr x, FPtr y, FPtr dx, const LrnDims& d, cudaStream_t s);

// --- loss.cu ----------------------------------------------------------------------------------
// Labels outside [0, k) are reported to `report` under `site` (see CudaBackend).
void xent_forward(const float* logits, const int32_t* labels, int64_t n, int64_t k, float smoothing,
                  float* loss, DeviceReport* report, int site, cudaStream_t s);
void xent_backward(const float* dloss, const float* logits, const int32_t* labels, int64_t n,
                   int64_t k, float smoothing, float* dx, DeviceReport* report, int site,
                   cudaStream_t s);
void top_k_accuracy(const float* logits, const int32_t* labels, int64_t n, int64_t k, int top,
                    float* out, DeviceReport* report, int site, cudaStream_t s);

// --- rnn_reverse.cu ---------------------------------------------------------------------------
// y[b, t - 1 - s, :] = x[b, s, :] for x and y [n, t, c] fp32 (distinct): a recurrent layer's
// reverse direction on cuDNN's forward-only RNN (ops_rnn.cpp).
void reverse_time(const float* x, float* y, int64_t n, int64_t t, int64_t c, cudaStream_t s);

// --- optimizer.cu: every parameter in one launch ---------------------------------------------
enum class SolverKind : int { sgd, nesterov, adam, adamw, rmsprop, adagrad };
struct MtTensor {  // one parameter's tensors
  float* p;
  float* g;
  float* s0;
  float* s1;
  long long n;
  float lr_mult, decay_mult;
};
struct MtChunk {  // a block's share: elements [begin, end) of tensor `tensor`
  int tensor;
  long long begin, end;
};
constexpr long long kMtChunk = 32768;
// The per-step inputs of an update, all device pointers: hp [8]; norm_sq (null unless clipping or
// loss scaling); loss_scale (null unless the gradients are of the scaled loss: then a step whose
// norm_sq is not finite is skipped).
struct UpdateArgs {
  const float* hp;
  const float* norm_sq;
  const float* loss_scale;
  float clip;
  int zero_grads;
};
void optimizer_update(const MtTensor* tensors, const MtChunk* chunks, int chunk_count,
                      const UpdateArgs& args, SolverKind solver, cudaStream_t s);
// loss_scale_update (ops/optimizer.cpp) on device scalars.
void loss_scale_update(float* scale, float* good_steps, const float* norm_sq, int64_t interval,
                       cudaStream_t s);
// out[0] = sum of squares of every element; partials holds chunk_count floats.
void sum_squares(const MtTensor* tensors, const MtChunk* chunks, int chunk_count, float* partials,
                 float* out, cudaStream_t s);

}  // namespace myelin::cuda
