// L floats (one per channel of a block: L = 8 or 16) as one GCC vector, for the fused batch norm +
// pooling kernels' window and convolution loops (bn_pool_tiles.cpp, stem_conv.cpp) and the batch
// norms' tile sums (moments.h, batch_norm.cpp). They work on these rather than in `omp simd` loops
// over the lanes, which GCC left scalar for L = 8 in the AVX-512 clone (it tried 16-float vectors).
// Vector selects (c ? a : b) are branch-free.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/simd.h"

// GCC warns that passing such vectors by value has another ABI without AVX; these helpers are
// always inlined into the clones that use them, so no call passes one. (This stays on for the rest
// of each file that includes this header, moments.h among them.)
#pragma GCC diagnostic ignored "-Wpsabi"

// The clones of loops bound by multiply-adds: MYELIN_VECTOR_CLONES' AVX-512 and AVX2 targets leave
// out FMA.
#define MYELIN_FMA_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace myelin::cpu {

template <int64_t L>
struct LanesOf {
  typedef float type __attribute__((vector_size(L * sizeof(float))));
};
template <int64_t L>
using Lanes = typename LanesOf<L>::type;

template <int64_t L>
[[gnu::always_inline]] inline Lanes<L> load(const float* p) {
  Lanes<L> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int64_t L>
[[gnu::always_inline]] inline void store(float* p, Lanes<L> v) {
  std::memcpy(p, &v, sizeof v);
}

template <int64_t L>
[[gnu::always_inline]] inline Lanes<L> max_v(Lanes<L> a, Lanes<L> b) {
  return a < b ? b : a;
}

}  // namespace myelin::cpu
