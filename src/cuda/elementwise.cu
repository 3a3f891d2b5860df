// Elementwise kernels: add, mul, accumulate, bias add and its gradient, fill, activations,
// dropout (the counter-based mask of ops/params.h, keyed by the step state in device memory).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "core/error.h"
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

// y = a + b, then max(y, 0) when relu, or 0 where mask <= 0 when Masked (a ReLU's gradient).
template <bool Masked>
__global__ void add_kernel(FPtr a, FPtr b, FPtr mask, FPtr y, int64_t n, bool relu) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) {
    float v = ld(a, i) + ld(b, i);
    if constexpr (Masked) v = ld(mask, i) > 0.f ? v : 0.f;
    st(y, i, relu ? fmaxf(v, 0.f) : v);
  }
}

// add_kernel where a, b, y (and the mask) share the type T, 16 bytes per thread and step.
template <class T, bool Masked>
__global__ void add_vector_kernel(FPtr a, FPtr b, FPtr mask, FPtr y, int64_t n16, bool relu) {
  for (int64_t i = global_index(); i < n16; i += grid_stride()) {
    float va[kPer16<T>], vb[kPer16<T>], m[kPer16<T>];
    load16<T>(a.p, i, va);
    load16<T>(b.p, i, vb);
    if constexpr (Masked) load16<T>(mask.p, i, m);
#pragma unroll
    for (int k = 0; k < kPer16<T>; ++k) {
      va[k] += vb[k];
      if constexpr (Masked) va[k] = m[k] > 0.f ? va[k] : 0.f;
      if (relu) va[k] = fmaxf(va[k], 0.f);
    }
    store16<T>(y.p, i, va);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Whether the operands share one type and 16-byte alignment and n fills whole 16-byte vectors:
// then the *_vector kernels take them, n / elements_per16(type) vectors.
int64_t elements_per16(int type) {
  return type == 0 ? 4 : 8;
}
bool vectorizable(std::initializer_list<FPtr> operands, int64_t n) {
  const int type = operands.begin()->type;
  for (FPtr p : operands)
    if (p.type != type || !aligned16(p.p)) return false;
  return n % elements_per16(type) == 0;
}

__global__ void mul_kernel(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) y[i] = a[i] * b[i];
}

__global__ void accumulate_kernel(float* acc, const float* g, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) acc[i] += g[i];
}

// I is the index type: 32-bit division where the tensor allows it is several times cheaper.
template <class I>
__global__ void bias_add_kernel(FPtr x, const float* b, FPtr y, I n, I channels, I inner,
                                bool relu) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    float v = ld(x, i);
    if (b) v += b[inner == 1 ? i % channels : i / inner % channels];
    st(y, i, relu ? fmaxf(v, 0.f) : v);
  }
}

// Sums a block's per-thread values over threadIdx.y: row 0 of the (32, kRowLanes) block ends
// with the sums of its 32 columns.
constexpr int kRowLanes = 8;
__device__ __forceinline__ float column_sum(float v) {
  __shared__ float part[kRowLanes][33];
  part[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  float sum = 0;
  if (threadIdx.y == 0)
    for (int r = 0; r < kRowLanes; ++r) sum += part[r][threadIdx.x];
  return sum;
}

// Block (c, s) sums channel c over the s-th slice of the outer dimension; inner is contiguous.
// The slice's rows x inner elements are spread over all threads, whatever inner is.
__global__ void bias_grad_planes(FPtr dy, float* partials, int64_t outer, int64_t channels,
                                 int64_t inner, int64_t rows_per_slice) {
  const int64_t c = blockIdx.x, s = blockIdx.y;
  const int64_t o0 = s * rows_per_slice, rows = min(outer, o0 + rows_per_slice) - o0;
  const unsigned in = static_cast<unsigned>(inner), count = static_cast<unsigned>(rows * inner);
  const int64_t base = (o0 * channels + c) * inner, row_pitch = channels * inner;
  float sum = 0;
  for (unsigned k = threadIdx.x; k < count; k += blockDim.x)
    sum += ld(dy, base + (k / in) * row_pitch + k % in);
  __shared__ float warp_sums[32];
  sum = warp_sum(sum);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < (blockDim.x >> 5) ? warp_sums[threadIdx.x] : 0.f;
    v = warp_sum(v);
    if (threadIdx.x == 0) partials[s * channels + c] = v;
  }
}

