// The machine's resources: GPUs through NVML (libnvidia-ml.so.1, loaded at run time from the
// driver; without it the server is CPU only), CPU load and memory from /proc.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace myelin::server {

struct GpuStatus {
  int index = 0;
  std::string name;
  int64_t memory_total = 0, memory_used = 0;  // bytes
  int utilization = 0;                        // percent of the last sample period
};

class SystemMonitor {
 public:
  SystemMonitor();
  ~SystemMonitor();
  int gpu_count() const;
  std::vector<GpuStatus> gpus() const;
  int64_t memory_available() const;  // host bytes (MemAvailable)
  // {"cpu": {"cores", "load", "memory_total", "memory_available"}, "gpus": [...]}
  nlohmann::json snapshot() const;

 private:
  struct Nvml;
  struct Cpu;  // the previous /proc/stat sample, for the load between two calls
  std::unique_ptr<Nvml> nvml_;
  std::unique_ptr<Cpu> cpu_;
};

}  // namespace myelin::server
