// Max and average pooling, each operand NCHW or NHWC, with the CPU engine's windows: output o
// covers input rows [o*stride - pad, +kernel), clipped to the input; with count_include_pad the
// divisor counts the window clipped to [-pad, in + pad) (Caffe/PyTorch). Backward max gives each dy
// to the first element of its window equal to y: gathering where every operand is NHWC of one
// type (PoolDims::gather), else by atomics; backward average gathers, so it needs no atomics.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

struct Win {
  int h0, h1, w0, w1, divisor;
};

__device__ __forceinline__ Win window(const PoolDims& d, int oy, int ox) {
  int hs = oy * d.sh - d.ph, ws = ox * d.sw - d.pw;
  Win w{max(hs, 0), min(hs + d.kh, static_cast<int>(d.h)), max(ws, 0),
        min(ws + d.kw, static_cast<int>(d.w)), 0};
  if (d.include_pad)
    w.divisor = (min(hs + d.kh, static_cast<int>(d.h) + d.ph) - hs) *
                (min(ws + d.kw, static_cast<int>(d.w) + d.pw) - ws);
  else
    w.divisor = (w.h1 - w.h0) * (w.w1 - w.w0);
  return w;
}

// Where element (n, c, y, x) of a [n, C, H, W] tensor lies, in either layout.
// I is int where every offset fits (32-bit division is much cheaper), else int64_t.
template <class I>
__device__ __forceinline__ I at(bool nhwc, I n, I c, int y, int x, I C, I H, I W) {
  return nhwc ? ((n * H + y) * W + x) * C + c : ((n * C + c) * H + y) * W + x;
}

template <class I>
struct Pos {
  I n, c;
  int y, x;
};

// The element at offset i of a [n, C, H, W] tensor: threads walk a tensor in its memory order,
// so their loads and stores are coalesced in either layout.
template <class I>
__device__ __forceinline__ Pos<I> pos_of(I i, bool nhwc, I C, I H, I W) {
  if (nhwc) {
    I r = i / C;
    return {r / (H * W), i % C, static_cast<int>(r / W % H), static_cast<int>(r % W)};
  }
  I r = i / (H * W);
  return {r / C, r % C, static_cast<int>(i / W % H), static_cast<int>(i % W)};
}

// The sizes of the input (C, H, W) and the output (OH, OW) in the kernel's index type.
template <class I>
struct Sizes {
  I C, H, W, OH, OW;
};
template <class I>
__device__ __forceinline__ Sizes<I> sizes(const PoolDims& d) {
  return {static_cast<I>(d.c), static_cast<I>(d.h), static_cast<I>(d.w), static_cast<I>(d.oh),
          static_cast<I>(d.ow)};
}

// Calls body(i, p) for each 16-byte vector i of an NHWC [n, C, H, W] tensor of T whose 16 bytes
// hold whole channels, p the position of its first element: a grid-stride loop in index type I.
template <class T, class I, class Body>
__device__ __forceinline__ void for_each_vector(int64_t n, I C, I H, I W, Body body) {
  constexpr int V = kPer16<T>;
  const I total = static_cast<I>(n) * H * W * (C / V);
  for (I i = static_cast<I>(global_index()); i < total; i += static_cast<I>(grid_stride()))
    body(i, pos_of(i * V, true, C, H, W));
}

// V bytes (4 or 8: a byte per channel of a 16-byte vector of fp32 or 16-bit values) at a
// V-aligned address, as one load or store.
template <int V>
using ByteVec = std::conditional_t<V == 8, uint2, uint32_t>;
template <int V>
__device__ __forceinline__ void load_bytes(const uint8_t* p, uint8_t (&b)[V]) {
  static_assert(V == 4 || V == 8);
  const ByteVec<V> v = *reinterpret_cast<const ByteVec<V>*>(p);
  memcpy(b, &v, V);
}
template <int V>
__device__ __forceinline__ void store_bytes(uint8_t* p, const uint8_t (&b)[V]) {
  static_assert(V == 4 || V == 8);
  ByteVec<V> v;
  memcpy(&v, b, V);
  *reinterpret_cast<ByteVec<V>*>(p) = v;
}

