#include "cuda/side_stream.h"

#include "cuda/cuda_check.h"

namespace myelin::cuda {

namespace {

const char* const kWhere = "the side stream of asynchronous nodes";

cudaEvent_t make_event() {
  cudaEvent_t e = nullptr;
  MYELIN_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), kWhere);
  return e;
}

}  // namespace

SideStream::SideStream() {
  int least = 0, greatest = 0;
  MYELIN_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest), kWhere);
  MYELIN_CHECK(cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, least), kWhere);
  now_ = make_event();
  done_ = make_event();
}

// Errors are ignored: this may run at exit, after the CUDA runtime began unloading.
SideStream::~SideStream() {
  for (auto& [point, e] : points_) cudaEventDestroy(e);
  if (now_) cudaEventDestroy(now_);
  if (done_) cudaEventDestroy(done_);
  if (side_) cudaStreamDestroy(side_);
}

int SideStream::main_priority() {
  int least = 0, greatest = 0;
  MYELIN_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest), kWhere);
  return greatest;
}

cudaEvent_t SideStream::point_event(int point) {
  auto it = points_.find(point);
  if (it == points_.end()) it = points_.emplace(point, make_event()).first;
  return it->second;
}

void SideStream::mark(int point, cudaStream_t main) {
  MYELIN_CHECK(cudaEventRecord(point_event(point), main), kWhere);
}

cudaStream_t SideStream::begin(int after, cudaStream_t main) {
  cudaEvent_t e = after >= 0 ? point_event(after) : now_;
  if (after < 0) MYELIN_CHECK(cudaEventRecord(now_, main), kWhere);
  MYELIN_CHECK(cudaStreamWaitEvent(side_, e, 0), kWhere);
  return side_;
}

void SideStream::end() {
  MYELIN_CHECK(cudaEventRecord(done_, side_), kWhere);
  pending_ = true;
}

void SideStream::join(cudaStream_t main) {
  if (!pending_) return;
  MYELIN_CHECK(cudaStreamWaitEvent(main, done_, 0), kWhere);
  pending_ = false;
}

}  // namespace myelin::cuda
