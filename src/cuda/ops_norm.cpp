// Normalisation: LRN across channels (own fused kernels, lrn.cu) and batch normalisation on
// cuDNN (spatial mode: statistics per channel over N and every axis after C). Training updates
// the running statistics in place as the CPU engine does: running = momentum * running +
// (1 - momentum) * batch, with the unbiased batch variance for running_var (cuDNN's
// exponentialAverageFactor is 1 - momentum), and saves the mean and 1/sqrt(var + eps).
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // cuDNN 9 marks the legacy API

#include <cstdlib>
#include <cstring>

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
      : CudaKernel(s), backward_(backward), p_(s.node.attrs), mode_(bn_mode()) {
    require_f32(s);
    Shape x = s.input(backward ? 1 : 0).shape;
    xd_.set(CUDNN_DATA_FLOAT, x[0], x[1], inner_size(x, 2), 1, where_);
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
    } else {
      MYELIN_CHECK(cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero,
                                                           xd_, in[0].data(), xd_, out[0].data(),
                                                           bnd_, in[1].data(), in[2].data(),
                                                           in[3].data(), in[4].data(), p_.eps),
                   "");
    }
  }

  bool backward_;
  BatchNormParams p_;
  cudnnBatchNormMode_t mode_;
  TensorDesc xd_, bnd_;
};

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
  // Batch norm stays fp32 NCHW: cuDNN's NHWC fp32 batch norm made ResNet-9's step 4x slower
  // (H200: 17.9 vs 4.5 ms).
  register_kernel("batch_norm", DeviceKind::cuda, make<BatchNormKernel, false>);
  register_kernel("batch_norm_grad", DeviceKind::cuda, make<BatchNormKernel, true>);
}

}  // namespace myelin::cuda
