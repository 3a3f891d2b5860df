#include "core/graph.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/op_registry.h"

namespace myelin {

ValueId Graph::add_value(Value v) {
  if (find(v.name) != kNoValue) throw Error("duplicate value name '" + v.name + "'");
  values_.push_back(std::move(v));
  return static_cast<ValueId>(values_.size() - 1);
}

ValueId Graph::input(const std::string& name, Shape shape, DType dtype) {
  return add_value({name, std::move(shape), dtype, ValueKind::input});
}

ValueId Graph::param(const std::string& name, Shape shape, Init init, DType dtype) {
  Value v{name, std::move(shape), dtype, ValueKind::param};
  v.init = std::move(init);
  return add_value(std::move(v));
}

ValueId Graph::state(const std::string& name, Shape shape, Init init) {
  Value v{name, std::move(shape), DType::f32, ValueKind::state};
  v.init = std::move(init);
  return add_value(std::move(v));
}

ValueId Graph::activation(const std::string& base, Shape shape, DType dtype) {
  return add_value({unique_name(base), std::move(shape), dtype, ValueKind::activation});
}

ValueId Graph::find(const std::string& name) const {
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].name == name) return static_cast<ValueId>(i);
  return kNoValue;
}

std::string Graph::unique_name(const std::string& base) const {
  if (find(base) == kNoValue) return base;
  for (int i = 1;; ++i) {
    std::string n = base + "." + std::to_string(i);
    if (find(n) == kNoValue) return n;
  }
}

void Graph::keep(ValueId id) {
  if (!is_kept(id)) kept_.push_back(id);
}

bool Graph::is_kept(ValueId id) const {
  return std::find(kept_.begin(), kept_.end(), id) != kept_.end();
}

std::vector<ValueId> Graph::add(const std::string& op, const std::string& name,
                                const std::vector<ValueId>& inputs, const Attrs& attrs) {
  const OpDef& def = op_def(op);
  int n = static_cast<int>(inputs.size());
  if (n < def.min_inputs || n > def.max_inputs)
    throw ShapeError(
        op + " '" + name + "': takes " + std::to_string(def.min_inputs) +
        (def.max_inputs != def.min_inputs ? "-" + std::to_string(def.max_inputs) : "") +
        " inputs, got " + std::to_string(n));
  for (ValueId v : inputs)
    if (v < 0 || v >= static_cast<ValueId>(values_.size()))
      throw Error(op + " '" + name + "': input refers to an unknown value");
  if (def.expand) return def.expand(*this, name, inputs, attrs);
  return append_primitive(op, name, inputs, attrs);
}

std::vector<ValueId> Graph::append_primitive(const std::string& op, const std::string& name,
                                             const std::vector<ValueId>& inputs,
                                             const Attrs& attrs) {
  const OpDef& def = op_def(op);
  Node node{op, name, attrs, inputs, {}, phase_};
  std::vector<TensorType> in;
  for (ValueId v : inputs) in.push_back({values_[v].shape, values_[v].dtype});
  std::vector<TensorType> out = def.infer(node, in);
  int index = static_cast<int>(nodes_.size());
  std::string base = name + (phase_ == Phase::backward ? ".grad" : "") + "." + op;
  for (size_t i = 0; i < out.size(); ++i) {
    Value v{unique_name(out.size() == 1 ? base : base + "." + std::to_string(i)), out[i].shape,
            out[i].dtype, ValueKind::activation, index};
    node.outputs.push_back(add_value(std::move(v)));
  }
  nodes_.push_back(std::move(node));
  return nodes_.back().outputs;
}

void Graph::remove_nodes(const std::vector<int>& indices) {
  std::vector<bool> drop(nodes_.size(), false);
  for (int i : indices) drop.at(i) = true;
  std::vector<Node> left;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (!drop[i]) left.push_back(std::move(nodes_[i]));
  nodes_ = std::move(left);
  for (Value& v : values_) v.producer = -1;
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (ValueId v : nodes_[i].outputs) values_[v].producer = static_cast<int>(i);
}

std::vector<ValueId> Graph::params() const {
  std::vector<ValueId> p;
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].kind == ValueKind::param) p.push_back(static_cast<ValueId>(i));
  return p;
}

std::string Graph::dump() const {
  std::ostringstream os;
  for (const Node& n : nodes_) {
    os << (n.phase == Phase::backward ? "  bwd " : "  fwd ") << n.name << " = " << n.op;
    if (n.attrs.has("post")) os << "+" << n.attrs.s("post", "");  // fused by Backend::fuse
    os << "(";
    for (size_t i = 0; i < n.inputs.size(); ++i) os << (i ? ", " : "") << values_[n.inputs[i]].name;
    os << ") ->";
    for (ValueId v : n.outputs) os << " " << values_[v].name << values_[v].shape.str();
    os << "\n";
  }
  return os.str();
}

}  // namespace myelin
