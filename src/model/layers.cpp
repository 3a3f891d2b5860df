#include "model/layers.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "model/layer_build.h"

namespace myelin {

namespace {

// --- Key constructors: one line per key in the table below ---

KeyDef integer(std::string key, int64_t min, int64_t max, std::optional<int64_t> dflt,
               std::string doc) {
  KeyDef k{std::move(key), KeyKind::integer, double(min), double(max)};
  if (dflt) k.dflt = *dflt;
  k.required = !dflt;
  k.doc = std::move(doc);
  return k;
}

KeyDef pair(std::string key, int64_t min, int64_t max, std::optional<int64_t> dflt, std::string doc,
            bool required = false) {
  KeyDef k{std::move(key), KeyKind::pair, double(min), double(max)};
  if (dflt) k.dflt = *dflt;
  k.required = required;
  k.doc = std::move(doc);
  return k;
}

KeyDef number(std::string key, double min, double max, double dflt, std::string doc) {
  KeyDef k{std::move(key), KeyKind::number, min, max};
  k.dflt = dflt;
  k.doc = std::move(doc);
  return k;
}

KeyDef flag(std::string key, bool dflt, std::string doc) {
  KeyDef k{std::move(key), KeyKind::boolean};
  k.dflt = int64_t{dflt};
  k.doc = std::move(doc);
  return k;
}

KeyDef choice(std::string key, std::string choices, std::optional<std::string> dflt,
              std::string doc) {
  KeyDef k{std::move(key), KeyKind::choice};
  k.choices = std::move(choices);
  if (dflt) k.dflt = *dflt;
  k.doc = std::move(doc);
  return k;
}

KeyDef init(std::string key, std::string dflt, std::string doc) {
  KeyDef k{std::move(key), KeyKind::init};
  k.dflt = std::move(dflt);
  k.doc = std::move(doc);
  return k;
}

KeyDef optional_init(std::string key, std::string doc) {  // no default: the builder decides
  KeyDef k{std::move(key), KeyKind::init};
  k.doc = std::move(doc);
  return k;
}

KeyDef optional_integer(std::string key, int64_t min, int64_t max, std::string doc) {
  KeyDef k{std::move(key), KeyKind::integer, double(min), double(max)};
  k.doc = std::move(doc);
  return k;
}

// lstm, gru and rnn: the same keys (rnn adds its nonlinearity).
std::vector<KeyDef> recurrent_keys(bool rnn) {
  std::vector<KeyDef> k = {
      integer("hidden", 1, 65536, std::nullopt, "features of the hidden state"),
      integer("layers", 1, 64, 1, "stacked layers, each reading the one below"),
      flag("bidirectional", false, "also run each layer backwards in time; outputs concatenate"),
      number("dropout", 0, 0.999, 0, "dropout between stacked layers while training"),
      choice("output", "sequence|last", "sequence",
             "sequence: every step's hidden state [N, T, H]; last: the final state [N, H]"),
      flag("carry_state", false,
           "start each batch from the previous batch's final state (text: truncated "
           "backpropagation through time over contiguous batches)"),
      optional_init("init",
                    "initializer of weights and biases (default PyTorch's: "
                    "uniform(1/sqrt(hidden)))"),
      number("lr_mult", 0, 1e6, 1.0, "learning-rate multiplier of weights and biases"),
      number("decay_mult", 0, 1e6, 1.0, "weight-decay multiplier of weights and biases")};
  if (rnn) k.push_back(choice("nonlinearity", "tanh|relu", "tanh", "the cell's activation"));
  return k;
}

KeyDef ints(std::string key, int64_t min, int64_t max, std::string doc) {
  KeyDef k{std::move(key), KeyKind::ints, double(min), double(max)};
  k.required = true;
  k.doc = std::move(doc);
  return k;
}

// Weights and bias of conv, deconv and fc.
std::vector<KeyDef> weight_keys() {
  return {init("init", "xavier",
               "weight initializer: xavier, msra, gaussian(std), uniform(scale), constant(v)"),
          flag("bias", true, "learn a bias"),
          init("bias_init", "constant(0)", "bias initializer; a number is a constant"),
          number("lr_mult", 0, 1e6, 1.0, "learning-rate multiplier of the weights"),
          number("decay_mult", 0, 1e6, 1.0, "weight-decay multiplier of the weights"),
          number("bias_lr_mult", 0, 1e6, 1.0, "learning-rate multiplier of the bias"),
          number("bias_decay_mult", 0, 1e6, 1.0, "weight-decay multiplier of the bias")};
}

std::vector<KeyDef> conv_keys(bool transposed) {
  std::vector<KeyDef> k = {
      integer("filters", 1, kMaxChannels, std::nullopt, "output channels"),
      pair("kernel", 1, kMaxDim, std::nullopt, "kernel size: k or [kh, kw]", true),
      pair("stride", 1, kMaxDim, 1, "stride: s or [sh, sw]"),
      pair("pad", 0, kMaxDim, 0, "zero padding on each side: p or [ph, pw]"),
      pair("dilation", 1, kMaxDim, 1, "dilation: d or [dh, dw]"),
      integer("groups", 1, kMaxChannels, 1, "channel groups (AlexNet's two towers: 2)")};
  if (transposed)
    k.push_back(pair("output_padding", 0, kMaxDim, 0, "extra rows/columns on one side"));
  for (KeyDef& w : weight_keys()) k.push_back(std::move(w));
  return k;
}

Attrs without(const Attrs& a, const std::string& key) {
  Attrs r;
  for (auto& [k, v] : a.items())
    if (k != key) r.set(k, v);
  return r;
}

void check_weights(LayerSpec& l) {
  if (l.attrs.i("bias", 1) != 0) return;
  for (const char* k : {"bias_init", "bias_lr_mult", "bias_decay_mult"})
    if (l.attrs.has(k))
      throw FieldError(k, std::string(k) + " is given, but the layer has bias: false");
}

void check_deconv(LayerSpec& l) {
  check_weights(l);
  auto op = l.attrs.pair("output_padding", 0), s = l.attrs.pair("stride", 1),
       d = l.attrs.pair("dilation", 1);
  for (int i = 0; i < 2; ++i)
    if (op[i] >= std::max(s[i], d[i]))
      throw FieldError("output_padding",
                       "output_padding must be smaller than the stride or the "
                       "dilation");
}

// pool: `max: K`, `avg: K` and `global: max|avg` are shorthands of mode/kernel.
void check_pool(LayerSpec& l) {
  Attrs& a = l.attrs;
  std::vector<std::string> given;
  for (const char* k : {"max", "avg", "global"})
    if (a.has(k)) given.push_back(k);
  if (given.size() > 1)
    throw FieldError(given[1], "give only one of max, avg and global (both " + given[0] + " and " +
                                   given[1] + " are given)");
  if (a.has("global")) {
    for (const char* k : {"mode", "kernel", "stride", "pad", "ceil_mode", "count_include_pad"})
      if (a.has(k))
        throw FieldError(
            k, std::string("global pooling covers the whole input; '") + k + "' does not apply");
    return;
  }
  for (const char* sh : {"max", "avg"}) {
    if (!a.has(sh)) continue;
    for (const char* k : {"kernel", "mode"})
      if (a.has(k))
        throw FieldError(k, std::string("'") + sh + ": K' already gives the " + k +
                                "; write either " + sh + ": K or mode and kernel");
    AttrValue k = a.items().at(sh);
    a = without(a, sh);
    a.set("kernel", k);
    a.set("mode", std::string(sh));
  }
  if (!a.has("kernel"))
    throw FieldError("kernel", "pool needs a window: max: K, avg: K, global: avg|max, or kernel");
  auto k = a.pair("kernel", 1), p = a.pair("pad", 0);
  if (p[0] >= k[0] || p[1] >= k[1])
    throw FieldError("pad", "padding must be smaller than the kernel");
  if (a.has("count_include_pad") && a.s("mode", "max") != "avg")
    throw FieldError("count_include_pad", "count_include_pad applies to average pooling only");
}

void check_lrn(LayerSpec& l) {
  if (l.attrs.i("size", 5) % 2 == 0) throw FieldError("size", "size must be odd");
}

void check_reshape(LayerSpec& l) {
  Dims d = l.attrs.ints("shape", {});
  if (d.empty() || d.size() > 7)
    throw FieldError("shape", "shape lists 1 to 7 dimensions per example (the batch is kept)");
  if (std::count(d.begin(), d.end(), -1) > 1)
    throw FieldError("shape", "shape may hold only one -1");
  Dims known;
  for (int64_t x : d)
    if (x > 0) known.push_back(x);
  if (bounded_numel(known) < 0) throw FieldError("shape", "shape is too large");
}

std::vector<LayerDef> make_defs() {
  namespace b = layer_build;
  auto act = [](std::string type, std::string doc, std::vector<KeyDef> keys = {}) {
    return LayerDef{std::move(type), std::move(doc), std::move(keys), 1, 1, b::activation};
  };
  std::vector<LayerDef> d;
  d.push_back({"conv", "2-D convolution (weights [filters, C/groups, kh, kw])", conv_keys(false), 1,
               1, b::conv, check_weights});
  d.push_back({"deconv", "transposed convolution (weights [C, filters/groups, kh, kw])",
               conv_keys(true), 1, 1, b::deconv, check_deconv});
  d.push_back({"pool",
               "max or average pooling: max: K, avg: K, global: avg|max, or the keys",
               {pair("max", 1, kMaxDim, std::nullopt, "max pooling with this kernel"),
                pair("avg", 1, kMaxDim, std::nullopt, "average pooling with this kernel"),
                choice("global", "max|avg", std::nullopt, "pool over the whole H and W"),
                choice("mode", "max|avg", "max", "max or avg"),
                pair("kernel", 1, kMaxDim, std::nullopt, "window: k or [kh, kw]"),
                pair("stride", 1, kMaxDim, std::nullopt, "stride (default: the kernel)"),
                pair("pad", 0, kMaxDim, 0, "padding on each side"),
                flag("ceil_mode", false, "round the output size up (Caffe's rule)"),
                flag("count_include_pad", true, "average over padding too")},
               1,
               1,
               b::pool,
               check_pool});
  d.push_back(act("relu", "max(x, 0)"));
  d.push_back(act("leaky_relu", "x if x > 0 else alpha * x",
                  {number("alpha", -1e3, 1e3, 0.01, "slope for x < 0")}));
  d.push_back(act("sigmoid", "1 / (1 + exp(-x))"));
  d.push_back(act("tanh", "tanh(x)"));
  d.push_back(act("elu", "x if x > 0 else alpha * (exp(x) - 1)",
                  {number("alpha", 0, 1e3, 1.0, "scale for x < 0")}));
  d.push_back(act("gelu", "x * Phi(x)"));
  d.push_back({"lrn",
               "local response normalization across channels (AlexNet)",
               {integer("size", 1, 1023, 5, "channels in the window (odd)"),
                number("alpha", 0, 1e3, 1e-4, "scale"), number("beta", 0, 1e3, 0.75, "exponent"),
                number("k", 1e-12, 1e6, 1.0, "offset")},
               1,
               1,
               b::lrn,
               check_lrn});
  d.push_back({"dropout",
               "zeroes a fraction of the elements while training",
               {number("ratio", 0, 0.999, 0.5, "fraction dropped")},
               1,
               1,
               b::dropout});
  std::vector<KeyDef> fc_keys = {
      integer("outputs", 1, kMaxOutputs, std::nullopt, "output features"),
      integer("axis", 1, 7, 1,
              "the first axis of the features; those before it are examples (2: one output "
              "per step of a sequence)")};
  for (KeyDef& w : weight_keys()) fc_keys.push_back(std::move(w));
  d.push_back({"fc", "fully connected (inner product) over all features of each example", fc_keys,
               1, 1, b::fc, check_weights});
  d.push_back(
      {"embedding",
       "a learned vector per symbol id (the first layer of a text network)",
       {integer("size", 1, 65536, std::nullopt, "features per symbol"),
        optional_integer("vocabulary", 1, kMaxOutputs, "symbols (default: the network's classes)"),
        init("init", "gaussian(1)", "initializer of the table (PyTorch's: gaussian(1))"),
        number("lr_mult", 0, 1e6, 1.0, "learning-rate multiplier of the table"),
        number("decay_mult", 0, 1e6, 1.0, "weight-decay multiplier of the table")},
       1,
       1,
       b::embedding});
  const char* sequence = "; input [N, T, features] batch first, weights named as PyTorch's";
  d.push_back({"lstm", std::string("long short-term memory layers") + sequence,
               recurrent_keys(false), 1, 1, b::recurrent});
  d.push_back({"gru", std::string("gated recurrent unit layers (PyTorch's GRU)") + sequence,
               recurrent_keys(false), 1, 1, b::recurrent});
  d.push_back({"rnn", std::string("plain recurrent layers (tanh or ReLU)") + sequence,
               recurrent_keys(true), 1, 1, b::recurrent});
  d.push_back(
      {"batch_norm",
       "batch normalization per channel, with gamma and beta",
       {number("eps", 1e-12, 1.0, 1e-5, "added to the variance"),
        number("momentum", 0, 1, 0.9, "running = momentum * running + (1-momentum) * batch"),
        init("gamma_init", "constant(1)", "initial scale"),
        init("beta_init", "constant(0)", "initial shift"),
        number("lr_mult", 0, 1e6, 1.0, "learning-rate multiplier of gamma and beta"),
        number("decay_mult", 0, 1e6, 1.0, "weight-decay multiplier of gamma and beta")},
       1,
       1,
       b::batch_norm});
  d.push_back({"softmax",
               "softmax over channels (not before the loss: it applies its own)",
               {},
               1,
               1,
               b::softmax});
  d.push_back({"add", "elementwise sum of its inputs (residual connections)", {}, 2, 64, b::add});
  d.push_back({"mul", "elementwise product of two inputs", {}, 2, 2, b::mul});
  d.push_back({"concat",
               "joins its inputs along an axis",
               {integer("axis", 1, 7, 1, "axis (1 = channels)")},
               1,
               64,
               b::concat});
  d.push_back({"flatten",
               "keeps the axes before `axis`, flattens the rest",
               {integer("axis", 1, 7, 1, "first axis flattened")},
               1,
               1,
               b::flatten});
  d.push_back({"reshape",
               "new shape per example (the batch is kept); one -1 is inferred",
               {ints("shape", -1, kMaxElements, "dimensions after the batch: 0 copies, -1 infers")},
               1,
               1,
               b::reshape,
               check_reshape});
  return d;
}

std::string attr_text(const AttrValue& v) {
  struct {
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(double x) const { return format_number(x); }
    std::string operator()(const std::string& s) const { return "'" + s + "'"; }
    std::string operator()(const std::vector<int64_t>& xs) const {
      std::string s = "[";
      for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + std::to_string(xs[i]);
      return s + "]";
    }
    std::string operator()(const std::vector<double>& xs) const {
      std::string s = "[";
      for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + format_number(xs[i]);
      return s + "]";
    }
  } visit;
  return std::visit(visit, v);
}

std::string range_text(const KeyDef& k) {
  auto fmt = [&](double x) {
    return k.kind == KeyKind::number ? format_number(x) : std::to_string(int64_t(x));
  };
  return fmt(k.min) + ".." + fmt(k.max);
}

bool in_range(const KeyDef& k, double v) {
  return v >= k.min && v <= k.max;  // false for NaN
}

[[noreturn]] void bad_value(const KeyDef& k, const std::string& want, const AttrValue& got) {
  throw FieldError(k.key, "'" + k.key + "' must be " + want + ", got " + attr_text(got));
}

// Checks one value against its key and returns its canonical form.
AttrValue canonical_value(const KeyDef& k, const AttrValue& v) {
  const std::string range = range_text(k);
  switch (k.kind) {
    case KeyKind::integer:
      if (auto* x = std::get_if<int64_t>(&v); x && in_range(k, double(*x))) return *x;
      bad_value(k, "an integer in " + range, v);
    case KeyKind::pair: {
      std::vector<int64_t> p;
      if (auto* x = std::get_if<int64_t>(&v)) p = {*x, *x};
      if (auto* x = std::get_if<std::vector<int64_t>>(&v)) p = *x;
      if (p.size() == 1) p.push_back(p[0]);
      if (p.size() != 2 || !in_range(k, double(p[0])) || !in_range(k, double(p[1])))
        bad_value(k, "an integer or [h, w] in " + range, v);
      return p[0] == p[1] ? AttrValue{p[0]} : AttrValue{p};
    }
    case KeyKind::number: {
      double x = NAN;
      if (auto* d = std::get_if<double>(&v)) x = *d;
      if (auto* i = std::get_if<int64_t>(&v)) x = double(*i);
      if (!in_range(k, x)) bad_value(k, "a number in " + range, v);
      return x;
    }
    case KeyKind::boolean:
      if (auto* x = std::get_if<int64_t>(&v); x && (*x == 0 || *x == 1)) return *x;
      bad_value(k, "true or false", v);
    case KeyKind::choice: {
      auto* s = std::get_if<std::string>(&v);
      if (s && !s->empty() && s->find('|') == std::string::npos &&
          ("|" + k.choices + "|").find("|" + *s + "|") != std::string::npos)
        return *s;
      std::string c = k.choices;
      std::replace(c.begin(), c.end(), '|', ' ');
      bad_value(k, "one of: " + c, v);
    }
    case KeyKind::init:
      if (auto* s = std::get_if<std::string>(&v)) return init_text(parse_init(*s, k.key));
      if (auto* d = std::get_if<double>(&v)) return init_text(parse_init(format_number(*d), k.key));
      if (auto* i = std::get_if<int64_t>(&v))
        return init_text(parse_init(std::to_string(*i), k.key));
      bad_value(k, "an initializer (xavier, msra, gaussian(std), uniform(scale), constant(v))", v);
    case KeyKind::ints: {
      std::vector<int64_t> xs;
      if (auto* x = std::get_if<int64_t>(&v))
        xs = {*x};
      else if (auto* x = std::get_if<std::vector<int64_t>>(&v))
        xs = *x;
      else
        bad_value(k, "a list of integers", v);
      for (int64_t x : xs)
        if (!in_range(k, double(x))) bad_value(k, "a list of integers in " + range, v);
      return xs;
    }
  }
  bad_value(k, "a valid value", v);
}

}  // namespace

const std::vector<LayerDef>& layer_defs() {
  static const std::vector<LayerDef> defs = make_defs();
  return defs;
}

const LayerDef* find_layer_def(const std::string& type) {
  const std::string t = type == "inner_product" ? "fc" : type;
  for (const LayerDef& d : layer_defs())
    if (d.type == t) return &d;
  return nullptr;
}

std::string known_layer_types() {
  std::vector<std::string> names{"inner_product"};
  for (const LayerDef& d : layer_defs()) names.push_back(d.type);
  std::sort(names.begin(), names.end());
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

const KeyDef* find_key(const LayerDef& def, const std::string& key) {
  for (const KeyDef& k : def.keys)
    if (k.key == key) return &k;
  return nullptr;
}

std::string allowed_keys(const LayerDef& def) {
  std::string s = "name, input";
  for (const KeyDef& k : def.keys) s += ", " + k.key;
  return s;
}

void canonicalize_layer(LayerSpec& l) {
  const LayerDef* def = find_layer_def(l.type);
  if (!def)
    throw FieldError("",
                     "unknown layer type '" + l.type + "' (known: " + known_layer_types() + ")");
  l.type = def->type;
  Attrs a;
  for (auto& [key, v] : l.attrs.items()) {
    const KeyDef* k = find_key(*def, key);
    if (!k)
      throw FieldError(key, "unknown key '" + key + "' in a " + def->type +
                                " layer (allowed: " + allowed_keys(*def) + ")");
    a.set(key, canonical_value(*k, v));
  }
  l.attrs = a;
  if (def->check) def->check(l);
  for (const KeyDef& k : def->keys)
    if (k.required && !l.attrs.has(k.key))
      throw FieldError(k.key, "a " + def->type + " layer needs '" + k.key + "' (" + k.doc + ")");
  Attrs kept;
  for (auto& [key, v] : l.attrs.items()) {
    const KeyDef* k = find_key(*def, key);
    if (!(k && k->dflt && *k->dflt == v)) kept.set(key, v);
  }
  l.attrs = kept;
}

std::vector<LayerHelp> layer_help() {
  std::vector<LayerHelp> help;
  for (const LayerDef& d : layer_defs()) {
    LayerHelp h{d.type, d.doc, {"name", "input"}};
    if (d.type == "fc") h.doc += " (also: inner_product)";
    for (const KeyDef& k : d.keys) {
      std::string line = k.key;
      if (k.required) line += " (required)";
      if (k.dflt) {
        std::string v = attr_text(*k.dflt);
        if (k.kind == KeyKind::boolean) v = std::get<int64_t>(*k.dflt) ? "true" : "false";
        if (auto* s = std::get_if<std::string>(&*k.dflt)) v = *s;
        line += " = " + v;
      }
      h.keys.push_back(line + ": " + k.doc);
    }
    help.push_back(std::move(h));
  }
  return help;
}

std::string format_number(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

Init parse_init(std::string_view text, const std::string& field) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  const std::string help =
      "an initializer is xavier, msra, gaussian(std), uniform(scale), "
      "constant(value) or a number";
  auto to_double = [&](std::string_view s, double& out) {
    s = trim(s);
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(out);
  };
  Init init;
  if (to_double(text, init.value)) {
    init.kind = "constant";
  } else {
    size_t open = text.find('(');
    init.kind = std::string(trim(text.substr(0, open)));
    bool has_value = open != std::string_view::npos;
    if (has_value) {
      if (text.back() != ')' ||
          !to_double(text.substr(open + 1, text.size() - open - 2), init.value))
        throw FieldError(field, "cannot read the initializer '" + std::string(text) + "': " + help);
    }
    if (init.kind == "xavier" || init.kind == "msra") {
      if (has_value) throw FieldError(field, init.kind + " takes no value: write " + init.kind);
    } else if (init.kind == "gaussian" || init.kind == "uniform") {
      if (!has_value)
        throw FieldError(field, init.kind + " needs its " +
                                    (init.kind == "gaussian" ? "std" : "scale") + ": " + init.kind +
                                    "(0.01)");
      if (!(init.value > 0 && init.value <= 1e3))
        throw FieldError(field, init.kind + "'s value must be in (0, 1000]");
    } else if (init.kind != "constant") {
      throw FieldError(field, "unknown initializer '" + std::string(text) + "': " + help);
    }
  }
  if (std::abs(init.value) > 1e6) throw FieldError(field, "initial values must be within ±1e6");
  return init;
}

std::string init_text(const Init& init) {
  if (init.kind == "xavier" || init.kind == "msra") return init.kind;
  return init.kind + "(" + format_number(init.value) + ")";
}

bool printable_text(const std::string& s, bool multiline) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && !(multiline && (c == '\n' || c == '\t'))) || c == 0x7f) return false;
      ++i;
      continue;
    }
    // Lead byte: length and the smallest code point it may encode (no overlong forms).
    int n = c >= 0xc2 && c <= 0xdf   ? 2
            : c >= 0xe0 && c <= 0xef ? 3
            : c >= 0xf0 && c <= 0xf4 ? 4
                                     : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = c & (0x7f >> n);
    for (int k = 1; k < n; ++k) {
      unsigned char t = static_cast<unsigned char>(s[i + k]);
      if ((t & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (t & 0x3f);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
      return false;
    i += n;
  }
  return true;
}

int64_t bounded_numel(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d > 0 && n > kMaxElements / d)) return -1;
    n *= d;
  }
  return n;
}

}  // namespace myelin
