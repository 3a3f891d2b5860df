// Each layer type as graph ops. Layers arrive canonical (model/layers.cpp): keys checked,
// defaults left out, so every getter below falls back to the same default as the table.
#include "model/layer_build.h"

#include <cmath>

#include "model/layers.h"

namespace myelin::layer_build {

namespace {

[[noreturn]] void fail(const LayerSpec& l, const std::string& what) {
  throw ShapeError(l.type + " '" + l.name + "': " + what);
}

const Shape& shape_of(const Graph& g, ValueId v) {
  return g.value(v).shape;
}

void need_rank(const Graph& g, const LayerSpec& l, ValueId v, int rank, const char* form) {
  const Shape& s = shape_of(g, v);
  if (s.rank() != rank) fail(l, std::string("needs an input of ") + form + ", got " + s.str());
}

ValueId param(Graph& g, const LayerSpec& l, const std::string& suffix, Shape shape,
              const std::string& init_key, const std::string& init_dflt, double lr, double decay) {
  if (bounded_numel(shape.dims) < 0) fail(l, suffix + " of " + shape.str() + " is too large");
  ValueId p = g.param(l.name + "." + suffix, std::move(shape),
                      parse_init(l.attrs.s(init_key, init_dflt), init_key));
  g.value(p).lr_mult = lr;
  g.value(p).decay_mult = decay;
  return p;
}

// [x, weight, bias?] for conv, deconv and fc.
std::vector<ValueId> with_weights(Graph& g, const LayerSpec& l, ValueId x, Shape w,
                                  int64_t outputs) {
  const Attrs& a = l.attrs;
  std::vector<ValueId> in{x, param(g, l, "weight", std::move(w), "init", "xavier",
                                   a.f("lr_mult", 1.0), a.f("decay_mult", 1.0))};
  if (a.i("bias", 1))
    in.push_back(param(g, l, "bias", Shape{outputs}, "bias_init", "constant(0)",
                       a.f("bias_lr_mult", 1.0), a.f("bias_decay_mult", 1.0)));
  return in;
}

// The op attributes of `keys`: the layer's values, else the layer table's defaults, written out
// so that a network never depends on an op's own defaults.
Attrs pick(const LayerSpec& l, std::initializer_list<const char*> keys) {
  const LayerDef& def = *find_layer_def(l.type);
  Attrs r;
  for (const char* k : keys) {
    const KeyDef* key = find_key(def, k);
    if (l.attrs.has(k))
      r.set(k, l.attrs.items().at(k));
    else if (key && key->dflt)
      r.set(k, *key->dflt);
  }
  return r;
}

void check_groups(const LayerSpec& l, int64_t channels, int64_t filters, int64_t groups) {
  if (channels % groups != 0 || filters % groups != 0)
    fail(l, "groups (" + std::to_string(groups) + ") must divide the input channels (" +
                std::to_string(channels) + ") and filters (" + std::to_string(filters) + ")");
}

}  // namespace

ValueId conv(Graph& g, const LayerSpec& l, In in) {
  need_rank(g, l, in[0], 4, "[N, C, H, W]");
  const Shape& x = shape_of(g, in[0]);
  int64_t filters = l.attrs.i("filters", 1), groups = l.attrs.i("groups", 1);
  auto k = l.attrs.pair("kernel", 1);
  check_groups(l, x[1], filters, groups);
  auto ins = with_weights(g, l, in[0], Shape{filters, x[1] / groups, k[0], k[1]}, filters);
  return g.add1("conv2d", l.name, ins, pick(l, {"stride", "pad", "dilation", "groups"}));
}

ValueId deconv(Graph& g, const LayerSpec& l, In in) {
  need_rank(g, l, in[0], 4, "[N, C, H, W]");
  const Shape x = shape_of(g, in[0]);
  int64_t filters = l.attrs.i("filters", 1), groups = l.attrs.i("groups", 1);
  auto k = l.attrs.pair("kernel", 1), s = l.attrs.pair("stride", 1), p = l.attrs.pair("pad", 0),
       d = l.attrs.pair("dilation", 1), op = l.attrs.pair("output_padding", 0);
  check_groups(l, x[1], filters, groups);
  Dims out{filters};
  for (int i = 0; i < 2; ++i) {
    // Bounded: extents, strides and kernels are at most 2^40 and 2^16, so no overflow.
    int64_t o = (x[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 + op[i];
    if (o <= 0) fail(l, "output would be empty for input " + x.str() + " (padding too large)");
    out.push_back(o);
  }
  if (bounded_numel(out) < 0) fail(l, "output is too large for input " + x.str());
  auto ins = with_weights(g, l, in[0], Shape{x[1], filters / groups, k[0], k[1]}, filters);
  return g.add1("conv_transpose2d", l.name, ins,
                pick(l, {"stride", "pad", "dilation", "groups", "output_padding"}));
}

ValueId pool(Graph& g, const LayerSpec& l, In in) {
  need_rank(g, l, in[0], 4, "[N, C, H, W]");
  if (l.attrs.has("global"))
    return g.add1("global_" + l.attrs.s("global", "avg") + "_pool", l.name, in);
  std::string mode = l.attrs.s("mode", "max");
  Attrs a = pick(l, {"kernel", "stride", "pad", "ceil_mode"});
  if (mode == "avg") a.set("count_include_pad", l.attrs.i("count_include_pad", 1));
  return g.add1(mode + "_pool2d", l.name, in, a);
}

ValueId activation(Graph& g, const LayerSpec& l, In in) {
  return g.add1(l.type, l.name, in, pick(l, {"alpha"}));
}

ValueId lrn(Graph& g, const LayerSpec& l, In in) {
  need_rank(g, l, in[0], 4, "[N, C, H, W]");
  return g.add1("lrn", l.name, in, pick(l, {"size", "alpha", "beta", "k"}));
}

ValueId dropout(Graph& g, const LayerSpec& l, In in) {
  return g.add1("dropout", l.name, in, pick(l, {"ratio"}));
}

// With axis > 1 the axes before it are all examples: [N, T, H] with axis 2 is N*T rows of H.
ValueId fc(Graph& g, const LayerSpec& l, In in) {
  const Shape x = shape_of(g, in[0]);
  const int64_t axis = l.attrs.i("axis", 1);
  if (x.rank() <= axis)
    fail(l, "needs an input with more than " + std::to_string(axis) + " axes, got " + x.str());
  int64_t outputs = l.attrs.i("outputs", 1);
  Dims rows(x.dims.begin(), x.dims.begin() + axis);
  int64_t features = bounded_numel(Dims(x.dims.begin() + axis, x.dims.end()));
  ValueId flat = in[0];
  if (axis > 1)
    flat = g.add1("reshape", l.name, {flat}, Attrs{{"shape", Dims{bounded_numel(rows), features}}});
  auto ins = with_weights(g, l, flat, Shape{outputs, features}, outputs);
  ValueId y = g.add1("inner_product", l.name, ins);
  if (axis == 1) return y;
  rows.push_back(outputs);
  return g.add1("reshape", l.name, {y}, Attrs{{"shape", rows}});
}

ValueId embedding(Graph& g, const LayerSpec& l, In in) {
  if (g.value(in[0]).dtype != DType::i32)
    fail(l, "reads symbol ids: it must be the first layer of a network with input_type: tokens");
  const Attrs& a = l.attrs;
  ValueId table = param(g, l, "weight", Shape{a.i("vocabulary", 1), a.i("size", 1)}, "init",
                        "gaussian(1)", a.f("lr_mult", 1.0), a.f("decay_mult", 1.0));
  return g.add1("embedding", l.name, {in[0], table});
}

ValueId batch_norm(Graph& g, const LayerSpec& l, In in) {
  const Shape& x = shape_of(g, in[0]);
  if (x.rank() < 2) fail(l, "needs an input of [N, C, ...], got " + x.str());
  const int64_t c = x[1];
  double lr = l.attrs.f("lr_mult", 1.0), decay = l.attrs.f("decay_mult", 1.0);
  ValueId gamma = param(g, l, "gamma", Shape{c}, "gamma_init", "constant(1)", lr, decay);
  ValueId beta = param(g, l, "beta", Shape{c}, "beta_init", "constant(0)", lr, decay);
  ValueId mean = g.state(l.name + ".running_mean", Shape{c}, Init{"constant", 0.0});
  ValueId var = g.state(l.name + ".running_var", Shape{c}, Init{"constant", 1.0});
  return g.add1("batch_norm", l.name, {in[0], gamma, beta, mean, var},
                pick(l, {"eps", "momentum"}));
}

// Stacked, optionally bidirectional, recurrent layers: one rnn op per layer and direction, the
// directions concatenated, dropout between layers. Weights are named as PyTorch's nn.LSTM/GRU/RNN
// name theirs (NAME.weight_ih_l0, NAME.bias_hh_l1_reverse, ...), in its layout and gate order.
ValueId recurrent(Graph& g, const LayerSpec& l, In in) {
  need_rank(g, l, in[0], 3, "[N, T, features] (batch first; a reshape layer makes one)");
  const Attrs& a = l.attrs;
  const int64_t hidden = a.i("hidden", 1), layers = a.i("layers", 1);
  const bool both = a.i("bidirectional", 0) != 0;
  const double dropout = a.f("dropout", 0.0), lr = a.f("lr_mult", 1.0),
               decay = a.f("decay_mult", 1.0);
  std::string mode = l.type == "rnn" ? "rnn_" + a.s("nonlinearity", "tanh") : l.type;
  const int64_t gates = mode == "lstm" ? 4 : mode == "gru" ? 3 : 1;
  const std::string init =
      "uniform(" + format_number(1.0 / std::sqrt(static_cast<double>(hidden))) + ")";
  const bool carry = a.i("carry_state", 0) != 0;
  const int64_t batch = shape_of(g, in[0])[0];
  ValueId x = in[0];
  std::vector<ValueId> last;
  for (int64_t k = 0; k < layers; ++k) {
    const int64_t features = shape_of(g, x)[2];
    std::vector<ValueId> seqs;
    last.clear();
    for (int reverse = 0; reverse <= int{both}; ++reverse) {
      std::string suffix = "_l" + std::to_string(k) + (reverse ? "_reverse" : "");
      auto weight = [&](const std::string& name, Shape shape) {
        return param(g, l, name + suffix, std::move(shape), "init", init, lr, decay);
      };
      std::vector<ValueId> ins{x, weight("weight_ih", Shape{gates * hidden, features}),
                               weight("weight_hh", Shape{gates * hidden, hidden}),
                               weight("bias_ih", Shape{gates * hidden}),
                               weight("bias_hh", Shape{gates * hidden})};
      // Carried states: read through a copy (the backward pass needs them as they were), then
      // overwritten with the final states for the next batch.
      std::vector<ValueId> carried;
      for (int s = 0; carry && s < (mode == "lstm" ? 2 : 1); ++s) {
        std::string name = l.name + ".carry." + (s ? "c" : "h") + suffix +
                           (g.training() ? ".train" : ".eval") + ".b" + std::to_string(batch);
        carried.push_back(g.state(name, Shape{batch, hidden}, Init{"constant", 0.0}));
        ins.push_back(g.add1("copy", l.name, {carried.back()}));
      }
      auto outs = g.add("rnn", l.name, ins,
                        Attrs{{"mode", mode}, {"hidden", hidden}, {"reverse", int64_t{reverse}}});
      for (size_t s = 0; s < carried.size(); ++s)
        g.add("assign", l.name, {carried[s], outs[1 + s]});
      seqs.push_back(outs[0]);
      last.push_back(outs[1]);
    }
    x = both ? g.add1("concat", l.name, seqs, Attrs{{"axis", int64_t{2}}}) : seqs[0];
    if (dropout > 0 && k + 1 < layers)
      x = g.add1("dropout", l.name, {x}, Attrs{{"ratio", dropout}});
  }
  if (a.s("output", "sequence") == "sequence") return x;
  return both ? g.add1("concat", l.name, last, Attrs{{"axis", int64_t{1}}}) : last[0];
}

ValueId softmax(Graph& g, const LayerSpec& l, In in) {
  return g.add1("softmax", l.name, in);
}

ValueId add(Graph& g, const LayerSpec& l, In in) {
  ValueId y = g.add1("add", l.name, {in[0], in[1]});
  for (size_t i = 2; i < in.size(); ++i) y = g.add1("add", l.name, {y, in[i]});
  return y;
}

ValueId mul(Graph& g, const LayerSpec& l, In in) {
  return g.add1("mul", l.name, in);
}

ValueId concat(Graph& g, const LayerSpec& l, In in) {
  int64_t axis = l.attrs.i("axis", 1);
  for (ValueId v : in)
    if (axis >= shape_of(g, v).rank())
      fail(l,
           "axis " + std::to_string(axis) + " is out of range for input " + shape_of(g, v).str());
  return g.add1("concat", l.name, in, pick(l, {"axis"}));
}

ValueId flatten(Graph& g, const LayerSpec& l, In in) {
  int64_t axis = l.attrs.i("axis", 1);
  const Shape& x = shape_of(g, in[0]);
  if (axis >= x.rank())
    fail(l, "axis " + std::to_string(axis) + " needs an input of more than " +
                std::to_string(axis) + " dimensions, got " + x.str());
  return g.add1("flatten", l.name, in, pick(l, {"axis"}));
}

ValueId reshape(Graph& g, const LayerSpec& l, In in) {
  const Shape& x = shape_of(g, in[0]);
  Dims shape{x[0]};
  for (int64_t d : l.attrs.ints("shape", {})) shape.push_back(d);
  return g.add1("reshape", l.name, in, Attrs{{"shape", shape}});
}

}  // namespace myelin::layer_build
