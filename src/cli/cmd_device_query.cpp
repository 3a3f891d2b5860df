// myelin device-query: the CPUs and GPUs this build can use.
#include <dnnl.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "cli/command.h"
#include "cli/common.h"
#include "core/backend.h"
#include "cli/cuda_query.h"

extern "C" char* openblas_get_config(void);

namespace myelin::cli {

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

int run_device_query(const std::vector<std::string>& argv) {
  const std::string help = help_text("myelin device-query",
                                     "Lists the CPU and the GPUs this build of myelin can train on.",
                                     {}, "  myelin device-query\n");
  if (wants_help(argv, help)) return 0;
  Args a("device-query", argv, {});
  const dnnl_version_t* v = dnnl_version();
  std::printf("cpu: %s\n  threads: %u (use --threads to choose)\n", cpu_model().c_str(),
              std::thread::hardware_concurrency());
  std::printf("  oneDNN %d.%d.%d (%s), OpenBLAS %s\n", v->major, v->minor, v->patch,
              dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx2 ? "AVX2 or better" : "pre-AVX2",
              openblas_get_config());
  print_cuda_devices();
  return 0;
}

const bool registered = register_command(
    {"device-query", "list CPUs and GPUs (with memory) this build can use", run_device_query});

}  // namespace

}  // namespace myelin::cli
