// copy and assign (ops/state.cpp) on the GPU: device-to-device copies on the step's stream, so a
// captured step replays them.
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

class CopyKernel : public CudaKernel {
 public:
  CopyKernel(const KernelSpec& s, bool assign) : CudaKernel(s), assign_(assign) {}

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext&) override {
    const Tensor& from = assign_ ? in[1] : in[0];
    void* to = assign_ ? in[0].data() : out[0].data();
    MYELIN_CHECK(
        cudaMemcpyAsync(to, from.data(), from.nbytes(), cudaMemcpyDeviceToDevice, stream()),
        where_);
  }
  bool assign_;
};

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("copy", DeviceKind::cuda, [](const KernelSpec& s) {
    return std::unique_ptr<Kernel>(new CopyKernel(s, false));
  });
  register_kernel("assign", DeviceKind::cuda, [](const KernelSpec& s) {
    return std::unique_ptr<Kernel>(new CopyKernel(s, true));
  });
}

}  // namespace myelin::cuda