// Where input row iy, column ix lies in output (oy, ox)'s window, unclipped, counted row by row:
// the byte a pick records (max_window_vec, max_forward), and the input pixel a pick names.
__device__ __forceinline__ uint8_t window_pos(const PoolDims& d, int oy, int ox, int iy, int ix) {
  return static_cast<uint8_t>((iy - (oy * d.sh - d.ph)) * d.kw + (ix - (ox * d.sw - d.pw)));
}
__device__ __forceinline__ void picked_pixel(const PoolDims& d, int oy, int ox, uint8_t pos,
                                             int& iy, int& ix) {
  iy = oy * d.sh - d.ph + pos / d.kw;
  ix = ox * d.sw - d.pw + pos % d.kw;
}

// A thread per output element: y, and where `picks` is not null the position of the window's
// first maximum at y's NHWC offset (pass_max_pool_picks).
template <class I>
__global__ void max_forward(FPtr x, FPtr y, uint8_t* __restrict__ picks, PoolDims d) {
  const auto [C, H, W, OH, OW] = sizes<I>(d);
  const I total = static_cast<I>(d.n) * C * OH * OW;
  for (I o = static_cast<I>(global_index()); o < total; o += static_cast<I>(grid_stride())) {
    Pos<I> q = pos_of(o, d.y_nhwc, C, OH, OW);
    Win w = window(d, q.y, q.x);
    float m = -INFINITY;
    uint8_t pick = 0;
    for (int iy = w.h0; iy < w.h1; ++iy)
      for (int ix = w.w0; ix < w.w1; ++ix) {
        const float e = ld(x, at(d.x_nhwc, q.n, q.c, iy, ix, C, H, W));
        if (e > m) m = e, pick = window_pos(d, q.y, q.x, iy, ix);  // NaN never wins
      }
    st(y, o, m);
    if (picks) picks[at(true, q.n, q.c, q.y, q.x, C, OH, OW)] = pick;
  }
}

// Each window's maximum where x and y are NHWC of type T and 16 bytes hold V whole channels: a
// thread per output pixel and V channels, each window element read as one 16-byte vector. Writes
// y where it is not null and the window's picks (max_forward's) where `arg` is not null.
template <class T, class I>
__global__ void max_window_vec(const T* __restrict__ x, T* __restrict__ y,
                               uint8_t* __restrict__ arg, PoolDims d) {
  constexpr int V = kPer16<T>;
  const auto [C, H, W, OH, OW] = sizes<I>(d);
  for_each_vector<T>(d.n, C, OH, OW, [&](I i, const Pos<I>& q) {
    const Win w = window(d, q.y, q.x);
    float m[V];
    uint8_t a[V];
#pragma unroll
    for (int k = 0; k < V; ++k) m[k] = -INFINITY, a[k] = 0;
    for (int iy = w.h0; iy < w.h1; ++iy)
      for (int ix = w.w0; ix < w.w1; ++ix) {
        float e[V];
        load16<T>(x, at(true, q.n, q.c, iy, ix, C, H, W) / V, e);
        const uint8_t pos = window_pos(d, q.y, q.x, iy, ix);
#pragma unroll
        for (int k = 0; k < V; ++k)
          if (e[k] > m[k]) m[k] = e[k], a[k] = pos;  // the first maximum stays; NaN never wins
      }
    if (y) store16<T>(y, i, m);
    if (arg) store_bytes<V>(arg + i * V, a);
  });
}

// Each dy goes to the first element of its window equal to y, compared in y's precision (y may
// be stored in fewer bits than x), added with atomics into fp32 dx (windows may overlap).
template <class I>
__global__ void max_backward(FPtr dy, FPtr x, FPtr y, float* dx, PoolDims d) {
  const auto [C, H, W, OH, OW] = sizes<I>(d);
  const I total = static_cast<I>(d.n) * C * OH * OW;
  for (I o = static_cast<I>(global_index()); o < total; o += static_cast<I>(grid_stride())) {
    Pos<I> q = pos_of(o, d.y_nhwc, C, OH, OW);
    Win w = window(d, q.y, q.x);
    float m = ld(y, o);
    for (int iy = w.h0; iy < w.h1; ++iy)
      for (int ix = w.w0; ix < w.w1; ++ix)
        if (rounded(y.type, ld(x, at(d.x_nhwc, q.n, q.c, iy, ix, C, H, W))) == m) {
          atomicAdd(dx + at(d.dx_nhwc, q.n, q.c, iy, ix, C, H, W),
                    ld(dy, at(d.dy_nhwc, q.n, q.c, q.y, q.x, C, OH, OW)));
          iy = w.h1;  // first match only
          break;
        }
  }
}

