// Batch normalisation with channels innermost (batch_norm.cu): x viewed as [rows, c], rows = N*H*W
// for NHWC activations (or N for [N, C]); x, y, dy and dx fp32, bf16 or fp16 (one type per
// launch, FPtr), gamma, beta and the statistics fp32. Each pass is two kernels and a small one
// between: a reduction over the rows of a tile of channels per block (16-byte loads along C, a
// block's rows split among its threads, then combined in shared memory), the per-channel
// combination of the blocks' partial results, and an elementwise pass over [rows, c].
//
// Forward in training: per-channel mean and variance by Welford's method in fp32 per thread and
// Chan's pairwise combination across threads and blocks; saves the mean and 1/sqrt(var + eps) and
// updates the running statistics as the CPU engine does (running = momentum * running +
// (1 - momentum) * batch, the unbiased variance for running_var). Backward: dbeta = sum dy,
// dgamma = sum dy * xhat, dx = gamma*invstd * (dy - dbeta/rows - xhat * dgamma/rows).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/device_kernels.h"

namespace myelin::cuda {

struct BnDims {
  int64_t rows;  // N * H * W
  int64_t c;     // channels, innermost
  float eps;
  float momentum;  // running = momentum * running + (1 - momentum) * batch
  // A fused ReLU (CudaBackend::fuse). Forward: y = max(y, 0). Backward: dy is the gradient of
  // max(y, 0), counted where y > 0, y recomputed from x (gamma * (x - mean) * invstd + beta).
  bool relu;
};

// The scratch each call needs (the caller's kernel workspace), for x's storage type (FPtr::type).
// Call it before the first launch, outside any graph capture: it also queries the device.
size_t bn_workspace_bytes(const BnDims& d, int type);

// A shortcut's batch norm in training, applied inside the batch norm it is added to: its input,
// parameters and statistics (x of the other's shape and type).
struct BnShortcut {
  FPtr x;
  const float *gamma, *beta;
  float *running_mean, *running_var, *save_mean, *save_invstd;
};

// (x, gamma, beta, running_mean, running_var) -> y, save_mean, save_invstd; the running
// statistics updated in place. A residual `res` (null res.p: none) of x's shape and type is added
// before the ReLU; or with `shortcut` its batch norm's output, computed in the same pass (res is
// then ignored) after its statistics.
void bn_forward_train(FPtr x, FPtr res, FPtr y, const float* gamma, const float* beta,
                      float* running_mean, float* running_var, float* save_mean, float* save_invstd,
                      const BnDims& d, void* workspace, cudaStream_t s,
                      const BnShortcut* shortcut = nullptr);
// y from the running statistics.
void bn_forward_infer(FPtr x, FPtr res, FPtr y, const float* gamma, const float* beta,
                      const float* running_mean, const float* running_var, const BnDims& d,
                      void* workspace, cudaStream_t s);
// The gradient of a sum as dy (batch_norm_sum_grad): dy = mask > 0 ? dy + b : 0, written to
// `out`. None where out.p is null.
struct SumGrad {
  FPtr b, mask, out;
};
// (dy, x, gamma, mean, invstd) -> dx, dgamma, dbeta; dy, x and dx (and the sum's operands) of one
// type. beta is read for the ReLU mask only (d.relu, which a sum's gradient does not take). With
// `sum`, dy is its first addend: the reduction pass computes the sum, writes it and sums it, and
// the elementwise pass reads it back.
void bn_backward(FPtr dy, FPtr x, FPtr dx, const float* gamma, const float* beta, const float* mean,
                 const float* invstd, float* dgamma, float* dbeta, const BnDims& d, void* workspace,
                 cudaStream_t s, const SumGrad& sum = {});
// The cuDNN path's fused ReLU gradient, fp32 NCHW (x as [n, c, inner]): out = dy where
// gamma * (x - mean) * invstd + beta > 0, else 0.
void bn_relu_grad_mask_nchw(const float* dy, const float* x, float* out, int64_t n, int64_t c,
                            int64_t inner, const float* gamma, const float* beta, const float* mean,
                            const float* invstd, cudaStream_t s);

}  // namespace myelin::cuda
