// Pooling kernels. oneDNN's pooling primitives on plain NCHW for max forward and for average
// forward and backward (where oneDNN's divisor is ours); OpenMP loops over (n, c) planes for
// the max gradient, which recomputes each window's argmax from x and y so that no workspace
// outlives the forward pass, and for averages oneDNN would divide differently.
//
// Windows follow Caffe/PyTorch: output o covers input rows [o*stride - pad, +kernel). With
// ceil_mode the last window may overhang the right padding; the overhang is never counted, so
// count_include_pad divides by the window clipped to [-pad, in + pad) and the exclusive divisor
// counts the real elements only.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/dnnl_util.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

// One axis of the windows: for each output position, the real input range [begin, end) and the
// divisor factor (the window clipped to [-pad, in + pad) with count_include_pad, else the real
// count). Precomputed once, so the loops below do no window arithmetic per element.
struct PoolAxis {
  std::vector<int64_t> begin, end, divisor;
  PoolAxis(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad, bool include_pad) {
    for (int64_t o = 0; o < out; ++o) {
      int64_t s = o * stride - pad;
      begin.push_back(std::max<int64_t>(s, 0));
      end.push_back(std::min(s + kernel, in));
      divisor.push_back(include_pad ? std::min(s + kernel, in + pad) - s
                                    : end.back() - begin.back());
    }
  }
};

struct PoolGeometry {
  int64_t n, c, h, w, oh, ow;
  PoolParams p;
  PoolAxis rows, cols;
  PoolGeometry(const Shape& x, const Attrs& a)
      : n(x[0]),
        c(x[1]),
        h(x[2]),
        w(x[3]),
        oh(PoolParams(a).out_h(h)),
        ow(PoolParams(a).out_w(w)),
        p(a),
        rows(h, oh, p.kernel_h, p.stride_h, p.pad_h, p.count_include_pad),
        cols(w, ow, p.kernel_w, p.stride_w, p.pad_w, p.count_include_pad) {}
  // Padding on the right/bottom that oneDNN needs to produce oh x ow windows.
  int64_t pad_r_h() const {
    return std::max<int64_t>(0, (oh - 1) * p.stride_h + p.kernel_h - h - p.pad_h);
  }
  int64_t pad_r_w() const {
    return std::max<int64_t>(0, (ow - 1) * p.stride_w + p.kernel_w - w - p.pad_w);
  }
  bool overhangs() const { return pad_r_h() > p.pad_h || pad_r_w() > p.pad_w; }
  float divisor(int64_t oy, int64_t ox) const {
    return static_cast<float>(rows.divisor[oy] * cols.divisor[ox]);
  }
};

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

// oneDNN pooling on plain NCHW tensors: max forward (inference kind: no workspace), average
// forward (training kind, which needs no workspace for averages and gets the JIT kernel), and
// average backward.
class DnnlPool : public Kernel {
 public:
  DnnlPool(const KernelSpec& s, dnnl::algorithm alg, bool backward) : seq_(cpu_backend(s), s.node) {
    Shape x = backward ? Shape(s.node.attrs.ints("input_shape", {})) : s.input(0).shape;
    PoolGeometry g(x, s.node.attrs);
    auto src = plain_desc(x), dst = plain_desc(Shape{g.n, g.c, g.oh, g.ow});
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

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("max_pool2d", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<DnnlPool>(s, dnnl::algorithm::pooling_max, false);
                  });
  register_kernel("avg_pool2d", DeviceKind::cpu, make_avg_pool);
  register_kernel("max_pool2d_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<MaxPoolGrad>(s);
                  });
  register_kernel("avg_pool2d_grad", DeviceKind::cpu, make_avg_pool_grad);
}

}  // namespace myelin::cpu
