// concat and split along an axis: one strided device-to-device copy per part
// (cudaMemcpy2DAsync: rows = the product of the dimensions before the axis). Any dtype.
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

int norm_axis(int64_t axis, int rank) {
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

class ConcatSplitKernel : public CudaKernel {
 public:
  ConcatSplitKernel(const KernelSpec& s, bool split) : CudaKernel(s), split_(split) {
    Shape whole = split ? s.input(0).shape : s.output(0).shape;
    int axis = norm_axis(s.node.attrs.i("axis", 1), whole.rank());
    size_t elem = dtype_size(split ? s.input(0).dtype : s.output(0).dtype);
    rows_ = 1;
    for (int i = 0; i < axis; ++i) rows_ *= static_cast<size_t>(whole[i]);
    size_t inner = static_cast<size_t>(inner_size(whole, axis + 1)) * elem;
    whole_pitch_ = static_cast<size_t>(whole[axis]) * inner;
    size_t parts = split ? s.node.outputs.size() : s.node.inputs.size();
    size_t offset = 0;
    for (size_t i = 0; i < parts; ++i) {
      Shape part = split ? s.output(static_cast<int>(i)).shape : s.input(static_cast<int>(i)).shape;
      size_t pitch = static_cast<size_t>(part[axis]) * inner;
      parts_.push_back({offset, pitch});
      offset += pitch;
    }
  }

 private:
  struct Part {
    size_t offset, pitch;  // bytes within a row of the whole, and the part's row length
  };

  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    char* whole = static_cast<char*>(split_ ? in[0].data() : out[0].data());
    for (size_t i = 0; i < parts_.size(); ++i) {
      const Part& p = parts_[i];
      if (p.pitch == 0 || rows_ == 0) continue;
      char* part = static_cast<char*>(split_ ? out[i].data() : in[i].data());
      if (split_)
        MYELIN_CHECK(cudaMemcpy2DAsync(part, p.pitch, whole + p.offset, whole_pitch_, p.pitch,
                                       rows_, cudaMemcpyDeviceToDevice, stream()),
                     "");
      else
        MYELIN_CHECK(cudaMemcpy2DAsync(whole + p.offset, whole_pitch_, part, p.pitch, p.pitch,
                                       rows_, cudaMemcpyDeviceToDevice, stream()),
                     "");
    }
  }

  bool split_;
  size_t rows_ = 1, whole_pitch_ = 0;
  std::vector<Part> parts_;
};

template <bool Split>
std::unique_ptr<Kernel> make(const KernelSpec& s) {
  return std::make_unique<ConcatSplitKernel>(s, Split);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("concat", DeviceKind::cuda, make<false>);
  register_kernel("split", DeviceKind::cuda, make<true>);
}

}  // namespace myelin::cuda
