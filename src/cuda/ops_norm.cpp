// Normalisation: LRN across channels (own fused kernels, lrn.cu) and batch normalisation
// (statistics per channel over N and every axis after C). Batch norm runs on own kernels
// (batch_norm.cu) where the channels are innermost (NHWC activations, [N, C]) and in 16 bits, and
// on cuDNN for fp32 NCHW. Training updates the running statistics in place as the CPU engine
// does: running = momentum * running + (1 - momentum) * batch, with the unbiased batch variance
// for running_var (cuDNN's exponentialAverageFactor is 1 - momentum), and saves the mean and
// 1/sqrt(var + eps). Fusions (CudaBackend::fuse): a ReLU and a residual add after the forward pass
// (post = "relu", a sixth input) are applied in the own kernels' elementwise pass, and after
// cuDNN's call on the cuDNN path; the gradient's fused ReLU (post = "relu_grad") masks dy where
// the recomputed y is not above 0, in the own kernels' passes, and before cuDNN's call there. The
// gradient of a sum (batch_norm_sum_grad: dy = y > 0 ? a + b : 0) is computed and written by the
// own kernels' reduction pass, and by a pass of its own before cuDNN's call.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // cuDNN 9 marks the legacy API

#include "core/env.h"
#include "cuda/batch_norm_kernels.h"
#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

class LrnKernel : public CudaKernel {
 public:
  LrnKernel(const KernelSpec& s, bool backward) : CudaKernel(s), backward_(backward) {
    require_float(s);
    LrnParams p(s.node.attrs);
    if (!lrn_size_supported(static_cast<int>(p.size)))
      throw UnsupportedError(where_ + ": the CUDA kernel takes odd sizes up to 15, got " +
                             std::to_string(p.size));
    bool mixed = false;
    for (size_t i = 0; i < s.node.inputs.size(); ++i)
      mixed = mixed || s.input(static_cast<int>(i)).dtype != s.output(0).dtype;
    if (mixed ||
        (s.output(0).dtype != DType::f32 && !lrn16_size_supported(static_cast<int>(p.size))))
      throw UnsupportedError(where_ +
                             ": the CUDA kernel takes one storage type for all operands, "
                             "16-bit at sizes 3 and 5 only");
    Shape x = s.input(0).shape;
    d_ = LrnDims{x[0],
                 x[1],
                 x[2] * x[3],
                 static_cast<int>(p.size),
                 static_cast<float>(p.alpha),
                 static_cast<float>(p.beta),
                 static_cast<float>(p.k),
                 s.input_nhwc(0),
                 backward && s.node.attrs.s("post", "") == "relu_grad"};
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    if (backward_)  // (dy, x, y) -> dx
      lrn_backward(fptr(in[0]), fptr(in[1]), fptr(in[2]), fptr(out[0]), d_, stream());
    else
      lrn_forward(fptr(in[0]), fptr(out[0]), d_, stream());
  }

  bool backward_;
  LrnDims d_{};
};

// cuDNN's batch-norm mode: the persistent spatial kernels, or MYELIN_CUDA_BN=spatial for the
// plain ones. Persistent is faster in training (ResNet-9 at batch 512, bf16, H200: step 8.30 ms
// vs 9.35 ms; the first batch norm's forward 0.13 vs 0.24 ms, its backward 0.21 vs 0.60 ms).
cudnnBatchNormMode_t bn_mode() {
  return env_is("MYELIN_CUDA_BN", "spatial") ? CUDNN_BATCHNORM_SPATIAL
                                             : CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
}

