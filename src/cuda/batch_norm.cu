// Batch normalisation over [rows, c] with channels innermost (see batch_norm_kernels.h).
//
// Blocks are 2-D: threadIdx.x takes a column of V channels (V elements in 16 bytes where C allows,
// one otherwise), threadIdx.y a share of the rows. The grid is (column tiles, row slices), about 8
// blocks per multiprocessor in all, so even ResNet-50's 7x7x2048 layers fill the chip. A block's
// threads stride over its slice's rows KUnroll at a time (the loads issued before the arithmetic
// that uses them), reduce in shared memory along threadIdx.y, and write one partial result per
// channel; a warp per channel then combines the slices' partials.
#include <algorithm>
#include <type_traits>

#include "cuda/batch_norm_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int kUnroll = 4;
constexpr int kMaxPerSm = 2048 / kBlock;  // blocks of kBlock threads a multiprocessor holds

template <class T>
struct Tag {
  using type = T;
};

// fn(Tag<T>, std::integral_constant<int, V>) for a storage type (FPtr::type) and V = 1 or the
// elements of T in 16 bytes.
template <class Fn>
void dispatch(int type, bool wide, Fn&& fn) {
  auto with = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (wide)
      fn(tag, std::integral_constant<int, static_cast<int>(16 / sizeof(T))>{});
    else
      fn(tag, std::integral_constant<int, 1>{});
  };
  if (type == 1)
    with(Tag<__nv_bfloat16>{});
  else if (type == 2)
    with(Tag<__half>{});
  else
    with(Tag<float>{});
}

// The V channels of one row from col*V on, in fp32.
template <class T, int V>
__device__ __forceinline__ void load(const T* p, float (&v)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const T* t = reinterpret_cast<const T*>(&u);
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = to_float(t[i]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = to_float(p[i]);
  }
}

template <class T, int V>
__device__ __forceinline__ void store(T* p, const float (&v)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    uint4 u;
    T* t = reinterpret_cast<T*>(&u);
#pragma unroll
    for (int i = 0; i < V; ++i) t[i] = from_float<T>(v[i]);
    *reinterpret_cast<uint4*>(p) = u;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = from_float<T>(v[i]);
  }
}

template <int V>
__device__ __forceinline__ void load_f32(const float* p, int64_t col, float (&v)[V]) {
#pragma unroll
  for (int i = 0; i < V; ++i) v[i] = p[col * V + i];
}

// Chan et al.'s pairwise update: (n, mean, m2) absorbs (nb, mb, m2b).
__device__ __forceinline__ void combine(float& n, float& mean, float& m2, float nb, float mb,
                                        float m2b) {
  const float t = n + nb;
  if (t == 0.f) return;
  const float delta = mb - mean, f = nb / t;
  mean += delta * f;
  m2 += m2b + delta * delta * n * f;
  n = t;
}

// Welford's update of V channels by one row.
template <int V>
__device__ __forceinline__ void welford(float& n, float (&mean)[V], float (&m2)[V],
                                        const float (&v)[V]) {
  n += 1.f;
  const float inv = 1.f / n;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const float d = v[i] - mean[i];
    mean[i] += d * inv;
    m2[i] += d * (v[i] - mean[i]);
  }
}

// f(r, v) for each row r of this thread (r, r + step, ... below rows; the block's threadIdx.y
// and the grid's row slice pick them) with v[k] the row's V channels of stream k (p[k] + r * c,
// p[k] at the thread's column), kUnroll rows' loads issued before the arithmetic that uses them.
template <class T, int V, int N, class F>
__device__ __forceinline__ void walk_rows(const T* const (&p)[N], int64_t rows, int64_t c, F&& f) {
  const int64_t step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  for (; r + (kUnroll - 1) * step < rows; r += kUnroll * step) {
    float v[kUnroll][N][V];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int k = 0; k < N; ++k) load<T, V>(p[k] + (r + u * step) * c, v[u][k]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) f(r + u * step, v[u]);
  }
  for (; r < rows; r += step) {
    float v[N][V];
#pragma unroll
    for (int k = 0; k < N; ++k) load<T, V>(p[k] + r * c, v[k]);
    f(r, v);
  }
}

