// Backends (a device's memory, copies and synchronisation) and kernels (one op on one device).
// Each engine registers a backend factory and a kernel factory per op, with the storage its kernel
// takes; a graph compiled for a device whose engine lacks a kernel for one of its ops fails at
// compile time, naming the op.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/op_registry.h"
#include "core/value_choice.h"

namespace myelin {

struct StepContext;
class StepIO;

struct BackendOptions {
  int threads = 0;                 // CPU threads; 0 = all cores
  std::string precision = "fp32";  // fp32 | tf32 | bf16 | fp16 (CUDA)
  // The most scratch one kernel may use (cuDNN convolutions). 2 GiB, not 256 MiB: AlexNet fp32 at
  // batch 256 on an H200 ran 12,438 img/s with it and 5,425 with 256 MiB (FFT and Winograd
  // algorithms need more); the CUDA engine also keeps it under half the free device memory.
  size_t workspace_limit = size_t{2} << 30;
  // How the CUDA engine chooses each convolution's algorithm: "heuristic" (cuDNN's ranking, no
  // time at start), "find" (times the legacy API's algorithms), "tune" (times the graph API's
  // engine configurations: the fastest steps, seconds at start for a large network; the choices
  // are cached on disk), or "auto" (a tuned choice where the cache holds one, else heuristic in
  // 16 bits and find in fp32 and tf32).
  std::string conv_search = "auto";
};

// The values BackendOptions::precision and ::conv_search take, as help texts list them.
const std::vector<std::string>& precision_names();
const std::vector<std::string>& conv_search_names();
// `name` if it is one of precision_names(); a UsageError naming them otherwise.
const std::string& checked_precision(const std::string& name);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const BackendOptions& options() const = 0;
  virtual void* allocate(size_t bytes) = 0;  // throws DeviceError naming the size
  virtual void deallocate(void* p) = 0;
  // Copies between host and this device (either side may be the host).
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void fill_zero(void* p, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Optional: the whole step as one device graph (CUDA). capture() records the device work that
  // `body` enqueues without running it and returns true; a backend without graphs returns false
  // and runs nothing (run `body` each step instead). replay() runs the recorded work for this
  // step's seed and step, and returns false when nothing was captured.
  virtual bool capture(const std::function<void()>& body) {
    (void)body;
    return false;
  }
  virtual bool replay(const StepContext& ctx) {
    (void)ctx;
    return false;
  }
  // Optional: fusing ops in the Program's copy of the graph before anything else sees it; runs
  // before choose_storage and memory planning. The CPU engine folds a ReLU into the convolution,
  // inner product or batch norm producing its input where nothing else reads that input, so the
  // input leaves the graph and the arena (MYELIN_CPU_FUSE=0 turns it off, for A/B timing). A
  // rewrite keeps ValueIds (Graph::remove_nodes) and kept values, and removes nodes of the
  // forward and backward passes only: Session counts the optimizer update's nodes from the end.
  virtual void fuse(Graph& g) const { (void)g; }
  // Optional: the storage type and layout of activations. Before a Program plans its memory it
  // lets the backend change the dtype and Layout of activation values in its copy of the graph:
  // the CUDA engine under --precision bf16/fp16 stores activations and their gradients in 16 bits
  // (and channels-last) where every kernel that touches them takes that; the CPU engine keeps
  // them in oneDNN's blocked nchw16c between kernels that take it. What each kernel takes is
  // registered with it (KernelStorage). Inputs, parameters, states and kept values are never
  // changed.
  virtual void choose_storage(Graph& g) const { (void)g; }
  // Optional: asynchronous, double-buffered step inputs and outputs (CUDA; see StepIO). Returns
  // null where the backend has none (then copy_from_host and copy_to_host do the work).
  virtual std::unique_ptr<StepIO> make_step_io(void* in_dst, size_t in_bytes,
                                               const std::vector<const void*>& out_src,
                                               size_t out_bytes_each);
};

// A step's host<->device traffic without waiting for the device. Inputs: input() is page-locked
// host memory of in_bytes (one of two slots, used in turn); upload() copies it on a side stream,
// overlapping the device work in flight, and the device work enqueued next sees it at in_dst.
// Outputs: download() enqueues copying out_bytes_each from each out_src, after the work enqueued
// so far, into host memory; downloaded(back) waits for the download `back` downloads ago (0: the
// last, 1: the one before) and returns its bytes, one block of out_bytes_each per source.
class StepIO {
 public:
  virtual ~StepIO() = default;
  virtual void* input() = 0;  // waits until the slot's previous upload has left the host
  virtual void upload() = 0;
  virtual void download() = 0;
  virtual const void* downloaded(int back) = 0;
  virtual int64_t downloads() const = 0;  // download() calls so far
};

inline std::unique_ptr<StepIO> Backend::make_step_io(void*, size_t, const std::vector<const void*>&,
                                                     size_t) {
  return nullptr;
}

// A device buffer that frees itself.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& b, size_t bytes)
      : backend_(&b), bytes_(bytes), ptr_(bytes ? b.allocate(bytes) : nullptr) {}
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(bytes_, o.bytes_);
    std::swap(ptr_, o.ptr_);
    return *this;
  }
  ~Buffer() {
    if (ptr_) backend_->deallocate(ptr_);
  }
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  Backend* backend_ = nullptr;
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

