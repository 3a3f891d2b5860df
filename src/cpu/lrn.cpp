// Local response normalization across channels (Caffe's and oneDNN's convention, alpha divided
// by size): y_c = x_c * s_c^-beta, s_c = k + alpha/size * sum_{|j-c| <= size/2} x_j^2.
// Forward is oneDNN's lrn primitive on plain NCHW. The gradient is an OpenMP loop from x, y and
// dy alone (oneDNN's backward wants the forward's private workspace, which no other op keeps):
//   dx_i = dy_i * s_i^-beta - 2*alpha*beta/size * x_i * sum_{|c-i| <= size/2} dy_c * y_c / s_c
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/dnnl_util.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

class LrnForward : public Kernel {
 public:
  explicit LrnForward(const KernelSpec& s) : seq_(cpu_backend(s), s.node) {
    LrnParams p(s.node.attrs);
    dnnl_call(s.node, "lrn_forward", [&] {
      auto md = plain_desc(s.input(0).shape);
      dnnl::lrn_forward::desc d(dnnl::prop_kind::forward_inference,
                                dnnl::algorithm::lrn_across_channels, md, p.size,
                                static_cast<float>(p.alpha), static_cast<float>(p.beta),
                                static_cast<float>(p.k));
      dnnl::lrn_forward::primitive_desc pd(d, user_scratchpad_attr(), cpu_backend(s).engine());
      seq_.add(dnnl::lrn_forward(pd),
               {{DNNL_ARG_SRC, seq_.input(0, md)}, {DNNL_ARG_DST, seq_.output(0, md)}},
               pd.scratchpad_desc(), "lrn_forward");
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

// Works on tiles of kTile pixels x all channels so the sliding channel sums vectorize over
// pixels; each thread keeps its tile's scale and dy*y/s in its own slice of the workspace.
class LrnGrad : public Kernel {
 public:
  static constexpr int64_t kTile = 64;

  explicit LrnGrad(const KernelSpec& s) : p_(s.node.attrs), threads_(cpu_backend(s).threads()) {
    const Shape& x = s.input(1).shape;
    n_ = x[0], c_ = x[1], hw_ = x[2] * x[3];
  }
  size_t workspace_bytes() const override {
    return static_cast<size_t>(threads_) * 2 * c_ * kTile * sizeof(float);
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    int64_t tiles = (hw_ + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int64_t t = 0; t < n_ * tiles; ++t) {
      float* scratch = static_cast<float*>(ctx.workspace) + omp_get_thread_num() * 2 * c_ * kTile;
      int64_t n = t / tiles, p0 = (t % tiles) * kTile;
      int64_t len = std::min(kTile, hw_ - p0);
      int64_t base = n * c_ * hw_ + p0;
      tile(in[0].f32() + base, in[1].f32() + base, in[2].f32() + base, out[0].f32() + base, len,
           scratch, scratch + c_ * kTile);
    }
  }

 private:
  // Sums rows [c - size/2, c + size/2] of `rows` (c_ rows of kTile) into `sums` (c_ x kTile).
  void window_sums(const float* rows, float* sums, int64_t len) const {
    int64_t half = p_.size / 2;
    for (int64_t c = 0; c < c_; ++c) {
      float* s = sums + c * kTile;
      std::fill_n(s, len, 0.0f);
      for (int64_t j = std::max<int64_t>(0, c - half); j <= std::min(c_ - 1, c + half); ++j)
        for (int64_t i = 0; i < len; ++i) s[i] += rows[j * kTile + i];
    }
  }

  void tile(const float* dy, const float* x, const float* y, float* dx, int64_t len,
            float* scale, float* ratio) const {
    const float a = static_cast<float>(p_.alpha / p_.size), b = static_cast<float>(p_.beta),
                k = static_cast<float>(p_.k);
    for (int64_t c = 0; c < c_; ++c)  // ratio <- x^2
      for (int64_t i = 0; i < len; ++i) ratio[c * kTile + i] = x[c * hw_ + i] * x[c * hw_ + i];
    window_sums(ratio, scale, len);
    for (int64_t c = 0; c < c_; ++c)  // scale <- s, ratio <- dy*y/s
      for (int64_t i = 0; i < len; ++i) {
        float s = k + a * scale[c * kTile + i];
        scale[c * kTile + i] = s;
        ratio[c * kTile + i] = dy[c * hw_ + i] * y[c * hw_ + i] / s;
      }
    for (int64_t c = 0; c < c_; ++c)  // dx <- dy * s^-beta
      for (int64_t i = 0; i < len; ++i)
        dx[c * hw_ + i] = dy[c * hw_ + i] * std::pow(scale[c * kTile + i], -b);
    window_sums(ratio, scale, len);  // scale <- window sums of dy*y/s
    for (int64_t c = 0; c < c_; ++c)
      for (int64_t i = 0; i < len; ++i)
        dx[c * hw_ + i] -= 2.0f * a * b * x[c * hw_ + i] * scale[c * kTile + i];
  }

  LrnParams p_;
  int threads_;
  int64_t n_ = 0, c_ = 0, hw_ = 0;
};

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("lrn", DeviceKind::cpu, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<LrnForward>(s);
  });
  register_kernel("lrn_grad", DeviceKind::cpu, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<LrnGrad>(s);
  });
}

}  // namespace myelin::cpu