// A batch-norm node's fusions (CudaBackend::fuse, ops/fuse.h): the forward's ReLU and residual
// (post = "relu", a sixth input), the gradient's ReLU (post = "relu_grad", beta the sixth input),
// a shortcut's batch norm (fuse_shortcut_batch_norms: its five inputs after the five, its
// statistics the fourth and fifth outputs), the gradient of a sum (batch_norm_sum_grad: b and y the
// sixth and seventh inputs, dy the fourth output).
struct BnFusion {
  bool relu, residual, shortcut, sum;
  BnFusion(const KernelSpec& s, bool backward)
      : relu(s.node.attrs.s("post", "") == (backward ? "relu_grad" : "relu")),
        residual(!backward && s.node.inputs.size() == 6),
        shortcut(!backward && s.node.inputs.size() == 10),
        sum(s.node.op == "batch_norm_sum_grad") {}
};

// x viewed as [N, C, rest, 1]; gamma, beta and statistics as cuDNN's derived [1, C, 1, 1]. The
// fusions run as passes of their own around cuDNN's call.
class BatchNormKernel : public CudaKernel {
 public:
  BatchNormKernel(const KernelSpec& s, bool backward)
      : CudaKernel(s),
        backward_(backward),
        fused_(s, backward),
        p_(s.node.attrs),
        mode_(bn_mode()) {
    require_f32(s);
    x_ = s.input(backward ? 1 : 0).shape;
    xd_.set(CUDNN_DATA_FLOAT, x_[0], x_[1], inner_size(x_, 2), 1, where_);
    MYELIN_CHECK(cudnnDeriveBNTensorDescriptor(bnd_, xd_, mode_), where_);
    if (p_.eps < CUDNN_BN_MIN_EPSILON)
      throw UnsupportedError(where_ + ": eps below cuDNN's minimum");
  }
  // The masked dy of a fused ReLU gradient.
  size_t workspace_bytes() const override {
    return backward_ && fused_.relu ? x_.numel() * sizeof(float) : 0;
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    const float one = 1.f, zero = 0.f;
    cudnnHandle_t h = be_.cudnn();
    if (backward_) {  // (dy, x, gamma, mean, invstd [, beta]) -> dx, dgamma, dbeta
      const void* dy = in[0].data();
      if (fused_.sum) {  // (a, x, gamma, mean, invstd, b, y) -> dx, dgamma, dbeta, dy
        add_any(fptr(in[0]), fptr(in[5]), fptr(out[3]), x_.numel(), stream(), false, fptr(in[6]));
        dy = out[3].data();
      }
      if (fused_.relu) {
        bn_relu_grad_mask_nchw(in[0].f32(), in[1].f32(), static_cast<float*>(ctx.workspace), x_[0],
                               x_[1], inner_size(x_, 2), in[2].f32(), in[5].f32(), in[3].f32(),
                               in[4].f32(), stream());
        dy = ctx.workspace;
      }
      MYELIN_CHECK(cudnnBatchNormalizationBackward(h, mode_, &one, &zero, &one, &zero, xd_,
                                                   in[1].data(), xd_, dy, xd_, out[0].data(), bnd_,
                                                   in[2].data(), out[1].data(), out[2].data(),
                                                   p_.eps, in[3].data(), in[4].data()),
                   "");
      return;
    }
    if (p_.training) {  // (x, gamma, beta, rmean, rvar [, r]) -> y, mean, invstd
      // A shortcut's batch norm (inputs 5-9 -> outputs 3, 4) writes y first; x's is added to it.
      const bool shortcut = fused_.shortcut;
      if (shortcut)
        MYELIN_CHECK(cudnnBatchNormalizationForwardTraining(
                         h, mode_, &one, &zero, xd_, in[5].data(), xd_, out[0].data(), bnd_,
                         in[6].data(), in[7].data(), 1.0 - p_.momentum, in[8].data(), in[9].data(),
                         p_.eps, out[3].data(), out[4].data()),
                     "(shortcut)");
      MYELIN_CHECK(cudnnBatchNormalizationForwardTraining(
                       h, mode_, &one, shortcut ? &one : &zero, xd_, in[0].data(), xd_,
                       out[0].data(), bnd_, in[1].data(), in[2].data(), 1.0 - p_.momentum,
                       in[3].data(), in[4].data(), p_.eps, out[1].data(), out[2].data()),
                   "");
    } else {
      MYELIN_CHECK(cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero,
                                                           xd_, in[0].data(), xd_, out[0].data(),
                                                           bnd_, in[1].data(), in[2].data(),
                                                           in[3].data(), in[4].data(), p_.eps),
                   "");
    }
    const FPtr y = fptr(out[0]);
    if (fused_.residual)
      add_any(y, fptr(in[5]), y, x_.numel(), stream(), fused_.relu);
    else if (fused_.relu)
      activation_forward(ActKind::relu, 0.f, y, y, x_.numel(), stream());
  }

  bool backward_;
  BnFusion fused_;
  Shape x_;
  BatchNormParams p_;
  cudnnBatchNormMode_t mode_;
  TensorDesc xd_, bnd_;
};

