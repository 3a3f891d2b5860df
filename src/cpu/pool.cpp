// Pooling kernels. Own row kernels for 2x2 max pooling with stride 2 (the common case; NCHW here,
// nChw16c/nChw8c in pool_blocked.cpp), else oneDNN's pooling primitives for max forward and for
// average forward and backward (where oneDNN's divisor is ours), on plain NCHW or on blocked
// layouts (blocked.h); OpenMP loops over (n, c) planes, or (n, channel block) planes when blocked
// (pool_blocked.cpp), for the max gradient, which recomputes each window's argmax from x and y so
// that no workspace outlives the forward pass, and for averages oneDNN would divide differently.
//
// Windows follow Caffe/PyTorch: output o covers input rows [o*stride - pad, +kernel). With
// ceil_mode the last window may overhang the right padding; the overhang is never counted, so
// count_include_pad divides by the window clipped to [-pad, in + pad) and the exclusive divisor
// counts the real elements only.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/blocked.h"
#include "cpu/dnnl_util.h"
#include "cpu/fuse.h"
#include "cpu/pool_geometry.h"
#include "cpu/simd.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

dnnl::pooling_forward::desc pooling_desc(const PoolGeometry& g, dnnl::prop_kind prop,
                                         dnnl::algorithm alg, const memory::desc& src,
                                         const memory::desc& dst) {
  return {prop,
          alg,
          src,
          dst,
          {g.p.stride_h, g.p.stride_w},
          {g.p.kernel_h, g.p.kernel_w},
          {g.p.pad_h, g.p.pad_w},
          {g.pad_r_h(), g.pad_r_w()}};
}

// oneDNN pooling on tensors as stored (NCHW or nChw16c, the same on both sides): max forward
// (inference kind: no workspace), average forward (training kind, which needs no workspace for
// averages and gets the JIT kernel), and average backward.
class DnnlPool : public Kernel {
 public:
  DnnlPool(const KernelSpec& s, dnnl::algorithm alg, bool backward) : seq_(cpu_backend(s), s.node) {
    Shape x = backward ? Shape(s.node.attrs.ints("input_shape", {})) : s.input(0).shape;
    PoolGeometry g(x, s.node.attrs);
    // The source of the forward pass is the output of the backward pass.
    Layout layout = backward ? s.output_layout(0) : s.input_layout(0);
    auto src = stored_desc(x, layout), dst = stored_desc(Shape{g.n, g.c, g.oh, g.ow}, layout);
    dnnl::engine& eng = cpu_backend(s).engine();
    auto prop = alg == dnnl::algorithm::pooling_max ? dnnl::prop_kind::forward_inference
                                                    : dnnl::prop_kind::forward_training;
    dnnl_call(s.node, backward ? "pooling_backward" : "pooling_forward", [&] {
      dnnl::pooling_forward::primitive_desc fwd(pooling_desc(g, prop, alg, src, dst),
                                                user_scratchpad_attr(), eng);
      if (!backward) {
        seq_.add(dnnl::pooling_forward(fwd),
                 {{DNNL_ARG_SRC, seq_.input(0, src)}, {DNNL_ARG_DST, seq_.output(0, dst)}},
                 fwd.scratchpad_desc(), "pooling_forward");
        return;
      }
      dnnl::pooling_backward::desc d(alg, src, dst, {g.p.stride_h, g.p.stride_w},
                                     {g.p.kernel_h, g.p.kernel_w}, {g.p.pad_h, g.p.pad_w},
                                     {g.pad_r_h(), g.pad_r_w()});
      dnnl::pooling_backward::primitive_desc bwd(d, user_scratchpad_attr(), eng, fwd);
      seq_.add(dnnl::pooling_backward(bwd),
               {{DNNL_ARG_DIFF_DST, seq_.input(0, dst)}, {DNNL_ARG_DIFF_SRC, seq_.output(0, src)}},
               bwd.scratchpad_desc(), "pooling_backward");
    });
  }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    seq_.run(in, out, ctx.workspace);
  }
  size_t workspace_bytes() const override { return seq_.workspace_bytes(); }

 private:
  DnnlSequence seq_;
};

// Average pooling where oneDNN's divisor differs (see dnnl_avg_matches).
class AvgPoolForwardLoop : public Kernel {
 public:
  explicit AvgPoolForwardLoop(const KernelSpec& s) : g_(s.input(0).shape, s.node.attrs) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const float* x = in[0].f32();
    float* y = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
      const float* xp = x + plane * g.h * g.w;
      float* yp = y + plane * g.oh * g.ow;
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          float sum = 0;
          for (int64_t iy = g.rows.begin[oy]; iy < g.rows.end[oy]; ++iy)
            for (int64_t ix = g.cols.begin[ox]; ix < g.cols.end[ox]; ++ix) sum += xp[iy * g.w + ix];
          yp[oy * g.ow + ox] = sum / g.divisor(oy, ox);
        }
    }
  }

 private:
  PoolGeometry g_;
};

