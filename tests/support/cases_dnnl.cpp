// Op cases for the CPU engine's heavy kernels (convolution, pooling, LRN, batch norm,
// activations, matrix products), with straightforward float64 references.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/params.h"
#include "support/op_harness.h"

namespace myelin::test {

namespace {

using Ins = std::vector<Doubles>;
using Types = std::vector<TensorType>;
using Ints = std::vector<int64_t>;

TensorType f32(Dims d) {
  return {Shape(std::move(d)), DType::f32};
}

// ---- convolution ----

struct ConvDims {
  int64_t n, c, h, w, o, kh, kw, oh, ow, groups;
  ConvParams p;
  ConvDims(const Shape& x, const Shape& wt, const Attrs& a)
      : n(x[0]), c(x[1]), h(x[2]), w(x[3]), o(wt[0]), kh(wt[2]), kw(wt[3]), p(a) {
    groups = p.groups;
    oh = window_out(h, kh, p.stride_h, p.pad_h, p.dil_h);
    ow = window_out(w, kw, p.stride_w, p.pad_w, p.dil_w);
  }
  int64_t ypos(int64_t b, int64_t oc, int64_t y, int64_t x) const {
    return ((b * o + oc) * oh + y) * ow + x;
  }
};

// Calls f(x index, w index, y index) for every multiply-add of the convolution.
template <class F>
void conv_taps(const ConvDims& d, F f) {
  int64_t cg = d.c / d.groups, og = d.o / d.groups;
  for (int64_t b = 0; b < d.n; ++b)
    for (int64_t oc = 0; oc < d.o; ++oc)
      for (int64_t y = 0; y < d.oh; ++y)
        for (int64_t x = 0; x < d.ow; ++x)
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < d.kh; ++ky)
              for (int64_t kx = 0; kx < d.kw; ++kx) {
                int64_t iy = y * d.p.stride_h - d.p.pad_h + ky * d.p.dil_h;
                int64_t ix = x * d.p.stride_w - d.p.pad_w + kx * d.p.dil_w;
                if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
                int64_t c = oc / og * cg + ci;
                f(((b * d.c + c) * d.h + iy) * d.w + ix, ((oc * cg + ci) * d.kh + ky) * d.kw + kx,
                  d.ypos(b, oc, y, x));
              }
}

// conv2d(x, w, b?)
Ins ref_conv(const Ins& in, const Attrs& a, const Types& t) {
  ConvDims d(t[0].shape, t[1].shape, a);
  Doubles y(d.n * d.o * d.oh * d.ow, 0.0);
  conv_taps(d, [&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += in[0][xi] * in[1][wi]; });
  if (in.size() == 3)
    for (size_t i = 0; i < y.size(); ++i) y[i] += in[2][i / (d.oh * d.ow) % d.o];
  return {y};
}

// conv2d_grad_input(dy, w) -> dx of attrs.input_shape
Ins ref_conv_grad_input(const Ins& in, const Attrs& a, const Types& t) {
  Shape xs(a.ints("input_shape", {}));
  ConvDims d(xs, t[1].shape, a);
  Doubles dx(xs.numel(), 0.0);
  conv_taps(d, [&](int64_t xi, int64_t wi, int64_t yi) { dx[xi] += in[0][yi] * in[1][wi]; });
  return {dx};
}

// conv2d_grad_weight(dy, x) -> dw of attrs.weight_shape
Ins ref_conv_grad_weight(const Ins& in, const Attrs& a, const Types& t) {
  Shape ws(a.ints("weight_shape", {}));
  ConvDims d(t[1].shape, ws, a);
  Doubles dw(ws.numel(), 0.0);
  conv_taps(d, [&](int64_t xi, int64_t wi, int64_t yi) { dw[wi] += in[0][yi] * in[1][xi]; });
  return {dw};
}

// ---- pooling ----

// Output (y, x) of plane `plane` folded with `f` over its window's real elements; the average
// divides by the window clipped to [-pad, in + pad) (count_include_pad) or by the real count.
Ins ref_pool(const Ins& in, const Attrs& a, const Types& t, bool is_max) {
  const Shape& s = t[0].shape;
  PoolParams p(a);
  int64_t h = s[2], w = s[3], oh = p.out_h(h), ow = p.out_w(w);
  Doubles y;
  for (int64_t plane = 0; plane < s[0] * s[1]; ++plane)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        int64_t hs = oy * p.stride_h - p.pad_h, ws = ox * p.stride_w - p.pad_w;
        double acc = is_max ? -INFINITY : 0.0;
        int64_t real = 0;
        for (int64_t iy = std::max<int64_t>(hs, 0); iy < std::min(hs + p.kernel_h, h); ++iy)
          for (int64_t ix = std::max<int64_t>(ws, 0); ix < std::min(ws + p.kernel_w, w); ++ix) {
            double v = in[0][(plane * h + iy) * w + ix];
            acc = is_max ? std::max(acc, v) : acc + v;
            ++real;
          }
        if (!is_max)
          acc /= p.count_include_pad ? double((std::min(hs + p.kernel_h, h + p.pad_h) - hs) *
                                              (std::min(ws + p.kernel_w, w + p.pad_w) - ws))
                                     : double(real);
        y.push_back(acc);
      }
  return {y};
}

