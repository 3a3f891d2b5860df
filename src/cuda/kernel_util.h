// Helpers shared by the CUDA engine's kernels: RAII cuDNN descriptors, dtype checks, the label
// kernels use in error messages, and workspace carving.
#pragma once
#include <cudnn.h>

#include <string>

#include "core/backend.h"
#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"

namespace myelin::cuda {

// "conv2d 'conv1' [64, 3, 227, 227] f32, [96, 3, 11, 11] f32 -> [64, 96, 55, 55] f32"
std::string describe(const KernelSpec& s);

// Throws UnsupportedError unless every floating-point input and output is f32 (the engine keeps
// activations in fp32 and reduces precision inside the kernels that benefit).
void require_f32(const KernelSpec& s);
// Throws UnsupportedError unless every input and output is f32, bf16 or f16: for the kernels that
// load and store through FPtr (device_kernels.h) and so take 16-bit activations.
void require_float(const KernelSpec& s);

// Base of the engine's kernels: a device failure inside launch() is rethrown naming the op, the
// layer and the shapes, so the launch functions need not carry that text.
class CudaKernel : public Kernel {
 public:
  explicit CudaKernel(const KernelSpec& s) : be_(cuda_backend(s)), where_(describe(s)) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) final {
    try {
      launch(in, out, ctx);
    } catch (const DeviceError& e) {
      throw DeviceError(std::string(e.what()) + " [in " + where_ + "]");
    }
  }

 protected:
  virtual void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                      const StepContext& ctx) = 0;
  cudaStream_t stream() const { return be_.stream(); }

  CudaBackend& be_;
  std::string where_;
};

inline size_t align256(size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// Splits a kernel's workspace into consecutive 256-byte aligned pieces.
class WorkspaceCarver {
 public:
  explicit WorkspaceCarver(void* base) : base_(static_cast<char*>(base)) {}
  void* take(size_t bytes) {
    void* p = base_ + used_;
    used_ += align256(bytes);
    return p;
  }

 private:
  char* base_;
  size_t used_ = 0;
};

class TensorDesc {
 public:
  TensorDesc() { MYELIN_CHECK(cudnnCreateTensorDescriptor(&d_), "cudnnCreateTensorDescriptor"); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  // Dimensions are logical (n, c, h, w) whatever the memory format.
  void set(cudnnDataType_t t, int64_t n, int64_t c, int64_t h, int64_t w, const std::string& where,
           cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW);
  operator cudnnTensorDescriptor_t() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  FilterDesc() { MYELIN_CHECK(cudnnCreateFilterDescriptor(&d_), "cudnnCreateFilterDescriptor"); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  operator cudnnFilterDescriptor_t() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  ConvDesc() {
    MYELIN_CHECK(cudnnCreateConvolutionDescriptor(&d_), "cudnnCreateConvolutionDescriptor");
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d_); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  operator cudnnConvolutionDescriptor_t() const { return d_; }

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

// Product of the dimensions from `from` on (1 for none).
inline int64_t inner_size(const Shape& s, int from) {
  int64_t n = 1;
  for (int i = from; i < s.rank(); ++i) n *= s[i];
  return n;
}

}  // namespace myelin::cuda
