// Activations kept in oneDNN's blocked layout between the CPU engine's kernels (Layout::nchw16c,
// chosen by CpuBackend::choose_storage in storage.cpp from what each kernel registers). Where a
// kernel file runs some nodes of an op on kernels that take the blocked layout and others on
// kernels that do not, it says which (the `when` of its registered KernelStorage::layout), so the
// plan and the kernels agree.
#pragma once
#include "core/graph.h"

namespace myelin::cpu {

constexpr int64_t kChannelBlock = 16;  // nChw16c: what oneDNN's AVX-512 convolutions choose

// A convolution node (any pass) that runs on oneDNN's blocked kernels (conv.cpp).
bool conv_takes_blocked(const Node& n, const Graph& g);
// A pooling node (any pass) whose kernel takes nchw16c (pool.cpp).
bool pool_takes_blocked(const Node& n, const Graph& g);

}  // namespace myelin::cpu