Ins ref_max_pool(const Ins& in, const Attrs& a, const Types& t) {
  return ref_pool(in, a, t, true);
}
Ins ref_avg_pool(const Ins& in, const Attrs& a, const Types& t) {
  return ref_pool(in, a, t, false);
}

Ins ref_global_avg(const Ins& in, const Attrs&, const Types& t) {
  int64_t hw = t[0].shape[2] * t[0].shape[3];
  Doubles y(in[0].size() / hw, 0.0);
  for (size_t i = 0; i < in[0].size(); ++i) y[i / hw] += in[0][i] / double(hw);
  return {y};
}

// Input 0 becomes evenly spaced distinct values (in random order) 2/n apart, so a finite
// difference step never changes which element of a window is the maximum.
void distinct_input0(Ins& in) {
  Doubles& x = in[0];
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  for (size_t r = 0; r < order.size(); ++r)
    x[order[r]] = -1.0 + 2.0 * (double(r) + 0.25) / double(x.size());
}

// ---- LRN ----

Ins ref_lrn(const Ins& in, const Attrs& a, const Types& t) {
  const Shape& s = t[0].shape;
  LrnParams p(a);
  int64_t c = s[1], hw = s[2] * s[3], half = p.size / 2;
  Doubles y(in[0].size());
  for (size_t i = 0; i < y.size(); ++i) {
    int64_t ch = int64_t(i) / hw % c, base = int64_t(i) - ch * hw;
    double sum = 0;
    for (int64_t j = std::max<int64_t>(0, ch - half); j <= std::min(c - 1, ch + half); ++j)
      sum += in[0][base + j * hw] * in[0][base + j * hw];
    y[i] = in[0][i] * std::pow(p.k + p.alpha / p.size * sum, -p.beta);
  }
  return {y};
}

// ---- batch norm ----

Ins ref_bn_train(const Ins& in, const Attrs& a, const Types& t) {
  return reference_batch_norm(in, a, t, true);
}
Ins ref_bn_infer(const Ins& in, const Attrs& a, const Types& t) {
  return reference_batch_norm(in, a, t, false);
}

void positive_running_var(Ins& in) {
  for (double& v : in[4]) v = std::abs(v) + 0.1;
}

// batch_norm_sum_grad(a, x, gamma, mean, invstd, b, y) -> dx, dgamma, dbeta, dy with
// dy = y > 0 ? a + b : 0 and batch norm's gradient from the given mean and invstd.
Ins ref_bn_sum_grad(const Ins& in, const Attrs&, const Types& t) {
  const Shape& s = t[1].shape;
  const int64_t c = s[1], inner = s.numel() / (s[0] * c), rows = s[0] * inner;
  auto channel = [&](size_t i) { return int64_t(i) / inner % c; };
  Doubles dy(in[0].size()), dx(dy.size()), sdy(c, 0.0), sdyx(c, 0.0);
  for (size_t i = 0; i < dy.size(); ++i) {
    dy[i] = in[6][i] > 0 ? in[0][i] + in[5][i] : 0;
    sdy[channel(i)] += dy[i];
    sdyx[channel(i)] += dy[i] * (in[1][i] - in[3][channel(i)]);
  }
  Doubles dgamma(c);
  for (int64_t k = 0; k < c; ++k) dgamma[k] = sdyx[k] * in[4][k];
  for (size_t i = 0; i < dx.size(); ++i) {
    const int64_t k = channel(i);
    const double xhat = (in[1][i] - in[3][k]) * in[4][k];
    dx[i] = in[2][k] * in[4][k] * (dy[i] - sdy[k] / rows - xhat * dgamma[k] / rows);
  }
  return {dx, dgamma, sdy, dy};
}

