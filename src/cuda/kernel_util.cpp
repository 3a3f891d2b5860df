#include "cuda/kernel_util.h"

#include "cuda/device_kernels.h"

#include <climits>

namespace myelin::cuda {

std::string describe(const KernelSpec& s) {
  std::string d = op_label(s.node);
  for (size_t i = 0; i < s.node.inputs.size(); ++i) {
    TensorType t = s.input(static_cast<int>(i));
    d += (i ? ", " : " ") + t.shape.str() + " " + dtype_name(t.dtype);
  }
  d += " ->";
  for (size_t i = 0; i < s.node.outputs.size(); ++i) {
    TensorType t = s.output(static_cast<int>(i));
    d += (i ? ", " : " ") + t.shape.str() + " " + dtype_name(t.dtype);
  }
  return d;
}

namespace {
bool is_float(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16;
}
}  // namespace

void require_f32(const KernelSpec& s) {
  auto check = [&](TensorType t, const char* what, size_t i) {
    if (is_float(t.dtype) && t.dtype != DType::f32)
      throw UnsupportedError(op_label(s.node) + " on cuda: " + what + " " + std::to_string(i) +
                             " is " + dtype_name(t.dtype) +
                             "; the CUDA kernels take f32 tensors (set --precision to compute in "
                             "bf16/fp16 inside them)");
  };
  for (size_t i = 0; i < s.node.inputs.size(); ++i) check(s.input(static_cast<int>(i)), "input", i);
  for (size_t i = 0; i < s.node.outputs.size(); ++i)
    check(s.output(static_cast<int>(i)), "output", i);
}

void require_float(const KernelSpec& s) {
  auto check = [&](TensorType t, const char* what, size_t i) {
    if (!is_float(t.dtype))
      throw UnsupportedError(op_label(s.node) + " on cuda: " + what + " " + std::to_string(i) +
                             " is " + dtype_name(t.dtype) + "; expected f32, bf16 or f16");
  };
  for (size_t i = 0; i < s.node.inputs.size(); ++i) check(s.input(static_cast<int>(i)), "input", i);
  for (size_t i = 0; i < s.node.outputs.size(); ++i)
    check(s.output(static_cast<int>(i)), "output", i);
}

FPtr fptr(const Tensor& t) {
  switch (t.dtype()) {
    case DType::f32:
      return FPtr{t.data(), 0};
    case DType::bf16:
      return FPtr{t.data(), 1};
    case DType::f16:
      return FPtr{t.data(), 2};
    default:
      throw UnsupportedError(std::string("a CUDA kernel got a ") + dtype_name(t.dtype()) +
                             " tensor where it takes f32, bf16 or f16");
  }
}

void TensorDesc::set(cudnnDataType_t t, int64_t n, int64_t c, int64_t h, int64_t w,
                     const std::string& where, cudnnTensorFormat_t format) {
  for (int64_t v : {n, c, h, w})
    if (v > INT_MAX) throw UnsupportedError(where + ": a dimension exceeds cuDNN's int range");
  MYELIN_CHECK(cudnnSetTensor4dDescriptor(d_, format, t, static_cast<int>(n), static_cast<int>(c),
                                          static_cast<int>(h), static_cast<int>(w)),
               where);
}

}  // namespace myelin::cuda
