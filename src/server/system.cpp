// The machine's resources. NVML is opened with dlopen so that one binary runs with or without an
// NVIDIA driver (and without an NVML header at build time): the few types and functions used are
// declared here as nvml.h defines them.
#include "server/system.h"

#include <dlfcn.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "server/datasets.h"

namespace myelin::server {

namespace {

using nvmlReturn_t = int;  // NVML_SUCCESS = 0
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};

// Bytes from a /proc/meminfo line ("MemAvailable:  123456 kB"); 0 when absent.
int64_t meminfo(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name, unit;
  int64_t kb = 0;
  while (in >> name >> kb) {
    std::getline(in, unit);
    if (name == key + ":") return kb * 1024;
  }
  return 0;
}

}  // namespace

struct SystemMonitor::Nvml {
  void* lib = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*get_count)(unsigned int*) = nullptr;
  nvmlReturn_t (*get_handle)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*get_name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*get_memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*get_utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  bool ready = false;

  template <class F>
  bool load(F& fn, const char* name) {
    fn = reinterpret_cast<F>(dlsym(lib, name));
    return fn != nullptr;
  }

  Nvml() {
    lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;  // no driver: CPU only
    nvmlReturn_t (*init)() = nullptr;
    ready = load(init, "nvmlInit_v2") && load(shutdown, "nvmlShutdown") &&
            load(get_count, "nvmlDeviceGetCount_v2") &&
            load(get_handle, "nvmlDeviceGetHandleByIndex_v2") &&
            load(get_name, "nvmlDeviceGetName") && load(get_memory, "nvmlDeviceGetMemoryInfo") &&
            load(get_utilization, "nvmlDeviceGetUtilizationRates") && init() == 0;
  }
  ~Nvml() {
    if (ready) shutdown();
    if (lib) dlclose(lib);
  }
};

// CPU time from /proc/stat's first line. The load is the busy share since the previous sample;
// samples are at least a second apart, since many clients polling would otherwise each see the
// few clock ticks since the last one.
struct SystemMonitor::Cpu {
  std::mutex mutex;
  std::chrono::steady_clock::time_point last_time;
  int64_t last_total = 0, last_idle = 0;
  double last_load = 0;

  static std::pair<int64_t, int64_t> read_stat() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    int64_t v = 0, total = 0, idle = 0;
    in >> cpu;
    for (int i = 0; i < 8 && in >> v; ++i) {  // guest time (fields 8, 9) is in user time already
      total += v;
      if (i == 3 || i == 4) idle += v;  // idle, iowait
    }
    return {total, idle};
  }

  double load() {
    std::lock_guard<std::mutex> lock(mutex);
    auto now = std::chrono::steady_clock::now();
    if (now - last_time < std::chrono::seconds(1)) return last_load;
    auto [total, idle] = read_stat();
    int64_t dt = total - last_total, di = idle - last_idle;
    if (dt > 0) last_load = static_cast<double>(dt - di) / static_cast<double>(dt);
    last_time = now;
    last_total = total;
    last_idle = idle;
    return last_load;
  }
};

SystemMonitor::SystemMonitor() : nvml_(std::make_unique<Nvml>()), cpu_(std::make_unique<Cpu>()) {
  cpu_->load();  // the first figure then covers the time since start
}

SystemMonitor::~SystemMonitor() = default;

int SystemMonitor::gpu_count() const {
  unsigned int n = 0;
  if (!nvml_->ready || nvml_->get_count(&n) != 0) return 0;
  return static_cast<int>(n);
}

std::vector<GpuStatus> SystemMonitor::gpus() const {
  std::vector<GpuStatus> out;
  for (int i = 0; i < gpu_count(); ++i) {
    nvmlDevice_t dev = nullptr;
    if (nvml_->get_handle(static_cast<unsigned int>(i), &dev) != 0) continue;
    GpuStatus g;
    g.index = i;
    char name[96] = {};
    if (nvml_->get_name(dev, name, sizeof(name)) == 0) g.name = name;
    nvmlMemory_t mem{};
    if (nvml_->get_memory(dev, &mem) == 0) {
      g.memory_total = static_cast<int64_t>(mem.total);
      g.memory_used = static_cast<int64_t>(mem.used);
    }
    nvmlUtilization_t util{};
    if (nvml_->get_utilization(dev, &util) == 0) g.utilization = static_cast<int>(util.gpu);
    out.push_back(std::move(g));
  }
  return out;
}

int64_t SystemMonitor::memory_available() const {
  return meminfo("MemAvailable");
}

nlohmann::json SystemMonitor::snapshot() const {
  nlohmann::json gpus = nlohmann::json::array();
  for (const GpuStatus& g : this->gpus())
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"memory_total", g.memory_total},
                    {"memory_used", g.memory_used},
                    {"utilization", g.utilization}});
  nlohmann::json cpu = {{"cores", std::thread::hardware_concurrency()},
                        {"load", cpu_->load()},
                        {"memory_total", meminfo("MemTotal")},
                        {"memory_available", memory_available()}};
  return {{"cpu", cpu}, {"gpus", gpus}};
}

}  // namespace myelin::server