MYELIN_VECTOR_CLONES void pair_max_row(const float* x0, const float* x1, float* y, int64_t ow) {
  for (int64_t j = 0; j < ow; ++j)
    y[j] = std::max(std::max(x0[2 * j], x0[2 * j + 1]), std::max(x1[2 * j], x1[2 * j + 1]));
}

// dy of window j to its first element (row-major) equal to the window's maximum y, for the
// windows of a row pair. Bitwise, not short-circuit, logic: no branch to mispredict.
void pair_max_grad_scalar(const float* x0, const float* x1, const float* y, const float* dy,
                          float* dx0, float* dx1, int64_t ow, bool relu_grad) {
  for (int64_t j = 0; j < ow; ++j) {
    const float m = y[j], d = relu_grad && !(m > 0) ? 0.0f : dy[j];
    const int a = x0[2 * j] == m, b = (x0[2 * j + 1] == m) & !a;
    const int c = (x1[2 * j] == m) & !(a | b), e = (x1[2 * j + 1] == m) & !(a | b | c);
    dx0[2 * j] = a ? d : 0.0f;
    dx0[2 * j + 1] = b ? d : 0.0f;
    dx1[2 * j] = c ? d : 0.0f;
    dx1[2 * j + 1] = e ? d : 0.0f;
  }
}

// The same, 16 windows at a time (the last block masked): even and odd columns split apart by
// permutes, compared as masks, and the selected gradients interleaved back.
__attribute__((target("avx512f"))) void pair_max_grad_avx512(const float* x0, const float* x1,
                                                             const float* y, const float* dy,
                                                             float* dx0, float* dx1, int64_t ow,
                                                             bool relu_grad) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  auto mask = [](int64_t n) {
    return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
  };
  for (int64_t j = 0; j < ow; j += 16) {
    const __mmask16 w = mask(ow - j), ia = mask(2 * (ow - j)), ib = mask(2 * (ow - j) - 16);
    const __m512 r0a = _mm512_maskz_loadu_ps(ia, x0 + 2 * j);
    const __m512 r0b = _mm512_maskz_loadu_ps(ib, x0 + 2 * j + 16);
    const __m512 r1a = _mm512_maskz_loadu_ps(ia, x1 + 2 * j);
    const __m512 r1b = _mm512_maskz_loadu_ps(ib, x1 + 2 * j + 16);
    const __m512 m = _mm512_maskz_loadu_ps(w, y + j);
    const __mmask16 live =
        relu_grad ? _mm512_mask_cmp_ps_mask(w, m, _mm512_setzero_ps(), _CMP_GT_OQ) : w;
    const __m512 d = _mm512_maskz_loadu_ps(live, dy + j);
    const __mmask16 a =
        _mm512_mask_cmp_ps_mask(w, _mm512_permutex2var_ps(r0a, even, r0b), m, _CMP_EQ_OQ);
    const __mmask16 b = _mm512_mask_cmp_ps_mask(
        static_cast<__mmask16>(w & ~a), _mm512_permutex2var_ps(r0a, odd, r0b), m, _CMP_EQ_OQ);
    const __mmask16 c =
        _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(w & ~(a | b)),
                                _mm512_permutex2var_ps(r1a, even, r1b), m, _CMP_EQ_OQ);
    const __mmask16 e =
        _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(w & ~(a | b | c)),
                                _mm512_permutex2var_ps(r1a, odd, r1b), m, _CMP_EQ_OQ);
    const __m512 da = _mm512_maskz_mov_ps(a, d), db = _mm512_maskz_mov_ps(b, d);
    const __m512 dc = _mm512_maskz_mov_ps(c, d), de = _mm512_maskz_mov_ps(e, d);
    _mm512_mask_storeu_ps(dx0 + 2 * j, ia, _mm512_permutex2var_ps(da, lo, db));
    _mm512_mask_storeu_ps(dx0 + 2 * j + 16, ib, _mm512_permutex2var_ps(da, hi, db));
    _mm512_mask_storeu_ps(dx1 + 2 * j, ia, _mm512_permutex2var_ps(dc, lo, de));
    _mm512_mask_storeu_ps(dx1 + 2 * j + 16, ib, _mm512_permutex2var_ps(dc, hi, de));
  }
}

void pair_max_grad_row(const float* x0, const float* x1, const float* y, const float* dy,
                       float* dx0, float* dx1, int64_t ow, bool relu_grad) {
  if (cpu_has_avx512())
    pair_max_grad_avx512(x0, x1, y, dy, dx0, dx1, ow, relu_grad);
  else
    pair_max_grad_scalar(x0, x1, y, dy, dx0, dx1, ow, relu_grad);
}

