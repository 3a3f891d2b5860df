// The embedding lookup and its gradient on the GPU (embedding.cu), fp32 tables.
#include "cuda/embedding_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

class EmbeddingKernel : public CudaKernel {
 public:
  EmbeddingKernel(const KernelSpec& s, bool backward) : CudaKernel(s), backward_(backward) {
    const Shape& table = backward ? s.output(0).shape : s.input(1).shape;
    rows_ = table[0], width_ = table[1];
    count_ = s.input(backward ? 1 : 0).shape.numel();
    if ((backward ? s.input(0).dtype : s.input(1).dtype) != DType::f32)
      throw UnsupportedError(where_ + ": the CUDA kernel takes fp32 tables");
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    if (backward_)
      embedding_backward(in[0].f32(), in[1].data_as<int32_t>(), count_, rows_, width_, out[0].f32(),
                         stream());
    else
      embedding_forward(in[0].data_as<int32_t>(), count_, in[1].f32(), rows_, width_, out[0].f32(),
                        stream());
  }

  bool backward_;
  int64_t rows_ = 0, width_ = 0, count_ = 0;
};

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("embedding", DeviceKind::cuda, [](const KernelSpec& s) {
    return std::unique_ptr<Kernel>(new EmbeddingKernel(s, false));
  });
  register_kernel("embedding_grad", DeviceKind::cuda, [](const KernelSpec& s) {
    return std::unique_ptr<Kernel>(new EmbeddingKernel(s, true));
  });
}

}  // namespace myelin::cuda