// inner == 1 ([rows, C], channels-last or a fully connected layer): block (32 channels, 8 row
// lanes) sums its channels over the s-th slice of rows, coalesced along C.
__global__ void bias_grad_columns(FPtr dy, float* partials, int64_t outer, int64_t channels,
                                  int64_t rows_per_slice) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x, s = blockIdx.y;
  const int64_t o0 = s * rows_per_slice, o1 = min(outer, o0 + rows_per_slice);
  float sum = 0;
  if (c < channels)
    for (int64_t o = o0 + threadIdx.y; o < o1; o += kRowLanes) sum += ld(dy, o * channels + c);
  sum = column_sum(sum);
  if (threadIdx.y == 0 && c < channels) partials[s * channels + c] = sum;
}

// db[c] = the sum of partials[s, c] over the slices, 8 lanes of slices per channel.
__global__ void sum_slices(const float* partials, float* db, int64_t channels, int64_t slices) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  float sum = 0;
  if (c < channels)
    for (int64_t s = threadIdx.y; s < slices; s += kRowLanes) sum += partials[s * channels + c];
  sum = column_sum(sum);
  if (threadIdx.y == 0 && c < channels) db[c] = sum;
}

template <class T>
__global__ void fill_kernel(T* p, T v, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) p[i] = v;
}

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)

template <ActKind K>
__device__ __forceinline__ float act(float x, float alpha) {
  if constexpr (K == ActKind::relu) return x > 0.f ? x : 0.f;
  if constexpr (K == ActKind::leaky_relu) return x > 0.f ? x : alpha * x;
  if constexpr (K == ActKind::sigmoid) return 1.f / (1.f + expf(-x));
  if constexpr (K == ActKind::tanh) return tanhf(x);
  if constexpr (K == ActKind::elu) return x > 0.f ? x : alpha * (expf(x) - 1.f);
  if constexpr (K == ActKind::gelu) {
    float t = tanhf(kGeluC * (x + 0.044715f * x * x * x));
    return 0.5f * x * (1.f + t);
  }
  return x;
}

template <ActKind K>
__device__ __forceinline__ float act_grad(float dy, float x, float y, float alpha) {
  if constexpr (K == ActKind::relu) return x > 0.f ? dy : 0.f;
  if constexpr (K == ActKind::leaky_relu) return x > 0.f ? dy : alpha * dy;
  if constexpr (K == ActKind::sigmoid) return dy * y * (1.f - y);
  if constexpr (K == ActKind::tanh) return dy * (1.f - y * y);
  if constexpr (K == ActKind::elu) return x > 0.f ? dy : dy * alpha * expf(x);
  if constexpr (K == ActKind::gelu) {
    float t = tanhf(kGeluC * (x + 0.044715f * x * x * x));
    float dt = (1.f - t * t) * kGeluC * (1.f + 3.f * 0.044715f * x * x);
    return dy * (0.5f * (1.f + t) + 0.5f * x * dt);
  }
  return dy;
}

template <ActKind K>
__global__ void act_forward(FPtr x, FPtr y, int64_t n, float alpha) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) st(y, i, act<K>(ld(x, i), alpha));
}

template <ActKind K>
__global__ void act_backward(FPtr dy, FPtr x, FPtr y, FPtr dx, int64_t n, float alpha) {
  // relu, leaky relu and elu read x only, sigmoid and tanh y only: load what the rule uses.
  constexpr bool kX = K != ActKind::sigmoid && K != ActKind::tanh;
  constexpr bool kY = K == ActKind::sigmoid || K == ActKind::tanh;
  for (int64_t i = global_index(); i < n; i += grid_stride())
    st(dx, i, act_grad<K>(ld(dy, i), kX ? ld(x, i) : 0.f, kY ? ld(y, i) : 0.f, alpha));
}

template <ActKind K, class T>
__global__ void act_forward_vector(FPtr x, FPtr y, int64_t n16, float alpha) {
  for (int64_t i = global_index(); i < n16; i += grid_stride()) {
    float v[kPer16<T>];
    load16<T>(x.p, i, v);
#pragma unroll
    for (int k = 0; k < kPer16<T>; ++k) v[k] = act<K>(v[k], alpha);
    store16<T>(y.p, i, v);
  }
}

template <ActKind K, class T>
__global__ void act_backward_vector(FPtr dy, FPtr x, FPtr y, FPtr dx, int64_t n16, float alpha) {
  constexpr bool kX = K != ActKind::sigmoid && K != ActKind::tanh;
  constexpr bool kY = K == ActKind::sigmoid || K == ActKind::tanh;
  for (int64_t i = global_index(); i < n16; i += grid_stride()) {
    float g[kPer16<T>], a[kPer16<T>] = {}, b[kPer16<T>] = {};
    load16<T>(dy.p, i, g);
    if constexpr (kX) load16<T>(x.p, i, a);
    if constexpr (kY) load16<T>(y.p, i, b);
#pragma unroll
    for (int k = 0; k < kPer16<T>; ++k) g[k] = act_grad<K>(g[k], a[k], b[k], alpha);
    store16<T>(dx.p, i, g);
  }
}

