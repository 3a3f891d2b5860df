#include "cuda/cuda_backend.h"

#include <cstdio>

#include "core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/device_kernels.h"
#include "cuda/step_graph.h"
#include "cuda/step_io.h"

namespace myelin::cuda {

namespace {

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

Precision parse_precision(const std::string& s) {
  checked_precision(s);
  if (s == "fp32") return Precision::fp32;
  if (s == "tf32") return Precision::tf32;
  if (s == "bf16") return Precision::bf16;
  return Precision::fp16;
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32:
      return "fp32";
    case Precision::tf32:
      return "tf32";
    case Precision::bf16:
      return "bf16";
    case Precision::fp16:
      return "fp16";
  }
  return "?";
}

bool is_16bit(Precision p) {
  return p == Precision::bf16 || p == Precision::fp16;
}

DType half_type(Precision p) {
  if (p == Precision::bf16) return DType::bf16;
  return p == Precision::fp16 ? DType::f16 : DType::f32;
}

std::string op_label(const Node& n) {
  return n.op + " '" + n.name + "'";
}

CudaBackend::CudaBackend(Device d, const BackendOptions& opts)
    : device_(d), opts_(opts), precision_(parse_precision(opts.precision)) {
  std::string where = "creating the CUDA backend on " + d.str();
  int count = 0;
  MYELIN_CHECK(cudaGetDeviceCount(&count), where);
  if (d.index < 0 || d.index >= count)
    throw DeviceError(where + ": no such device (this machine has " + std::to_string(count) +
                      " CUDA device" + (count == 1 ? "" : "s") + ")");
  set_device();
  MYELIN_CHECK(cudaGetDeviceProperties(&props_, d.index), where);
  conv_algos_ = std::make_unique<AlgoCache>(
      std::string(props_.name) + "-cudnn" + std::to_string(cudnnGetVersion()) + "-sm" +
      std::to_string(props_.major) + std::to_string(props_.minor));
  MYELIN_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), where);
  MYELIN_CHECK(cudnnCreate(&cudnn_), where);
  MYELIN_CHECK(cudnnSetStream(cudnn_, stream_), where);
  MYELIN_CHECK(cublasLtCreate(&cublaslt_), where);
  step_state_ = static_cast<unsigned long long*>(allocate(2 * sizeof(unsigned long long)));
  MYELIN_CHECK(cudaMemsetAsync(step_state_, 0, 2 * sizeof(unsigned long long), stream_), where);
  MYELIN_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&report_host_), sizeof(DeviceReport),
                             cudaHostAllocMapped),
               where);
  *report_host_ = DeviceReport{0, 0, 0, 0};
  MYELIN_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&report_device_), report_host_, 0),
               where);
  MYELIN_CHECK(cudaStreamSynchronize(stream_), where);
}

// Errors are ignored here: the destructor may run at exit, after the CUDA runtime has begun
// unloading, and must not throw.
CudaBackend::~CudaBackend() {
  cudaSetDevice(device_.index);
  if (stream_) cudaStreamSynchronize(stream_);
  graph_.reset();
  if (step_state_) cudaFree(step_state_);
  if (report_host_) cudaFreeHost(report_host_);
  if (cublaslt_) cublasLtDestroy(cublaslt_);
  if (cudnn_) cudnnDestroy(cudnn_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::set_device() const {
  MYELIN_CHECK(cudaSetDevice(device_.index), "selecting " + device_.str());
}

size_t CudaBackend::free_memory() const {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
  return free;
}

void* CudaBackend::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (capturing_) throw DeviceError("allocating " + mib(bytes) + " while capturing a CUDA graph");
  set_device();
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls work
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    throw DeviceError("cudaMalloc of " + std::to_string(bytes) + " bytes (" + mib(bytes) + ") on " +
                      device_.str() + " failed: " + cudaGetErrorString(e) + "; " + mib(free) +
                      " free of " + mib(total));
  }
  return p;
}

