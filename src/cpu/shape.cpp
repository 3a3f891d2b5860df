// CPU kernels for concat and split along an axis (any dtype: they move bytes). reshape is a view
// and has no kernel.
#include <cstdint>
#include <cstring>

#include "core/backend.h"

namespace myelin {

namespace {

// A tensor viewed as [outer, extent along the axis * inner] rows of bytes.
struct AxisRows {
  int64_t outer = 1;
  size_t row_bytes = 0;
  AxisRows(const Tensor& t, int axis) {
    size_t inner = dtype_size(t.dtype());
    for (int d = 0; d < t.shape().rank(); ++d)
      if (d < axis)
        outer *= t.shape()[d];
      else
        inner *= static_cast<size_t>(t.shape()[d]);
    row_bytes = inner;
  }
};

int axis_of(const Node& node, int rank) {
  int64_t axis = node.attrs.i("axis", 1);
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

// Copies part `parts[p]` to or from its slot of each row of `whole`.
void move_parts(const Tensor& whole, const std::vector<Tensor>& parts, int axis, bool to_whole) {
  AxisRows w(whole, axis);
  auto* base = static_cast<std::byte*>(whole.data());
  size_t at = 0;
  for (const Tensor& part : parts) {
    AxisRows p(part, axis);
    auto* pb = static_cast<std::byte*>(part.data());
#pragma omp parallel for if (static_cast <size_t>(p.outer) * p.row_bytes >= (1u << 18))
    for (int64_t o = 0; o < p.outer; ++o) {
      std::byte* slot = base + static_cast<size_t>(o) * w.row_bytes + at;
      std::byte* piece = pb + static_cast<size_t>(o) * p.row_bytes;
      if (to_whole)
        std::memcpy(slot, piece, p.row_bytes);
      else
        std::memcpy(piece, slot, p.row_bytes);
    }
    at += p.row_bytes;
  }
}

void concat_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                   const StepContext&, const Node& node) {
  move_parts(out[0], in, axis_of(node, out[0].shape().rank()), true);
}

void split_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const StepContext&,
                  const Node& node) {
  move_parts(in[0], out, axis_of(node, in[0].shape().rank()), false);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel_fn("concat", DeviceKind::cpu, concat_kernel);
  register_kernel_fn("split", DeviceKind::cpu, split_kernel);
}

}  // namespace myelin
