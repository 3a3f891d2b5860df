#include "onnx/export.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/layers.h"
#include "onnx/export_graph.h"
#include "onnx/onnx_io.h"
#include "train/evaluate.h"

namespace myelin {

namespace {

using onnx_export::attr;
using onnx_export::GraphWriter;

// Every trained tensor of the inference graph, present and of its shape (carried recurrent
// states are not weights: they start at zero).
void check_weights(const Graph& g, const TensorFile& weights, const std::string& origin) {
  std::vector<std::string> problems;
  for (const Value& v : g.values()) {
    if (v.kind != ValueKind::param && v.kind != ValueKind::state) continue;
    if (v.name.find(".carry.") != std::string::npos) continue;
    const Tensor* t = weights.find(v.name);
    if (!t)
      problems.push_back("'" + v.name + "' is missing");
    else if (t->shape() != v.shape || t->dtype() != DType::f32)
      problems.push_back("'" + v.name + "' is " + t->shape().str() + " " + dtype_name(t->dtype()) +
                         ", the network needs " + v.shape.str() + " f32");
  }
  if (problems.empty()) return;
  std::string list;
  for (const std::string& p : problems) list += (list.empty() ? "" : "; ") + p;
  throw DataError(origin, -1, "does not fit the network: " + list);
}

void set_value_info(onnx::ValueInfoProto* v, const std::string& name, int elem_type,
                    const Dims& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem_type);
  auto* shape = t->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

std::string input_layout(const NetworkSpec& s) {
  if (s.input_type == "tokens") return "NT";
  return std::vector<std::string>{"NC", "NCW", "NCHW"}.at(s.input.size() - 1);
}

void add_metadata(onnx::ModelProto& m, const NetworkSpec& s, std::vector<std::string> names) {
  if (static_cast<int64_t>(names.size()) != s.classes) {
    names.clear();
    for (int64_t c = 0; c < s.classes; ++c) names.push_back(std::to_string(c));
  }
  std::map<std::string, std::string> meta = {{kMetaNetwork, s.name},
                                             {kMetaNetworkYaml, write_network(s)},
                                             {kMetaInputType, s.input_type},
                                             {kMetaInputLayout, input_layout(s)},
                                             {kMetaClassNames, nlohmann::json(names).dump()}};
  if (s.input_type == "image") {
    meta[kMetaScale] = format_number(s.recipe.scale);
    meta[kMetaMean] = nlohmann::json(s.recipe.mean).dump();
    meta[kMetaPreprocessing] =
        "data = (pixel - mean[c]) * scale for pixels 0-255 in NCHW order (mean in pixel units, "
        "one value per channel or one for all, none: 0)";
  } else {
    meta[kMetaPreprocessing] = "data = symbol ids (indices into class_names), int64";
  }
  for (const auto& [k, v] : meta) {
    auto* p = m.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
}

// The shape of each layer's output in Myelin's graph (batch 1); a layer that is the identity at
// inference (dropout) has its input's.
std::map<std::string, Shape> layer_shapes(const BuiltNetwork& net, const NetworkSpec& s) {
  std::map<std::string, Shape> shapes{{"data", net.graph.value(net.data).shape}};
  std::string prev = "data";
  for (const LayerSpec& l : s.layers) {
    ValueId v = net.graph.find(l.name);
    shapes[l.name] =
        v != kNoValue ? net.graph.value(v).shape : shapes.at(l.inputs.empty() ? prev : l.inputs[0]);
    prev = l.name;
  }
  return shapes;
}

// The layers as nodes; returns the name of the logits ([N, classes], text [N, steps, classes]).
std::string emit_layers(GraphWriter& w, const NetworkSpec& s,
                        const std::map<std::string, Shape>& shapes) {
  std::map<std::string, std::string> values{{"data", "data"}};
  std::string prev = "data";
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerSpec& l = s.layers[i];
    std::vector<std::string> in_names = l.inputs.empty() ? std::vector{prev} : l.inputs;
    std::vector<std::string> inputs;
    std::vector<Shape> in_shapes;
    for (const std::string& n : in_names) {
      inputs.push_back(values.at(n));
      in_shapes.push_back(shapes.at(n));
    }
    const bool last = i + 1 == s.layers.size();
    const bool is_logits = last && (s.input_type == "tokens" || shapes.at(l.name).rank() == 2);
    std::string out = is_logits ? "logits" : w.fresh(l.name);
    values[l.name] = onnx_export::emit_layer(w, l, inputs, in_shapes, out);
    prev = l.name;
  }
  const std::string& last = values.at(prev);
  if (last == "logits") return last;
  if (shapes.at(prev).rank() > 2)  // [N, classes, 1, 1] from a global pooling
    return w.node1("Flatten", "logits", {last}, {attr("axis", int64_t{1})}, "logits");
  return w.node1("Identity", "logits", {last}, {}, "logits");
}

void add_io(onnx::GraphProto& g, const NetworkSpec& s) {
  const bool tokens = s.input_type == "tokens";
  set_value_info(g.add_input(), "data",
                 tokens ? onnx::TensorProto::INT64 : onnx::TensorProto::FLOAT, s.input);
  Dims out = tokens ? Dims{s.input[0], s.classes} : Dims{s.classes};
  set_value_info(g.add_output(), "logits", onnx::TensorProto::FLOAT, out);
  set_value_info(g.add_output(), "probabilities", onnx::TensorProto::FLOAT, out);
}

NetworkSpec canonical(const NetworkSpec& spec) {
  NetworkSpec s = spec;
  canonicalize_network(s);  // cannot fail once build_network succeeded
  return s;
}

}  // namespace

onnx::ModelProto export_onnx(const NetworkSpec& spec, const TensorFile& weights,
                             const OnnxExportOptions& options) {
  BuiltNetwork net = build_network(spec, 1, false);  // validates; shapes at batch 1
  check_weights(net.graph, weights, options.weights_origin);
  const NetworkSpec s = canonical(spec);

  onnx::ModelProto m;
  m.set_ir_version(kOnnxIrVersion);
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  m.set_producer_name("myelin");
  m.set_doc_string(s.description);
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name(s.name.empty() ? "network" : s.name);
  GraphWriter w(g, weights, options.weights_origin);
  for (const char* reserved : {"data", "logits", "probabilities"}) w.reserve(reserved);
  add_io(g, s);
  std::string logits = emit_layers(w, s, layer_shapes(net, s));
  w.node1("Softmax", "probabilities", {logits}, {attr("axis", int64_t{-1})}, "probabilities");
  add_metadata(m, s, options.class_names);
  return m;
}

OnnxExportSummary export_onnx_file(const NetworkSpec& spec, const std::string& weights,
                                   const std::string& out_path) {
  OnnxExportSummary r;
  r.weights_path = resolve_weights_path(weights);
  TensorFile file = read_safetensors(r.weights_path);
  OnnxExportOptions o;
  o.weights_origin = r.weights_path;
  o.class_names = class_names_from(r.weights_path, static_cast<int>(spec.classes));
  onnx::ModelProto m = export_onnx(spec, file, o);
  onnx_io::write_model(m, out_path);
  r.nodes = m.graph().node_size();
  r.initializers = m.graph().initializer_size();
  for (const onnx::TensorProto& t : m.graph().initializer()) {
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    if (t.data_type() == onnx::TensorProto::FLOAT) r.parameters += n;
  }
  r.bytes = static_cast<size_t>(std::filesystem::file_size(out_path));
  return r;
}

}  // namespace myelin