// The outputs whose window covers input row i: o*s - p <= i < o*s - p + k.
__device__ __forceinline__ void covering(int i, int k, int s, int p, int out, int& lo, int& hi) {
  int num = i + p - k + 1;
  lo = num <= 0 ? 0 : (num + s - 1) / s;
  hi = min((i + p) / s, out - 1);
}

// max_backward by gathering, where every operand is NHWC of one type T and 16 bytes hold V whole
// channels: a thread per input pixel and V channels sums the dy of each window covering it whose
// first element equal to y (in scan order) is this one. Only the lanes where this pixel equals
// the window's maximum scan the window's x before it, and the scan stops once no lane is left.
// No atomics, no fp32 scratch, dx written once; the scans read x through the cache.
template <class T>
__global__ void max_backward_gather(const T* __restrict__ dy, const T* __restrict__ x,
                                    const T* __restrict__ y, T* __restrict__ dx, PoolDims d) {
  constexpr int V = kPer16<T>;
  for_each_vector<T>(d.n, d.c, d.h, d.w, [&](int64_t i, const Pos<int64_t>& p) {
    const int64_t n = p.n, c0 = p.c;
    const int iy = p.y, ix = p.x;
    // The 16-byte vectors of x at (qy, qx) and of y and dy at output o, as load16 counts them.
    auto x_at = [&](int qy, int qx) { return at(true, n, c0, qy, qx, d.c, d.h, d.w) / V; };
    int y0, y1, x0, x1;
    covering(iy, d.kh, d.sh, d.ph, static_cast<int>(d.oh), y0, y1);
    covering(ix, d.kw, d.sw, d.pw, static_cast<int>(d.ow), x0, x1);
    float v[V], g[V];
    load16<T>(x, x_at(iy, ix), v);
#pragma unroll
    for (int k = 0; k < V; ++k) g[k] = 0.f;
    for (int oy = y0; oy <= y1; ++oy)
      for (int ox = x0; ox <= x1; ++ox) {
        const int64_t o = at(true, n, c0, oy, ox, d.c, d.oh, d.ow) / V;
        float m[V];
        load16<T>(y, o, m);
        bool mine[V];  // this pixel is the lane's maximum, and no element before it is
        bool any = false;
#pragma unroll
        for (int k = 0; k < V; ++k) any |= mine[k] = v[k] == m[k];
        const Win w = window(d, oy, ox);
        for (int qy = w.h0; any && qy <= iy; ++qy)
          for (int qx = w.w0; any && qx < (qy == iy ? ix : w.w1); ++qx) {
            float e[V];
            load16<T>(x, x_at(qy, qx), e);
            any = false;
#pragma unroll
            for (int k = 0; k < V; ++k) any |= mine[k] = mine[k] && e[k] != m[k];
          }
        if (!any) continue;
        float gy[V];
        load16<T>(dy, o, gy);
#pragma unroll
        for (int k = 0; k < V; ++k)
          if (mine[k]) g[k] += gy[k];
      }
    store16<T>(dx, i, g);
  });
}

// The max-pool gradient from the forward pass's picks where dy and dx gather (NHWC of one type T,
// V whole channels in 16 bytes): each input pixel sums the dy of the covering windows whose byte
// names it. No scan of x per covering window (gathering scans the elements before a candidate
// whenever a lane of it equals the window's maximum, most windows with 8 lanes), no atomics.
template <class T, class I>
__global__ void max_backward_picks_vec(const T* __restrict__ dy, const uint8_t* __restrict__ arg,
                                       T* __restrict__ dx, PoolDims d) {
  constexpr int V = kPer16<T>;
  const auto [C, H, W, OH, OW] = sizes<I>(d);
  for_each_vector<T>(d.n, C, H, W, [&](I i, const Pos<I>& p) {
    int y0, y1, x0, x1;
    covering(p.y, d.kh, d.sh, d.ph, static_cast<int>(OH), y0, y1);
    covering(p.x, d.kw, d.sw, d.pw, static_cast<int>(OW), x0, x1);
    float g[V];
#pragma unroll
    for (int k = 0; k < V; ++k) g[k] = 0.f;
    for (int oy = y0; oy <= y1; ++oy)
      for (int ox = x0; ox <= x1; ++ox) {
        const I o = at(true, p.n, p.c, oy, ox, C, OH, OW);  // y's element, arg's byte
        const uint8_t pos = window_pos(d, oy, ox, p.y, p.x);
        uint8_t a[V];
        load_bytes<V>(arg + o, a);
        bool any = false;
#pragma unroll
        for (int k = 0; k < V; ++k) any |= a[k] == pos;
        if (!any) continue;
        float gy[V];
        load16<T>(dy, o / V, gy);
#pragma unroll
        for (int k = 0; k < V; ++k)
          if (a[k] == pos) g[k] += gy[k];
      }
    store16<T>(dx, i, g);
  });
}

