// Normalisation: LRN across channels (own fused kernels, lrn.cu) and batch normalisation
// (statistics per channel over N and every axis after C). Batch norm runs on own kernels
// (batch_norm.cu) where the channels are innermost (NHWC activations, [N, C]) and in 16 bits, and
// on cuDNN for fp32 NCHW. Training updates the running statistics in place as the CPU engine
// does: running = momentum * running + (1 - momentum) * batch, with the unbiased batch variance
// for running_var (cuDNN's exponentialAverageFactor is 1 - momentum), and saves the mean and
// 1/sqrt(var + eps). A fused ReLU (post = "relu", CudaBackend::fuse) is applied in the own
// kernels' elementwise pass, and after cuDNN's call on the cuDNN path.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // cuDNN 9 marks the legacy API

#include <cstdlib>
#include <cstring>

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
  const char* e = std::getenv("MYELIN_CUDA_BN");
  return e && std::strcmp(e, "spatial") == 0 ? CUDNN_BATCHNORM_SPATIAL
                                             : CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
}

// x viewed as [N, C, rest, 1]; gamma, beta and statistics as cuDNN's derived [1, C, 1, 1].
class BatchNormKernel : public CudaKernel {
 public:
  BatchNormKernel(const KernelSpec& s, bool backward)
      : CudaKernel(s),
        backward_(backward),
        relu_(s.node.attrs.s("post", "") == "relu"),
        p_(s.node.attrs),
        mode_(bn_mode()) {
    require_f32(s);
    Shape x = s.input(backward ? 1 : 0).shape;
    xd_.set(CUDNN_DATA_FLOAT, x[0], x[1], inner_size(x, 2), 1, where_);
    numel_ = x.numel();
    MYELIN_CHECK(cudnnDeriveBNTensorDescriptor(bnd_, xd_, mode_), where_);
    if (p_.eps < CUDNN_BN_MIN_EPSILON)
      throw UnsupportedError(where_ + ": eps below cuDNN's minimum");
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    const float one = 1.f, zero = 0.f;
    cudnnHandle_t h = be_.cudnn();
    if (backward_) {  // (dy, x, gamma, mean, invstd) -> dx, dgamma, dbeta
      MYELIN_CHECK(cudnnBatchNormalizationBackward(
                       h, mode_, &one, &zero, &one, &zero, xd_, in[1].data(), xd_, in[0].data(),
                       xd_, out[0].data(), bnd_, in[2].data(), out[1].data(), out[2].data(), p_.eps,
                       in[3].data(), in[4].data()),
                   "");
    } else if (p_.training) {  // (x, gamma, beta, rmean, rvar) -> y, mean, invstd
      MYELIN_CHECK(cudnnBatchNormalizationForwardTraining(
                       h, mode_, &one, &zero, xd_, in[0].data(), xd_, out[0].data(), bnd_,
                       in[1].data(), in[2].data(), 1.0 - p_.momentum, in[3].data(), in[4].data(),
                       p_.eps, out[1].data(), out[2].data()),
                   "");
      relu(out[0]);
    } else {
      MYELIN_CHECK(cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero,
                                                           xd_, in[0].data(), xd_, out[0].data(),
                                                           bnd_, in[1].data(), in[2].data(),
                                                           in[3].data(), in[4].data(), p_.eps),
                   "");
      relu(out[0]);
    }
  }

  void relu(const Tensor& y) {
    if (relu_) activation_forward(ActKind::relu, 0.f, fptr(y), fptr(y), numel_, stream());
  }

  bool backward_, relu_;
  int64_t numel_ = 0;
  BatchNormParams p_;
  cudnnBatchNormMode_t mode_;
  TensorDesc xd_, bnd_;
};

// Channels innermost ([rows, C]: NHWC, or [N, C]) in fp32, bf16 or fp16 (batch_norm.cu).
class BatchNormRowsKernel : public CudaKernel {
 public:
  BatchNormRowsKernel(const KernelSpec& s, bool backward)
      : CudaKernel(s), backward_(backward), p_(s.node.attrs) {
    require_float(s);
    const int x = backward ? 1 : 0;
    const Shape& shape = s.input(x).shape;
    d_ = BnDims{shape.numel() / shape[1], shape[1], static_cast<float>(p_.eps),
                static_cast<float>(p_.momentum), s.node.attrs.s("post", "") == "relu"};
    for (int i = backward ? 2 : 1; i < 5; ++i)
      if (s.input(i).dtype != DType::f32)
        throw UnsupportedError(where_ + ": gamma, beta and the statistics must be f32");
    if (!s.input_nhwc(x) && shape.rank() != 2)
      throw UnsupportedError(where_ +
                             ": the CUDA kernels for 16-bit batch norm take channels-last "
                             "(NHWC) or [N, C] activations only");
    const DType t = s.input(x).dtype;
    if (s.output(0).dtype != t || (backward && s.input(0).dtype != t))
      throw UnsupportedError(where_ + ": x, y (dy, dx) must share one storage type");
    workspace_ = bn_workspace_bytes(d_, t == DType::bf16 ? 1 : t == DType::f16 ? 2 : 0);
  }
  size_t workspace_bytes() const override { return workspace_; }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    if (backward_)  // (dy, x, gamma, mean, invstd) -> dx, dgamma, dbeta
      bn_backward(fptr(in[0]), fptr(in[1]), fptr(out[0]), in[2].f32(), in[3].f32(), in[4].f32(),
                  out[1].f32(), out[2].f32(), d_, ctx.workspace, stream());
    else if (p_.training)  // (x, gamma, beta, rmean, rvar) -> y, mean, invstd
      bn_forward_train(fptr(in[0]), fptr(out[0]), in[1].f32(), in[2].f32(), in[3].f32(),
                       in[4].f32(), out[1].f32(), out[2].f32(), d_, ctx.workspace, stream());
    else
      bn_forward_infer(fptr(in[0]), fptr(out[0]), in[1].f32(), in[2].f32(), in[3].f32(),
                       in[4].f32(), d_, ctx.workspace, stream());
  }

  bool backward_;
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
  // Batch norm takes NHWC where x and y (dy, x and dx) all have it, and 16-bit storage likewise
  // where its x is NHWC or [N, C] (the own kernels; cuDNN's fp32 NCHW path stays fp32). cuDNN's
  // own NHWC fp32 batch norm made ResNet-9's step 4x slower (H200: 17.9 vs 4.5 ms).
  auto rows = [](int x) {
    return [x](const Node& n, const Graph& g) {
      const Value& v = g.value(n.inputs.at(x));
      return v.layout == Layout::nhwc || v.shape.rank() == 2;
    };
  };
  register_kernel("batch_norm", DeviceKind::cuda, make_batch_norm<false>,
                  {.layout = takes_alike({0}, {0}), .half = takes_alike({0}, {0}, rows(0))});
  register_kernel("batch_norm_grad", DeviceKind::cuda, make_batch_norm<true>,
                  {.layout = takes_alike({0, 1}, {0}), .half = takes_alike({0, 1}, {0}, rows(1))});
}

}  // namespace myelin::cuda
