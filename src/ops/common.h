// Helpers for op definitions.
#pragma once
#include "core/error.h"
#include "core/op_registry.h"
#include "ops/params.h"

namespace myelin {

inline void expect(bool ok, const Node& n, const std::vector<TensorType>& in,
                   const std::string& what) {
  if (!ok) shape_error(n, in, what);
}

inline bool is_float(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16;
}

inline std::vector<int64_t> to_ints(const Shape& s) {
  return s.dims;
}

// Infer function for ops whose single output has input 0's shape and dtype.
inline std::vector<TensorType> same_as_first(const Node&, const std::vector<TensorType>& in) {
  return {in[0]};
}

// Elements of a value, for FLOP rules (OpDef::flops).
inline double elements(const Graph& g, ValueId v) {
  return static_cast<double>(g.value(v).shape.numel());
}

// FLOP rules of ops that do a fixed amount of work per element: `per_element` FLOPs for each
// element of output 0, or of input `input`.
inline FlopsFn flops_per_output(double per_element) {
  return [per_element](const Graph& g, const Node& n) {
    return per_element * elements(g, n.outputs.at(0));
  };
}
inline FlopsFn flops_per_input(double per_element, int input = 0) {
  return [per_element, input](const Graph& g, const Node& n) {
    return per_element * elements(g, n.inputs.at(input));
  };
}

}  // namespace myelin
