// CUDA kernels of the pointwise ops: add, mul, accumulate_grad, bias_add, bias_grad, fill,
// activation (+grad) and dropout (+grad). The math is in elementwise.cu; these classes check
// dtypes once, when the program is compiled, and launch on the backend's stream.
#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

// A kernel that needs only the backend, its label and a launch function.
class LaunchKernel : public CudaKernel {
 public:
  using Launch =
      std::function<void(const std::vector<Tensor>&, const std::vector<Tensor>&, cudaStream_t)>;
  // any_float: the launch loads and stores through FPtr (f32, bf16 or f16 tensors).
  LaunchKernel(const KernelSpec& s, Launch f, bool any_float = false)
      : CudaKernel(s), launch_(std::move(f)) {
    if (any_float)
      require_float(s);
    else
      require_f32(s);
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    launch_(in, out, stream());
  }

  Launch launch_;
};

KernelFactory binary(void (*f)(const float*, const float*, float*, int64_t, cudaStream_t)) {
  return [f](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<LaunchKernel>(
        s, [f](const std::vector<Tensor>& in, const std::vector<Tensor>& out, cudaStream_t st) {
          f(in[0].f32(), in[1].f32(), out[0].f32(), out[0].numel(), st);
        });
  };
}

// A fused ReLU (post "relu"), or a ReLU's gradient (post "relu_grad": the ReLU's output y the third
// input, ops/fuse.h's fuse_add_relu_grads).
std::unique_ptr<Kernel> make_add(const KernelSpec& s) {
  const std::string post = s.node.attrs.s("post", "");
  const bool relu = post == "relu", masked = post == "relu_grad";
  if (masked != (s.node.inputs.size() == 3))
    throw UnsupportedError("add: a third input (the ReLU's output) comes with post = relu_grad");
  return std::make_unique<LaunchKernel>(
      s,
      [relu, masked](const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                     cudaStream_t st) {
        const FPtr mask = masked ? fptr(in[2]) : FPtr{};
        add_any(fptr(in[0]), fptr(in[1]), fptr(out[0]), out[0].numel(), st, relu, mask);
      },
      true);
}

std::unique_ptr<Kernel> make_accumulate(const KernelSpec& s) {
  return std::make_unique<LaunchKernel>(
      s, [](const std::vector<Tensor>& in, const std::vector<Tensor>&, cudaStream_t st) {
        accumulate_f32(in[0].f32(), in[1].f32(), in[0].numel(), st);
      });
}

// x as [outer, channels, inner]: [N, C, HW] in NCHW, [N * HW, C, 1] in NHWC.
void bias_dims(const KernelSpec& s, int64_t& outer, int64_t& channels, int64_t& inner) {
  Shape x = s.input(0).shape;
  channels = x[1];
  inner = s.input_nhwc(0) ? 1 : inner_size(x, 2);
  outer = x.numel() / (channels * inner);
}

std::unique_ptr<Kernel> make_bias_add(const KernelSpec& s) {
  int64_t outer, channels, inner;
  bias_dims(s, outer, channels, inner);
  return std::make_unique<LaunchKernel>(
      s,
      [=](const std::vector<Tensor>& in, const std::vector<Tensor>& out, cudaStream_t st) {
        bias_add(fptr(in[0]), in[1].f32(), fptr(out[0]), outer, channels, inner, st);
      },
      true);
}

class BiasGradKernel : public CudaKernel {
 public:
  explicit BiasGradKernel(const KernelSpec& s) : CudaKernel(s) {
    require_float(s);
    if (s.output(0).dtype != DType::f32)
      throw UnsupportedError(where_ + ": the bias gradient must be f32");
    bias_dims(s, outer_, channels_, inner_);
  }
  size_t workspace_bytes() const override {
    return sizeof(float) * bias_grad_partials(outer_, channels_, inner_);
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    bias_grad(fptr(in[0]), out[0].f32(), outer_, channels_, inner_,
              static_cast<float*>(ctx.workspace), stream());
  }

  int64_t outer_, channels_, inner_;
};

class FillKernel : public CudaKernel {
 public:
  explicit FillKernel(const KernelSpec& s) : CudaKernel(s), value_(s.node.attrs.f("value", 0.0)) {}