// Per-step facts a kernel may need.
struct StepContext {
  uint64_t seed = 0;  // dropout masks are a pure function of (seed, step, node, element)
  uint64_t step = 0;
  void* workspace = nullptr;  // shared scratch of Program::workspace_bytes()
};

// One op on one device, prepared once for its node's shapes (descriptors, algorithms,
// primitives), then run every step on tensors whose shapes never change.
class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                   const StepContext& ctx) = 0;
  virtual size_t workspace_bytes() const { return 0; }
};

struct KernelSpec {  // what a factory sees
  const Node& node;
  const Graph& graph;
  int node_index;
  Backend& backend;
  TensorType input(int i) const {
    const Value& v = graph.value(node.inputs.at(i));
    return {v.shape, v.dtype};
  }
  TensorType output(int i) const {
    const Value& v = graph.value(node.outputs.at(i));
    return {v.shape, v.dtype};
  }
  bool input_nhwc(int i) const { return graph.value(node.inputs.at(i)).layout == Layout::nhwc; }
  bool output_nhwc(int i) const { return graph.value(node.outputs.at(i)).layout == Layout::nhwc; }
  Layout input_layout(int i) const { return graph.value(node.inputs.at(i)).layout; }
  Layout output_layout(int i) const { return graph.value(node.outputs.at(i)).layout; }
};

// Memory that two kernels of one graph share from the forward pass to the backward pass (an
// RNN's forward leaves its gates there for its gradient's kernel): kernels asking with the same
// graph, backend and key get the same buffer, freed with the last of them. Sizes must agree.
std::shared_ptr<Buffer> shared_buffer(const KernelSpec& spec, int64_t key, size_t bytes);

using KernelFactory = std::function<std::unique_ptr<Kernel>(const KernelSpec&)>;
using KernelFn = std::function<void(const std::vector<Tensor>&, const std::vector<Tensor>&,
                                    const StepContext&, const Node&)>;

// Which operands of a kernel take one of its engine's alternative storages for activations, and
// for which nodes of the op.
struct StorageRule {
  // The input and output slots that take it; `tied`: only where all of them have it (the kernel
  // indexes them alike). Other slots must keep the plain storage.
  OperandSlots slots;
  // The nodes whose kernel takes it at all, for an op whose kernel runs some nodes on code that
  // does not; every node when empty.
  std::function<bool(const Node& n, const Graph& g)> when;
  // `slots` where n's kernel takes it, else null.
  const OperandSlots* slots_for(const Node& n, const Graph& g) const;
};

// The storage a kernel takes besides the plain one (its node's dtype, NCHW), stated where the
// kernel is registered. An engine's Backend::choose_storage gives an activation an alternative
// only where every kernel touching it takes that there; a kernel that states nothing (the default)
// takes the plain storage only.
struct KernelStorage {
  // The engine's other memory layout for 4-D activations: oneDNN's blocked nchw16c on the CPU
  // (cpu/storage.cpp), channels-last NHWC on CUDA (cuda/storage.cpp). The kernel reads the
  // layout of each operand from KernelSpec::input_layout / output_layout.
  std::optional<StorageRule> layout;
  // 16-bit storage (bf16 or fp16, under --precision bf16/fp16; CUDA): the kernel loads and
  // stores these operands in the 16-bit type and computes in fp32.
  std::optional<StorageRule> half;
};

// StorageRule shorthands: the input slots `in` and output slots `out` take it each on its own, or
// only all alike (tied).
inline StorageRule takes_each(std::vector<int> in, std::vector<int> out,
                              std::function<bool(const Node&, const Graph&)> when = {}) {
  return {{std::move(in), std::move(out), false}, std::move(when)};
}
inline StorageRule takes_alike(std::vector<int> in, std::vector<int> out,
                               std::function<bool(const Node&, const Graph&)> when = {}) {
  return {{std::move(in), std::move(out), true}, std::move(when)};
}

void register_kernel(const std::string& op, DeviceKind device, KernelFactory f,
                     KernelStorage storage = {});
// For stateless kernels: a plain function of inputs, outputs and the node's attributes.
void register_kernel_fn(const std::string& op, DeviceKind device, KernelFn f,
                        KernelStorage storage = {});
const KernelFactory* find_kernel(const std::string& op, DeviceKind device);
// The storage registered with op's kernel on `device`; null where the device has no such kernel.
const KernelStorage* kernel_storage(const std::string& op, DeviceKind device);
std::unique_ptr<Kernel> make_kernel(const KernelSpec& spec);  // throws UnsupportedError

using BackendFactory = std::function<std::unique_ptr<Backend>(Device, const BackendOptions&)>;
void register_backend(DeviceKind kind, BackendFactory f);
// Throws UnsupportedError when this build has no engine for the device.
std::unique_ptr<Backend> make_backend(Device d, const BackendOptions& opts = {});
bool has_backend(DeviceKind kind);

}  // namespace myelin
