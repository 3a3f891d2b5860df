#include "cuda/step_graph.h"

#include "cuda/cuda_check.h"

namespace myelin::cuda {

StepGraph::~StepGraph() {
  reset();
}

void StepGraph::reset() {
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
  exec_ = nullptr;
  graph_ = nullptr;
  nodes_ = 0;
}

// Thread-local capture mode: a forbidden call (cudaMalloc, a synchronisation) made by this thread
// during the capture fails loudly instead of silently breaking the graph; other threads (data
// loaders) are not affected.
void StepGraph::capture(cudaStream_t stream, const std::function<void()>& body) {
  reset();
  const std::string where = "capturing the training step as a CUDA graph";
  MYELIN_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), where);
  try {
    body();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    cudaStreamEndCapture(stream, &broken);
    if (broken) cudaGraphDestroy(broken);
    cudaGetLastError();
    throw;
  }
  MYELIN_CHECK(cudaStreamEndCapture(stream, &graph_), where);
  MYELIN_CHECK(cudaGraphInstantiate(&exec_, graph_, 0), where);
  MYELIN_CHECK(cudaGraphGetNodes(graph_, nullptr, &nodes_), where);
}

void StepGraph::launch(cudaStream_t stream) {
  MYELIN_CHECK(cudaGraphLaunch(exec_, stream), "replaying the captured training step");
}

}  // namespace myelin::cuda