// y = x * scale + shift's coefficients from the batch statistics, written out so that the
// forward pass and the ReLU mask of the gradient (which recomputes y from x) round alike.
__device__ __forceinline__ float2 affine(float gamma, float beta, float mean, float invstd) {
  const float scale = __fmul_rn(gamma, invstd);
  return make_float2(scale, __fmaf_rn(-mean, scale, beta));
}

// The V channels' coefficients of the ReLU mask (y > 0 where x * scale + shift > 0).
template <int V>
struct ReluMask {
  float scale[V], shift[V];
  __device__ ReluMask(const float* gamma, const float* beta, const float* mean, const float* invstd,
                      int64_t col) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int64_t ch = col * V + i;
      const float2 a = affine(gamma[ch], beta[ch], mean[ch], invstd[ch]);
      scale[i] = a.x, shift[i] = a.y;
    }
  }
  // g = 0 where the forward ReLU's output was 0.
  __device__ __forceinline__ void apply(float (&g)[V], const float (&x)[V]) const {
#pragma unroll
    for (int i = 0; i < V; ++i)
      if (!(__fmaf_rn(x[i], scale[i], shift[i]) > 0.f)) g[i] = 0.f;
  }
};

// The power of two at or above blockDim.y, halved: the first stride of a tree reduction.
__device__ __forceinline__ int first_half() {
  int h = 1;
  while (h < static_cast<int>(blockDim.y)) h <<= 1;
  return h >> 1;
}

// ---- forward statistics ----------------------------------------------------------------------

template <class T, int V>
__global__ void __launch_bounds__(kBlock)
    stats_kernel(const T* __restrict__ x, int64_t rows, int64_t c, float* __restrict__ part_n,
                 float* __restrict__ part_mean, float* __restrict__ part_m2) {
  __shared__ float s_n[kBlock], s_mean[V][kBlock], s_m2[V][kBlock];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = col < c / V;
  float n = 0.f, mean[V], m2[V];
#pragma unroll
  for (int i = 0; i < V; ++i) mean[i] = m2[i] = 0.f;
  if (active) {
    const T* p[1] = {x + col * V};
    walk_rows<T, V>(p, rows, c, [&](int64_t, float(&v)[1][V]) { welford(n, mean, m2, v[0]); });
  }
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  s_n[t] = n;
#pragma unroll
  for (int i = 0; i < V; ++i) s_mean[i][t] = mean[i], s_m2[i][t] = m2[i];
  __syncthreads();
  for (int h = first_half(); h > 0; h >>= 1) {
    if (threadIdx.y < h && threadIdx.y + h < blockDim.y) {
      const int o = t + h * blockDim.x;
      const float n0 = n, nb = s_n[o];
#pragma unroll
      for (int i = 0; i < V; ++i) {
        n = n0;
        combine(n, mean[i], m2[i], nb, s_mean[i][o], s_m2[i][o]);
        s_mean[i][t] = mean[i], s_m2[i][t] = m2[i];
      }
      n = n0 + nb;
      s_n[t] = n;
    }
    __syncthreads();
  }
  if (threadIdx.y == 0 && active) {
    const int64_t at = blockIdx.y * c + col * V;
#pragma unroll
    for (int i = 0; i < V; ++i)
      part_n[at + i] = n, part_mean[at + i] = mean[i], part_m2[at + i] = m2[i];
  }
}