// The max-pool gradient from the picks otherwise: a thread per element of dy adds it to the
// pixel its window's byte names, with atomics into fp32 dx (windows may overlap).
template <class I>
__global__ void max_backward_picks(FPtr dy, const uint8_t* __restrict__ picks, float* dx,
                                   PoolDims d) {
  const auto [C, H, W, OH, OW] = sizes<I>(d);
  const I total = static_cast<I>(d.n) * C * OH * OW;
  for (I o = static_cast<I>(global_index()); o < total; o += static_cast<I>(grid_stride())) {
    Pos<I> q = pos_of(o, d.dy_nhwc, C, OH, OW);
    int iy, ix;
    picked_pixel(d, q.y, q.x, picks[at(true, q.n, q.c, q.y, q.x, C, OH, OW)], iy, ix);
    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;  // a window of NaN picks nothing real
    atomicAdd(dx + at(d.dx_nhwc, q.n, q.c, iy, ix, C, H, W), ld(dy, o));
  }
}

__global__ void store_kernel(const float* x, FPtr y, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) st(y, i, x[i]);
}

template <class I>
__global__ void avg_forward(FPtr x, FPtr y, PoolDims d) {
  const auto [C, H, W, OH, OW] = sizes<I>(d);
  const I total = static_cast<I>(d.n) * C * OH * OW;
  for (I o = static_cast<I>(global_index()); o < total; o += static_cast<I>(grid_stride())) {
    Pos<I> q = pos_of(o, d.y_nhwc, C, OH, OW);
    Win w = window(d, q.y, q.x);
    float sum = 0;
    for (int iy = w.h0; iy < w.h1; ++iy)
      for (int ix = w.w0; ix < w.w1; ++ix) sum += ld(x, at(d.x_nhwc, q.n, q.c, iy, ix, C, H, W));
    st(y, o, sum / static_cast<float>(w.divisor));
  }
}

template <class I>
__global__ void avg_backward(FPtr dy, FPtr dx, PoolDims d) {
  const auto [C, H, W, OH, OW] = sizes<I>(d);
  const I total = static_cast<I>(d.n) * C * H * W;
  for (I i = static_cast<I>(global_index()); i < total; i += static_cast<I>(grid_stride())) {
    Pos<I> q = pos_of(i, d.dx_nhwc, C, H, W);
    int y0, y1, x0, x1;
    covering(q.y, d.kh, d.sh, d.ph, static_cast<int>(d.oh), y0, y1);
    covering(q.x, d.kw, d.sw, d.pw, static_cast<int>(d.ow), x0, x1);
    float sum = 0;
    for (int oy = y0; oy <= y1; ++oy)
      for (int ox = x0; ox <= x1; ++ox)
        sum += ld(dy, at(d.dy_nhwc, q.n, q.c, oy, ox, C, OH, OW)) /
               static_cast<float>(window(d, oy, ox).divisor);
    st(dx, i, sum);
  }
}

// Every offset of every operand fits an int, with room for the grid stride.
bool small(const PoolDims& d) {
  return std::max(d.h * d.w, d.oh * d.ow) * d.n * d.c < (int64_t{1} << 30);
}

// Launches kernel<int> (32-bit division is much cheaper) where small(d), else kernel<int64_t>,
// one thread per element of `elements`, and checks the launch.
template <class... Args>
void launch_indexed(void (*k32)(Args...), void (*k64)(Args...), const PoolDims& d, int64_t elements,
                    cudaStream_t s, const char* name, Args... args) {
  unsigned blocks = blocks_for(elements);
  if (small(d))
    k32<<<blocks, kThreads, 0, s>>>(args...);
  else
    k64<<<blocks, kThreads, 0, s>>>(args...);
  check_launch(name, "");
}

// The vectorized kernels' operands: one type, 16-byte aligned.
void require_vectors(const char* what, std::initializer_list<FPtr> operands) {
  for (FPtr p : operands)
    if (p.type != operands.begin()->type || reinterpret_cast<uintptr_t>(p.p) % 16 != 0)
      throw DeviceError(std::string(what) + ": 16-byte vectors need aligned operands of one type");
}

}  // namespace