__global__ void dropout_kernel(FPtr x, FPtr y, int64_t n, const unsigned long long* state, int node,
                               uint32_t threshold, float scale) {
  __shared__ unsigned long long key;
  if (threadIdx.x == 0) key = dropout_key(state[0], state[1], node);
  __syncthreads();
  for (int64_t i = global_index(); i < n; i += grid_stride())
    st(y, i, dropout_keep(key, static_cast<uint64_t>(i), threshold) ? ld(x, i) * scale : 0.f);
}

__global__ void step_state_kernel(unsigned long long* state, unsigned long long seed,
                                  unsigned long long step) {
  state[0] = seed;
  state[1] = step;
}

template <ActKind K>
void launch_act(FPtr x, FPtr y, int64_t n, float alpha, cudaStream_t s) {
  if (!vectorizable({x, y}, n)) {
    act_forward<K><<<blocks_for(n), kThreads, 0, s>>>(x, y, n, alpha);
    return;
  }
  const int64_t n16 = n / elements_per16(x.type);
  with_type(x.type, [&](auto t) {
    act_forward_vector<K, decltype(t)><<<blocks_for(n16), kThreads, 0, s>>>(x, y, n16, alpha);
  });
}

template <ActKind K>
void launch_act_grad(FPtr dy, FPtr x, FPtr y, FPtr dx, int64_t n, float alpha, cudaStream_t s) {
  // The operand the rule does not read (see act_backward) may have any storage.
  const bool reads_x = K != ActKind::sigmoid && K != ActKind::tanh;
  if (!vectorizable({dy, dx, reads_x ? x : y}, n)) {
    act_backward<K><<<blocks_for(n), kThreads, 0, s>>>(dy, x, y, dx, n, alpha);
    return;
  }
  const int64_t n16 = n / elements_per16(dx.type);
  with_type(dx.type, [&](auto t) {
    act_backward_vector<K, decltype(t)>
        <<<blocks_for(n16), kThreads, 0, s>>>(dy, x, y, dx, n16, alpha);
  });
}

// Slices of the outer dimension so that about eight blocks per SM (of 132) share the work, and
// no slice holds 2^30 elements or more (the planes kernel counts them in 32 bits).
int64_t bias_slices(int64_t outer, int64_t channels, int64_t inner) {
  const int64_t cols = inner == 1 ? (channels + 31) / 32 : channels;
  const int64_t per_row = inner == 1 ? 1 : inner;
  int64_t want = std::max((8 * 132 + cols - 1) / cols, outer * per_row / (int64_t{1} << 30) + 1);
  want = std::clamp<int64_t>(want, 1, std::max<int64_t>(outer, 1));
  const int64_t rows = (outer + want - 1) / want;
  return std::max<int64_t>(1, (outer + rows - 1) / rows);  // none left empty
}

}  // namespace

void add_any(FPtr a, FPtr b, FPtr y, int64_t n, cudaStream_t s, bool relu, FPtr mask) {
  const bool masked = mask.p != nullptr;
  const bool vector = masked ? vectorizable({a, b, mask, y}, n) : vectorizable({a, b, y}, n);
  auto launch = [&](auto masked_flag) {
    constexpr bool kMasked = decltype(masked_flag)::value;
    if (vector) {
      const int64_t n16 = n / elements_per16(y.type);
      with_type(y.type, [&](auto t) {
        add_vector_kernel<decltype(t), kMasked>
            <<<blocks_for(n16), kThreads, 0, s>>>(a, b, mask, y, n16, relu);
      });
    } else {
      add_kernel<kMasked><<<blocks_for(n), kThreads, 0, s>>>(a, b, mask, y, n, relu);
    }
  };
  if (masked)
    launch(std::true_type{});
  else
    launch(std::false_type{});
  check_launch("add_kernel", "");
}

void mul_f32(const float* a, const float* b, float* y, int64_t n, cudaStream_t s) {
  mul_kernel<<<blocks_for(n), kThreads, 0, s>>>(a, b, y, n);
  check_launch("mul_kernel", "");
}

void accumulate_f32(float* acc, const float* g, int64_t n, cudaStream_t s) {
  accumulate_kernel<<<blocks_for(n), kThreads, 0, s>>>(acc, g, n);
  check_launch("accumulate_kernel", "");
}

void bias_add(FPtr x, const float* b, FPtr y, int64_t outer, int64_t channels, int64_t inner,
              cudaStream_t s, bool relu) {
  const int64_t n = outer * channels * inner;
  if (n < (int64_t{1} << 31))
    bias_add_kernel<uint32_t><<<blocks_for(n), kThreads, 0, s>>>(
        x, b, y, static_cast<uint32_t>(n), static_cast<uint32_t>(channels),
        static_cast<uint32_t>(inner), relu);
  else
    bias_add_kernel<int64_t><<<blocks_for(n), kThreads, 0, s>>>(x, b, y, n, channels, inner, relu);
  check_launch("bias_add_kernel", "");
}

