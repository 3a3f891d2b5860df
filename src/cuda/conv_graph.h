// A convolution on cuDNN's graph API (the backend descriptors of cuDNN 9): the engine
// configurations cuDNN's heuristics offer for the problem, each one timed on the device, the
// fastest kept as an execution plan. The legacy API (ops_conv.cpp) reaches only the engines behind
// its eight algorithm numbers; PyTorch's cudnn.benchmark searches these configurations instead.
// Operands NHWC (KRSC filters) in any type, or fp32 NCHW (KCRS); fp32 accumulation; exact fp32
// takes only engines that compute in fp32 (no tensor cores, which round inputs to tf32).
#pragma once
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace myelin::cuda {

enum class ConvDir { forward, backward_data, backward_filter };

struct ConvGeometry {
  ConvDir dir = ConvDir::forward;
  cudnnDataType_t type = CUDNN_DATA_BFLOAT16;  // CUDNN_DATA_HALF; CUDNN_DATA_FLOAT (NCHW)
  bool tensor_cores = true;                    // fp32: may round inputs to tf32
  bool nhwc = true;                            // false: NCHW (KCRS filters), fp32 only
  // Forward only: the output's per-channel sum and sum of squares (fp32, [K]) from the same
  // kernels (cuDNN's GenStats node after the convolution), what batch norm's statistics need.
  bool gen_stats = false;
  std::array<int64_t, 4> x{}, w{}, y{};  // [N, C, H, W], [K, C, R, S], [N, K, P, Q]
  std::array<int64_t, 2> stride{1, 1}, pad{0, 0}, dilation{1, 1};
};

// One backend descriptor, destroyed with its owner.
class BackendDesc {
 public:
  explicit BackendDesc(cudnnBackendDescriptorType_t type);
  ~BackendDesc();
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

class ConvGraph {
 public:
  // The operation graph and its engine configurations (cuDNN's heuristics, mode A, best first).
  // Throws DeviceError naming `where` when cuDNN takes no part of it.
  ConvGraph(cudnnHandle_t h, const ConvGeometry& g, std::string where);
  int candidates() const { return static_cast<int>(configs_.size()); }
  // Makes candidate i the execution plan; false where cuDNN cannot run it or it needs a workspace
  // over `workspace_limit`, compiles kernels at run time (seconds per shape) unless
  // `runtime_compiled`, or uses tensor cores where the geometry forbids them.
  bool select(int i, size_t workspace_limit, bool runtime_compiled = false);
  int selected() const { return selected_; }
  size_t workspace() const { return workspace_; }
  // x, w and y are the input, filter and output of the forward convolution (gradients where this
  // direction computes or reads them), as ConvGeometry describes them; sum and sqsum [K] fp32
  // where the geometry asks for the statistics.
  void execute(void* x, void* w, void* y, void* ws, float* sum = nullptr,
               float* sqsum = nullptr) const;
  // Whether candidate i compiles its kernels at run time (seconds per shape).
  bool runtime_compiled(int i) const;

  // Times each candidate that select() takes on the given device buffers (contents are
  // overwritten), keeps the fastest selected, and returns its index; -1 if none runs.
  int tune(cudaStream_t s, void* x, void* w, void* y, void* ws, size_t workspace_limit,
           float* best_ms, float* sum = nullptr, float* sqsum = nullptr,
           bool runtime_compiled = false);

 private:
  cudnnHandle_t h_;
  std::string where_;
  bool tensor_cores_;
  bool stats_;
  std::vector<std::unique_ptr<BackendDesc>> tensors_;  // x, w, y, and the descriptors below
  std::unique_ptr<BackendDesc> conv_, op_, stats_op_, graph_, heur_, plan_;
  std::vector<std::unique_ptr<BackendDesc>> configs_;
  int selected_ = -1;
  size_t workspace_ = 0;
};

}  // namespace myelin::cuda