class PairMaxPool : public Kernel {
 public:
  explicit PairMaxPool(const KernelSpec& s) : g_(s.input(0).shape, s.node.attrs) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const float* x = in[0].f32();
    float* y = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane)
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const float* x0 = x + (plane * g.h + 2 * oy) * g.w;
        pair_max_row(x0, x0 + g.w, y + (plane * g.oh + oy) * g.ow, g.ow);
      }
  }

 private:
  PoolGeometry g_;
};

class PairMaxPoolGrad : public Kernel {
 public:
  explicit PairMaxPoolGrad(const KernelSpec& s)
      : g_(s.input(1).shape, s.node.attrs), relu_grad_(fused_relu_grad(s.node)) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const float *dy = in[0].f32(), *x = in[1].f32(), *y = in[2].f32();
    float* dx = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
      float* dxp = dx + plane * g.h * g.w;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t row = 2 * oy * g.w, at = (plane * g.oh + oy) * g.ow;
        const float* x0 = x + plane * g.h * g.w + row;
        pair_max_grad_row(x0, x0 + g.w, y + at, dy + at, dxp + row, dxp + row + g.w, g.ow,
                          relu_grad_);
        for (int64_t r = row; r < row + 2 * g.w; r += g.w)  // an odd width's last column
          std::fill(dxp + r + 2 * g.ow, dxp + r + g.w, 0.0f);
      }
      std::fill(dxp + 2 * g.oh * g.w, dxp + g.h * g.w, 0.0f);  // an odd height's last row
    }
  }

 private:
  PoolGeometry g_;
  bool relu_grad_;  // a fused ReLU's gradient: dy counts only where y > 0
};

// max_pool2d_grad(dy, x, y) -> dx: each dy goes to the first element of its window equal to
// the window's maximum y (the element the forward pass picked).
class MaxPoolGrad : public Kernel {
 public:
  explicit MaxPoolGrad(const KernelSpec& s)
      : g_(s.input(1).shape, s.node.attrs),
        full_windows_(g_.p.pad_h == 0 && g_.p.pad_w == 0 &&
                      (g_.oh - 1) * g_.p.stride_h + g_.p.kernel_h <= g_.h &&
                      (g_.ow - 1) * g_.p.stride_w + g_.p.kernel_w <= g_.w) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const float *dy = in[0].f32(), *x = in[1].f32(), *y = in[2].f32();
    float* dx = out[0].f32();
    const PoolGeometry& g = g_;
    const int64_t square = g.p.kernel_h == g.p.kernel_w ? g.p.kernel_h : 0;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
      const float* xp = x + plane * g.h * g.w;
      float* dxp = dx + plane * g.h * g.w;
      const float *yp = y + plane * g.oh * g.ow, *dyp = dy + plane * g.oh * g.ow;
      std::fill_n(dxp, g.h * g.w, 0.0f);
      if (full_windows_ && square == 2)
        full_window_plane<2>(xp, yp, dyp, dxp);
      else if (full_windows_ && square == 3)
        full_window_plane<3>(xp, yp, dyp, dxp);
      else
        for (int64_t oy = 0; oy < g.oh; ++oy)
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            int64_t at = argmax(g, xp, oy, ox, yp[oy * g.ow + ox]);
            if (at >= 0) dxp[at] += dyp[oy * g.ow + ox];
          }
    }
  }

 private:
  // The common case (LeNet, AlexNet, VGG): K x K windows all inside the input, the window
  // unrolled at compile time and its first maximum found from a bit mask of matches.
  template <int K>
  void full_window_plane(const float* xp, const float* yp, const float* dyp, float* dxp) const {
    const PoolGeometry& g = g_;
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        int64_t corner = oy * g.p.stride_h * g.w + ox * g.p.stride_w;
        const float* win = xp + corner;
        const float m = yp[oy * g.ow + ox];
        uint32_t hits = 0;  // bit ky*K+kx: that element equals the maximum
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx)
            hits |= static_cast<uint32_t>(win[ky * g.w + kx] == m) << (ky * K + kx);
        if (hits) {  // the lowest bit is the first maximum: no data-dependent branch
          int first = __builtin_ctz(hits);
          dxp[corner + first / K * g.w + first % K] += dyp[oy * g.ow + ox];
        }
      }
  }

  // The first element of window (oy, ox) equal to its maximum, -1 if none (a NaN maximum).
  // Scans backwards keeping the last match seen, a conditional move instead of a branch that
  // mispredicts on every other window.
  static int64_t argmax(const PoolGeometry& g, const float* xp, int64_t oy, int64_t ox,
                        float ymax) {
    int64_t at = -1;
    for (int64_t iy = g.rows.end[oy] - 1; iy >= g.rows.begin[oy]; --iy)
      for (int64_t ix = g.cols.end[ox] - 1; ix >= g.cols.begin[ox]; --ix)
        at = xp[iy * g.w + ix] == ymax ? iy * g.w + ix : at;
    return at;
  }

  PoolGeometry g_;
  bool full_windows_;
};