// A warp per channel combines the row slices' partials; lane 0 writes the statistics, updates the
// running ones, and leaves y = x * scale + shift's coefficients.
__global__ void finalize_stats_kernel(const float* part_n, const float* part_mean,
                                      const float* part_m2, int slices, int64_t c,
                                      const float* gamma, const float* beta, float* running_mean,
                                      float* running_var, float* save_mean, float* save_invstd,
                                      float* scale, float* shift, float eps, float momentum) {
  const int64_t ch = global_index() / 32;
  const int lane = threadIdx.x & 31;
  if (ch >= c) return;  // uniform across the warp
  float n = 0.f, mean = 0.f, m2 = 0.f;
  for (int j = lane; j < slices; j += 32)
    combine(n, mean, m2, part_n[j * c + ch], part_mean[j * c + ch], part_m2[j * c + ch]);
  for (int o = 16; o > 0; o >>= 1) {
    const float nb = __shfl_xor_sync(0xffffffffu, n, o);
    const float mb = __shfl_xor_sync(0xffffffffu, mean, o);
    const float m2b = __shfl_xor_sync(0xffffffffu, m2, o);
    combine(n, mean, m2, nb, mb, m2b);
  }
  if (lane != 0) return;
  const float var = n > 0.f ? m2 / n : 0.f;
  const float invstd = 1.f / sqrtf(var + eps);
  const float unbiased = n > 1.f ? m2 / (n - 1.f) : var;
  save_mean[ch] = mean;
  save_invstd[ch] = invstd;
  running_mean[ch] = momentum * running_mean[ch] + (1.f - momentum) * mean;
  running_var[ch] = momentum * running_var[ch] + (1.f - momentum) * unbiased;
  const float2 a = affine(gamma[ch], beta[ch], mean, invstd);
  scale[ch] = a.x;
  shift[ch] = a.y;
}

__global__ void inference_coefficients_kernel(const float* gamma, const float* beta,
                                              const float* running_mean, const float* running_var,
                                              int64_t c, float eps, float* scale, float* shift) {
  const int64_t ch = global_index();
  if (ch >= c) return;
  const float sc = gamma[ch] / sqrtf(running_var[ch] + eps);
  scale[ch] = sc;
  shift[ch] = beta[ch] - running_mean[ch] * sc;
}

// How the apply pass takes a residual r: none, as it is, or batch-normalized (a shortcut's batch
// norm: r * scale2 + shift2).
enum Res { kNoRes, kRes, kNormRes };

// y = x * scale + shift per channel, plus the residual (Res), then max(y, 0) when relu.
template <class T, int V, int R>
__global__ void __launch_bounds__(kBlock)
    apply_kernel(const T* __restrict__ x, const T* __restrict__ res, T* __restrict__ y,
                 int64_t rows, int64_t c, const float* __restrict__ scale,
                 const float* __restrict__ shift, const float* __restrict__ res_scale,
                 const float* __restrict__ res_shift, bool relu) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= c / V) return;
  float a[V], b[V], ra[V], rb[V];
  load_f32(scale, col, a);
  load_f32(shift, col, b);
  if constexpr (R == kNormRes) {
    load_f32(res_scale, col, ra);
    load_f32(res_shift, col, rb);
  }
  const int64_t off = col * V;
  auto out = [&](int64_t r, auto& v) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      v[0][i] = fmaf(v[0][i], a[i], b[i]);
      if constexpr (R == kRes) v[0][i] += v[1][i];
      if constexpr (R == kNormRes) v[0][i] += fmaf(v[1][i], ra[i], rb[i]);
      if (relu) v[0][i] = fmaxf(v[0][i], 0.f);
    }
    store<T, V>(y + r * c + off, v[0]);
  };
  if constexpr (R != kNoRes) {
    const T* p[2] = {x + off, res + off};
    walk_rows<T, V>(p, rows, c, out);
  } else {
    const T* p[1] = {x + off};
    walk_rows<T, V>(p, rows, c, out);
  }
}

// ---- backward ----------------------------------------------------------------------------------

