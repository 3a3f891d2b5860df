#include "core/op_registry.h"

#include <algorithm>
#include <map>
#include <memory>

#include "core/error.h"

namespace myelin {

namespace {
// Filled during static initialisation by MYELIN_REGISTER_OPS blocks, read-only afterwards.
std::map<std::string, OpDef>& registry() {
  static std::map<std::string, OpDef> ops;
  return ops;
}
}  // namespace

void register_op(OpDef def) {
  std::string name = def.name;
  if (!registry().emplace(name, std::move(def)).second)
    throw Error("op '" + name + "' registered twice");
}

const OpDef* find_op(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : &it->second;
}

const OpDef& op_def(const std::string& name) {
  if (const OpDef* d = find_op(name)) return *d;
  std::string known;
  for (auto& [n, d] : registry()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown op '" + name + "' (known ops: " + known + ")");
}

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (auto& [n, d] : registry()) names.push_back(n);
  return names;
}

double no_flops(const Graph&, const Node&) {
  return 0;
}

double op_flops(const Graph& g, const Node& n) {
  const OpDef& d = op_def(n.op);
  if (d.is_view) return 0;
  auto output_elements = [&] {
    return n.outputs.empty() ? 0.0 : static_cast<double>(g.value(n.outputs[0]).shape.numel());
  };
  double f = d.flops ? d.flops(g, n) : output_elements();
  if (n.attrs.has("post")) f += output_elements();
  return f;
}

void shape_error(const Node& n, const std::vector<TensorType>& in, const std::string& what) {
  std::string shapes;
  for (size_t i = 0; i < in.size(); ++i)
    shapes += (i ? ", " : "") + in[i].shape.str() + std::string(" ") + dtype_name(in[i].dtype);
  throw ShapeError(n.op + " '" + n.name + "': " + what + " (inputs: " + shapes + ")");
}

bool GradBuilder::needs_grad(int input) const {
  ValueId id = in(input);
  if (requires_grad_ && !(*requires_grad_)[id]) return false;
  const Value& v = graph_.value(id);
  return v.dtype == DType::f32 || v.dtype == DType::bf16 || v.dtype == DType::f16;
}

std::vector<ValueId> GradBuilder::add(const std::string& op, const std::vector<ValueId>& inputs,
                                      Attrs attrs) {
  std::string name = node().name;  // copy: appending may reallocate the node vector
  return graph_.add(op, name, inputs, attrs);
}

}  // namespace myelin
