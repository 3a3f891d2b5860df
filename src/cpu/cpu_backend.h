// The CPU engine's backend: host memory, OpenMP/oneDNN/OpenBLAS threads, one oneDNN engine and
// stream shared by the CPU kernels of a program.
#pragma once
#include <dnnl.hpp>

#include "core/backend.h"

namespace myelin {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& opts);
  Device device() const override { return Device::cpu(); }
  const BackendOptions& options() const override { return opts_; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
  void fill_zero(void* p, size_t bytes) override;
  void synchronize() override {}
  // Fuses each ReLU into the convolution, inner product or batch norm that produces its input
  // where nothing else reads that input, and batch norm + ReLU + 2x2 max pooling (with a thin
  // convolution before it) into one node forward and one backward (fuse.cpp). MYELIN_CPU_FUSE=0
  // turns it off.
  void fuse(Graph& g) const override;
  // Keeps activations in oneDNN's blocked layouts (nchw16c, nchw8c) between the kernels that take
  // it (storage.cpp). MYELIN_CPU_BLOCKED=0 turns it off.
  void choose_storage(Graph& g) const override;

  int threads() const { return threads_; }
  dnnl::engine& engine() { return engine_; }
  dnnl::stream& stream() { return stream_; }

 private:
  BackendOptions opts_;
  int threads_;
  dnnl::engine engine_;
  dnnl::stream stream_;
};

// The CPU backend of a kernel spec (kernels registered for DeviceKind::cpu only see these).
inline CpuBackend& cpu_backend(const KernelSpec& s) {
  return static_cast<CpuBackend&>(s.backend);
}

}  // namespace myelin
