#include "core/backend.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "core/error.h"
#include "core/text.h"

namespace myelin {

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names = {"fp32", "tf32", "bf16", "fp16"};
  return names;
}

const std::string& checked_precision(const std::string& name) {
  const std::vector<std::string>& names = precision_names();
  if (std::ranges::find(names, name) == names.end())
    throw UsageError("unknown precision '" + name + "' (expected " + either_of(names) + ")");
  return name;
}

const std::vector<std::string>& conv_search_names() {
  static const std::vector<std::string> names = {"auto", "heuristic", "find", "tune"};
  return names;
}

namespace {

struct KernelEntry {
  KernelFactory factory;
  KernelStorage storage;
};

std::map<std::pair<std::string, DeviceKind>, KernelEntry>& kernels() {
  static std::map<std::pair<std::string, DeviceKind>, KernelEntry> k;
  return k;
}

std::map<DeviceKind, BackendFactory>& backends() {
  static std::map<DeviceKind, BackendFactory> b;
  return b;
}

const char* kind_name(DeviceKind k) {
  return k == DeviceKind::cpu ? "cpu" : "cuda";
}

class FnKernel : public Kernel {
 public:
  FnKernel(KernelFn fn, const Node& node) : fn_(std::move(fn)), node_(node) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    fn_(in, out, ctx, node_);
  }

 private:
  KernelFn fn_;
  Node node_;
};

}  // namespace

std::shared_ptr<Buffer> shared_buffer(const KernelSpec& spec, int64_t key, size_t bytes) {
  using Key = std::tuple<const Backend*, const Graph*, int64_t>;
  static std::mutex mutex;
  static std::map<Key, std::weak_ptr<Buffer>> buffers;
  std::lock_guard lock(mutex);
  std::erase_if(buffers, [](const auto& entry) { return entry.second.expired(); });
  std::weak_ptr<Buffer>& slot = buffers[Key{&spec.backend, &spec.graph, key}];
  std::shared_ptr<Buffer> buffer = slot.lock();
  if (buffer && buffer->bytes() != bytes)
    throw Error(spec.node.op + " '" + spec.node.name + "': its kernels disagree on the size of " +
                "the memory they share (" + std::to_string(buffer->bytes()) + " vs " +
                std::to_string(bytes) + " bytes)");
  if (!buffer) slot = buffer = std::make_shared<Buffer>(spec.backend, bytes);
  return buffer;
}

const OperandSlots* StorageRule::slots_for(const Node& n, const Graph& g) const {
  return !when || when(n, g) ? &slots : nullptr;
}

void register_kernel(const std::string& op, DeviceKind device, KernelFactory f,
                     KernelStorage storage) {
  if (!kernels()
           .emplace(std::pair{op, device}, KernelEntry{std::move(f), std::move(storage)})
           .second)
    throw Error("kernel for " + op + " on " + kind_name(device) + " registered twice");
}

void register_kernel_fn(const std::string& op, DeviceKind device, KernelFn fn,
                        KernelStorage storage) {
  register_kernel(
      op, device,
      [fn](const KernelSpec& s) -> std::unique_ptr<Kernel> {
        return std::make_unique<FnKernel>(fn, s.node);
      },
      std::move(storage));
}

const KernelFactory* find_kernel(const std::string& op, DeviceKind device) {
  auto it = kernels().find({op, device});
  return it == kernels().end() ? nullptr : &it->second.factory;
}

const KernelStorage* kernel_storage(const std::string& op, DeviceKind device) {
  auto it = kernels().find({op, device});
  return it == kernels().end() ? nullptr : &it->second.storage;
}

std::unique_ptr<Kernel> make_kernel(const KernelSpec& spec) {
  const KernelFactory* f = find_kernel(spec.node.op, spec.backend.device().kind);
  if (!f)
    throw UnsupportedError("op " + spec.node.op + " (layer '" + spec.node.name +
                           "') has no kernel on " + spec.backend.device().str());
  return (*f)(spec);
}

void register_backend(DeviceKind kind, BackendFactory f) {
  backends()[kind] = std::move(f);
}

bool has_backend(DeviceKind kind) {
  return backends().count(kind) != 0;
}

std::unique_ptr<Backend> make_backend(Device d, const BackendOptions& opts) {
  auto it = backends().find(d.kind);
  if (it == backends().end())
    throw UnsupportedError("this build of myelin has no " + std::string(kind_name(d.kind)) +
                           " engine (rebuild with -DMYELIN_CUDA=ON on a machine with nvcc)");
  return it->second(d, opts);
}

}  // namespace myelin
