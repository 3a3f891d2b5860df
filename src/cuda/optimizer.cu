// The optimizer step for every parameter in one launch (see ops/optimizer.cpp for the formulas,
// src/cpu/optimizer.cpp for the reference): block b updates chunk b of the chunk table, a
// contiguous slice of one parameter. The hyper-parameters and the clipping norm are read from
// device memory, so a captured step picks up each step's learning rate.
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"
#include "ops/params.h"

namespace myelin::cuda {

namespace {

struct Scalars {
  float lr, b1, b2, eps, wd, scale, bc1, inv_sqrt_bc2;
};

template <SolverKind S>
__device__ Scalars read_scalars(const UpdateArgs& a) {
  const float* hp = a.hp;
  Scalars k{hp[0], hp[1], hp[2], hp[3], hp[4], hp[6], 1.f, 1.f};
  if (a.loss_scale) k.scale /= a.loss_scale[0];
  if (a.clip > 0.f) {
    double norm = sqrt(static_cast<double>(a.norm_sq[0])) * k.scale;
    k.scale = static_cast<float>(k.scale * fmin(1.0, a.clip / (norm + 1e-6)));
  }
  if constexpr (S == SolverKind::adam || S == SolverKind::adamw) {
    double t = hp[5];
    k.bc1 = static_cast<float>(1.0 - pow(static_cast<double>(k.b1), t));
    k.inv_sqrt_bc2 = static_cast<float>(1.0 / sqrt(1.0 - pow(static_cast<double>(k.b2), t)));
  }
  return k;
}

template <SolverKind S>
__global__ void __launch_bounds__(kThreads)
    update_kernel(const MtTensor* tensors, const MtChunk* chunks, UpdateArgs a) {
  const MtChunk ch = chunks[blockIdx.x];
  const MtTensor t = tensors[ch.tensor];
  const int zero_grads = a.zero_grads;
  if (a.loss_scale && !isfinite(a.norm_sq[0])) {  // the scaled gradients overflowed: skip
    if (zero_grads)
      for (long long e = ch.begin + threadIdx.x; e < ch.end; e += blockDim.x) t.g[e] = 0.f;
    return;
  }
  const Scalars k = read_scalars<S>(a);
  const float lr = k.lr * t.lr_mult, wd = k.wd * t.decay_mult;
  for (long long e = ch.begin + threadIdx.x; e < ch.end; e += blockDim.x) {
    float p = t.p[e];
    float g = t.g[e] * k.scale;
    if constexpr (S == SolverKind::adamw)
      p -= lr * wd * p;
    else
      g += wd * p;
    if constexpr (S == SolverKind::sgd) {
      float v = k.b1 * t.s0[e] + g;
      t.s0[e] = v;
      p -= lr * v;
    } else if constexpr (S == SolverKind::nesterov) {
      float v = k.b1 * t.s0[e] + g;
      t.s0[e] = v;
      p -= lr * (g + k.b1 * v);
    } else if constexpr (S == SolverKind::adam || S == SolverKind::adamw) {
      float m = k.b1 * t.s0[e] + (1.f - k.b1) * g;
      float v = k.b2 * t.s1[e] + (1.f - k.b2) * g * g;
      t.s0[e] = m;
      t.s1[e] = v;
      p -= lr * (m / k.bc1) / (sqrtf(v) * k.inv_sqrt_bc2 + k.eps);
    } else if constexpr (S == SolverKind::rmsprop) {
      float v = k.b2 * t.s0[e] + (1.f - k.b2) * g * g;
      t.s0[e] = v;
      p -= lr * g / (sqrtf(v) + k.eps);
    } else {  // adagrad
      float v = t.s0[e] + g * g;
      t.s0[e] = v;
      p -= lr * g / (sqrtf(v) + k.eps);
    }
    t.p[e] = p;
    if (zero_grads) t.g[e] = 0.f;
  }
}

__global__ void chunk_squares(const MtTensor* tensors, const MtChunk* chunks, float* partials) {
  const MtChunk ch = chunks[blockIdx.x];
  const float* g = tensors[ch.tensor].g;
  float sum = 0.f;
  for (long long e = ch.begin + threadIdx.x; e < ch.end; e += blockDim.x) sum += g[e] * g[e];
  __shared__ float warp_sums[32];
  sum = warp_sum(sum);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) t += warp_sums[w];
    partials[blockIdx.x] = t;
  }
}

__global__ void sum_partials(const float* partials, int count, float* out) {
  double sum = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  __shared__ double warp_sums[32];
  sum = warp_sum(sum);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) t += warp_sums[w];
    out[0] = static_cast<float>(t);
  }
}

__global__ void loss_scale_kernel(float* scale, float* good_steps, const float* norm_sq,
                                  int64_t interval) {
  next_loss_scale(scale[0], good_steps[0], norm_sq[0], interval);
}

template <SolverKind S>
void launch_update(const MtTensor* tensors, const MtChunk* chunks, int chunk_count,
                   const UpdateArgs& a, cudaStream_t s) {
  update_kernel<S><<<chunk_count, kThreads, 0, s>>>(tensors, chunks, a);
}

}  // namespace

void optimizer_update(const MtTensor* tensors, const MtChunk* chunks, int chunk_count,
                      const UpdateArgs& args, SolverKind solver, cudaStream_t s) {
  if (chunk_count == 0) return;
  switch (solver) {
    case SolverKind::sgd:
      launch_update<SolverKind::sgd>(tensors, chunks, chunk_count, args, s);
      break;
    case SolverKind::nesterov:
      launch_update<SolverKind::nesterov>(tensors, chunks, chunk_count, args, s);
      break;
    case SolverKind::adam:
      launch_update<SolverKind::adam>(tensors, chunks, chunk_count, args, s);
      break;
    case SolverKind::adamw:
      launch_update<SolverKind::adamw>(tensors, chunks, chunk_count, args, s);
      break;
    case SolverKind::rmsprop:
      launch_update<SolverKind::rmsprop>(tensors, chunks, chunk_count, args, s);
      break;
    case SolverKind::adagrad:
      launch_update<SolverKind::adagrad>(tensors, chunks, chunk_count, args, s);
      break;
  }
  check_launch("optimizer_update", "");
}

void loss_scale_update(float* scale, float* good_steps, const float* norm_sq, int64_t interval,
                       cudaStream_t s) {
  loss_scale_kernel<<<1, 1, 0, s>>>(scale, good_steps, norm_sq, interval);
  check_launch("loss_scale_update", "");
}

void sum_squares(const MtTensor* tensors, const MtChunk* chunks, int chunk_count, float* partials,
                 float* out, cudaStream_t s) {
  if (chunk_count == 0) {
    MYELIN_CHECK(cudaMemsetAsync(out, 0, sizeof(float), s), "global_norm_sq");
    return;
  }
  chunk_squares<<<chunk_count, kThreads, 0, s>>>(tensors, chunks, partials);
  check_launch("chunk_squares", "");
  sum_partials<<<1, 1024, 0, s>>>(partials, chunk_count, out);
  check_launch("sum_partials", "");
}

}  // namespace myelin::cuda
