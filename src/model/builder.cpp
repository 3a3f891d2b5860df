#include "model/builder.h"

#include "model/layers.h"

namespace myelin {

namespace {

AttrValue pair_value(Pair p) {
  return p.h == p.w ? AttrValue{p.h} : AttrValue{std::vector<int64_t>{p.h, p.w}};
}

// Weight keys shared by conv, deconv and fc; canonicalization drops those at their defaults.
template <class O>
void set_weights(Attrs& a, const O& o) {
  a.set("init", init_text(o.init));
  a.set("lr_mult", o.lr_mult);
  a.set("decay_mult", o.decay_mult);
  a.set("bias", int64_t{o.bias});
  if (!o.bias) return;
  a.set("bias_init", init_text(o.bias_init));
  a.set("bias_lr_mult", o.bias_lr_mult);
  a.set("bias_decay_mult", o.bias_decay_mult);
}

Attrs conv_attrs(int64_t filters, Pair kernel, const ConvOptions& o, bool transposed) {
  Attrs a{{"filters", filters},
          {"kernel", pair_value(kernel)},
          {"stride", pair_value(o.stride)},
          {"pad", pair_value(o.pad)},
          {"dilation", pair_value(o.dilation)},
          {"groups", o.groups}};
  if (transposed) a.set("output_padding", pair_value(o.output_padding));
  set_weights(a, o);
  return a;
}

Attrs pool_attrs(const char* mode, Pair kernel, const PoolOptions& o) {
  Attrs a{{"mode", std::string(mode)},
          {"kernel", pair_value(kernel)},
          {"pad", pair_value(o.pad)},
          {"ceil_mode", int64_t{o.ceil_mode}}};
  if (o.stride.h != 0 || o.stride.w != 0) a.set("stride", pair_value(o.stride));
  if (std::string(mode) == "avg") a.set("count_include_pad", int64_t{o.count_include_pad});
  return a;
}

}  // namespace

NetBuilder::NetBuilder(std::string name, Dims input, int64_t classes) {
  spec_.name = std::move(name);
  spec_.input = std::move(input);
  spec_.classes = classes;
}

NetBuilder& NetBuilder::description(std::string text) {
  spec_.description = std::move(text);
  return *this;
}

NetBuilder& NetBuilder::recipe(const Recipe& r) {
  spec_.recipe = r;
  return *this;
}

NetBuilder& NetBuilder::from(std::vector<std::string> inputs) {
  next_inputs_ = std::move(inputs);
  return *this;
}

NetBuilder& NetBuilder::layer(std::string type, std::string name, Attrs attrs,
                              std::vector<std::string> inputs) {
  LayerSpec l{std::move(name), std::move(type), std::move(inputs), std::move(attrs),
              static_cast<int>(spec_.layers.size()) + 1};
  if (l.inputs.empty()) l.inputs = std::move(next_inputs_);
  next_inputs_.clear();
  try {
    canonicalize_layer(l);
  } catch (const FieldError& e) {
    throw ParseError(spec_origin(spec_), l.line, e.field(), e.what());
  }
  spec_.layers.push_back(std::move(l));
  return *this;
}

NetBuilder& NetBuilder::conv(std::string name, int64_t filters, Pair kernel, const ConvOptions& o) {
  return layer("conv", std::move(name), conv_attrs(filters, kernel, o, false));
}

NetBuilder& NetBuilder::deconv(std::string name, int64_t filters, Pair kernel,
                               const ConvOptions& o) {
  return layer("deconv", std::move(name), conv_attrs(filters, kernel, o, true));
}

NetBuilder& NetBuilder::max_pool(std::string name, Pair kernel, const PoolOptions& o) {
  return layer("pool", std::move(name), pool_attrs("max", kernel, o));
}

NetBuilder& NetBuilder::avg_pool(std::string name, Pair kernel, const PoolOptions& o) {
  return layer("pool", std::move(name), pool_attrs("avg", kernel, o));
}

NetBuilder& NetBuilder::global_avg_pool(std::string name) {
  return layer("pool", std::move(name), Attrs{{"global", std::string("avg")}});
}

NetBuilder& NetBuilder::global_max_pool(std::string name) {
  return layer("pool", std::move(name), Attrs{{"global", std::string("max")}});
}

NetBuilder& NetBuilder::relu(std::string name) {
  return layer("relu", std::move(name), {});
}

NetBuilder& NetBuilder::leaky_relu(std::string name, double alpha) {
  return layer("leaky_relu", std::move(name), Attrs{{"alpha", alpha}});
}

NetBuilder& NetBuilder::sigmoid(std::string name) {
  return layer("sigmoid", std::move(name), {});
}

NetBuilder& NetBuilder::tanh(std::string name) {
  return layer("tanh", std::move(name), {});
}

NetBuilder& NetBuilder::elu(std::string name, double alpha) {
  return layer("elu", std::move(name), Attrs{{"alpha", alpha}});
}

NetBuilder& NetBuilder::gelu(std::string name) {
  return layer("gelu", std::move(name), {});
}

NetBuilder& NetBuilder::lrn(std::string name, int64_t size, double alpha, double beta, double k) {
  return layer("lrn", std::move(name),
               Attrs{{"size", size}, {"alpha", alpha}, {"beta", beta}, {"k", k}});
}

NetBuilder& NetBuilder::dropout(std::string name, double ratio) {
  return layer("dropout", std::move(name), Attrs{{"ratio", ratio}});
}

NetBuilder& NetBuilder::fc(std::string name, int64_t outputs, const FcOptions& o) {
  Attrs a{{"outputs", outputs}};
  set_weights(a, o);
  return layer("fc", std::move(name), a);
}

NetBuilder& NetBuilder::batch_norm(std::string name, const BatchNormOptions& o) {
  return layer("batch_norm", std::move(name),
               Attrs{{"eps", o.eps},
                     {"momentum", o.momentum},
                     {"gamma_init", init_text(o.gamma_init)},
                     {"beta_init", init_text(o.beta_init)},
                     {"lr_mult", o.lr_mult},
                     {"decay_mult", o.decay_mult}});
}

NetBuilder& NetBuilder::softmax(std::string name) {
  return layer("softmax", std::move(name), {});
}

NetBuilder& NetBuilder::add(std::string name, std::vector<std::string> inputs) {
  return layer("add", std::move(name), {}, std::move(inputs));
}

NetBuilder& NetBuilder::mul(std::string name, std::vector<std::string> inputs) {
  return layer("mul", std::move(name), {}, std::move(inputs));
}

NetBuilder& NetBuilder::concat(std::string name, std::vector<std::string> inputs, int64_t axis) {
  return layer("concat", std::move(name), Attrs{{"axis", axis}}, std::move(inputs));
}

NetBuilder& NetBuilder::flatten(std::string name, int64_t axis) {
  return layer("flatten", std::move(name), Attrs{{"axis", axis}});
}

NetBuilder& NetBuilder::reshape(std::string name, Dims shape) {
  return layer("reshape", std::move(name), Attrs{{"shape", std::move(shape)}});
}

NetworkSpec NetBuilder::spec() const {
  NetworkSpec s = spec_;
  try {
    canonicalize_network(s);
  } catch (const LayerError& e) {
    throw ParseError(spec_origin(s), e.layer() >= 0 ? s.layers[e.layer()].line : 0, e.field(),
                     e.what());
  }
  build_network(s, 1, true);  // shape errors now, like parse_network
  return s;
}

BuiltNetwork NetBuilder::build(int64_t batch, bool training, double label_smoothing) const {
  return build_network(spec(), batch, training, label_smoothing);
}

}  // namespace myelin
