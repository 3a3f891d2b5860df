// GPU listing for device-query; a message when the build has no CUDA engine.
#pragma once
#include <cstddef>

namespace myelin::cli {
void print_cuda_devices();
// Free memory on CUDA device `index` now; 0 without the CUDA engine or a device.
size_t cuda_free_bytes(int index);
}  // namespace myelin::cli