// ---- activations ----

double activate(ActKind k, double alpha, double x) {
  switch (k) {
    case ActKind::relu:
      return x > 0 ? x : 0;
    case ActKind::leaky_relu:
      return x > 0 ? x : alpha * x;
    case ActKind::sigmoid:
      return 1 / (1 + std::exp(-x));
    case ActKind::tanh:
      return std::tanh(x);
    case ActKind::elu:
      return x > 0 ? x : alpha * (std::exp(x) - 1);
    case ActKind::gelu:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  }
  return 0;
}

Ins ref_activation(const Ins& in, const Attrs& a, const Types&) {
  ActParams p(a);
  Doubles y(in[0].size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = activate(p.kind, p.alpha, in[0][i]);
  return {y};
}

// ---- matrix products ----

Ins ref_matmul(const Ins& in, const Attrs& a, const Types& t) {
  bool ta = a.i("trans_a", 0), tb = a.i("trans_b", 0);
  const Shape &as = t[0].shape, &bs = t[1].shape;
  int64_t m = as[ta ? 1 : 0], k = as[ta ? 0 : 1], n = bs[tb ? 0 : 1];
  Doubles c(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < k; ++l)
        c[i * n + j] += in[0][ta ? l * m + i : i * k + l] * in[1][tb ? j * k + l : l * n + j];
  return {c};
}

Ins ref_inner_product(const Ins& in, const Attrs&, const Types& t) {
  int64_t n = t[0].shape[0], k = t[0].shape.numel() / n, o = t[1].shape[0];
  Doubles y(n * o, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < o; ++j) {
      double acc = in.size() == 3 ? in[2][j] : 0.0;
      for (int64_t l = 0; l < k; ++l) acc += in[0][i * k + l] * in[1][j * k + l];
      y[i * o + j] = acc;
    }
  return {y};
}

// ---- the cases ----

Attrs conv_attrs(Ints stride, Ints pad, Ints dilation, int64_t groups) {
  return Attrs{{"stride", stride}, {"pad", pad}, {"dilation", dilation}, {"groups", groups}};
}

void register_conv() {
  register_case({.name = "conv2d/3x3_bias",
                 .op = "conv2d",
                 .inputs = {f32({2, 3, 7, 7}), f32({4, 3, 3, 3}), f32({4})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1, 2},
                 .perf_inputs = {f32({64, 20, 12, 12}), f32({50, 20, 5, 5}), f32({50})}});
  register_case({.name = "conv2d/one_channel_5x5",  // LeNet's conv1: oneDNN's blocked path
                 .op = "conv2d",
                 .inputs = {f32({2, 1, 12, 12}), f32({4, 1, 5, 5}), f32({4})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1, 2},
                 .perf_inputs = {f32({64, 1, 28, 28}), f32({20, 1, 5, 5}), f32({20})}});
  register_case({.name = "conv2d/stride2_pad1",
                 .op = "conv2d",
                 .attrs = conv_attrs({2, 2}, {1, 1}, {1, 1}, 1),
                 .inputs = {f32({2, 3, 8, 8}), f32({4, 3, 3, 3})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1}});
  register_case({.name = "conv2d/dilation2",
                 .op = "conv2d",
                 .attrs = conv_attrs({1, 1}, {2, 2}, {2, 2}, 1),
                 .inputs = {f32({1, 2, 9, 9}), f32({3, 2, 3, 3})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1}});
  register_case({.name = "conv2d/groups2",
                 .op = "conv2d",
                 .attrs = conv_attrs({1, 1}, {1, 1}, {1, 1}, 2),
                 .inputs = {f32({2, 4, 6, 6}), f32({6, 2, 3, 3}), f32({6})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1, 2}});
  register_case({.name = "conv2d/asymmetric_stride_pad",
                 .op = "conv2d",
                 .attrs = conv_attrs({2, 1}, {1, 0}, {1, 2}, 1),
                 .inputs = {f32({1, 3, 7, 8}), f32({2, 3, 3, 2})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1}});
  // Five images: uneven per-thread slices of the batch, several images per SGEMM.
  register_case({.name = "conv2d/batch5_groups2",
                 .op = "conv2d",
                 .attrs = conv_attrs({2, 2}, {1, 1}, {1, 1}, 2),
                 .inputs = {f32({5, 4, 6, 6}), f32({6, 2, 3, 3}), f32({6})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1, 2}});
  register_case({.name = "conv2d/pointwise",  // 1x1: images are their own column matrices
                 .op = "conv2d",
                 .inputs = {f32({3, 4, 5, 5}), f32({6, 4, 1, 1})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1},
                 .perf_inputs = {f32({128, 24, 14, 14}), f32({48, 24, 1, 1})}});
  register_case({.name = "conv2d/resnet_3x3",  // the small ResNet's 24-channel convolutions
                 .op = "conv2d",
                 .attrs = conv_attrs({1, 1}, {1, 1}, {1, 1}, 1),
                 .inputs = {f32({2, 3, 6, 6}), f32({5, 3, 3, 3})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1},
                 .perf_inputs = {f32({128, 24, 14, 14}), f32({24, 24, 3, 3})}});
  // Thin strided inputs: the CUDA engine folds the stride into the channels under bf16/fp16.
  register_case({.name = "conv2d/alexnet_conv1",  // 3 channels, 11x11 at stride 4
                 .op = "conv2d",
                 .attrs = conv_attrs({4, 4}, {0, 0}, {1, 1}, 1),
                 .inputs = {f32({2, 3, 31, 31}), f32({4, 3, 11, 11}), f32({4})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1, 2}});
  register_case({.name = "conv2d/thin_stride2_pad2",  // the padding lands in the folded blocks
                 .op = "conv2d",
                 .attrs = conv_attrs({2, 2}, {2, 2}, {1, 1}, 1),
                 .inputs = {f32({2, 2, 9, 10}), f32({3, 2, 5, 5})},
                 .reference = ref_conv,
                 .grad_inputs = {0, 1}});
  // As its own op (transposed convolution's forward); its gradients run conv2d and
  // conv2d_grad_weight with the roles of dy and x exchanged.
  Attrs gi = conv_attrs({2, 2}, {1, 1}, {1, 1}, 1);
  gi.set("input_shape", Ints{2, 3, 8, 8});
  register_case({.name = "conv2d_grad_input/stride2",
                 .op = "conv2d_grad_input",
                 .attrs = gi,
                 .inputs = {f32({2, 4, 4, 4}), f32({4, 3, 3, 3})},
                 .reference = ref_conv_grad_input,
                 .grad_inputs = {0, 1}});
  Attrs gw = conv_attrs({1, 1}, {1, 1}, {1, 1}, 2);
  gw.set("weight_shape", Ints{6, 2, 3, 3});
  register_case({.name = "conv2d_grad_weight/groups2",
                 .op = "conv2d_grad_weight",
                 .attrs = gw,
                 .inputs = {f32({2, 6, 6, 6}), f32({2, 4, 6, 6})},
                 .reference = ref_conv_grad_weight});
}

Attrs pool_attrs(int64_t k, int64_t s, int64_t pad, int64_t ceil, int64_t include_pad) {
  return Attrs{{"kernel", k},
               {"stride", s},
               {"pad", pad},
               {"ceil_mode", ceil},
               {"count_include_pad", include_pad}};
}

void register_pool() {
  struct Variant {
    const char* name;
    Dims shape;
    Attrs attrs;
  };
  const Variant variants[] = {
      {"k2s2", {2, 3, 6, 6}, pool_attrs(2, 2, 0, 0, 1)},
      {"k2s2_odd", {2, 3, 7, 5}, pool_attrs(2, 2, 0, 0, 1)},  // a last row and column unpooled
      {"k3s2_pad1", {1, 2, 7, 7}, pool_attrs(3, 2, 1, 0, 1)},
      {"k3s2_pad1_exclude_pad", {1, 2, 7, 7}, pool_attrs(3, 2, 1, 0, 0)},
      {"ceil_overhang", {1, 2, 6, 6}, pool_attrs(3, 2, 0, 1, 1)},
      {"ceil_pad1_overhang", {1, 2, 6, 6}, pool_attrs(3, 2, 1, 1, 1)},
      {"ceil_pad1_overhang_exclude_pad", {1, 2, 6, 6}, pool_attrs(3, 2, 1, 1, 0)},
      {"k3s1_rect", {1, 2, 5, 7}, pool_attrs(3, 1, 0, 0, 1)},
  };
  for (const Variant& v : variants) {
    register_case({.name = std::string("max_pool2d/") + v.name,
                   .op = "max_pool2d",
                   .attrs = v.attrs,
                   .inputs = {f32(v.shape)},
                   .reference = ref_max_pool,
                   .grad_inputs = {0},
                   .prepare = distinct_input0});
    register_case({.name = std::string("avg_pool2d/") + v.name,
                   .op = "avg_pool2d",
                   .attrs = v.attrs,
                   .inputs = {f32(v.shape)},
                   .reference = ref_avg_pool,
                   .grad_inputs = {0}});
  }
  register_case({.name = "max_pool2d/lenet",
                 .op = "max_pool2d",
                 .attrs = pool_attrs(2, 2, 0, 0, 1),
                 .inputs = {f32({2, 4, 8, 8})},
                 .reference = ref_max_pool,
                 .grad_inputs = {0},
                 .prepare = distinct_input0,
                 .perf_inputs = {f32({64, 20, 24, 24})}});
  register_case({.name = "global_avg_pool/4x5",
                 .op = "global_avg_pool",
                 .inputs = {f32({2, 3, 4, 5})},
                 .reference = ref_global_avg,
                 .grad_inputs = {0}});
}

void register_lrn() {
  register_case({.name = "lrn/size5_alexnet",
                 .op = "lrn",
                 .attrs = {{"size", int64_t{5}}, {"alpha", 0.5}, {"beta", 0.75}, {"k", 2.0}},
                 .inputs = {f32({2, 7, 3, 3})},
                 .reference = ref_lrn,
                 .grad_inputs = {0},
                 .perf_inputs = {f32({64, 96, 27, 27})}});
  register_case({.name = "lrn/size3_beta0.6_wide",  // more pixels than one 64-pixel tile
                 .op = "lrn",
                 .attrs = {{"size", int64_t{3}}, {"alpha", 0.3}, {"beta", 0.6}},
                 .inputs = {f32({1, 4, 9, 9})},
                 .reference = ref_lrn,
                 .grad_inputs = {0}});
}

void register_batch_norm() {
  auto bn = [](const char* name, Dims x, bool training, std::vector<int> grads,
               std::vector<int> checked, Attrs attrs = {}) {
    Dims c{x[1]};
    register_case({.name = std::string("batch_norm/") + name,
                   .op = "batch_norm",
                   .attrs = attrs,
                   .inputs = {f32(x), f32(c), f32(c), f32(c), f32(c)},
                   .training = training,
                   .reference = training ? ref_bn_train : ref_bn_infer,
                   .grad_inputs = grads,
                   .checked_outputs = checked,
                   .prepare = positive_running_var});
  };
  // The gradient rule covers y only (mean and invstd are saved for backward), so the
  // gradient cases seed y alone; the *_outputs cases compare all three outputs.
  bn("nchw_train_outputs", {4, 3, 2, 3}, true, {}, {});
  bn("nchw_train_grad", {4, 3, 2, 3}, true, {0, 1, 2}, {0});
  bn("nc_train_outputs", {6, 5}, true, {}, {});
  // The CUDA engine's fusion of a ReLU-masked gradient sum into batch norm's gradient, as an op:
  // y's values away from 0 (the mask's kink), invstd positive.
  for (auto [name, x] : {std::pair{"nchw", Dims{4, 3, 2, 3}}, std::pair{"nc", Dims{6, 5}}}) {
    Dims c{x[1]};
    register_case({.name = std::string("batch_norm_sum_grad/") + name,
                   .op = "batch_norm_sum_grad",
                   .inputs = {f32(x), f32(x), f32(c), f32(c), f32(c), f32(x), f32(x)},
                   .reference = ref_bn_sum_grad,
                   .prepare = [](Ins& in) {
                     for (double& v : in[4]) v = std::abs(v) + 0.1;
                     for (double& v : in[6]) v = v < 0 ? v - 0.1 : v + 0.1;
                   }});
  }
  bn("nc_train_grad", {6, 5}, true, {0, 1, 2}, {0});
  bn("nchw_eps_momentum", {3, 2, 3, 3}, true, {0, 1, 2}, {0},
     Attrs{{"eps", 1e-3}, {"momentum", 0.8}});
  bn("nchw_inference", {2, 3, 2, 2}, false, {}, {});
  bn("nc_inference", {5, 4}, false, {}, {});
}

void register_activation() {
  struct Kind {
    const char* kind;
    double alpha;
  };
  for (Kind k : {Kind{"relu", 0}, Kind{"leaky_relu", 0.1}, Kind{"sigmoid", 0}, Kind{"tanh", 0},
                 Kind{"elu", 0.7}, Kind{"gelu", 0}}) {
    Attrs a{{"kind", std::string(k.kind)}};
    if (k.alpha != 0) a.set("alpha", k.alpha);
    register_case({.name = std::string("activation/") + k.kind,
                   .op = "activation",
                   .attrs = a,
                   .inputs = {f32({3, 17})},  // odd: the vector loops' tails
                   .reference = ref_activation,
                   .grad_inputs = {0},
                   .perf_inputs = {f32({256, 4096})}});
  }
  // The composite spellings, with their default alphas.
  register_case({.name = "activation/leaky_relu_composite",
                 .op = "leaky_relu",
                 .inputs = {f32({2, 3, 4})},
                 .reference =
                     [](const Ins& in, const Attrs&, const Types& t) {
                       return ref_activation(in, Attrs{{"kind", std::string("leaky_relu")}}, t);
                     },
                 .grad_inputs = {0}});
  register_case({.name = "activation/elu_composite",
                 .op = "elu",
                 .inputs = {f32({2, 3, 4})},
                 .reference =
                     [](const Ins& in, const Attrs&, const Types& t) {
                       return ref_activation(in, Attrs{{"kind", std::string("elu")}}, t);
                     },
                 .grad_inputs = {0}});
}

void register_linear() {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      int64_t m = 3, k = 4, n = 5;
      register_case(
          {.name = std::string("matmul/") + (ta ? "t" : "n") + (tb ? "t" : "n"),
           .op = "matmul",
           .attrs = {{"trans_a", int64_t{ta}}, {"trans_b", int64_t{tb}}},
           .inputs = {f32(ta ? Dims{k, m} : Dims{m, k}), f32(tb ? Dims{n, k} : Dims{k, n})},
           .reference = ref_matmul,
           .grad_inputs = {0, 1},
           .perf_inputs = {f32(ta ? Dims{800, 64} : Dims{64, 800}),
                           f32(tb ? Dims{500, 800} : Dims{800, 500})}});
    }
  register_case({.name = "inner_product/4d_bias",
                 .op = "inner_product",
                 .inputs = {f32({3, 2, 2, 3}), f32({5, 12}), f32({5})},
                 .reference = ref_inner_product,
                 .grad_inputs = {0, 1, 2},
                 .perf_inputs = {f32({64, 50, 4, 4}), f32({500, 800}), f32({500})}});
  register_case({.name = "inner_product/2d",
                 .op = "inner_product",
                 .inputs = {f32({4, 6}), f32({3, 6})},
                 .reference = ref_inner_product,
                 .grad_inputs = {0, 1}});
}

