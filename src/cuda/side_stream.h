// The second stream behind Backend::run_async: work that waits for one recorded point of the main
// stream and overlaps whatever the main stream runs after that point; join() orders the main
// stream after all of it again. Inside a stream capture the same calls become a parallel branch
// of the step's CUDA graph. The side stream has the lowest priority, the main stream the highest,
// so the side work fills what the main stream leaves idle.
#pragma once
#include <cuda_runtime_api.h>

#include <map>

namespace myelin::cuda {

class SideStream {
 public:
  SideStream();
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  // The priority the main stream should be created with.
  static int main_priority();

  // Records point `point` (a node index) on `main` as it is now.
  void mark(int point, cudaStream_t main);
  // The side stream, after it is made to wait for point `after` (for everything enqueued on main
  // so far where after < 0). Work enqueued on it until end() overlaps main's later work.
  cudaStream_t begin(int after, cudaStream_t main);
  void end();
  // Makes `main` wait for everything enqueued on the side stream so far.
  void join(cudaStream_t main);

 private:
  cudaEvent_t point_event(int point);

  cudaStream_t side_ = nullptr;
  std::map<int, cudaEvent_t> points_;
  cudaEvent_t now_ = nullptr, done_ = nullptr;
  bool pending_ = false;
};

}  // namespace myelin::cuda
