// Each Myelin layer type as ONNX (opset 17) nodes. Layers arrive canonical (model/layers.cpp):
// keys left out take the layer table's defaults, repeated here as the getters' fallbacks.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "core/error.h"
#include "onnx/export_graph.h"
#include "ops/params.h"

namespace myelin::onnx_export {

namespace {

using Ins = const std::vector<std::string>&;

struct Layer {
  GraphWriter& w;
  const LayerSpec& l;
  const std::vector<Shape>& shapes;
  const std::string& out;
  const Attrs& a() const { return l.attrs; }
};

// ONNX pads are [begin_h, begin_w, end_h, end_w]; Myelin pads both sides alike.
std::vector<int64_t> pads(const Attrs& a) {
  auto p = a.pair("pad", 0);
  return {p[0], p[1], p[0], p[1]};
}

std::vector<std::string> weight_inputs(Layer& c, const std::string& x) {
  std::vector<std::string> in{x, c.w.weight(c.l.name + ".weight")};
  if (c.a().i("bias", 1)) in.push_back(c.w.weight(c.l.name + ".bias"));
  return in;
}

std::vector<onnx::AttributeProto> conv_attrs(const Attrs& a) {
  return {attr("kernel_shape", a.pair("kernel", 1)), attr("strides", a.pair("stride", 1)),
          attr("pads", pads(a)), attr("dilations", a.pair("dilation", 1)),
          attr("group", a.i("groups", 1))};
}

std::string conv(Layer c, Ins in) {
  return c.w.node1("Conv", c.l.name, weight_inputs(c, in[0]), conv_attrs(c.a()), c.out);
}

std::string deconv(Layer c, Ins in) {
  auto attrs = conv_attrs(c.a());
  attrs.push_back(attr("output_padding", c.a().pair("output_padding", 0)));
  return c.w.node1("ConvTranspose", c.l.name, weight_inputs(c, in[0]), attrs, c.out);
}

// ONNX's ceil_mode (opset 17) lacks the rule that drops a last window starting in the right
// padding, so pooling is written with ceil_mode 0 and the right padding that gives Myelin's
// extents (max pooling ignores padding). Where that padding overhangs Myelin's, an average that
// counts padding divides by the unclipped window: a constant factor restores Myelin's divisors.
struct PoolGeometry {
  std::vector<int64_t> kernel, stride, pad_begin, pad_end, out;
  std::vector<std::vector<float>> divisor_fix;  // per axis, for each output index
  bool overhangs = false;
};

PoolGeometry pool_geometry(const Attrs& a, const Shape& x) {
  PoolGeometry g{a.pair("kernel", 1)};
  g.stride = a.has("stride") ? a.pair("stride", 1) : g.kernel;
  g.pad_begin = a.pair("pad", 0);
  const bool ceil = a.i("ceil_mode", 0) != 0;
  for (int i = 0; i < 2; ++i) {
    const int64_t in = x[2 + i], k = g.kernel[i], s = g.stride[i], p = g.pad_begin[i];
    const int64_t out = window_out(in, k, s, p, 1, ceil);
    g.out.push_back(out);
    g.pad_end.push_back(std::max(p, (out - 1) * s + k - in - p));
    g.overhangs |= g.pad_end[i] > p;
    std::vector<float> fix;
    for (int64_t o = 0; o < out; ++o)
      fix.push_back(static_cast<float>(k) /
                    static_cast<float>(std::min(o * s - p + k, in + p) - (o * s - p)));
    g.divisor_fix.push_back(std::move(fix));
  }
  return g;
}

std::string pool(Layer c, Ins in) {
  const Attrs& a = c.a();
  if (a.has("global"))
    return c.w.node1(a.s("global", "avg") == "max" ? "GlobalMaxPool" : "GlobalAveragePool",
                     c.l.name, in, {}, c.out);
  const PoolGeometry g = pool_geometry(a, c.shapes[0]);
  std::vector<onnx::AttributeProto> attrs = {
      attr("kernel_shape", g.kernel), attr("strides", g.stride),
      attr("pads",
           std::vector<int64_t>{g.pad_begin[0], g.pad_begin[1], g.pad_end[0], g.pad_end[1]})};
  if (a.s("mode", "max") == "max") return c.w.node1("MaxPool", c.l.name, in, attrs, c.out);
  const bool include_pad = a.i("count_include_pad", 1) != 0;
  attrs.push_back(attr("count_include_pad", int64_t{include_pad}));
  if (!(include_pad && g.overhangs)) return c.w.node1("AveragePool", c.l.name, in, attrs, c.out);
  Tensor fix = Tensor::empty(Shape{1, 1, g.out[0], g.out[1]}, DType::f32);
  for (int64_t i = 0; i < g.out[0]; ++i)
    for (int64_t j = 0; j < g.out[1]; ++j)
      fix.f32()[i * g.out[1] + j] = g.divisor_fix[0][i] * g.divisor_fix[1][j];
  std::string y = c.w.node1("AveragePool", c.l.name, in, attrs);
  return c.w.node1("Mul", c.l.name, {y, c.w.initializer(c.l.name + ".divisor_fix", fix)}, {},
                   c.out);
}

std::string unary(const char* op, Layer c, Ins in) {
  return c.w.node1(op, c.l.name, in, {}, c.out);
}

std::string with_alpha(const char* op, double dflt, Layer c, Ins in) {
  return c.w.node1(op, c.l.name, in, {attr("alpha", c.a().f("alpha", dflt))}, c.out);
}

// Myelin's GELU is the tanh approximation (oneDNN's gelu_tanh); opset 17 has no Gelu op:
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
std::string gelu(Layer c, Ins in) {
  auto scalar = [&](const char* name, float v) {
    Tensor t = Tensor::empty(Shape{}, DType::f32);
    t.f32()[0] = v;
    return c.w.initializer(c.l.name + "." + name, t);
  };
  const std::string& x = in[0];
  auto& w = c.w;
  const std::string& n = c.l.name;
  std::string x3 = w.node1("Mul", n, {w.node1("Mul", n, {x, x}), x});
  std::string inner = w.node1("Add", n, {x, w.node1("Mul", n, {x3, scalar("gelu_c", 0.044715f)})});
  std::string t = w.node1(
      "Tanh", n, {w.node1("Mul", n, {inner, scalar("gelu_sqrt_2_over_pi", 0.7978845608f)})});
  std::string half_x = w.node1("Mul", n, {x, scalar("gelu_half", 0.5f)});
  return w.node1("Mul", n, {half_x, w.node1("Add", n, {t, scalar("gelu_one", 1.0f)})}, {}, c.out);
}

std::string lrn(Layer c, Ins in) {
  const Attrs& a = c.a();
  return c.w.node1("LRN", c.l.name, in,
                   {attr("size", a.i("size", 5)), attr("alpha", a.f("alpha", 1e-4)),
                    attr("beta", a.f("beta", 0.75)), attr("bias", a.f("k", 1.0))},
                   c.out);
}

// [.. axis-1 kept, the rest as one]: Myelin's flatten (ONNX's Flatten makes 2-D only).
std::string keep_axes(Layer& c, const std::string& x, int64_t axis, const std::string& out) {
  if (axis == 1) return c.w.node1("Flatten", c.l.name, {x}, {attr("axis", int64_t{1})}, out);
  std::vector<int64_t> shape(static_cast<size_t>(axis), 0);
  shape.push_back(-1);
  return c.w.node1("Reshape", c.l.name, {x, c.w.int64s(c.l.name + ".shape", shape)}, {}, out);
}

// axis 1: Flatten + Gemm. axis > 1 ([N, T, F] scored per step): MatMul with the transposed
// weights, then the bias.
std::string fc(Layer c, Ins in) {
  const int64_t axis = c.a().i("axis", 1);
  const bool flat = c.shapes[0].rank() == axis + 1;
  std::string x = flat ? in[0] : keep_axes(c, in[0], axis, "");
  if (axis == 1)
    return c.w.node1("Gemm", c.l.name, weight_inputs(c, x), {attr("transB", int64_t{1})}, c.out);
  std::string wt = c.w.node1("Transpose", c.l.name, {c.w.weight(c.l.name + ".weight")},
                             {attr("perm", std::vector<int64_t>{1, 0})});
  if (!c.a().i("bias", 1)) return c.w.node1("MatMul", c.l.name, {x, wt}, {}, c.out);
  std::string y = c.w.node1("MatMul", c.l.name, {x, wt});
  return c.w.node1("Add", c.l.name, {y, c.w.weight(c.l.name + ".bias")}, {}, c.out);
}

// Symbol ids [N, T] (int64) -> rows of the table [N, T, size].
std::string embedding(Layer c, Ins in) {
  return c.w.node1("Gather", c.l.name, {c.w.weight(c.l.name + ".weight"), in[0]},
                   {attr("axis", int64_t{0})}, c.out);
}

std::string batch_norm(Layer c, Ins in) {
  const std::string& n = c.l.name;
  return c.w.node1(
      "BatchNormalization", n,
      {in[0], c.w.weight(n + ".gamma"), c.w.weight(n + ".beta"), c.w.weight(n + ".running_mean"),
       c.w.weight(n + ".running_var")},
      {attr("epsilon", c.a().f("eps", 1e-5)), attr("momentum", c.a().f("momentum", 0.9))}, c.out);
}

std::string add(Layer c, Ins in) {
  std::string y = in[0];
  for (size_t i = 1; i < in.size(); ++i)
    y = c.w.node1("Add", c.l.name, {y, in[i]}, {}, i + 1 == in.size() ? c.out : "");
  return y;
}

std::string concat(Layer c, Ins in) {
  return c.w.node1("Concat", c.l.name, in, {attr("axis", c.a().i("axis", 1))}, c.out);
}

std::string flatten(Layer c, Ins in) {
  return keep_axes(c, in[0], c.a().i("axis", 1), c.out);
}

// Myelin's shape follows the batch; 0 copies the input's extent at that place, as in ONNX.
std::string reshape(Layer c, Ins in) {
  std::vector<int64_t> shape{0};
  for (int64_t d : c.a().ints("shape", {})) shape.push_back(d);
  return c.w.node1("Reshape", c.l.name, {in[0], c.w.int64s(c.l.name + ".shape", shape)}, {}, c.out);
}

std::string recurrent(Layer c, Ins in) {
  return emit_recurrent(c.w, c.l, in[0], c.out);
}

using Emitter = std::function<std::string(Layer, Ins)>;

const std::map<std::string, Emitter>& emitters() {
  static const std::map<std::string, Emitter> m = {
      {"conv", conv},
      {"deconv", deconv},
      {"pool", pool},
      {"relu", [](Layer c, Ins in) { return unary("Relu", c, in); }},
      {"sigmoid", [](Layer c, Ins in) { return unary("Sigmoid", c, in); }},
      {"tanh", [](Layer c, Ins in) { return unary("Tanh", c, in); }},
      {"leaky_relu", [](Layer c, Ins in) { return with_alpha("LeakyRelu", 0.01, c, in); }},
      {"elu", [](Layer c, Ins in) { return with_alpha("Elu", 1.0, c, in); }},
      {"gelu", gelu},
      {"lrn", lrn},
      {"dropout", [](Layer, Ins in) { return in[0]; }},  // the identity at inference
      {"fc", fc},
      {"embedding", embedding},
      {"lstm", recurrent},
      {"gru", recurrent},
      {"rnn", recurrent},
      {"batch_norm", batch_norm},
      {"softmax",
       [](Layer c, Ins in) {
         return c.w.node1("Softmax", c.l.name, in, {attr("axis", int64_t{1})}, c.out);
       }},
      {"add", add},
      {"mul", [](Layer c, Ins in) { return c.w.node1("Mul", c.l.name, in, {}, c.out); }},
      {"concat", concat},
      {"flatten", flatten},
      {"reshape", reshape}};
  return m;
}

}  // namespace

std::string emit_layer(GraphWriter& w, const LayerSpec& l, const std::vector<std::string>& inputs,
                       const std::vector<Shape>& in_shapes, const std::string& out) {
  auto it = emitters().find(l.type);
  if (it == emitters().end())
    throw UnsupportedError("ONNX export: layer '" + l.name + "' of type '" + l.type +
                           "' has no ONNX counterpart");
  return it->second(Layer{w, l, in_shapes, out}, inputs);
}

}  // namespace myelin::onnx_export
