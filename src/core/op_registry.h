// The op registry: every op, by name, with its shape/dtype inference, its gradient rule and its
// FLOP count. Ops register themselves from src/ops/*.cpp with MYELIN_REGISTER_OPS.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/graph.h"

namespace myelin {

struct TensorType {
  Shape shape;
  DType dtype = DType::f32;
};

// Emits the nodes of one forward node's gradient. Nodes it adds are backward nodes named after
// the forward layer.
class GradBuilder {
 public:
  GradBuilder(Graph& g, int node_index, std::vector<ValueId> grad_outputs,
              const std::vector<bool>* requires_grad = nullptr)
      : graph_(g),
        node_index_(node_index),
        grad_outputs_(std::move(grad_outputs)),
        requires_grad_(requires_grad) {}

  const Node& node() const { return graph_.nodes()[node_index_]; }
  int node_index() const { return node_index_; }
  const Graph& graph() const { return graph_; }
  ValueId in(int i) const { return node().inputs.at(i); }
  ValueId out(int i) const { return node().outputs.at(i); }
  ValueId grad_out(int i) const { return grad_outputs_.at(i); }  // kNoValue if none
  const Shape& shape(ValueId v) const { return graph_.value(v).shape; }
  bool needs_grad(int input) const;  // false for labels, integer inputs, etc.

  // `attrs` is taken by value: callers often pass node().attrs, which adding nodes may move.
  std::vector<ValueId> add(const std::string& op, const std::vector<ValueId>& inputs,
                           Attrs attrs = {});
  ValueId add1(const std::string& op, const std::vector<ValueId>& inputs, Attrs attrs = {}) {
    return add(op, inputs, std::move(attrs)).at(0);
  }

 private:
  Graph& graph_;
  int node_index_;
  std::vector<ValueId> grad_outputs_;
  const std::vector<bool>* requires_grad_;
};

using InferFn = std::function<std::vector<TensorType>(const Node&, const std::vector<TensorType>&)>;
// Returns one gradient per input (kNoValue where there is none).
using GradFn = std::function<std::vector<ValueId>(GradBuilder&)>;
// A composite op builds itself from other ops and so derives its gradient from theirs.
using ExpandFn = std::function<std::vector<ValueId>(Graph&, const std::string& name,
                                                    const std::vector<ValueId>&, const Attrs&)>;
// The floating-point operations of one node of the op, from its shapes and attributes (see
// op_flops for the conventions).
using FlopsFn = std::function<double(const Graph&, const Node&)>;

struct OpDef {
  std::string name;
  int min_inputs = 1;
  int max_inputs = 1;
  InferFn infer;         // primitive ops
  GradFn grad;           // empty: not differentiable (the op's inputs get no gradient)
  ExpandFn expand;       // composite ops (infer/grad unused)
  FlopsFn flops;         // empty: one FLOP per element of output 0 (the elementwise default)
  bool is_view = false;  // output 0 aliases input 0's memory (reshape): no kernel, no copy
  std::string doc;       // one line for `myelin ops` / --help
};

void register_op(OpDef def);
const OpDef& op_def(const std::string& name);  // throws Error listing known ops
const OpDef* find_op(const std::string& name);
std::vector<std::string> op_names();

// The FLOPs of node n, the one count behind every report of them (the layer table of a network's
// description, `myelin time`'s GFLOP/s): its op's `flops` rule where it has one, 0 for a view,
// else one per element of output 0. Conventions for the rules: a multiply-add counts 2, a bias add
// 1 per output element, and other arithmetic (a comparison, exp, sqrt, a division) 1 each; a ReLU
// folded into the node (attrs "post", ops/fuse.h) adds 1 per output element.
double op_flops(const Graph& g, const Node& n);
// The rule of ops that only move or set memory (concat, split, fill): OpDef::flops = no_flops.
double no_flops(const Graph& g, const Node& n);

// Throws a ShapeError naming the op, layer and shapes.
[[noreturn]] void shape_error(const Node& n, const std::vector<TensorType>& in,
                              const std::string& what);

#define MYELIN_CONCAT_(a, b) a##b
#define MYELIN_CONCAT(a, b) MYELIN_CONCAT_(a, b)
// Registers ops at static-initialisation time: MYELIN_REGISTER_OPS { register_op({...}); }
#define MYELIN_REGISTER_OPS                                       \
  static void MYELIN_CONCAT(myelin_register_ops_, __LINE__)();    \
  static const bool MYELIN_CONCAT(myelin_registered_, __LINE__) = \
      (MYELIN_CONCAT(myelin_register_ops_, __LINE__)(), true);    \
  static void MYELIN_CONCAT(myelin_register_ops_, __LINE__)()

}  // namespace myelin
