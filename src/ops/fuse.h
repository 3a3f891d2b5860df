// Folding a ReLU into the op that produces its input (Backend::fuse): the producing node gets
// attrs "post" = "relu" (and "post_slope" for a leaky ReLU) and writes the ReLU's output itself,
// while the producer's result is still in cache, and the pre-activation value leaves the arena.
//
// Only where nothing else needs the pre-activation t: its readers are the ReLU and the ReLU's
// gradient, and it is not kept. The gradient node activation_grad(dy, x, y) then reads y in place
// of x: a ReLU's gradient only asks whether x > 0, and y > 0 exactly when x > 0 (also for a leaky
// ReLU with a slope >= 0).
#pragma once
#include <functional>
#include <vector>

#include "core/graph.h"

namespace myelin {

// readers[v]: the nodes that read value v, in order (for the rewrites here and the engines').
std::vector<std::vector<int>> readers_of(const Graph& g);

// Fuses every ReLU (or leaky ReLU, slope >= 0) whose producer `takes(producer, slope)`.
void fuse_relus(Graph& g, const std::function<bool(const Node& producer, double slope)>& takes);

// The backward counterpart, for a ReLU whose output y feeds an op whose gradient node reads y as
// its forward input (LRN: lrn_grad(dy, x = y, out)): that gradient node gets "post" = "relu_grad"
// and writes the ReLU's gradient itself (zero where y <= 0), where nothing else reads its own
// result and `takes(gradient node)`.
void fuse_relu_grads(Graph& g, const std::function<bool(const Node& gradient)>& takes);

// A residual block's end, add(batch_norm(x), r) and the ReLU fused into the add, becomes one
// batch_norm node with r as its sixth input (y = max(batch_norm(x) + r, 0)), placed where the add
// was; where nothing else reads batch_norm(x). Run after fuse_relus.
void fuse_residual_adds(Graph& g);

// The node producing v if it is a plain add (two operands shaped like v, no fused post-op) and v
// is read once and not kept: a sum another node may take over. -1 otherwise.
int plain_sum_producer(const Graph& g, const std::vector<std::vector<int>>& readers, ValueId v);

// The gradient of a ReLU whose incoming gradient is a sum (a residual block's output, read by the
// next block's convolution and its shortcut) becomes part of the add: add(a, b, y) with "post" =
// "relu_grad" writes y > 0 ? a + b : 0, where nothing else reads the sum. Run after the ReLUs are
// fused (their gradients then read y as their x).
void fuse_add_relu_grads(Graph& g);

// Each max pooling with a gradient records, in its forward pass, where each window's first maximum
// lies: a second output "picks", a u8 byte per element of y (its position in the unclipped window,
// row by row) in y's NHWC order ([n, oh, ow, c]) whatever y's layout, and the gradient becomes
// max_pool2d_grad(dy, picks). The gradient then reads neither x nor y, so x (in a ResNet the stem's
// batch-norm output, 1.5 MiB an image in bf16) leaves the arena after the forward pass, and no
// pass of the backward scans the windows again. Windows of fewer than 256 elements only.
void pass_max_pool_picks(Graph& g);

// The gradient of a sum that a batch norm's gradient reads as its dy, where that sum is an add
// with a ReLU's gradient (fuse_add_relu_grads: add(a, b, y), post relu_grad), becomes part of the
// batch norm's gradient: batch_norm_sum_grad(a, x, gamma, mean, invstd, b, y) -> dx, dgamma, dbeta,
// dy, placed where the add was. Its reduction pass computes dy from a, b and y, writes it (the
// shortcut's gradient reads it too) and sums it, so dy is not read back for the sums: a ResNet
// block's last batch norm. Run after fuse_add_relu_grads.
void fuse_batch_norm_sum_grads(Graph& g);

// A residual block's end whose shortcut is a batch norm of its own (ResNet-50's projection
// shortcuts): batch_norm(x, gamma, beta, mean, var, r) with r = batch_norm(xs, gammas, betas,
// means, vars) read by nothing else becomes batch_norm(x, gamma, beta, mean, var, xs, gammas,
// betas, means, vars) -> y, mean, invstd, mean_s, invstd_s: both in training, with the same
// settings and shapes. Its elementwise pass normalizes xs as it adds it, so r is neither written
// nor read back; the shortcut's gradient reads its statistics from the merged node. Run after
// fuse_residual_adds.
void fuse_shortcut_batch_norms(Graph& g);

// Which of the CUDA engine's fusions fuse_for_cuda makes (CudaBackend::fuse), as cuda_fusions()
// reads them from the settings: MYELIN_CUDA_BN_FUSE=0 (no batch-norm fusions),
// MYELIN_CUDA_ADD_RELU_GRAD=0, and the three not yet measured on a GPU, opt-in:
// MYELIN_CUDA_BN_SUM_GRAD=1, MYELIN_CUDA_POOL_PICKS=1 and MYELIN_CUDA_BN_SHORTCUT=1.
struct CudaFusions {
  bool batch_norm = true;      // residual adds and ReLU gradients into batch norms
  bool add_relu_grads = true;  // ReLU gradients of sums into their adds
  bool bn_sum_grads = false;   // those sums into the batch norms' gradients reading them
  bool pool_picks = false;     // max poolings' picks passed to their gradients
  bool bn_shortcuts = false;   // shortcuts' batch norms into the batch norms they feed
};
CudaFusions cuda_fusions();

// The CUDA engine's fusions, here below the engine so that planning in a build without it
// (train/memory.cpp's estimate) rewrites a graph exactly as the engine does: ReLUs into
// convolutions, batch norms and adds, ReLU gradients into LRN gradients, and those `f` names.
void fuse_for_cuda(Graph& g, const CudaFusions& f);
// fuse_for_cuda(g, cuda_fusions()), and nothing under MYELIN_CUDA_FUSE=0.
void fuse_for_cuda(Graph& g);

// The gradient of a ReLU fused into a batch norm (post = "relu", no residual) becomes part of that
// batch norm's gradient: batch_norm_grad gets post = "relu_grad", the ReLU's incoming gradient as
// its dy and beta as a sixth input, and recomputes the ReLU's mask from x (y > 0 exactly where
// gamma * (x - mean) * invstd + beta > 0), where nothing else reads the ReLU's gradient. Run after
// fuse_relus and fuse_residual_adds.
void fuse_batch_norm_relu_grads(Graph& g);

}  // namespace myelin
