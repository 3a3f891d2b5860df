// Max and average pooling (own kernels, pool.cu), with the CPU engine's window rules, each operand
// NCHW or NHWC. Under MYELIN_CUDA_POOL_PICKS=1 a max pooling with a gradient passes it its picks
// (pass_max_pool_picks, ops/fuse.h): max_pool2d x -> y, picks and max_pool2d_grad (dy, picks) ->
// dx.
#include "core/env.h"
#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

enum class PoolOp { max_forward, max_backward, avg_forward, avg_backward };

class PoolKernel : public CudaKernel {
 public:
  PoolKernel(const KernelSpec& s, PoolOp op) : CudaKernel(s), op_(op) {
    require_float(s);
    bool forward = op == PoolOp::max_forward || op == PoolOp::avg_forward;
    Shape x = forward ? s.input(0).shape : s.output(0).shape;
    Shape y = forward ? s.output(0).shape : s.input(0).shape;
    PoolParams p(s.node.attrs);
    d_ = PoolDims{x[0],
                  x[1],
                  x[2],
                  x[3],
                  y[2],
                  y[3],
                  static_cast<int>(p.kernel_h),
                  static_cast<int>(p.kernel_w),
                  static_cast<int>(p.stride_h),
                  static_cast<int>(p.stride_w),
                  static_cast<int>(p.pad_h),
                  static_cast<int>(p.pad_w),
                  p.count_include_pad};
    // Each operand's layout: forward (x) -> y [, picks]; max backward (dy, x, y) or (dy, picks)
    // -> dx; average (dy) -> dx.
    picks_ = op == PoolOp::max_forward ? s.node.outputs.size() == 2 : s.node.inputs.size() == 2;
    if (forward) {
      d_.x_nhwc = s.input_nhwc(0), d_.y_nhwc = s.output_nhwc(0);
    } else {
      d_.dy_nhwc = s.input_nhwc(0), d_.dx_nhwc = s.output_nhwc(0);
      if (op == PoolOp::max_backward && !picks_)
        d_.x_nhwc = s.input_nhwc(1), d_.y_nhwc = s.input_nhwc(2);
    }
    if (op == PoolOp::max_forward) d_.vectorized = vectorizes(s);
    if (op != PoolOp::max_backward) return;
    d_.gather = gathers(s);
    d_.argmax =
        !picks_ && d_.gather && d_.kh * d_.kw < 256 && !env_is("MYELIN_CUDA_POOL_ARGMAX", "0");
    // The picks for argmax; without gathering, a 16-bit max-pool gradient is accumulated in fp32
    // scratch first.
    if (d_.argmax)
      scratch_ = static_cast<size_t>(y.numel());
    else if (!d_.gather && s.output(0).dtype != DType::f32)
      scratch_ = sizeof(float) * static_cast<size_t>(x.numel());
  }

  size_t workspace_bytes() const override { return scratch_; }

 private:
  // Whether the first `inputs` inputs have the output's type and the channels fill whole
  // 16-byte vectors of it: what the vectorized kernels take (with every operand NHWC).
  bool whole_vectors(const KernelSpec& s, int inputs) const {
    const DType t = s.output(0).dtype;
    bool ok = d_.c % (16 / static_cast<int64_t>(dtype_size(t))) == 0;
    for (int i = 0; i < inputs; ++i) ok = ok && s.input(i).dtype == t;
    return ok;
  }

  // Whether the max-pool gradient gathers (PoolDims::gather): (dy, x, y) -> dx, or dy -> dx with
  // picks, all NHWC of one type, whole 16-byte groups of channels; MYELIN_CUDA_POOL_GATHER=0
  // keeps the atomics.
  bool gathers(const KernelSpec& s) const {
    return (picks_ || (d_.x_nhwc && d_.y_nhwc)) && d_.dx_nhwc && d_.dy_nhwc &&
           whole_vectors(s, picks_ ? 1 : 3) && !env_is("MYELIN_CUDA_POOL_GATHER", "0");
  }

  // Whether max forward takes 16 bytes of channels per thread (PoolDims::vectorized);
  // MYELIN_CUDA_POOL_VEC=0 keeps a thread per element.
  bool vectorizes(const KernelSpec& s) const {
    return d_.x_nhwc && d_.y_nhwc && whole_vectors(s, 1) && !env_is("MYELIN_CUDA_POOL_VEC", "0");
  }

  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    switch (op_) {
      case PoolOp::max_forward:
        return max_pool_forward(fptr(in[0]), fptr(out[0]),
                                picks_ ? static_cast<uint8_t*>(out[1].data()) : nullptr, d_,
                                stream());
      case PoolOp::max_backward:
        if (picks_)  // (dy, picks) -> dx
          return max_pool_backward_picks(fptr(in[0]), static_cast<const uint8_t*>(in[1].data()),
                                         fptr(out[0]), static_cast<float*>(ctx.workspace), d_,
                                         stream());
        return max_pool_backward(fptr(in[0]), fptr(in[1]), fptr(in[2]), fptr(out[0]),  // (dy, x, y)
                                 static_cast<float*>(ctx.workspace), d_, stream());
      case PoolOp::avg_forward:
        return avg_pool_forward(fptr(in[0]), fptr(out[0]), d_, stream());
      case PoolOp::avg_backward:
        return avg_pool_backward(fptr(in[0]), fptr(out[0]), d_, stream());
    }
  }

  PoolOp op_;
  bool picks_ = false;  // the max pooling's picks: its forward writes them, its gradient reads them
  size_t scratch_ = 0;
  PoolDims d_{};
};

KernelFactory pool(PoolOp op) {
  return [op](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<PoolKernel>(s, op);
  };
}

}  // namespace

// Each operand NHWC or NCHW, 16-bit or fp32.
MYELIN_REGISTER_OPS {
  register_kernel("max_pool2d", DeviceKind::cuda, pool(PoolOp::max_forward),
                  {.layout = takes_each({0}, {0}), .half = takes_each({0}, {0})});
  register_kernel("max_pool2d_grad", DeviceKind::cuda, pool(PoolOp::max_backward),
                  {.layout = takes_each({0, 1, 2}, {0}), .half = takes_each({0, 1, 2}, {0})});
  register_kernel("avg_pool2d", DeviceKind::cuda, pool(PoolOp::avg_forward),
                  {.layout = takes_each({0}, {0}), .half = takes_each({0}, {0})});
  register_kernel("avg_pool2d_grad", DeviceKind::cuda, pool(PoolOp::avg_backward),
                  {.layout = takes_each({0}, {0}), .half = takes_each({0}, {0})});
}

}  // namespace myelin::cuda