// The V channels' ReLU mask where the gradient has a ReLU fused in (Relu), else nothing.
template <int V, bool Relu>
struct MaybeMask {
  __device__ MaybeMask(const float*, const float*, const float*, const float*, int64_t) {}
  __device__ __forceinline__ void apply(float (&)[V], const float (&)[V]) const {}
};
template <int V>
struct MaybeMask<V, true> : ReluMask<V> {
  using ReluMask<V>::ReluMask;
};

// The block's sums of dy and dy * (x - mean) per channel, each thread's added along threadIdx.y
// in shared memory, written as the block's partial result (row slice blockIdx.y).
template <int V>
__device__ __forceinline__ void write_grad_partials(float (&sdy)[V], float (&sdyx)[V], bool active,
                                                    int64_t c, int64_t col, float* part_dy,
                                                    float* part_dyx) {
  __shared__ float s_dy[V][kBlock], s_dyx[V][kBlock];
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
  for (int i = 0; i < V; ++i) s_dy[i][t] = sdy[i], s_dyx[i][t] = sdyx[i];
  __syncthreads();
  for (int h = first_half(); h > 0; h >>= 1) {
    if (threadIdx.y < h && threadIdx.y + h < blockDim.y) {
      const int o = t + h * blockDim.x;
#pragma unroll
      for (int i = 0; i < V; ++i) {
        sdy[i] += s_dy[i][o], sdyx[i] += s_dyx[i][o];
        s_dy[i][t] = sdy[i], s_dyx[i][t] = sdyx[i];
      }
    }
    __syncthreads();
  }
  if (threadIdx.y == 0 && active) {
    const int64_t at = blockIdx.y * c + col * V;
#pragma unroll
    for (int i = 0; i < V; ++i) part_dy[at + i] = sdy[i], part_dyx[at + i] = sdyx[i];
  }
}

// Per channel: sum dy and sum dy * (x - mean) over the block's rows (dy masked by the fused ReLU).
template <class T, int V, bool Relu>
__global__ void __launch_bounds__(kBlock)
    grad_sums_kernel(const T* __restrict__ dy, const T* __restrict__ x, int64_t rows, int64_t c,
                     const float* __restrict__ gamma, const float* __restrict__ beta,
                     const float* __restrict__ mean, const float* __restrict__ invstd,
                     float* __restrict__ part_dy, float* __restrict__ part_dyx) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = col < c / V;
  float sdy[V], sdyx[V], mu[V];
#pragma unroll
  for (int i = 0; i < V; ++i) sdy[i] = sdyx[i] = mu[i] = 0.f;
  if (active) {
    load_f32(mean, col, mu);
    const MaybeMask<V, Relu> mask(gamma, beta, mean, invstd, col);
    const T* p[2] = {dy + col * V, x + col * V};
    walk_rows<T, V>(p, rows, c, [&](int64_t, float(&v)[2][V]) {
      mask.apply(v[0], v[1]);
#pragma unroll
      for (int i = 0; i < V; ++i) {
        sdy[i] += v[0][i];
        sdyx[i] = fmaf(v[0][i], v[1][i] - mu[i], sdyx[i]);
      }
    });
  }
  write_grad_partials<V>(sdy, sdyx, active, c, col, part_dy, part_dyx);
}

// grad_sums_kernel of the gradient of a sum (SumGrad): dy = y > 0 ? a + b : 0 computed per row,
// stored in T to dy_out as the add it replaces would, and summed as stored.
template <class T, int V>
__global__ void __launch_bounds__(kBlock)
    sum_grad_sums_kernel(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ y,
                         const T* __restrict__ x, T* __restrict__ dy_out, int64_t rows, int64_t c,
                         const float* __restrict__ mean, float* __restrict__ part_dy,
                         float* __restrict__ part_dyx) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = col < c / V;
  float sdy[V], sdyx[V], mu[V];
