// Batch norm, its ReLU and a 2x2 stride-2 max pooling as one kernel, and the gradient of the three
// as one (bn_pool.cpp): the nodes CpuBackend::fuse makes of such a chain (fuse.cpp, attribute
// "pool" = "max2" on batch_norm and batch_norm_grad).
#pragma once
#include <memory>

#include "core/backend.h"

namespace myelin::cpu {

// batch_norm+relu+pool(x, gamma, beta, running_mean, running_var) -> p [, mean, invstd].
std::unique_ptr<Kernel> make_batch_norm_pool(const KernelSpec& s);
// batch_norm_grad+pool(dp, x, gamma, mean, invstd, beta) -> dx, dgamma, dbeta.
std::unique_ptr<Kernel> make_batch_norm_pool_grad(const KernelSpec& s);

}  // namespace myelin::cpu