// Channels innermost ([rows, C]: NHWC, or [N, C]) in fp32, bf16 or fp16 (batch_norm.cu).
class BatchNormRowsKernel : public CudaKernel {
 public:
  BatchNormRowsKernel(const KernelSpec& s, bool backward)
      : CudaKernel(s), backward_(backward), fused_(s, backward), p_(s.node.attrs) {
    require_float(s);
    const int x = backward ? 1 : 0;
    const Shape& shape = s.input(x).shape;
    d_ = BnDims{shape.numel() / shape[1], shape[1], static_cast<float>(p_.eps),
                static_cast<float>(p_.momentum), fused_.relu};
    std::vector<int> params = backward ? std::vector{2, 3, 4} : std::vector{1, 2, 3, 4};
    if (backward && fused_.relu) params.push_back(5);  // beta
    if (fused_.shortcut) params.insert(params.end(), {6, 7, 8, 9});
    for (int i : params)
      if (s.input(i).dtype != DType::f32)
        throw UnsupportedError(where_ + ": gamma, beta and the statistics must be f32");
    if (fused_.shortcut && !p_.training)
      throw UnsupportedError(where_ + ": a shortcut's batch norm is fused in training only");
    if (!s.input_nhwc(x) && shape.rank() != 2)
      throw UnsupportedError(where_ +
                             ": the CUDA kernels for 16-bit batch norm take channels-last "
                             "(NHWC) or [N, C] activations only");
    const DType t = s.input(x).dtype;
    if (s.output(0).dtype != t || (backward && s.input(0).dtype != t) ||
        ((fused_.residual || fused_.shortcut) && s.input(5).dtype != t) ||
        (fused_.sum && (s.input(5).dtype != t || s.input(6).dtype != t || s.output(3).dtype != t)))
      throw UnsupportedError(where_ +
                             ": x, y (dy, dx), the residual and a sum's operands must share one "
                             "storage type");
    workspace_ = bn_workspace_bytes(d_, t == DType::bf16 ? 1 : t == DType::f16 ? 2 : 0);
  }
  size_t workspace_bytes() const override { return workspace_; }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    if (backward_) {  // (dy, x, gamma, mean, invstd [, beta]) -> dx, dgamma, dbeta
      const float* beta = fused_.relu ? in[5].f32() : nullptr;
      const SumGrad sum = fused_.sum ? SumGrad{fptr(in[5]), fptr(in[6]), fptr(out[3])} : SumGrad{};
      bn_backward(fptr(in[0]), fptr(in[1]), fptr(out[0]), in[2].f32(), beta, in[3].f32(),
                  in[4].f32(), out[1].f32(), out[2].f32(), d_, ctx.workspace, stream(), sum);
      return;
    }
    const FPtr res = fused_.residual ? fptr(in[5]) : FPtr{};
    // (x, gamma, beta, rmean, rvar [, r | shortcut's five]) -> y, mean, invstd [, shortcut's two]
    const BnShortcut shortcut =
        fused_.shortcut ? BnShortcut{fptr(in[5]), in[6].f32(),  in[7].f32(), in[8].f32(),
                                     in[9].f32(), out[3].f32(), out[4].f32()}
                        : BnShortcut{};
    if (p_.training)
      bn_forward_train(fptr(in[0]), res, fptr(out[0]), in[1].f32(), in[2].f32(), in[3].f32(),
                       in[4].f32(), out[1].f32(), out[2].f32(), d_, ctx.workspace, stream(),
                       fused_.shortcut ? &shortcut : nullptr);
    else
      bn_forward_infer(fptr(in[0]), res, fptr(out[0]), in[1].f32(), in[2].f32(), in[3].f32(),
                       in[4].f32(), d_, ctx.workspace, stream());
  }

  bool backward_;
  BnFusion fused_;
  BatchNormParams p_;
  BnDims d_{};
  size_t workspace_ = 0;
};