#pragma unroll
  for (int i = 0; i < V; ++i) sdy[i] = sdyx[i] = mu[i] = 0.f;
  if (active) {
    load_f32(mean, col, mu);
    const int64_t off = col * V;
    const T* p[4] = {a + off, b + off, y + off, x + off};
    walk_rows<T, V>(p, rows, c, [&](int64_t r, float(&v)[4][V]) {
      float g[V];
#pragma unroll
      for (int i = 0; i < V; ++i) g[i] = v[2][i] > 0.f ? v[0][i] + v[1][i] : 0.f;
      store<T, V>(dy_out + r * c + off, g);
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const float gi = to_float(from_float<T>(g[i]));
        sdy[i] += gi;
        sdyx[i] = fmaf(gi, v[3][i] - mu[i], sdyx[i]);
      }
    });
  }
  write_grad_partials<V>(sdy, sdyx, active, c, col, part_dy, part_dyx);
}

// A warp per channel: dbeta, dgamma, and dx = k * dy - kc - kx * (x - mean)'s coefficients.
__global__ void finalize_grad_kernel(const float* part_dy, const float* part_dyx, int slices,
                                     int64_t c, int64_t rows, const float* gamma,
                                     const float* invstd, float* dgamma, float* dbeta, float* k,
                                     float* kc, float* kx) {
  const int64_t ch = global_index() / 32;
  const int lane = threadIdx.x & 31;
  if (ch >= c) return;
  float sdy = 0.f, sdyx = 0.f;
  for (int j = lane; j < slices; j += 32) sdy += part_dy[j * c + ch], sdyx += part_dyx[j * c + ch];
  sdy = warp_sum(sdy);
  sdyx = warp_sum(sdyx);
  if (lane != 0) return;
  const float is = invstd[ch], dg = sdyx * is, kk = gamma[ch] * is, inv_rows = 1.f / rows;
  dbeta[ch] = sdy;
  dgamma[ch] = dg;
  k[ch] = kk;
  kc[ch] = kk * sdy * inv_rows;
  kx[ch] = kk * is * dg * inv_rows;
}

template <class T, int V, bool Relu>
__global__ void __launch_bounds__(kBlock)
    grad_apply_kernel(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx,
                      int64_t rows, int64_t c, const float* __restrict__ gamma,
                      const float* __restrict__ beta, const float* __restrict__ mean,
                      const float* __restrict__ invstd, const float* __restrict__ k,
                      const float* __restrict__ kc, const float* __restrict__ kx) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= c / V) return;
  float mu[V], a[V], b[V], e[V];
  load_f32(mean, col, mu);
  load_f32(k, col, a);
  load_f32(kc, col, b);
  load_f32(kx, col, e);
  const MaybeMask<V, Relu> mask(gamma, beta, mean, invstd, col);
  const int64_t off = col * V;
  const T* p[2] = {dy + off, x + off};
  walk_rows<T, V>(p, rows, c, [&](int64_t r, float(&v)[2][V]) {
    mask.apply(v[0], v[1]);
    float o[V];
#pragma unroll
    for (int i = 0; i < V; ++i) o[i] = fmaf(a[i], v[0][i], -b[i]) - e[i] * (v[1][i] - mu[i]);
    store<T, V>(dx + r * c + off, o);
  });
}

// The cuDNN path's fused ReLU gradient (fp32 NCHW, x viewed as [n, c, inner]): dy_masked = dy where
// x * scale + shift > 0, else 0.
__global__ void relu_mask_nchw_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                                      float* __restrict__ out, int64_t total, int64_t c,
                                      int64_t inner, const float* __restrict__ gamma,
                                      const float* __restrict__ beta,
                                      const float* __restrict__ mean,
                                      const float* __restrict__ invstd) {
  for (int64_t i = global_index(); i < total; i += grid_stride()) {
    const int64_t ch = i / inner % c;
    const float2 a = affine(gamma[ch], beta[ch], mean[ch], invstd[ch]);
    out[i] = __fmaf_rn(x[i], a.x, a.y) > 0.f ? dy[i] : 0.f;
  }
}

