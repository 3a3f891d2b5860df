// What CUDA devices this machine has, for `myelin device-query` and the scheduler. Available
// when the build has the CUDA engine (myelin_cuda defines MYELIN_WITH_CUDA for its users):
//   #ifdef MYELIN_WITH_CUDA
//   #include "cuda/cuda_info.h"
//   #endif
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace myelin {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  size_t total_bytes = 0, free_bytes = 0;
  int cc_major = 0, cc_minor = 0;  // compute capability
  int multiprocessors = 0;
  size_t l2_bytes = 0;
  int memory_bus_bits = 0;
};

struct CudaVersions {
  int driver = 0, runtime = 0;  // 13000 = 13.0
  size_t cudnn = 0;             // 91400 = 9.14.0
  int cublas = 0;               // cublasLtGetVersion()
};

// 0 when there is no driver or no device; never throws.
int cuda_device_count();
// Every device with its memory (free now) and compute capability. Throws DeviceError.
std::vector<CudaDeviceInfo> cuda_devices();
CudaVersions cuda_versions();
// The lines `myelin device-query` prints, or why there are none ("no CUDA device: ...").
std::string describe_cuda_devices();

}  // namespace myelin
