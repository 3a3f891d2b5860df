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

}  // namespace myelin
