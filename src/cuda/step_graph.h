// One captured training step: a CUDA graph recorded from a stream and its executable instance.
#pragma once
#include <cuda_runtime_api.h>

#include <functional>

namespace myelin::cuda {

class StepGraph {
 public:
  StepGraph() = default;
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Records what `body` enqueues on `stream` (nothing runs) and instantiates it. Throws
  // DeviceError naming the failing call, e.g. a kernel that synchronised during capture.
  void capture(cudaStream_t stream, const std::function<void()>& body);
  void launch(cudaStream_t stream);
  bool ready() const { return exec_ != nullptr; }
  size_t nodes() const { return nodes_; }

 private:
  void reset();

  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  size_t nodes_ = 0;
};

}  // namespace myelin::cuda