void CudaBackend::deallocate(void* p) {
  if (!p) return;
  cudaSetDevice(device_.index);
  cudaFree(p);  // never throws: called from destructors
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  std::string where = "copying " + std::to_string(bytes) + " bytes on " + device_.str();
  MYELIN_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), where);
  MYELIN_CHECK(cudaStreamSynchronize(stream_), where);
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  std::string where = "copying " + std::to_string(bytes) + " bytes from " + device_.str();
  MYELIN_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_), where);
  MYELIN_CHECK(cudaStreamSynchronize(stream_), where);
  check_reports();
}

// Synchronous: the host buffer may be freed or reused as soon as this returns.
void CudaBackend::copy_from_host(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  std::string where = "copying " + std::to_string(bytes) + " bytes to " + device_.str();
  MYELIN_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), where);
  MYELIN_CHECK(cudaStreamSynchronize(stream_), where);
}

void CudaBackend::fill_zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  MYELIN_CHECK(cudaMemsetAsync(p, 0, bytes, stream_),
               "zeroing " + std::to_string(bytes) + " bytes on " + device_.str());
}

void CudaBackend::synchronize() {
  if (capturing_) throw DeviceError("synchronize() called while capturing a CUDA graph");
  MYELIN_CHECK(cudaStreamSynchronize(stream_), "synchronizing " + device_.str());
  check_reports();
}

int CudaBackend::register_report_site(const std::string& who, const std::string& what) {
  sites_.push_back({who, what});
  return static_cast<int>(sites_.size()) - 1;
}

void CudaBackend::check_reports() {
  volatile DeviceReport* r = report_host_;
  if (!r->flag) return;
  DeviceReport got{r->flag, r->site, r->value, r->index};
  r->flag = 0;
  std::string who = got.site >= 0 && got.site < static_cast<int>(sites_.size())
                        ? sites_[got.site].who
                        : "a CUDA kernel";
  std::string what = got.site >= 0 && got.site < static_cast<int>(sites_.size())
                         ? sites_[got.site].what
                         : " is invalid";
  throw Error(who + ": label " + std::to_string(got.value) + " of example " +
              std::to_string(got.index) + what);
}

void CudaBackend::publish_step(const StepContext& ctx) {
  if (capturing_) return;
  if (step_published_ && published_seed_ == ctx.seed && published_step_ == ctx.step) return;
  write_step_state(step_state_, ctx.seed, ctx.step, stream_);
  step_published_ = true;
  published_seed_ = ctx.seed;
  published_step_ = ctx.step;
}

bool CudaBackend::capture(const std::function<void()>& body) {
  set_device();
  auto g = std::make_unique<StepGraph>();
  capturing_ = true;
  try {
    g->capture(stream_, body);
  } catch (...) {
    capturing_ = false;
    throw;
  }
  capturing_ = false;
  graph_ = std::move(g);
  return true;
}

bool CudaBackend::replay(const StepContext& ctx) {
  if (!graph_ || !graph_->ready()) return false;
  publish_step(ctx);
  graph_->launch(stream_);
  return true;
}

std::unique_ptr<StepIO> CudaBackend::make_step_io(void* in_dst, size_t in_bytes,
                                                  const std::vector<const void*>& out_src,
                                                  size_t out_bytes_each) {
  set_device();
  return std::make_unique<CudaStepIO>(*this, in_dst, in_bytes, out_src, out_bytes_each);
}

const ConvAlgo* CudaBackend::cached_conv_algo(const std::string& key) const {
  return conv_algos_->find(key);
}

void CudaBackend::cache_conv_algo(const std::string& key, const ConvAlgo& a) {
  conv_algos_->insert(key, a);
}

namespace {
const bool registered = (register_backend(DeviceKind::cuda,
                                          [](Device d, const BackendOptions& o) {
                                            return std::make_unique<CudaBackend>(d, o);
                                          }),
                         true);
}  // namespace

}  // namespace myelin::cuda
