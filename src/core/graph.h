// The graph IR: values (typed, shaped edges) and nodes (op applications), in topological
// order by construction. Adding a node infers its output shapes through the op registry, so a
// mismatch is reported where it is made.
#pragma once
#include <string>
#include <vector>

#include "core/attrs.h"
#include "core/tensor.h"

namespace myelin {

using ValueId = int;
constexpr ValueId kNoValue = -1;

enum class ValueKind : uint8_t {
  activation,  // computed by a node, lives in the arena
  input,       // fed each step (images, labels)
  param,       // trained weights, persistent
  state,       // persistent but not trained (batch-norm running statistics)
};

// How a parameter or state starts: "constant" (value), "gaussian" (std), "uniform" (scale),
// "xavier", "msra".
struct Init {
  std::string kind = "constant";
  double value = 0.0;
};

// How a 4-D value's elements lie in memory. Shapes are always logical [N, C, H, W]; a backend may
// store an activation otherwise (Backend::choose_storage) where every kernel touching it takes
// that: channels-last (nhwc, the CUDA engine), or in blocks of channels, oneDNN's nChw16c and
// nChw8c on the CPU engine (nchw16c: [N, ceil(C/16), H, W, 16], where C is not a multiple of 16
// the last block padded with channels that stay zero and the planner reserving the padded size,
// stored_numel in planner.h; nchw8c: [N, C/8, H, W, 8] for C a multiple of 8, never padded).
// Everything else (inputs, parameters, views, kept values) is nchw.
enum class Layout : uint8_t { nchw, nhwc, nchw16c, nchw8c };

struct Value {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  ValueKind kind = ValueKind::activation;
  int producer = -1;  // node index, -1 for inputs/params/states
  Init init;
  double lr_mult = 1.0;     // per-parameter learning-rate multiplier
  double decay_mult = 1.0;  // per-parameter weight-decay multiplier
  Layout layout = Layout::nchw;
};

enum class Phase : uint8_t { forward, backward };

struct Node {
  std::string op;
  std::string name;  // the layer this node belongs to (backward nodes keep their layer's name)
  Attrs attrs;
  std::vector<ValueId> inputs;
  std::vector<ValueId> outputs;
  Phase phase = Phase::forward;
};

class Graph {
 public:
  explicit Graph(bool training = true) : training_(training) {}

  bool training() const { return training_; }

  ValueId input(const std::string& name, Shape shape, DType dtype = DType::f32);
  ValueId param(const std::string& name, Shape shape, Init init, DType dtype = DType::f32);
  ValueId state(const std::string& name, Shape shape, Init init);

  // Applies an op (primitive or composite) and returns its outputs. `name` is the layer name.
  std::vector<ValueId> add(const std::string& op, const std::string& name,
                           const std::vector<ValueId>& inputs, const Attrs& attrs = {});
  ValueId add1(const std::string& op, const std::string& name, const std::vector<ValueId>& inputs,
               const Attrs& attrs = {}) {
    return add(op, name, inputs, attrs).at(0);
  }

  const Value& value(ValueId id) const { return values_.at(id); }
  Value& value(ValueId id) { return values_.at(id); }
  const std::vector<Value>& values() const { return values_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  ValueId find(const std::string& name) const;  // kNoValue if absent

  // Rewrites (Backend::fuse): change nodes in place, then remove_nodes, which drops the listed
  // nodes and sets every value's producer from the nodes left, so a rewrite may also move an
  // output from one node to another. ValueIds stay valid: a value no node produces any more keeps
  // its place, with producer -1, and gets no memory. The caller keeps the order topological.
  Node& node(int index) { return nodes_.at(index); }
  void remove_nodes(const std::vector<int>& indices);
  // A new activation for a rewrite to pass between the nodes it makes (named uniquely from base).
  ValueId activation(const std::string& base, Shape shape, DType dtype = DType::f32);

  // Values that must survive the whole step (loss, accuracy, gradients).
  void keep(ValueId id);
  const std::vector<ValueId>& kept() const { return kept_; }
  bool is_kept(ValueId id) const;

  // Nodes added from here on are marked as backward (used by autodiff).
  void set_phase(Phase p) { phase_ = p; }
  // Names a new value uniquely: "conv1.out", "conv1.out.1", ...
  std::string unique_name(const std::string& base) const;

  // Lowest-level append; no composite expansion. Used by the registry and autodiff.
  std::vector<ValueId> append_primitive(const std::string& op, const std::string& name,
                                        const std::vector<ValueId>& inputs, const Attrs& attrs);

  std::vector<ValueId> params() const;  // in creation order
  std::string dump() const;             // one line per node, for debugging and --verbose

 private:
  ValueId add_value(Value v);

  bool training_;
  Phase phase_ = Phase::forward;
  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<ValueId> kept_;
};

}  // namespace myelin
