// Checked calls into CUDA, cuDNN and cuBLASLt: every failure becomes a DeviceError naming the
// call and where it was made (the op, the layer and the sizes). `where` is a string the caller
// builds once (in a kernel's constructor), so a successful call costs only the status test.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>

namespace myelin::cuda {

[[noreturn]] void throw_cuda(cudaError_t e, const char* call, const std::string& where);
[[noreturn]] void throw_cudnn(cudnnStatus_t s, const char* call, const std::string& where);
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* call, const std::string& where);

inline void check(cudaError_t e, const char* call, const std::string& where) {
  if (e != cudaSuccess) throw_cuda(e, call, where);
}
inline void check(cudnnStatus_t s, const char* call, const std::string& where) {
  if (s != CUDNN_STATUS_SUCCESS) throw_cudnn(s, call, where);
}
inline void check(cublasStatus_t s, const char* call, const std::string& where) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_cublas(s, call, where);
}

// After a kernel launch: reports a bad configuration or an earlier asynchronous fault.
void check_launch(const char* kernel, const std::string& where);

const char* cublas_status_name(cublasStatus_t s);

}  // namespace myelin::cuda

#define MYELIN_CHECK(call, where) ::myelin::cuda::check((call), #call, (where))
