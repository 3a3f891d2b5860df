#include "cuda/step_io.h"

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"

namespace myelin::cuda {

namespace {
const std::string kWhere = "the training step's input/output copies";
}

CudaStepIO::CudaStepIO(CudaBackend& b, void* in_dst, size_t in_bytes,
                       const std::vector<const void*>& out_src, size_t out_bytes_each)
    : backend_(b),
      in_dst_(in_dst),
      in_bytes_(in_bytes),
      out_src_(out_src),
      out_each_(out_bytes_each) {
  try {
    MYELIN_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking), kWhere);
    for (Slot& s : slots_) {
      MYELIN_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.host_in), in_bytes_ ? in_bytes_ : 1,
                                 cudaHostAllocDefault),
                   kWhere);
      size_t out = out_src_.size() * out_each_;
      MYELIN_CHECK(
          cudaHostAlloc(reinterpret_cast<void**>(&s.host_out), out ? out : 1, cudaHostAllocDefault),
          kWhere);
      s.staging = backend_.allocate(in_bytes_);
      for (cudaEvent_t* e : {&s.uploaded, &s.consumed, &s.downloaded})
        MYELIN_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming), kWhere);
    }
  } catch (...) {
    release();
    throw;
  }
}

CudaStepIO::~CudaStepIO() {
  release();
}

// Errors are ignored: called from the destructor, which must not throw.
void CudaStepIO::release() {
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  cudaStreamSynchronize(backend_.stream());
  for (Slot& s : slots_) {
    for (cudaEvent_t e : {s.uploaded, s.consumed, s.downloaded})
      if (e) cudaEventDestroy(e);
    if (s.host_in) cudaFreeHost(s.host_in);
    if (s.host_out) cudaFreeHost(s.host_out);
    if (s.staging) backend_.deallocate(s.staging);
    s = Slot{};
  }
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  copy_stream_ = nullptr;
}

// The slot's pinned memory is free once its last upload (two uploads ago) has left the host;
// an event never recorded counts as complete.
void* CudaStepIO::input() {
  Slot& s = slots_[uploads_ % kSlots];
  MYELIN_CHECK(cudaEventSynchronize(s.uploaded), kWhere);
  return s.host_in;
}

void CudaStepIO::upload() {
  Slot& s = slots_[uploads_ % kSlots];
  cudaStream_t compute = backend_.stream();
  // Staging is reused once the compute stream has copied it out (two steps ago).
  MYELIN_CHECK(cudaStreamWaitEvent(copy_stream_, s.consumed, 0), kWhere);
  MYELIN_CHECK(
      cudaMemcpyAsync(s.staging, s.host_in, in_bytes_, cudaMemcpyHostToDevice, copy_stream_),
      kWhere);
  MYELIN_CHECK(cudaEventRecord(s.uploaded, copy_stream_), kWhere);
  MYELIN_CHECK(cudaStreamWaitEvent(compute, s.uploaded, 0), kWhere);
  MYELIN_CHECK(cudaMemcpyAsync(in_dst_, s.staging, in_bytes_, cudaMemcpyDeviceToDevice, compute),
               kWhere);
  MYELIN_CHECK(cudaEventRecord(s.consumed, compute), kWhere);
  ++uploads_;
}

void CudaStepIO::download() {
  Slot& s = slots_[downloads_ % kSlots];
  cudaStream_t compute = backend_.stream();
  MYELIN_CHECK(cudaEventSynchronize(s.downloaded), kWhere);  // its last copy has landed
  for (size_t i = 0; i < out_src_.size(); ++i)
    MYELIN_CHECK(cudaMemcpyAsync(s.host_out + i * out_each_, out_src_[i], out_each_,
                                 cudaMemcpyDeviceToHost, compute),
                 kWhere);
  MYELIN_CHECK(cudaEventRecord(s.downloaded, compute), kWhere);
  ++downloads_;
}

const void* CudaStepIO::downloaded(int back) {
  if (back < 0 || back >= kSlots || back >= downloads_)
    throw Error("no step output " + std::to_string(back) + " downloads back (" +
                std::to_string(downloads_) + " downloads so far)");
  Slot& s = slots_[(downloads_ - 1 - back) % kSlots];
  MYELIN_CHECK(cudaEventSynchronize(s.downloaded), kWhere);
  backend_.raise_reports();  // a kernel of that step may have reported bad data (a label)
  return s.host_out;
}

}  // namespace myelin::cuda