// The own kernels where x's channels are innermost: NHWC or [N, C] (with 16-bit storage only
// there, see the registration below).
bool channels_innermost(const KernelSpec& s, int x) {
  return s.input_nhwc(x) || s.input(x).shape.rank() == 2;
}

template <bool Backward>
std::unique_ptr<Kernel> make_batch_norm(const KernelSpec& s) {
  const int x = Backward ? 1 : 0;
  if (channels_innermost(s, x) || s.input(x).dtype != DType::f32)
    return std::make_unique<BatchNormRowsKernel>(s, Backward);
  return std::make_unique<BatchNormKernel>(s, Backward);
}

template <class K, bool Backward>
std::unique_ptr<Kernel> make(const KernelSpec& s) {
  return std::make_unique<K>(s, Backward);
}

}  // namespace

MYELIN_REGISTER_OPS {
  // LRN takes NHWC where all its operands have it, and 16-bit storage likewise (one type for
  // every operand), for the window sizes its 16-bit kernels exist for.
  auto lrn16 = [](const Node& n, const Graph&) {
    return lrn16_size_supported(static_cast<int>(LrnParams(n.attrs).size));
  };
  register_kernel("lrn", DeviceKind::cuda, make<LrnKernel, false>,
                  {.layout = takes_alike({0}, {0}), .half = takes_alike({0}, {0}, lrn16)});
  register_kernel(
      "lrn_grad", DeviceKind::cuda, make<LrnKernel, true>,
      {.layout = takes_alike({0, 1, 2}, {0}), .half = takes_alike({0, 1, 2}, {0}, lrn16)});
  // Batch norm takes NHWC where x, a fused residual and y (dy, x and dx) all have it, and 16-bit
  // storage likewise where its x is NHWC or [N, C] (the own kernels; cuDNN's fp32 NCHW path stays
  // fp32). cuDNN's own NHWC fp32 batch norm made ResNet-9's step 4x slower (H200: 17.9 vs 4.5 ms).
  auto rows = [](int x) {
    return [x](const Node& n, const Graph& g) {
      const Value& v = g.value(n.inputs.at(x));
      return v.layout == Layout::nhwc || v.shape.rank() == 2;
    };
  };
  register_kernel("batch_norm", DeviceKind::cuda, make_batch_norm<false>,
                  {.layout = takes_alike({0, 5}, {0}), .half = takes_alike({0, 5}, {0}, rows(0))});
  register_kernel("batch_norm_grad", DeviceKind::cuda, make_batch_norm<true>,
                  {.layout = takes_alike({0, 1}, {0}), .half = takes_alike({0, 1}, {0}, rows(1))});
  register_kernel("batch_norm_sum_grad", DeviceKind::cuda, make_batch_norm<true>,
                  {.layout = takes_alike({0, 1, 5, 6}, {0, 3}),
                   .half = takes_alike({0, 1, 5, 6}, {0, 3}, rows(1))});
}

}  // namespace myelin::cuda