size_t bias_grad_partials(int64_t outer, int64_t channels, int64_t inner) {
  return static_cast<size_t>(bias_slices(outer, channels, inner) * channels);
}

void bias_grad(FPtr dy, float* db, int64_t outer, int64_t channels, int64_t inner, float* partials,
               cudaStream_t s) {
  const int64_t slices = bias_slices(outer, channels, inner);
  const int64_t rows = (outer + slices - 1) / slices;
  const auto column_groups = static_cast<unsigned>((channels + 31) / 32);
  const dim3 lanes(32, kRowLanes);
  if (inner == 1)
    bias_grad_columns<<<dim3(column_groups, static_cast<unsigned>(slices)), lanes, 0, s>>>(
        dy, partials, outer, channels, rows);
  else
    bias_grad_planes<<<dim3(static_cast<unsigned>(channels), static_cast<unsigned>(slices)),
                       kThreads, 0, s>>>(dy, partials, outer, channels, inner, rows);
  check_launch("bias_grad", "");
  sum_slices<<<column_groups, lanes, 0, s>>>(partials, db, channels, slices);
  check_launch("sum_slices", "");
}

void fill(void* p, DType t, double v, int64_t n, cudaStream_t s) {
  unsigned b = blocks_for(n);
  switch (t) {
    case DType::f32:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<float*>(p), static_cast<float>(v), n);
      break;
    case DType::bf16:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(p),
                                         __float2bfloat16_rn(static_cast<float>(v)), n);
      break;
    case DType::f16:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<__half*>(p),
                                         __float2half_rn(static_cast<float>(v)), n);
      break;
    case DType::i32:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<int32_t*>(p), static_cast<int32_t>(v), n);
      break;
    case DType::i64:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<int64_t*>(p), static_cast<int64_t>(v), n);
      break;
    case DType::u8:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<uint8_t*>(p), static_cast<uint8_t>(v), n);
      break;
  }
  check_launch("fill_kernel", "");
}

void activation_forward(ActKind k, float alpha, FPtr x, FPtr y, int64_t n, cudaStream_t s) {
  switch (k) {
    case ActKind::relu:
      launch_act<ActKind::relu>(x, y, n, alpha, s);
      break;
    case ActKind::leaky_relu:
      launch_act<ActKind::leaky_relu>(x, y, n, alpha, s);
      break;
    case ActKind::sigmoid:
      launch_act<ActKind::sigmoid>(x, y, n, alpha, s);
      break;
    case ActKind::tanh:
      launch_act<ActKind::tanh>(x, y, n, alpha, s);
      break;
    case ActKind::elu:
      launch_act<ActKind::elu>(x, y, n, alpha, s);
      break;
    case ActKind::gelu:
      launch_act<ActKind::gelu>(x, y, n, alpha, s);
      break;
  }
  check_launch("act_forward", "");
}

void activation_backward(ActKind k, float alpha, FPtr dy, FPtr x, FPtr y, FPtr dx, int64_t n,
                         cudaStream_t s) {
  switch (k) {
    case ActKind::relu:
      launch_act_grad<ActKind::relu>(dy, x, y, dx, n, alpha, s);
      break;
    case ActKind::leaky_relu:
      launch_act_grad<ActKind::leaky_relu>(dy, x, y, dx, n, alpha, s);
      break;
    case ActKind::sigmoid:
      launch_act_grad<ActKind::sigmoid>(dy, x, y, dx, n, alpha, s);
      break;
    case ActKind::tanh:
      launch_act_grad<ActKind::tanh>(dy, x, y, dx, n, alpha, s);
      break;
    case ActKind::elu:
      launch_act_grad<ActKind::elu>(dy, x, y, dx, n, alpha, s);
      break;
    case ActKind::gelu:
      launch_act_grad<ActKind::gelu>(dy, x, y, dx, n, alpha, s);
      break;
  }
  check_launch("act_backward", "");
}

void dropout(FPtr x, FPtr y, int64_t n, const unsigned long long* step_state, int node,
             uint32_t threshold, float scale, cudaStream_t s) {
  dropout_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, n, step_state, node, threshold, scale);
  check_launch("dropout_kernel", "");
}

void write_step_state(unsigned long long* state, uint64_t seed, uint64_t step, cudaStream_t s) {
  step_state_kernel<<<1, 1, 0, s>>>(state, seed, step);
  check_launch("step_state_kernel", "publishing the step's seed and step");
}

}  // namespace myelin::cuda