// avg_pool2d_grad(dy) -> dx where oneDNN's divisor differs: each dy spread evenly over its
// window's real elements.
class AvgPoolGrad : public Kernel {
 public:
  explicit AvgPoolGrad(const KernelSpec& s)
      : g_(Shape(s.node.attrs.ints("input_shape", {})), s.node.attrs) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const float* dy = in[0].f32();
    float* dx = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
      float* dxp = dx + plane * g.h * g.w;
      const float* dyp = dy + plane * g.oh * g.ow;
      std::fill_n(dxp, g.h * g.w, 0.0f);
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          float share = dyp[oy * g.ow + ox] / g.divisor(oy, ox);
          for (int64_t iy = g.rows.begin[oy]; iy < g.rows.end[oy]; ++iy)
            for (int64_t ix = g.cols.begin[ox]; ix < g.cols.end[ox]; ++ix)
              dxp[iy * g.w + ix] += share;
        }
    }
  }

 private:
  PoolGeometry g_;
};

dnnl::algorithm avg_algorithm(const PoolParams& p) {
  return p.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                             : dnnl::algorithm::pooling_avg_exclude_padding;
}

// oneDNN divides an overhanging window (ceil_mode) by the whole kernel when padding counts;
// the loops divide by the window clipped to the padded input, as Caffe and PyTorch do.
bool dnnl_avg_matches(const PoolGeometry& g) {
  return !(g.p.count_include_pad && g.overhangs());
}

std::unique_ptr<Kernel> make_avg_pool(const KernelSpec& s) {
  PoolGeometry g(s.input(0).shape, s.node.attrs);
  if (!dnnl_avg_matches(g)) return std::make_unique<AvgPoolForwardLoop>(s);
  return std::make_unique<DnnlPool>(s, avg_algorithm(g.p), false);
}

std::unique_ptr<Kernel> make_avg_pool_grad(const KernelSpec& s) {
  PoolGeometry g(Shape(s.node.attrs.ints("input_shape", {})), s.node.attrs);
  if (!dnnl_avg_matches(g)) return std::make_unique<AvgPoolGrad>(s);
  return std::make_unique<DnnlPool>(s, avg_algorithm(g.p), true);
}

bool blocked(const KernelSpec& s) {
  return is_blocked(s.output_layout(0));
}

}  // namespace

bool pool_grad_takes_relu_grad(const Node& n, const Graph& g) {
  return n.op == "max_pool2d_grad" &&
         is_pair_pool(PoolGeometry(g.value(n.inputs.at(1)).shape, n.attrs));
}

// All but average pooling where oneDNN divides differently (its loops are plain).
bool pool_takes_blocked(const Node& n, const Graph& g) {
  if (n.op == "max_pool2d" || n.op == "max_pool2d_grad") return true;
  Shape x =
      n.op == "avg_pool2d" ? g.value(n.inputs.at(0)).shape : Shape(n.attrs.ints("input_shape", {}));
  return dnnl_avg_matches(PoolGeometry(x, n.attrs));
}

// Pooling (oneDNN, and our blocked max gradient) takes a blocked layout where all its operands have
// it, for the nodes pool_takes_blocked names.
MYELIN_REGISTER_OPS {
  register_kernel("max_pool2d", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    if (is_pair_pool(PoolGeometry(s.input(0).shape, s.node.attrs))) {
                      if (blocked(s)) return make_blocked_max_pool(s);
                      return std::make_unique<PairMaxPool>(s);
                    }
                    return std::make_unique<DnnlPool>(s, dnnl::algorithm::pooling_max, false);
                  },
                  {.layout = takes_alike({0}, {0}, pool_takes_blocked)});
  register_kernel("avg_pool2d", DeviceKind::cpu, make_avg_pool,
                  {.layout = takes_alike({0}, {0}, pool_takes_blocked)});
  register_kernel("max_pool2d_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    if (blocked(s)) return make_blocked_max_pool_grad(s);
                    if (is_pair_pool(PoolGeometry(s.input(1).shape, s.node.attrs)))
                      return std::make_unique<PairMaxPoolGrad>(s);
                    return std::make_unique<MaxPoolGrad>(s);
                  },
                  {.layout = takes_alike({0, 1, 2}, {0}, pool_takes_blocked)});
  register_kernel("avg_pool2d_grad", DeviceKind::cpu, make_avg_pool_grad,
                  {.layout = takes_alike({0}, {0}, pool_takes_blocked)});
}

}  // namespace myelin::cpu
