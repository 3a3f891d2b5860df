#include "cuda/cuda_info.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdio>

#include "cuda/cuda_check.h"

namespace myelin {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::vector<CudaDeviceInfo> cuda_devices() {
  std::vector<CudaDeviceInfo> out;
  int count = cuda_device_count();
  int current = 0;
  if (count > 0) MYELIN_CHECK(cudaGetDevice(&current), "device query");
  for (int i = 0; i < count; ++i) {
    std::string where = "device query of cuda:" + std::to_string(i);
    cudaDeviceProp p{};
    MYELIN_CHECK(cudaGetDeviceProperties(&p, i), where);
    CudaDeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.total_bytes = p.totalGlobalMem;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.multiprocessors = p.multiProcessorCount;
    d.l2_bytes = static_cast<size_t>(p.l2CacheSize);
    d.memory_bus_bits = p.memoryBusWidth;
    MYELIN_CHECK(cudaSetDevice(i), where);
    size_t total = 0;
    MYELIN_CHECK(cudaMemGetInfo(&d.free_bytes, &total), where);
    out.push_back(d);
  }
  if (count > 0) MYELIN_CHECK(cudaSetDevice(current), "device query");
  return out;
}

CudaVersions cuda_versions() {
  CudaVersions v;
  cudaDriverGetVersion(&v.driver);
  cudaRuntimeGetVersion(&v.runtime);
  v.cudnn = cudnnGetVersion();
  v.cublas = static_cast<int>(cublasLtGetVersion());
  return v;
}

std::string describe_cuda_devices() {
  CudaVersions v = cuda_versions();
  char line[320];
  std::snprintf(line, sizeof line,
                "cuda: runtime %d.%d, driver %d.%d, cuDNN %zu.%zu.%zu, cuBLASLt %d\n",
                v.runtime / 1000, v.runtime % 1000 / 10, v.driver / 1000, v.driver % 1000 / 10,
                v.cudnn / 10000, v.cudnn % 10000 / 100, v.cudnn % 100, v.cublas);
  std::string s = line;
  if (v.driver == 0) return s + "  no NVIDIA driver on this machine, so no GPU to use\n";
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return s + "  no CUDA device: " + cudaGetErrorString(e) + "\n";
  }
  if (count == 0) return s + "  no CUDA device on this machine\n";
  for (const CudaDeviceInfo& d : cuda_devices()) {
    std::snprintf(line, sizeof line,
                  "  cuda:%d  %s  compute %d.%d, %d SMs, %.1f GiB (%.1f GiB free), L2 %.0f MiB\n",
                  d.index, d.name.c_str(), d.cc_major, d.cc_minor, d.multiprocessors,
                  static_cast<double>(d.total_bytes) / (1ull << 30),
                  static_cast<double>(d.free_bytes) / (1ull << 30),
                  static_cast<double>(d.l2_bytes) / (1 << 20));
    s += line;
  }
  return s;
}

}  // namespace myelin
