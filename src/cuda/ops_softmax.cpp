// Softmax over axis 1 on cuDNN (channel mode on [N, C, rest, 1]); softmax cross-entropy, its
// gradient and top-k accuracy on own kernels (loss.cu). A label outside [0, classes) is found on
// the device and reported at the next synchronisation as an Error naming the op and the label.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // cuDNN 9 marks the legacy API

#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

class SoftmaxKernel : public CudaKernel {
 public:
  SoftmaxKernel(const KernelSpec& s, bool backward) : CudaKernel(s), backward_(backward) {
    require_f32(s);
    Shape x = s.input(0).shape;
    d_.set(CUDNN_DATA_FLOAT, x[0], x[1], inner_size(x, 2), 1, where_);
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    const float one = 1.f, zero = 0.f;
    if (backward_)  // (dy, y) -> dx
      MYELIN_CHECK(
          cudnnSoftmaxBackward(be_.cudnn(), CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL,
                               &one, d_, in[1].data(), d_, in[0].data(), &zero, d_, out[0].data()),
          "");
    else
      MYELIN_CHECK(
          cudnnSoftmaxForward(be_.cudnn(), CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &one,
                              d_, in[0].data(), &zero, d_, out[0].data()),
          "");
  }

  bool backward_;
  TensorDesc d_;
};

enum class LossOp { xent, xent_grad, top_k };

class LossKernel : public CudaKernel {
 public:
  LossKernel(const KernelSpec& s, LossOp op) : CudaKernel(s), op_(op) {
    require_f32(s);
    Shape logits = s.input(op == LossOp::xent_grad ? 1 : 0).shape;
    n_ = logits[0], k_ = logits[1];
    smoothing_ = static_cast<float>(s.node.attrs.f("label_smoothing", 0.0));
    top_ = static_cast<int>(s.node.attrs.i("k", 1));
    site_ =
        be_.register_report_site(op_label(s.node), " is outside [0, " + std::to_string(k_) + ")");
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    DeviceReport* r = be_.report_slot();
    switch (op_) {
      case LossOp::xent:
        return xent_forward(in[0].f32(), in[1].data_as<int32_t>(), n_, k_, smoothing_, out[0].f32(),
                            r, site_, stream());
      case LossOp::xent_grad:  // (dloss, logits, labels) -> dlogits
        return xent_backward(in[0].f32(), in[1].f32(), in[2].data_as<int32_t>(), n_, k_, smoothing_,
                             out[0].f32(), r, site_, stream());
      case LossOp::top_k:
        return top_k_accuracy(in[0].f32(), in[1].data_as<int32_t>(), n_, k_, top_, out[0].f32(), r,
                              site_, stream());
    }
  }

  LossOp op_;
  int64_t n_ = 0, k_ = 0;
  float smoothing_ = 0;
  int top_ = 1;
  int site_ = 0;
};

template <bool Backward>
std::unique_ptr<Kernel> make_softmax(const KernelSpec& s) {
  return std::make_unique<SoftmaxKernel>(s, Backward);
}

KernelFactory loss(LossOp op) {
  return [op](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<LossKernel>(s, op);
  };
}

}  // namespace

// No KernelStorage: fp32 and NCHW only (the logits are small).
MYELIN_REGISTER_OPS {
  register_kernel("softmax", DeviceKind::cuda, make_softmax<false>);
  register_kernel("softmax_grad", DeviceKind::cuda, make_softmax<true>);
  register_kernel("softmax_cross_entropy", DeviceKind::cuda, loss(LossOp::xent));
  register_kernel("softmax_cross_entropy_grad", DeviceKind::cuda, loss(LossOp::xent_grad));
  register_kernel("top_k_accuracy", DeviceKind::cuda, loss(LossOp::top_k));
}

}  // namespace myelin::cuda