void max_pool_forward(FPtr x, FPtr y, uint8_t* picks, const PoolDims& d, cudaStream_t s) {
  if (d.vectorized) {
    require_vectors("max_pool_forward", {x, y});
    with_type(y.type, [&](auto t) {
      using T = decltype(t);
      launch_indexed(max_window_vec<T, int>, max_window_vec<T, int64_t>, d,
                     d.n * d.oh * d.ow * d.c / kPer16<T>, s, "max_pool_forward",
                     static_cast<const T*>(x.p), static_cast<T*>(y.p), picks, d);
    });
    return;
  }
  launch_indexed(max_forward<int>, max_forward<int64_t>, d, d.n * d.c * d.oh * d.ow, s,
                 "max_pool_forward", x, y, picks, d);
}

namespace {

// dx = 0, then scatter(acc) adds each dy into fp32: into dx itself, or into `scratch` when dx is
// 16-bit, then stored.
template <class Scatter>
void scatter_into(FPtr dx, float* scratch, const PoolDims& d, cudaStream_t s, Scatter scatter) {
  const int64_t n = d.n * d.c * d.h * d.w;
  float* acc = dx.type == 0 ? static_cast<float*>(dx.p) : scratch;
  MYELIN_CHECK(cudaMemsetAsync(acc, 0, sizeof(float) * n, s), "max_pool_backward");
  scatter(acc);
  if (acc != dx.p) {
    store_kernel<<<blocks_for(n), kThreads, 0, s>>>(acc, dx, n);
    check_launch("max_pool_backward (store)", "");
  }
}

}  // namespace

void max_pool_backward(FPtr dy, FPtr x, FPtr y, FPtr dx, float* scratch, const PoolDims& d,
                       cudaStream_t s) {
  if (d.argmax) {  // the picks from x into scratch (a byte per element of y), then gathered
    auto* picks = reinterpret_cast<uint8_t*>(scratch);
    PoolDims f = d;
    f.vectorized = true;  // gathering's operands are what the vectorized forward takes
    max_pool_forward(x, FPtr{nullptr, x.type}, picks, f, s);
    return max_pool_backward_picks(dy, picks, dx, nullptr, d, s);
  }
  if (d.gather) {
    require_vectors("max_pool_backward", {dy, x, y, dx});
    with_type(dx.type, [&](auto t) {
      using T = decltype(t);
      max_backward_gather<T><<<blocks_for(d.n * d.c * d.h * d.w / kPer16<T>), kThreads, 0, s>>>(
          static_cast<const T*>(dy.p), static_cast<const T*>(x.p), static_cast<const T*>(y.p),
          static_cast<T*>(dx.p), d);
    });
    check_launch("max_pool_backward", "");
    return;
  }
  scatter_into(dx, scratch, d, s, [&](float* acc) {
    launch_indexed(max_backward<int>, max_backward<int64_t>, d, d.n * d.c * d.oh * d.ow, s,
                   "max_pool_backward", dy, x, y, acc, d);
  });
}

void max_pool_backward_picks(FPtr dy, const uint8_t* picks, FPtr dx, float* scratch,
                             const PoolDims& d, cudaStream_t s) {
  if (d.gather) {
    require_vectors("max_pool_backward", {dy, dx});
    with_type(dx.type, [&](auto t) {
      using T = decltype(t);
      launch_indexed(max_backward_picks_vec<T, int>, max_backward_picks_vec<T, int64_t>, d,
                     d.n * d.c * d.h * d.w / kPer16<T>, s, "max_pool_backward",
                     static_cast<const T*>(dy.p), picks, static_cast<T*>(dx.p), d);
    });
    return;
  }
  scatter_into(dx, scratch, d, s, [&](float* acc) {
    launch_indexed(max_backward_picks<int>, max_backward_picks<int64_t>, d, d.n * d.c * d.oh * d.ow,
                   s, "max_pool_backward", dy, picks, acc, d);
  });
}

void avg_pool_forward(FPtr x, FPtr y, const PoolDims& d, cudaStream_t s) {
  launch_indexed(avg_forward<int>, avg_forward<int64_t>, d, d.n * d.c * d.oh * d.ow, s,
                 "avg_pool_forward", x, y, d);
}

void avg_pool_backward(FPtr dy, FPtr dx, const PoolDims& d, cudaStream_t s) {
  launch_indexed(avg_backward<int>, avg_backward<int64_t>, d, d.n * d.c * d.h * d.w, s,
                 "avg_pool_backward", dy, dx, d);
}

}  // namespace myelin::cuda
