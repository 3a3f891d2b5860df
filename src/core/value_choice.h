// Choosing a property of activations (a storage type, a memory layout) that every kernel touching
// a value must agree with. A backend states, per node and operand, whether its kernel takes the
// property there, and which nodes need all their taking operands to agree (elementwise kernels
// index every operand alike). A view shares its source's memory, so the two are decided together.
#pragma once
#include <functional>
#include <vector>

#include "core/graph.h"

namespace myelin {

struct ChoiceRules {
  // May operand k of n (an input, or an output when `output`) have the property?
  std::function<bool(const Node& n, bool output, size_t k)> takes;
  // Must every operand of n that takes the property agree with the others?
  std::function<bool(const Node& n)> tied;
  // May this value have it at all? Only activations that some node reads and the step does not
  // keep are ever chosen (a value nobody reads is a result its caller reads as it is).
  std::function<bool(const Value& v)> eligible;
};

// One flag per value: true where the property may be given. Views are consulted like any node
// (a rule that refuses them keeps their source as it is).
std::vector<char> choose_values(const Graph& g, const ChoiceRules& rules);

// Which operands of an op's kernel take the property (a kernel's StorageRule, core/backend.h).
struct OperandSlots {
  std::vector<int> in, out;  // the input and output slots that take it
  bool tied = false;         // all of them must agree (the kernel indexes them alike)
  bool has(bool output, size_t k) const;
};

// Rules from per-kernel slots: `slots` gives a node's, or null where its kernel takes the
// property nowhere.
ChoiceRules table_rules(std::function<const OperandSlots*(const Node&)> slots,
                        std::function<bool(const Value&)> eligible);

}  // namespace myelin
