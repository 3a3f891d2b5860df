// The CUDA engine's backend: one device, one stream, the cuDNN and cuBLASLt handles of the kernels
// compiled for it, device memory (cudaMalloc, never inside a step), the capture of a whole step as
// a CUDA graph, and two small device-side channels the kernels use inside captured steps: the
// step's {seed, step} for dropout, and a report slot where kernels record bad data (labels) that
// synchronize() turns into an Error.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "cuda/algo_cache.h"

namespace myelin::cuda {

enum class Precision { fp32, tf32, bf16, fp16 };
Precision parse_precision(const std::string& s);  // throws UsageError naming the choices
const char* precision_name(Precision p);
// bf16 and fp16 store and compute in 16 bits: half_type names which, f32 for fp32 and tf32.
bool is_16bit(Precision p);
DType half_type(Precision p);

// What a convolution's algorithm search chose for one direction and shape.
struct ConvAlgo {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  float ms = 0;  // measured by cudnnFind*, for reports
};

// A kernel that finds bad data records it here (first one wins); the host reads it after a
// synchronisation. Lives in mapped host memory, so no copy is needed.
struct DeviceReport {
  int flag;         // 0: nothing reported
  int site;         // CudaBackend::register_report_site
  long long value;  // the bad value (a label)
  long long index;  // where (an example)
};

class StepGraph;

class CudaBackend final : public Backend {
 public:
  CudaBackend(Device d, const BackendOptions& opts);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return device_; }
  const BackendOptions& options() const override { return opts_; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void fill_zero(void* p, size_t bytes) override;
  void synchronize() override;
  // Records the device work `body` enqueues on this backend's stream as one CUDA graph (nothing
  // runs). Kernels must not synchronise or allocate while capturing.
  bool capture(const std::function<void()>& body) override;
  // Publishes ctx's seed and step to the device, then launches the captured graph.
  bool replay(const StepContext& ctx) override;
  // A ReLU after a convolution, a batch norm or an add becomes that node's epilogue, and its
  // gradient, where an LRN reads the ReLU's output, the LRN gradient's; also batch norm + residual
  // add, and a ReLU's gradient inside batch norm's (fuse_for_cuda in ops/fuse.h; not under
  // MYELIN_CUDA_BN_FUSE=0). MYELIN_CUDA_FUSE=0 turns all off.
  void fuse(Graph& g) const override;
  // Activations and their gradients in 16 bits under bf16/fp16, and channels-last, where the
  // kernels take it, unless the environment says otherwise (storage.cpp).
  void choose_storage(Graph& g) const override;
  std::unique_ptr<StepIO> make_step_io(void* in_dst, size_t in_bytes,
                                       const std::vector<const void*>& out_src,
                                       size_t out_bytes_each) override;
  // Throws the Error a kernel reported (bad data such as a label) since the last check, if any.
  void raise_reports() { check_reports(); }

  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasLtHandle_t cublaslt() const { return cublaslt_; }
  Precision precision() const { return precision_; }
  const cudaDeviceProp& properties() const { return props_; }
  bool capturing() const { return capturing_; }

  // {seed, step} of the running step, in device memory (two unsigned long longs).
  const unsigned long long* step_state() const { return step_state_; }
  // Writes ctx's seed and step to step_state() unless they are there already; a no-op while
  // capturing (replay() publishes instead).
  void publish_step(const StepContext& ctx);

  // A site is one kernel that may report bad data: "softmax_cross_entropy 'loss'" and the text
  // after the value (" is outside [0, 10)"). Returns the site id the kernel passes to the device.
  int register_report_site(const std::string& who, const std::string& what);
  DeviceReport* report_slot() const { return report_device_; }

  const ConvAlgo* cached_conv_algo(const std::string& key) const;
  void cache_conv_algo(const std::string& key, const ConvAlgo& a);

  // Device memory currently free, for error messages and search limits.
  size_t free_memory() const;

 private:
  void check_reports();
  void set_device() const;

  Device device_;
  BackendOptions opts_;
  Precision precision_;
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;
  unsigned long long* step_state_ = nullptr;
  bool step_published_ = false;
  unsigned long long published_seed_ = 0, published_step_ = 0;
  DeviceReport* report_host_ = nullptr;
  DeviceReport* report_device_ = nullptr;
  struct Site {
    std::string who, what;
  };
  std::vector<Site> sites_;
  std::unique_ptr<AlgoCache> conv_algos_;  // made once the device is known
  std::unique_ptr<StepGraph> graph_;
  bool capturing_ = false;
};

// Where activations may be stored channels-last: nowhere; where it pays (bf16/fp16, and tf32 in
// networks with batch norm); or under every precision but exact fp32.
enum class ChannelsLast { never, where_it_pays, always };

// What choose_storage does, without a device: under bf16/fp16 stores g's activations in 16 bits
// (storage16), and channels-last as `layout` says, where every kernel touching them takes it.
void plan_storage(Graph& g, Precision p, bool storage16, ChannelsLast layout);

// The CUDA backend of a kernel spec (kernels registered for DeviceKind::cuda only see these).
inline CudaBackend& cuda_backend(const KernelSpec& s) {
  return static_cast<CudaBackend&>(s.backend);
}

// "conv2d 'conv1'": how kernels name themselves in errors.
std::string op_label(const Node& n);

}  // namespace myelin::cuda
