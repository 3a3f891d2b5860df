#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace myelin {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::bf16:
      return 2;
    case DType::f16:
      return 2;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
    case DType::u8:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::bf16:
      return "bf16";
    case DType::f16:
      return "f16";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
    case DType::u8:
      return "u8";
  }
  return "?";
}

DType dtype_from_name(std::string_view name) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8})
    if (name == dtype_name(t)) return t;
  throw Error("unknown dtype '" + std::string(name) +
              "' (expected f32, bf16, f16, i32, i64 or u8)");
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Device Device::parse(std::string_view s) {
  if (s == "cpu") return cpu();
  if (s.substr(0, 4) == "cuda") {
    if (s.size() == 4) return cuda(0);
    if (s[4] == ':' && s.size() > 5) {
      int idx = 0;
      for (char c : s.substr(5)) {
        if (c < '0' || c > '9') idx = -1;
        if (idx < 0) break;
        idx = idx * 10 + (c - '0');
      }
      if (idx >= 0) return cuda(idx);
    }
  }
  throw UsageError("unknown device '" + std::string(s) + "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const {
  return is_cpu() ? "cpu" : "cuda:" + std::to_string(index);
}

Tensor::Tensor(void* data, Shape shape, DType dtype, Device device)
    : data_(data), shape_(std::move(shape)), dtype_(dtype), device_(device) {}

Tensor Tensor::empty(Shape shape, DType dtype) {
  size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, rounded ? rounded : 64);
  Tensor t(p, std::move(shape), dtype);
  t.owner_ = std::shared_ptr<void>(p, std::free);
  return t;
}

float* Tensor::f32() const {
  if (dtype_ != DType::f32)
    throw ShapeError(std::string("expected an f32 tensor, got ") + dtype_name(dtype_));
  return static_cast<float*>(data_);
}

Dims Tensor::strides() const {
  Dims s(shape_.dims.size());
  int64_t acc = 1;
  for (int i = shape_.rank() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape_.dims[i];
  }
  return s;
}

Tensor Tensor::reshape(Shape s) const {
  if (s.numel() != numel())
    throw ShapeError("cannot reshape " + shape_.str() + " to " + s.str() +
                     ": element counts differ");
  Tensor t = *this;
  t.shape_ = std::move(s);
  return t;
}

}  // namespace myelin
