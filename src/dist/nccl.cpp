// NCCL between the GPUs of a run: one communicator per process and GPU. The unique id comes from
// the local launcher (MYELIN_NCCL_ID), from rank 0 over MPI, or is made here for a world of one.
#include "core/error.h"
#include "dist/communicator.h"
#include "dist/launch.h"
#include "dist/mpi.h"

#if MYELIN_WITH_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>

#include "cuda/cuda_backend.h"
#endif

namespace myelin::dist {

#if MYELIN_WITH_CUDA

namespace {

void check(ncclResult_t rc, const char* what) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  std::string detail = ncclGetLastError(nullptr);
  throw DeviceError(std::string("NCCL ") + what + " failed: " + ncclGetErrorString(rc) +
                    (detail.empty() ? "" : " (" + detail + ")"));
}

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess)
    throw DeviceError(std::string(what) + " failed: " + cudaGetErrorString(rc));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32:
      return ncclFloat32;
    case DType::bf16:
      return ncclBfloat16;
    case DType::f16:
      return ncclFloat16;
    case DType::i32:
      return ncclInt32;
    case DType::i64:
      return ncclInt64;
    case DType::u8:
      return ncclUint8;
  }
  throw UnsupportedError("NCCL: unknown dtype");
}

std::string to_hex(const ncclUniqueId& id) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (char c : id.internal) {
    auto b = static_cast<unsigned char>(c);
    s += digits[b >> 4], s += digits[b & 15];
  }
  return s;
}

ncclUniqueId from_hex(const std::string& s) {
  ncclUniqueId id{};
  if (s.size() != 2 * sizeof id.internal)
    throw UsageError(std::string(kNcclIdEnv) + " holds " + std::to_string(s.size()) +
                     " characters, expected " + std::to_string(2 * sizeof id.internal));
  auto nibble = [&](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw UsageError(std::string(kNcclIdEnv) + " is not hex text");
  };
  for (size_t i = 0; i < sizeof id.internal; ++i)
    id.internal[i] = static_cast<char>(nibble(s[2 * i]) << 4 | nibble(s[2 * i + 1]));
  return id;
}

ncclUniqueId unique_id(const World& w) {
  ncclUniqueId id{};
  if (w.launcher == "local") {
    const char* hex = std::getenv(kNcclIdEnv);
    if (!hex) throw UsageError(std::string(kNcclIdEnv) + " is not set by the launcher");
    return from_hex(hex);
  }
  if (w.launcher == "mpi") {
    if (w.rank == 0) check(ncclGetUniqueId(&id), "unique id");
    mpi_broadcast_bytes(&id, sizeof id, 0);
    return id;
  }
  check(ncclGetUniqueId(&id), "unique id");
  return id;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const World& w, cuda::CudaBackend& backend) : stream_(backend.stream()) {
    rank_ = w.rank, size_ = w.size;
    check(cudaSetDevice(backend.device().index), "cudaSetDevice");
    ncclUniqueId id = unique_id(w);
    check(ncclCommInitRank(&comm_, size_, id, rank_), "init");
    check(cudaMalloc(&scratch_, kScratch * sizeof(double)), "cudaMalloc");
    check(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&reduced_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~NcclCommunicator() override {
    cudaEventDestroy(queued_);
    cudaEventDestroy(reduced_);
    cudaStreamDestroy(side_);
    cudaFree(scratch_);
    ncclCommDestroy(comm_);
  }
  std::string transport() const override { return "nccl"; }

  void all_reduce(const std::vector<Tensor>& tensors) override { sum(tensors, stream_); }
  // The side stream waits for the work queued on the main one so far (inside a capture this
  // forks the graph), sums there, and wait_all_reduced() joins it back.
  void start_all_reduce(const std::vector<Tensor>& tensors) override {
    check(cudaEventRecord(queued_, stream_), "cudaEventRecord");
    check(cudaStreamWaitEvent(side_, queued_, 0), "cudaStreamWaitEvent");
    sum(tensors, side_);
    pending_ = true;
  }
  void wait_all_reduced() override {
    if (!pending_) return;
    check(cudaEventRecord(reduced_, side_), "cudaEventRecord");
    check(cudaStreamWaitEvent(stream_, reduced_, 0), "cudaStreamWaitEvent");
    pending_ = false;
  }
  void sum(const std::vector<Tensor>& tensors, cudaStream_t stream) {
    check(ncclGroupStart(), "group");
    for (const Tensor& t : tensors)
      check(ncclAllReduce(t.data(), t.data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                          ncclSum, comm_, stream),
            "all-reduce");
    check(ncclGroupEnd(), "all-reduce");
  }
  void broadcast(const std::vector<Tensor>& tensors, int root) override {
    check(ncclGroupStart(), "group");
    for (const Tensor& t : tensors)
      check(ncclBroadcast(t.data(), t.data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                          root, comm_, stream_),
            "broadcast");
    check(ncclGroupEnd(), "broadcast");
    check(cudaStreamSynchronize(stream_), "broadcast");
  }
  void all_reduce_host(std::vector<double>& v) override {
    for (size_t at = 0; at < v.size(); at += kScratch) {
      size_t n = std::min(kScratch, v.size() - at), bytes = n * sizeof(double);
      check(cudaMemcpyAsync(scratch_, v.data() + at, bytes, cudaMemcpyHostToDevice, stream_),
            "copy");
      check(ncclAllReduce(scratch_, scratch_, n, ncclFloat64, ncclSum, comm_, stream_),
            "all-reduce");
      check(cudaMemcpyAsync(v.data() + at, scratch_, bytes, cudaMemcpyDeviceToHost, stream_),
            "copy");
      check(cudaStreamSynchronize(stream_), "all-reduce");
    }
  }

 private:
  static constexpr size_t kScratch = 64;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_, side_ = nullptr;
  cudaEvent_t queued_ = nullptr, reduced_ = nullptr;
  bool pending_ = false;
  double* scratch_ = nullptr;
};

}  // namespace

int visible_gpus() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

std::string new_nccl_id() {
  ncclUniqueId id{};
  check(ncclGetUniqueId(&id), "unique id");
  return to_hex(id);
}

std::unique_ptr<Communicator> make_nccl_communicator(const World& w, Backend& backend) {
  auto* cuda = dynamic_cast<cuda::CudaBackend*>(&backend);
  if (!cuda) throw Error("NCCL needs a CUDA backend");
  return std::make_unique<NcclCommunicator>(w, *cuda);
}

#else

namespace {
[[noreturn]] void not_built() {
  throw UsageError("this myelin was built without CUDA: --gpus needs the CUDA engine and NCCL");
}
}  // namespace

int visible_gpus() {
  return 0;
}
std::string new_nccl_id() {
  not_built();
}
std::unique_ptr<Communicator> make_nccl_communicator(const World&, Backend&) {
  not_built();
}

#endif

}  // namespace myelin::dist
