#include "cli/cuda_query.h"

#include <cstdio>

#include "core/backend.h"

namespace myelin::cli {

void print_cuda_devices() {
  if (!has_backend(DeviceKind::cuda)) {
    std::printf("cuda: not built (configure with -DMYELIN_CUDA=ON where nvcc is installed)\n");
    return;
  }
  std::printf("cuda: built in; device listing pending (src/cuda/cuda_info.h)\n");
}

}  // namespace myelin::cli
