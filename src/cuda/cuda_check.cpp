#include "cuda/cuda_check.h"

#include "core/error.h"

namespace myelin::cuda {

namespace {

std::string at(const std::string& where) {
  return where.empty() ? std::string() : " (" + where + ")";
}

}  // namespace

void throw_cuda(cudaError_t e, const char* call, const std::string& where) {
  cudaGetLastError();  // clear a non-sticky error so the process can go on
  throw DeviceError(std::string(call) + " failed: " + cudaGetErrorName(e) + ": " +
                    cudaGetErrorString(e) + at(where));
}

void throw_cudnn(cudnnStatus_t s, const char* call, const std::string& where) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  throw DeviceError(std::string(call) + " failed: " + cudnnGetErrorString(s) +
                    (detail[0] ? std::string(": ") + detail : std::string()) + at(where));
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

void throw_cublas(cublasStatus_t s, const char* call, const std::string& where) {
  throw DeviceError(std::string(call) + " failed: " + cublas_status_name(s) + at(where));
}

void check_launch(const char* kernel, const std::string& where) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw DeviceError(std::string("launching ") + kernel + " failed: " + cudaGetErrorName(e) +
                      ": " + cudaGetErrorString(e) + at(where));
}

}  // namespace myelin::cuda
