#include "cli/cuda_query.h"

#include <cstdio>

#ifdef MYELIN_WITH_CUDA
#include "cuda/cuda_info.h"
#endif

namespace myelin::cli {

void print_cuda_devices() {
#ifdef MYELIN_WITH_CUDA
  std::fputs(describe_cuda_devices().c_str(), stdout);
#else
  std::printf("cuda: not built (configure with -DMYELIN_CUDA=ON where nvcc is installed)\n");
#endif
}

size_t cuda_free_bytes(int index) {
#ifdef MYELIN_WITH_CUDA
  if (cuda_device_count() <= index) return 0;
  for (const CudaDeviceInfo& d : cuda_devices())
    if (d.index == index) return d.free_bytes;
#else
  (void)index;
#endif
  return 0;
}

}  // namespace myelin::cli
