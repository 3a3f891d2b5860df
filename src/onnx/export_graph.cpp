#include "onnx/export_graph.h"

#include <cstring>

#include "core/error.h"
#include "onnx/onnx_io.h"

namespace myelin::onnx_export {

namespace {

onnx::AttributeProto named(const std::string& name, onnx::AttributeProto::AttributeType type) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(type);
  return a;
}

}  // namespace

onnx::AttributeProto attr(const std::string& name, int64_t v) {
  auto a = named(name, onnx::AttributeProto::INT);
  a.set_i(v);
  return a;
}

onnx::AttributeProto attr(const std::string& name, double v) {
  auto a = named(name, onnx::AttributeProto::FLOAT);
  a.set_f(static_cast<float>(v));
  return a;
}

onnx::AttributeProto attr(const std::string& name, const std::string& v) {
  auto a = named(name, onnx::AttributeProto::STRING);
  a.set_s(v);
  return a;
}

onnx::AttributeProto attr(const std::string& name, const std::vector<int64_t>& v) {
  auto a = named(name, onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
  return a;
}

onnx::AttributeProto attr(const std::string& name, const std::vector<std::string>& v) {
  auto a = named(name, onnx::AttributeProto::STRINGS);
  for (const std::string& s : v) a.add_strings(s);
  return a;
}

GraphWriter::GraphWriter(onnx::GraphProto& graph, const TensorFile& weights,
                         std::string weights_origin)
    : graph_(graph), weights_(weights), origin_(std::move(weights_origin)) {}

std::string GraphWriter::fresh(const std::string& base) {
  std::string name = base;
  for (int k = 1; values_.count(name); ++k) name = base + ":" + std::to_string(k);
  values_.insert(name);
  return name;
}

std::vector<std::string> GraphWriter::node(const std::string& op, const std::string& layer,
                                           const std::vector<std::string>& inputs,
                                           const std::vector<onnx::AttributeProto>& attrs,
                                           std::vector<std::string> outputs) {
  if (outputs.empty()) outputs.push_back(fresh(layer + "/" + op));
  for (const std::string& o : outputs) values_.insert(o);
  std::string name = layer + "/" + op;
  for (int k = 1; nodes_.count(name); ++k) name = layer + "/" + op + ":" + std::to_string(k);
  nodes_.insert(name);
  onnx::NodeProto* n = graph_.add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const std::string& i : inputs) n->add_input(i);
  for (const std::string& o : outputs) n->add_output(o);
  for (const onnx::AttributeProto& a : attrs) *n->add_attribute() = a;
  return outputs;
}

const Tensor& GraphWriter::weight_tensor(const std::string& name) const {
  const Tensor* t = weights_.find(name);
  if (!t) throw DataError(origin_, -1, "holds no tensor '" + name + "', which the network needs");
  return *t;
}

std::string GraphWriter::weight(const std::string& name) {
  if (!initializers_.count(name)) initializer(name, weight_tensor(name));
  return name;
}

std::string GraphWriter::initializer(const std::string& name, const Tensor& t) {
  std::string unique = initializers_.count(name) ? fresh(name) : name;
  values_.insert(unique);
  initializers_.insert(unique);
  *graph_.add_initializer() = onnx_io::to_proto(unique, t);
  return unique;
}

std::string GraphWriter::int64s(const std::string& name, const std::vector<int64_t>& values) {
  Tensor t = Tensor::empty(Shape{static_cast<int64_t>(values.size())}, DType::i64);
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(int64_t));
  return initializer(fresh(name), t);
}

}  // namespace myelin::onnx_export