// ---- launch shapes
// -------------------------------------------------------------------------------

int multiprocessors() {
  static const int n = [] {
    int device = 0, count = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
      count = 0;
    cudaGetLastError();  // a failed query leaves nothing behind for later launches
    return count > 0 ? count : 132;
  }();
  return n;
}

struct Tiles {
  int v;  // channels per thread
  dim3 block, grid;
  int64_t slices() const { return grid.y; }
};

// Column tiles across, and row slices down to about per_sm blocks per multiprocessor in all (one
// wave of resident blocks: each thread then walks more rows instead of a second, partial wave).
Tiles tiles_for(const BnDims& d, int element_bytes, int per_sm = kMaxPerSm) {
  const int wide = 16 / element_bytes;
  const int v = d.c % wide == 0 ? wide : 1;
  const int64_t cols = d.c / v;
  const int bx = static_cast<int>(std::min<int64_t>(cols, 32));
  const int by = kBlock / bx;
  const int64_t gx = (cols + bx - 1) / bx;
  const int64_t want = std::max<int64_t>(1, per_sm * multiprocessors() / gx);
  const int64_t enough = (d.rows + by * kUnroll - 1) / (by * kUnroll);
  const int64_t gy = std::max<int64_t>(1, std::min<int64_t>({want, enough, 65535}));
  return {v, dim3(bx, by), dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy))};
}

// Blocks of `kernel` resident per multiprocessor (at most kMaxPerSm).
template <class K>
int resident(K kernel) {
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kBlock, 0) != cudaSuccess) {
    cudaGetLastError();
    n = kMaxPerSm;
  }
  return std::clamp(n, 1, kMaxPerSm);
}

// fn(std::bool_constant<on>{}): a run-time flag as a template argument.
template <class Fn>
void with_flag(bool on, Fn&& fn) {
  if (on)
    fn(std::true_type{});
  else
    fn(std::false_type{});
}

// Each kernel's resident blocks per multiprocessor for one storage type and width (apply: without
// and with the residual; the gradient's: without and with the ReLU mask), found once (outside any
// graph capture: bn_workspace_bytes asks first).
struct Residency {
  int stats, apply[3], sums[2], sum_grad_sums, grad_apply[2];
};
template <class T, int V>
const Residency& residency() {
  static const Residency r{
      resident(stats_kernel<T, V>),
      {resident(apply_kernel<T, V, kNoRes>), resident(apply_kernel<T, V, kRes>),
       resident(apply_kernel<T, V, kNormRes>)},
      {resident(grad_sums_kernel<T, V, false>), resident(grad_sums_kernel<T, V, true>)},
      resident(sum_grad_sums_kernel<T, V>),
      {resident(grad_apply_kernel<T, V, false>), resident(grad_apply_kernel<T, V, true>)}};
  return r;
}

// The most row slices any launch for d cuts: the workspace's partial results per channel.
int64_t max_slices(const BnDims& d) {
  return std::max(tiles_for(d, 2).slices(), tiles_for(d, 4).slices());
}

int element_bytes(int type) {
  return type == 0 ? 4 : 2;
}

// The apply pass; with res_scale (and res_shift) the residual is batch-normalized by them.
void apply(FPtr x, FPtr res, FPtr y, const BnDims& d, const float* scale, const float* shift,
           cudaStream_t s, const float* res_scale = nullptr, const float* res_shift = nullptr) {
  if (y.type != x.type || (res.p && res.type != x.type))
    throw DeviceError("batch_norm: x, the residual and y must share one storage type");
  const int bytes = element_bytes(x.type);
  const int mode = !res.p ? kNoRes : res_scale ? kNormRes : kRes;
  dispatch(x.type, tiles_for(d, bytes).v > 1, [&](auto tag, auto v) {
    using T = typename decltype(tag)::type;
    constexpr int V = decltype(v)::value;
    auto launch = [&](auto kernel) {
      const Tiles t = tiles_for(d, bytes, residency<T, V>().apply[mode]);
      kernel<<<t.grid, t.block, 0, s>>>(static_cast<const T*>(x.p), static_cast<const T*>(res.p),
                                        static_cast<T*>(y.p), d.rows, d.c, scale, shift, res_scale,
                                        res_shift, d.relu);
    };
    if (mode == kNormRes)
      launch(apply_kernel<T, V, kNormRes>);
    else if (mode == kRes)
      launch(apply_kernel<T, V, kRes>);
    else
      launch(apply_kernel<T, V, kNoRes>);
  });
  check_launch("batch_norm", "");
}

