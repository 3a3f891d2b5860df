#include "cpu/cpu_backend.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/error.h"

extern "C" void openblas_set_num_threads(int);

namespace myelin {

CpuBackend::CpuBackend(const BackendOptions& opts)
    : opts_(opts),
      threads_(opts.threads > 0
                   ? opts.threads
                   : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
      engine_(dnnl::engine::kind::cpu, 0),
      stream_(engine_) {
  omp_set_num_threads(threads_);
  openblas_set_num_threads(threads_);
}

void* CpuBackend::allocate(size_t bytes) {
  size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded ? rounded : 256);
  if (!p) throw DeviceError("out of host memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void CpuBackend::deallocate(void* p) {
  std::free(p);
}

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}

void CpuBackend::fill_zero(void* p, size_t bytes) {
  std::memset(p, 0, bytes);
}

namespace {
const bool registered = (register_backend(DeviceKind::cpu,
                                          [](Device, const BackendOptions& o) {
                                            return std::make_unique<CpuBackend>(o);
                                          }),
                         true);
}  // namespace

}  // namespace myelin
