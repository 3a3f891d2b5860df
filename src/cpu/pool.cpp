// Pooling kernels. Forward max (and average, where oneDNN's divisor is ours) is oneDNN's
// pooling primitive on plain NCHW; the gradients are OpenMP loops over (n, c) planes: max
// recomputes each window's argmax from x and y, so no workspace outlives the forward pass.
//
// Windows follow Caffe/PyTorch: output o covers input rows [o*stride - pad, +kernel). With
// ceil_mode the last window may overhang the right padding; the overhang is never counted, so
// count_include_pad divides by the window clipped to [-pad, in + pad) and the exclusive divisor
// counts the real elements only.
#include <algorithm>
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
  PoolAxis(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad,
           bool include_pad) {
    for (int64_t o = 0; o < out; ++o) {
      int64_t s = o * stride - pad;
      begin.push_back(std::max<int64_t>(s, 0));
      end.push_back(std::min(s + kernel, in));
      divisor.push_back(include_pad ? std::min(s + kernel, in + pad) - s : end.back() - begin.back());
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

// oneDNN pooling forward (inference: no workspace) on plain NCHW tensors.
class DnnlPoolForward : public Kernel {
 public:
  DnnlPoolForward(const KernelSpec& s, dnnl::algorithm alg) : seq_(cpu_backend(s), s.node) {
    PoolGeometry g(s.input(0).shape, s.node.attrs);
    dnnl_call(s.node, "pooling_forward", [&] {
      auto src = plain_desc(s.input(0).shape), dst = plain_desc(s.output(0).shape);
      dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, alg, src, dst,
                                    {g.p.stride_h, g.p.stride_w}, {g.p.kernel_h, g.p.kernel_w},
                                    {g.p.pad_h, g.p.pad_w}, {g.pad_r_h(), g.pad_r_w()});
      dnnl::pooling_forward::primitive_desc pd(d, user_scratchpad_attr(),
                                               cpu_backend(s).engine());
      seq_.add(dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, seq_.input(0, src)},
                                           {DNNL_ARG_DST, seq_.output(0, dst)}},
               pd.scratchpad_desc(), "pooling_forward");
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

// Average pooling where oneDNN's divisor differs (count_include_pad with an overhanging window).
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
  explicit MaxPoolGrad(const KernelSpec& s) : g_(s.input(1).shape, s.node.attrs) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const float *dy = in[0].f32(), *x = in[1].f32(), *y = in[2].f32();
    float* dx = out[0].f32();
    const PoolGeometry& g = g_;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
      const float* xp = x + plane * g.h * g.w;
      float* dxp = dx + plane * g.h * g.w;
      std::fill_n(dxp, g.h * g.w, 0.0f);
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          int64_t o = plane * g.oh * g.ow + oy * g.ow + ox;
          int64_t at = argmax(g, xp, oy, ox, y[o]);
          if (at >= 0) dxp[at] += dy[o];
        }
    }
  }

 private:
  // The first element of window (oy, ox) equal to its maximum, -1 if none (a NaN maximum).
  static int64_t argmax(const PoolGeometry& g, const float* xp, int64_t oy, int64_t ox,
                        float ymax) {
    for (int64_t iy = g.rows.begin[oy]; iy < g.rows.end[oy]; ++iy)
      for (int64_t ix = g.cols.begin[ox]; ix < g.cols.end[ox]; ++ix)
        if (xp[iy * g.w + ix] == ymax) return iy * g.w + ix;
    return -1;
  }

  PoolGeometry g_;
};

// avg_pool2d_grad(dy) -> dx: each dy spread evenly over its window's real elements.
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
            for (int64_t ix = g.cols.begin[ox]; ix < g.cols.end[ox]; ++ix) dxp[iy * g.w + ix] += share;
        }
    }
  }

 private:
  PoolGeometry g_;
};

std::unique_ptr<Kernel> make_avg_pool(const KernelSpec& s) {
  PoolGeometry g(s.input(0).shape, s.node.attrs);
  if (g.p.count_include_pad && g.overhangs()) return std::make_unique<AvgPoolForwardLoop>(s);
  return std::make_unique<DnnlPoolForward>(s, g.p.count_include_pad
                                                  ? dnnl::algorithm::pooling_avg_include_padding
                                                  : dnnl::algorithm::pooling_avg_exclude_padding);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("max_pool2d", DeviceKind::cpu, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<DnnlPoolForward>(s, dnnl::algorithm::pooling_max);
  });
  register_kernel("avg_pool2d", DeviceKind::cpu, make_avg_pool);
  register_kernel("max_pool2d_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<MaxPoolGrad>(s);
                  });
  register_kernel("avg_pool2d_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<AvgPoolGrad>(s);
                  });
}

}  // namespace myelin::cpu