// The batch statistics of x into save_mean and save_invstd (the running ones updated), and
// y = x * scale + shift's coefficients; `partials` holds 3 * max_slices(d) * d.c floats.
void batch_statistics(FPtr x, const float* gamma, const float* beta, float* running_mean,
                      float* running_var, float* save_mean, float* save_invstd, float* scale,
                      float* shift, const BnDims& d, float* partials, cudaStream_t s) {
  const int bytes = element_bytes(x.type);
  const int64_t part = max_slices(d) * d.c;
  float *pn = partials, *pmean = pn + part, *pm2 = pmean + part;
  int64_t slices = 0;
  dispatch(x.type, tiles_for(d, bytes).v > 1, [&](auto tag, auto v) {
    using T = typename decltype(tag)::type;
    constexpr int V = decltype(v)::value;
    const Tiles t = tiles_for(d, bytes, residency<T, V>().stats);
    slices = t.slices();
    stats_kernel<T, V>
        <<<t.grid, t.block, 0, s>>>(static_cast<const T*>(x.p), d.rows, d.c, pn, pmean, pm2);
  });
  check_launch("batch_norm statistics", "");
  finalize_stats_kernel<<<blocks_for_all(d.c * 32), kThreads, 0, s>>>(
      pn, pmean, pm2, static_cast<int>(slices), d.c, gamma, beta, running_mean, running_var,
      save_mean, save_invstd, scale, shift, d.eps, d.momentum);
  check_launch("batch_norm statistics (combine)", "");
}

}  // namespace

size_t bn_workspace_bytes(const BnDims& d, int type) {
  dispatch(type, tiles_for(d, element_bytes(type)).v > 1,
           [](auto tag, auto v) { residency<typename decltype(tag)::type, decltype(v)::value>(); });
  return static_cast<size_t>(3 * max_slices(d) * d.c + 4 * d.c) * sizeof(float);
}

void bn_forward_train(FPtr x, FPtr res, FPtr y, const float* gamma, const float* beta,
                      float* running_mean, float* running_var, float* save_mean, float* save_invstd,
                      const BnDims& d, void* workspace, cudaStream_t s,
                      const BnShortcut* shortcut) {
  float* partials = static_cast<float*>(workspace);
  float *scale = partials + 3 * max_slices(d) * d.c, *shift = scale + d.c;
  batch_statistics(x, gamma, beta, running_mean, running_var, save_mean, save_invstd, scale, shift,
                   d, partials, s);
  if (!shortcut) return apply(x, res, y, d, scale, shift, s);
  const BnShortcut& b = *shortcut;  // its statistics after x's, in the same partials
  float *res_scale = shift + d.c, *res_shift = res_scale + d.c;
  batch_statistics(b.x, b.gamma, b.beta, b.running_mean, b.running_var, b.save_mean, b.save_invstd,
                   res_scale, res_shift, d, partials, s);
  apply(x, b.x, y, d, scale, shift, s, res_scale, res_shift);
}

void bn_forward_infer(FPtr x, FPtr res, FPtr y, const float* gamma, const float* beta,
                      const float* running_mean, const float* running_var, const BnDims& d,
                      void* workspace, cudaStream_t s) {
  float* scale = static_cast<float*>(workspace);
  float* shift = scale + d.c;
  inference_coefficients_kernel<<<blocks_for_all(d.c), kThreads, 0, s>>>(
      gamma, beta, running_mean, running_var, d.c, d.eps, scale, shift);
  check_launch("batch_norm coefficients", "");
  apply(x, res, y, d, scale, shift, s);
}

