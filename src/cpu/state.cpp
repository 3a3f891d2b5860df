// copy and assign (ops/state.cpp) on the CPU: byte copies.
#include <cstring>

#include "core/backend.h"

namespace myelin {

MYELIN_REGISTER_OPS {
  register_kernel_fn(
      "copy", DeviceKind::cpu,
      [](const std::vector<Tensor>& in, const std::vector<Tensor>& out, const StepContext&,
         const Node&) { std::memcpy(out[0].data(), in[0].data(), in[0].nbytes()); });
  register_kernel_fn(
      "assign", DeviceKind::cpu,
      [](const std::vector<Tensor>& in, const std::vector<Tensor>&, const StepContext&,
         const Node&) { std::memcpy(in[0].data(), in[1].data(), in[1].nbytes()); });
}

}  // namespace myelin