 private:
  void launch(const std::vector<Tensor>&, const std::vector<Tensor>& out,
              const StepContext&) override {
    fill(out[0].data(), out[0].dtype(), value_, out[0].numel(), stream());
  }

  double value_;
};

std::unique_ptr<Kernel> make_activation(const KernelSpec& s) {
  ActParams p(s.node.attrs);
  float alpha = static_cast<float>(p.alpha);
  return std::make_unique<LaunchKernel>(
      s,
      [p, alpha](const std::vector<Tensor>& in, const std::vector<Tensor>& out, cudaStream_t st) {
        activation_forward(p.kind, alpha, fptr(in[0]), fptr(out[0]), out[0].numel(), st);
      },
      true);
}

std::unique_ptr<Kernel> make_activation_grad(const KernelSpec& s) {
  ActParams p(s.node.attrs);
  float alpha = static_cast<float>(p.alpha);
  return std::make_unique<LaunchKernel>(
      s,
      [p, alpha](const std::vector<Tensor>& in, const std::vector<Tensor>& out, cudaStream_t st) {
        activation_backward(p.kind, alpha, fptr(in[0]), fptr(in[1]), fptr(in[2]), fptr(out[0]),
                            out[0].numel(), st);
      },
      true);
}

// Forward and backward share the mask: keyed by the forward node and the device's step state.
class DropoutKernel : public CudaKernel {
 public:
  explicit DropoutKernel(const KernelSpec& s) : CudaKernel(s) {
    require_float(s);
    double ratio = DropoutParams(s.node.attrs).ratio;
    if (!s.node.attrs.has("forward_node"))
      throw Error(op_label(s.node) +
                  ": attribute forward_node is missing (the mask needs the forward node's index)");
    node_ = static_cast<int>(s.node.attrs.i("forward_node", 0));
    threshold_ = dropout_threshold(ratio);
    scale_ = static_cast<float>(1.0 / (1.0 - ratio));
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    be_.publish_step(ctx);
    dropout(fptr(in[0]), fptr(out[0]), out[0].numel(), be_.step_state(), node_, threshold_, scale_,
            stream());
  }

  int node_ = 0;
  uint32_t threshold_ = 0;
  float scale_ = 1;
};

template <class K>
std::unique_ptr<Kernel> make(const KernelSpec& s) {
  return std::make_unique<K>(s);
}

}  // namespace

// The elementwise kernels index every operand alike: NHWC where all of them have it. Those that
// load and store through FPtr take 16-bit storage in each operand (mul, accumulate_grad and fill
// are fp32 only). bias_add indexes x and y alike too (the bias is 1-D); bias_grad reads dy in
// either layout.
MYELIN_REGISTER_OPS {
  register_kernel("add", DeviceKind::cuda, make_add,
                  {.layout = takes_alike({0, 1, 2}, {0}), .half = takes_each({0, 1, 2}, {0})});
  register_kernel("mul", DeviceKind::cuda, binary(mul_f32), {.layout = takes_alike({0, 1}, {0})});
  register_kernel("accumulate_grad", DeviceKind::cuda, make_accumulate,
                  {.layout = takes_alike({0, 1}, {})});
  register_kernel("bias_add", DeviceKind::cuda, make_bias_add,
                  {.layout = takes_alike({0}, {0}), .half = takes_each({0}, {0})});
  register_kernel("bias_grad", DeviceKind::cuda, make<BiasGradKernel>,
                  {.layout = takes_each({0}, {}), .half = takes_each({0}, {})});
  register_kernel("fill", DeviceKind::cuda, make<FillKernel>, {.layout = takes_each({}, {0})});
  register_kernel("activation", DeviceKind::cuda, make_activation,
                  {.layout = takes_alike({0}, {0}), .half = takes_each({0}, {0})});
  register_kernel("activation_grad", DeviceKind::cuda, make_activation_grad,
                  {.layout = takes_alike({0, 1, 2}, {0}), .half = takes_each({0, 1, 2}, {0})});
  register_kernel("dropout", DeviceKind::cuda, make<DropoutKernel>,
                  {.layout = takes_alike({0}, {0}), .half = takes_each({0}, {0})});
  register_kernel("dropout_grad", DeviceKind::cuda, make<DropoutKernel>,
                  {.layout = takes_alike({0}, {0}), .half = takes_each({0}, {0})});
}

}  // namespace myelin::cuda