void bn_backward(FPtr dy, FPtr x, FPtr dx, const float* gamma, const float* beta, const float* mean,
                 const float* invstd, float* dgamma, float* dbeta, const BnDims& d, void* workspace,
                 cudaStream_t s, const SumGrad& sum) {
  const bool of_sum = sum.out.p != nullptr;
  for (FPtr p : {dy, dx, sum.b, sum.mask, sum.out})
    if (p.p && p.type != x.type)
      throw DeviceError(
          "batch_norm_grad: dy, x and dx (and a sum's operands) must share one "
          "storage type");
  if (of_sum && d.relu) throw DeviceError("batch_norm_grad: a sum's gradient with a fused ReLU");
  const int bytes = element_bytes(x.type);
  const int64_t part = max_slices(d) * d.c;
  float* pdy = static_cast<float*>(workspace);
  float *pdyx = pdy + part, *k = pdyx + part, *kc = k + d.c, *kx = kc + d.c;
  dispatch(x.type, tiles_for(d, bytes).v > 1, [&](auto tag, auto v) {
    using T = typename decltype(tag)::type;
    constexpr int V = decltype(v)::value;
    const auto* xp = static_cast<const T*>(x.p);
    // dy as the elementwise pass reads it: the sum's, written by the sums pass.
    const auto* dyp = static_cast<const T*>(of_sum ? sum.out.p : dy.p);
    with_flag(d.relu, [&](auto flag) {
      constexpr bool relu = decltype(flag)::value;
      int64_t slices;
      if (of_sum) {
        const Tiles sums = tiles_for(d, bytes, residency<T, V>().sum_grad_sums);
        slices = sums.slices();
        sum_grad_sums_kernel<T, V><<<sums.grid, sums.block, 0, s>>>(
            static_cast<const T*>(dy.p), static_cast<const T*>(sum.b.p),
            static_cast<const T*>(sum.mask.p), xp, static_cast<T*>(sum.out.p), d.rows, d.c, mean,
            pdy, pdyx);
      } else {
        const Tiles sums = tiles_for(d, bytes, residency<T, V>().sums[relu]);
        slices = sums.slices();
        grad_sums_kernel<T, V, relu><<<sums.grid, sums.block, 0, s>>>(
            dyp, xp, d.rows, d.c, gamma, beta, mean, invstd, pdy, pdyx);
      }
      check_launch("batch_norm_grad sums", "");
      finalize_grad_kernel<<<blocks_for_all(d.c * 32), kThreads, 0, s>>>(
          pdy, pdyx, static_cast<int>(slices), d.c, d.rows, gamma, invstd, dgamma, dbeta, k, kc,
          kx);
      check_launch("batch_norm_grad (combine)", "");
      const Tiles t = tiles_for(d, bytes, residency<T, V>().grad_apply[relu]);
      grad_apply_kernel<T, V, relu><<<t.grid, t.block, 0, s>>>(
          dyp, xp, static_cast<T*>(dx.p), d.rows, d.c, gamma, beta, mean, invstd, k, kc, kx);
      check_launch("batch_norm_grad", "");
    });
  });
}

void bn_relu_grad_mask_nchw(const float* dy, const float* x, float* out, int64_t n, int64_t c,
                            int64_t inner, const float* gamma, const float* beta, const float* mean,
                            const float* invstd, cudaStream_t s) {
  const int64_t total = n * c * inner;
  relu_mask_nchw_kernel<<<blocks_for(total), kThreads, 0, s>>>(dy, x, out, total, c, inner, gamma,
                                                               beta, mean, invstd);
  check_launch("batch_norm_grad (ReLU mask)", "");
}

}  // namespace myelin::cuda