[[maybe_unused]] const bool registered = [] {
  register_conv();
  register_pool();
  register_lrn();
  register_batch_norm();
  register_activation();
  register_linear();
  return true;
}();

}  // namespace

std::vector<Doubles> reference_batch_norm(const std::vector<Doubles>& in, const Attrs& a,
                                          const std::vector<TensorType>& t, bool training) {
  const Shape& s = t[0].shape;
  BatchNormParams p(a);
  int64_t c = s[1], inner = s.numel() / (s[0] * c), m = s[0] * inner;
  Doubles mean(c, 0.0), var(c, 0.0), invstd(c), y(in[0].size());
  auto channel = [&](size_t i) { return int64_t(i) / inner % c; };
  for (size_t i = 0; i < y.size(); ++i) mean[channel(i)] += in[0][i] / double(m);
  for (size_t i = 0; i < y.size(); ++i)
    var[channel(i)] += std::pow(in[0][i] - mean[channel(i)], 2) / double(m);
  if (!training) mean = in[3], var = in[4];
  for (int64_t k = 0; k < c; ++k) invstd[k] = 1 / std::sqrt(var[k] + p.eps);
  for (size_t i = 0; i < y.size(); ++i) {
    int64_t k = channel(i);
    y[i] = (in[0][i] - mean[k]) * invstd[k] * in[1][k] + in[2][k];
  }
  if (!training) return {y};
  return {y, mean, invstd};
}

std::vector<Doubles> reference_max_pool(const std::vector<Doubles>& in, const Attrs& a,
                                        const std::vector<TensorType>& t) {
  return ref_max_pool(in, a, t);
}

}  // namespace myelin::test
