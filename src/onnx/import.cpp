// ONNX graph -> NetworkSpec: the graph input and output, the nodes the output depends on
// converted in order (import_ops.cpp), the metadata's preprocessing, and a check that the
// network builds with every weight in its place.
#include "onnx/import.h"

#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "model/layers.h"
#include "onnx/import_context.h"
#include "onnx/onnx_io.h"

namespace myelin {

namespace onnx_import {

namespace {

// Layer names are letters, digits, '_' and '-': "/blocks/blocks.0/conv1/Conv" becomes
// "blocks_blocks_0_conv1_Conv".
std::string sanitized(const std::string& s) {
  std::string r;
  for (char ch : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '-';
    if (ok)
      r += ch;
    else if (!r.empty() && r.back() != '_')
      r += '_';
  }
  while (!r.empty() && r.back() == '_') r.pop_back();
  return r.substr(0, 100);
}

const std::set<std::string> kReserved = {"data", "label", "loss", "top1", "top5", "logits"};

}  // namespace

std::string Context::where() const {
  std::string s = "node ";
  if (node_->name().empty())
    s.append("#").append(std::to_string(index_));
  else
    s.append("'").append(node_->name()).append("'");
  return s.append(" (").append(node_->op_type()).append(")");
}

void Context::fail(const std::string& what) const {
  throw UnsupportedError(origin_ + ": " + where() + ": " + what);
}

bool Context::has_input(int i) const {
  return i < node_->input_size() && !node_->input(i).empty();
}

const Ref& Context::input(int i) const {
  if (!has_input(i)) fail("input " + std::to_string(i) + " is missing");
  auto it = values_.find(node_->input(i));
  if (it == values_.end())
    fail("input '" + node_->input(i) +
         "' is not produced by an earlier node, an initializer or "
         "the graph input");
  return it->second;
}

const Tensor& Context::constant_input(int i, const char* role) const {
  const Ref& r = input(i);
  if (!r.constant)
    fail(std::string("its ") + role + " ('" + node_->input(i) +
         "') must be a constant (an initializer), not computed");
  return *r.constant;
}

const Ref& Context::layer_input(int i) const {
  const Ref& r = input(i);
  if (r.constant || r.is_shape)
    fail("input '" + node_->input(i) + "' is a constant; Myelin layers read computed values");
  return r;
}

int Context::consumers(const std::string& value) const {
  auto it = consumers_.find(value);
  return it == consumers_.end() ? 0 : it->second;
}

void Context::count_consumers(const onnx::GraphProto& g, const std::vector<int>& nodes) {
  for (int i : nodes)
    for (const std::string& in : g.node(i).input()) ++consumers_[in];
}

// After the weight's module path where PyTorch kept it (conv1.weight -> conv1), else the node.
std::string Context::layer_name() const {
  std::string base;
  if (node_->input_size() > 1) {
    const std::string& w = node_->input(1);
    const std::string suffix = ".weight";
    if (w.size() > suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0)
      base = sanitized(w.substr(0, w.size() - suffix.size()));
  }
  if (base.empty()) base = sanitized(node_->name());
  if (base.empty()) base = sanitized(node_->op_type()) + std::to_string(index_);
  if (kReserved.count(base)) base = "onnx_" + base;
  std::string name = base;
  for (int k = 2; std::any_of(spec_.layers.begin(), spec_.layers.end(),
                              [&](const LayerSpec& l) { return l.name == name; });
       ++k)
    name = base + "_" + std::to_string(k);
  return name;
}

std::string Context::add_layer(const std::string& type, const std::vector<std::string>& inputs,
                               Attrs attrs) {
  LayerSpec l;
  l.name = layer_name();
  l.type = type;
  l.attrs = std::move(attrs);
  // The previous layer (or the data, first) is every layer's default input.
  const std::string previous = spec_.layers.empty() ? "data" : spec_.layers.back().name;
  if (!(inputs.size() == 1 && inputs[0] == previous)) l.inputs = inputs;
  spec_.layers.push_back(std::move(l));
  return spec_.layers.back().name;
}

LayerSpec& Context::layer(const std::string& name) {
  for (LayerSpec& l : spec_.layers)
    if (l.name == name) return l;
  fail("internal: no layer '" + name + "'");
}

void Context::add_weight(const std::string& layer, const std::string& suffix, Tensor t) {
  result_.weights.push_back({layer + "." + suffix, std::move(t)});
}

namespace {

const onnx::AttributeProto* find_attr(const onnx::NodeProto& n, const std::string& name) {
  for (const onnx::AttributeProto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

}  // namespace

int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t dflt) {
  const onnx::AttributeProto* a = find_attr(n, name);
  return a ? a->i() : dflt;
}

double attr_float(const onnx::NodeProto& n, const std::string& name, double dflt) {
  const onnx::AttributeProto* a = find_attr(n, name);
  return a ? a->f() : dflt;
}

std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const std::string& name,
                               std::vector<int64_t> dflt) {
  const onnx::AttributeProto* a = find_attr(n, name);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : dflt;
}

std::string attr_string(const onnx::NodeProto& n, const std::string& name, std::string dflt) {
  const onnx::AttributeProto* a = find_attr(n, name);
  return a ? a->s() : dflt;
}

const onnx::TensorProto* attr_tensor(const onnx::NodeProto& n, const std::string& name) {
  const onnx::AttributeProto* a = find_attr(n, name);
  return a && a->has_t() ? &a->t() : nullptr;
}

namespace {

[[noreturn]] void fail_model(const std::string& origin, const std::string& what) {
  throw UnsupportedError(origin + ": " + what);
}

// The one graph input that is not an initializer: float [N, C, H, W] (or [N, C, W], [N, F]).
const onnx::ValueInfoProto& graph_input(const onnx::GraphProto& g, const std::string& origin) {
  std::set<std::string> initializers;
  for (const auto& t : g.initializer()) initializers.insert(t.name());
  const onnx::ValueInfoProto* found = nullptr;
  for (const auto& in : g.input()) {
    if (initializers.count(in.name())) continue;
    if (found)
      fail_model(origin, "the graph has several inputs ('" + found->name() + "', '" + in.name() +
                             "'); Myelin networks take one");
    found = &in;
  }
  if (!found) fail_model(origin, "the graph has no input");
  const auto& t = found->type().tensor_type();
  if (t.elem_type() != onnx::TensorProto::FLOAT)
    fail_model(origin, "input '" + found->name() + "' is not float (element type " +
                           std::to_string(t.elem_type()) + ")");
  const int rank = t.shape().dim_size();
  if (rank < 2 || rank > 4)
    fail_model(origin, "input '" + found->name() + "' has rank " + std::to_string(rank) +
                           "; Myelin takes [N, C, H, W], [N, C, W] or [N, features]");
  for (int i = 1; i < rank; ++i)
    if (t.shape().dim(i).dim_value() < 1)
      fail_model(origin, "input '" + found->name() + "' dimension " + std::to_string(i) +
                             " is not a fixed size (only the batch may be symbolic)");
  return *found;
}

// The indices of the nodes the output depends on, in the graph's (topological) order.
std::vector<int> needed_nodes(const onnx::GraphProto& g, const std::string& output) {
  std::set<std::string> wanted{output};
  std::vector<int> kept;
  for (int i = g.node_size() - 1; i >= 0; --i) {
    const onnx::NodeProto& n = g.node(i);
    if (std::none_of(n.output().begin(), n.output().end(),
                     [&](const std::string& o) { return wanted.count(o) != 0; }))
      continue;
    kept.push_back(i);
    for (const std::string& in : n.input()) wanted.insert(in);
  }
  return {kept.rbegin(), kept.rend()};
}

bool is_softmax(const onnx::NodeProto& n) {
  return n.domain().empty() && (n.op_type() == "Softmax" || n.op_type() == "LogSoftmax");
}

void convert_node(Context& c, const onnx::NodeProto& n, int index, const std::string& output) {
  c.set_node(n, index);
  if (!n.domain().empty() && n.domain() != "ai.onnx")
    c.fail("op " + n.domain() + ":" + n.op_type() +
           " is from another domain; Myelin imports the standard ONNX ops " + importable_ops());
  if (is_softmax(n) && n.output(0) == output) {
    c.note("dropped the final " + n.op_type() + " (" + c.where() +
           "): a Myelin network ends in its logits; the loss and classify apply softmax");
    c.set_output(c.layer_input(0));
    return;
  }
  if (n.op_type() == "Dropout") c.note("Dropout " + c.where() + " kept: the identity at inference");
  auto it = converters().find(n.op_type());
  if (it == converters().end())
    c.fail("op type " + n.op_type() + " is not supported; Myelin imports " + importable_ops());
  it->second(c);
}

std::map<std::string, std::string> metadata(const onnx::ModelProto& m) {
  std::map<std::string, std::string> r;
  for (const auto& p : m.metadata_props()) r[p.key()] = p.value();
  return r;
}

// Preprocessing and class names as `myelin export` records them.
void apply_metadata(const onnx::ModelProto& m, const std::string& origin, ImportedNetwork& net) {
  auto meta = metadata(m);
  auto get = [&](const char* key) { return meta.count(key) ? meta[key] : std::string(); };
  if (const std::string t = get("myelin.input_type"); !t.empty() && t != "image")
    fail_model(origin, "myelin.input_type is '" + t + "'; only image networks import");
  try {
    if (const std::string s = get("myelin.input_scale"); !s.empty())
      net.spec.recipe.scale = std::stod(s);
    if (const std::string s = get("myelin.input_mean"); !s.empty())
      net.spec.recipe.mean = nlohmann::json::parse(s).get<std::vector<double>>();
    if (const std::string s = get("myelin.class_names"); !s.empty())
      net.class_names = nlohmann::json::parse(s).get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    throw DataError(origin, -1,
                    std::string("metadata myelin.input_scale, myelin.input_mean or "
                                "myelin.class_names is malformed: ") +
                        e.what());
  }
}

// The logits' count: the graph output's size per example, else the last layer's outputs.
int64_t class_count(const onnx::ValueInfoProto& out, const NetworkSpec& spec) {
  const auto& shape = out.type().tensor_type().shape();
  int64_t n = shape.dim_size() > 1 ? 1 : 0;
  for (int i = 1; i < shape.dim_size(); ++i) n *= shape.dim(i).dim_value();
  if (n > 0) return n;
  const LayerSpec& last = spec.layers.back();
  return last.attrs.i(last.type == "conv" ? "filters" : "outputs", 0);
}

// Canonical layers, a network that builds, and every weight of the shape its parameter has.
void check_network(ImportedNetwork& net, const std::string& origin) {
  for (LayerSpec& l : net.spec.layers) {
    try {
      canonicalize_layer(l);
    } catch (const FieldError& e) {
      throw UnsupportedError(origin + ": layer '" + l.name + "' (" + l.type + "): " + e.what());
    }
  }
  BuiltNetwork built;
  try {
    built = build_network(net.spec, 1, false);
  } catch (const Error& e) {
    throw UnsupportedError(origin + ": the imported network does not build: " + e.what());
  }
  for (const NamedTensor& w : net.weights) {
    const ValueId v = built.graph.find(w.name);
    if (v == kNoValue || built.graph.value(v).shape != w.tensor.shape())
      throw DataError(origin, -1,
                      "weight " + w.name + " " + w.tensor.shape().str() +
                          " does not fit its layer" +
                          (v == kNoValue ? "" : " (" + built.graph.value(v).shape.str() + ")"));
  }
}

}  // namespace

}  // namespace onnx_import

using namespace onnx_import;

std::string importable_ops() {
  std::string s;
  for (const auto& [op, fn] : converters()) s += (s.empty() ? "" : ", ") + op;
  return s + ", and a final Softmax or LogSoftmax (dropped)";
}

ImportedNetwork import_onnx(const onnx::ModelProto& model, const std::string& origin,
                            const OnnxImportOptions& options) {
  const onnx::GraphProto& g = model.graph();
  if (g.output_size() == 0) fail_model(origin, "the graph has no output");
  const onnx::ValueInfoProto& in = graph_input(g, origin);
  const auto& dims = in.type().tensor_type().shape().dim();
  Context c(origin, dims[0].dim_value() > 0 ? dims[0].dim_value() : -1);
  NetworkSpec& spec = c.spec();
  for (int i = 1; i < dims.size(); ++i) spec.input.push_back(dims[i].dim_value());
  c.define(in.name(), Ref{"data", dims.size()});
  for (const onnx::TensorProto& t : g.initializer()) {
    Ref r;
    r.constant = onnx_io::from_proto(t, origin + ": initializer '" + t.name() + "'");
    c.define(t.name(), std::move(r));
  }
  const std::string output = g.output(0).name();
  if (g.output_size() > 1)
    c.note("the graph has " + std::to_string(g.output_size()) + " outputs; imported the first, '" +
           output + "'");
  const std::vector<int> nodes = needed_nodes(g, output);
  c.count_consumers(g, nodes);
  for (int i : nodes) convert_node(c, g.node(i), i, output);
  if (spec.layers.empty()) fail_model(origin, "the graph has no layers between input and output");
  const Ref* out = c.find(output);
  if (!out || out->layer != spec.layers.back().name)
    fail_model(origin, "the graph output '" + output + "' is not the last layer's output");
  ImportedNetwork net = std::move(c.result());
  net.spec = std::move(spec);
  net.spec.name = !options.name.empty() ? options.name
                  : !g.name().empty() && g.name() != "torch_jit"
                      ? g.name()
                      : std::filesystem::path(origin).stem().string();
  net.spec.file = origin;
  net.spec.description = "imported from " + std::filesystem::path(origin).filename().string() +
                         " (ONNX" +
                         (model.producer_name().empty()
                              ? ""
                              : ", " + model.producer_name() + " " + model.producer_version()) +
                         ")";
  net.producer = model.producer_name() + " " + model.producer_version();
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") net.opset = o.version();
  net.spec.classes = class_count(g.output(0), net.spec);
  net.spec.recipe.scale = 1.0;  // the dataset's pixel values as they are, unless told otherwise
  apply_metadata(model, origin, net);
  if (options.scale) net.spec.recipe.scale = *options.scale;
  if (options.mean) net.spec.recipe.mean = *options.mean;
  check_network(net, origin);
  return net;
}

ImportedNetwork import_onnx_file(const std::string& path, const OnnxImportOptions& options) {
  return import_onnx(onnx_io::read_model(path), path, options);
}

}  // namespace myelin
