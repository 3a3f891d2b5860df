// GPU listing for device-query; a message when the build has no CUDA engine.
#pragma once

namespace myelin::cli {
void print_cuda_devices();
}  // namespace myelin::cli
