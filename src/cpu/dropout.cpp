// CPU kernels for dropout and its gradient. The mask is never stored: both kernels recompute it
// from (seed, step, forward node, element) with the counter-based hash of ops/params.h, the same
// function every engine uses, so a CPU and a GPU run of a step drop the same elements.
#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "core/error.h"
#include "ops/params.h"

namespace myelin {

namespace {

// y = x * mask / (1 - ratio); used unchanged by dropout (x) and dropout_grad (dy).
class DropoutKernel : public Kernel {
 public:
  explicit DropoutKernel(const KernelSpec& s)
      : ratio_(DropoutParams(s.node.attrs).ratio),
        threshold_(dropout_threshold(ratio_)),
        scale_(static_cast<float>(1.0 / (1.0 - ratio_))) {
    if (!s.node.attrs.has("forward_node"))
      throw Error(s.node.op + " '" + s.node.name +
                  "': attribute forward_node is missing (the mask needs the forward node's index)");
    node_ = s.node.attrs.i("forward_node", 0);
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const float* x = in[0].f32();
    float* y = out[0].f32();
    int64_t n = out[0].numel();
    uint64_t key = dropout_key(ctx.seed, ctx.step, static_cast<int>(node_));
#pragma omp parallel for simd if (n >= (1 << 15))
    for (int64_t i = 0; i < n; ++i)
      y[i] = dropout_keep(key, static_cast<uint64_t>(i), threshold_) ? x[i] * scale_ : 0.0f;
  }

 private:
  double ratio_;
  uint32_t threshold_;
  float scale_;
  int64_t node_ = 0;
};

std::unique_ptr<Kernel> make_dropout(const KernelSpec& s) {
  return std::make_unique<DropoutKernel>(s);
}

}  // namespace

// NCHW only (no KernelStorage): the mask is a function of the element's index, so a blocked step
// would drop other elements than the same step stored NCHW.
MYELIN_REGISTER_OPS {
  register_kernel("dropout", DeviceKind::cpu, make_dropout);
  register_kernel("dropout_grad", DeviceKind::cpu, make_dropout);
}

}  // namespace myelin
