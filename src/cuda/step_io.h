// The CUDA StepIO: a step's inputs and outputs through page-locked host memory, double-buffered.
// An upload goes host -> device staging on a copy stream (overlapping the step in flight); the
// compute stream waits for it and copies staging -> the program's inputs (a device-to-device copy
// of a few microseconds), so the captured step always reads the same addresses. Outputs (loss,
// accuracies) come back with a one-step lag, so the host never waits for the step it just queued.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <vector>

#include "core/backend.h"

namespace myelin::cuda {

class CudaBackend;

class CudaStepIO final : public StepIO {
 public:
  CudaStepIO(CudaBackend& b, void* in_dst, size_t in_bytes, const std::vector<const void*>& out_src,
             size_t out_bytes_each);
  ~CudaStepIO() override;
  CudaStepIO(const CudaStepIO&) = delete;
  CudaStepIO& operator=(const CudaStepIO&) = delete;

  void* input() override;
  void upload() override;
  void download() override;
  const void* downloaded(int back) override;
  int64_t downloads() const override { return downloads_; }

 private:
  void release();

  static constexpr int kSlots = 2;
  struct Slot {
    char* host_in = nullptr;   // page-locked
    void* staging = nullptr;   // device
    char* host_out = nullptr;  // page-locked
    cudaEvent_t uploaded = nullptr, consumed = nullptr, downloaded = nullptr;
  };
  CudaBackend& backend_;
  void* in_dst_;
  size_t in_bytes_;
  std::vector<const void*> out_src_;
  size_t out_each_;
  cudaStream_t copy_stream_ = nullptr;
  std::array<Slot, kSlots> slots_{};
  int64_t uploads_ = 0, downloads_ = 0;
};

}  // namespace myelin::cuda
