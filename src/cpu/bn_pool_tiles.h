// The pieces both fused batch norm + ReLU + 2x2 max pooling kernels (bn_pool.cpp, forward, and
// bn_pool_grad.cpp, gradient) work with. The work goes by units of one image's channel block: a
// tile of h*w pixels x L lanes (L = 16 or 8, the blocked operands' block; 16 where all are plain),
// made from plain rows where an operand is plain (blocked.h), in the calling thread's buffers.
// The tile loops below compute a unit's part of each pass; they are compiled for AVX-512, AVX2
// and baseline x86-64 (simd.h) in bn_pool_tiles.cpp, and take `lanes` (8 or 16) at run time.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "core/backend.h"
#include "cpu/blocked.h"

namespace myelin::cpu::bn_pool {

// The activation x's geometry (n, c, h, w), the pooled output's (oh, ow), and the tiles' lanes.
struct Geometry {
  int64_t n, c, h, w, oh, ow, lanes;
  Geometry(const Shape& x, const Shape& p, int64_t lanes_)
      : n(x[0]), c(x[1]), h(x[2]), w(x[3]), oh(p[2]), ow(p[3]), lanes(lanes_) {}
  int64_t blocks() const { return channel_blocks(c, lanes); }
  int64_t padded() const { return blocks() * lanes; }  // per-channel arrays, lanes included
  int64_t units() const { return n * blocks(); }
  int64_t real(int64_t c0) const { return std::min(lanes, c - c0); }
  double per_channel() const { return static_cast<double>(n * h * w); }
};

// The block of the operands stored blocked, or 16 where none is (the tiles convert them all).
int64_t tile_lanes(const KernelSpec& s);

// One activation operand of `pixels` pixels a channel: a blocked one is read and written in
// place, a plain one through a tile of the calling thread (`buf`).
struct Operand {
  float* base;
  bool blocked;
  int64_t pixels;
  int64_t tile_at(const Geometry& g, int64_t n, int64_t c0) const {
    return (n * g.blocks() + c0 / g.lanes) * g.lanes * pixels;
  }
  const float* read(const Geometry& g, int64_t n, int64_t c0, float* buf) const {
    if (blocked) return base + tile_at(g, n, c0);
    rows_to_tile(base + (n * g.c + c0) * pixels, pixels, g.real(c0), buf, g.lanes);
    return buf;
  }
  float* target(const Geometry& g, int64_t n, int64_t c0, float* buf) const {
    return blocked ? base + tile_at(g, n, c0) : buf;
  }
  void written(const Geometry& g, int64_t n, int64_t c0, const float* buf) const {
    if (!blocked) tile_to_rows(buf, pixels, g.real(c0), base + (n * g.c + c0) * pixels, g.lanes);
  }
};

inline Operand operand(const Tensor& t, Layout layout, const Shape& shape) {
  return {t.f32(), is_blocked(layout), shape[2] * shape[3]};
}

// The workspace of both kernels: per-image partial sums (doubles), per-channel float arrays,
// then each thread's tiles.
struct Workspace {
  int64_t partial_doubles, channel_floats, tile_floats;
  int threads;
  size_t bytes() const {
    return static_cast<size_t>(partial_doubles) * sizeof(double) +
           static_cast<size_t>(channel_floats + tile_floats * threads) * sizeof(float);
  }
  double* partials(void* ws) const { return static_cast<double*>(ws); }
  float* channels(void* ws) const {
    return reinterpret_cast<float*>(partials(ws) + partial_doubles);
  }
  float* tiles(void* ws, int64_t t) const {
    return channels(ws) + channel_floats + t * tile_floats;
  }
};

// Runs unit(n, c0, t) on the calling thread t's share of the (image, channel block) units.
template <class Unit>
void for_my_units(const Geometry& g, Unit unit) {
  const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads(), units = g.units();
  for (int64_t r = units * t / nt; r < units * (t + 1) / nt; ++r)
    unit(r / g.blocks(), r % g.blocks() * g.lanes, t);
}

// Runs unit(n, c0, blocks, t) on the calling thread t's share of the units of `per` channel blocks
// of an image (the last of each image fewer where `per` does not divide the blocks).
template <class Unit>
void for_my_groups(const Geometry& g, int64_t per, Unit unit) {
  const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
  const int64_t groups = (g.blocks() + per - 1) / per, units = g.n * groups;
  for (int64_t r = units * t / nt; r < units * (t + 1) / nt; ++r) {
    const int64_t b0 = r % groups * per;
    unit(r / groups, b0 * g.lanes, std::min(per, g.blocks() - b0), t);
  }
}

// --- Loops over one tile ([pixel][L], one channel per lane): x and dx tiles of h*w pixels, p and
// dp tiles of oh*ow (x's 2x2 windows; rows and columns past the last window, at odd sizes, pool
// nothing). scale and shift: the batch norm's affine form, z = max(x * scale + shift, 0). ---

// The pooled z of one tile: p[oy][ox] = max of the window's four z.
void tile_pool(int64_t lanes, const float* x, float* p, int64_t w, int64_t oh, int64_t ow,
               const float* scale, const float* shift);

// Per lane: sum(dz) and sum(dz * (x - mean)) of one tile, added to the running totals. dz: the
// pooling and ReLU gradient of dp (dp at each window's first maximum of z where that is above 0,
// 0 elsewhere).
void tile_grad_sums(int64_t lanes, const float* x, const float* dp, int64_t w, int64_t oh,
                    int64_t ow, const float* scale, const float* shift, const float* mean,
                    double* sum_dz, double* sum_dxm);

// dx = ga * dz + gb * x + gk over one tile.
void tile_grad_input(int64_t lanes, const float* x, const float* dp, float* dx, int64_t h,
                     int64_t w, int64_t oh, int64_t ow, const float* scale, const float* shift,
                     const float* ga, const float* gb, const float* gk);

// dz of one tile itself, and tile_grad_sums' sums: for the fused convolution's gradient.
void tile_dz(int64_t lanes, const float* x, const float* dp, float* dz, int64_t h, int64_t w,
             int64_t oh, int64_t ow, const float* scale, const float* shift, const float* mean,
             double* sum_dz, double* sum_dxm);

// y = a + b over n floats (y may be a): dp made of its two addends.
void add_tiles(const float* a, const float* b, float* y, int64_t n);

}  // namespace myelin::cpu::bn_pool
