// Tensor: a typed, shaped view of memory on a device. Contiguous row-major (NCHW for images).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace myelin {

enum class DType : uint8_t { f32, bf16, f16, i32, i64, u8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
DType dtype_from_name(std::string_view name);  // throws Error naming the valid choices

using Dims = std::vector<int64_t>;

struct Shape {
  Dims dims;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims(d) {}
  explicit Shape(Dims d) : dims(std::move(d)) {}

  int rank() const { return static_cast<int>(dims.size()); }
  int64_t numel() const;
  // Negative indices count from the end, like Python.
  int64_t operator[](int i) const { return dims.at(i < 0 ? i + rank() : i); }
  bool operator==(const Shape& o) const { return dims == o.dims; }
  bool operator!=(const Shape& o) const { return dims != o.dims; }
  std::string str() const;  // "[64, 1, 28, 28]"
};

enum class DeviceKind : uint8_t { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceKind::cuda, i}; }
  static Device parse(std::string_view s);  // "cpu", "cuda", "cuda:1"
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  std::string str() const;
};

class Tensor {
 public:
  Tensor() = default;
  // A view of memory someone else owns (arena slice, device buffer).
  Tensor(void* data, Shape shape, DType dtype, Device device = {});
  // Owning host memory, 64-byte aligned, zero-filled.
  static Tensor empty(Shape shape, DType dtype = DType::f32);

  bool defined() const { return data_ != nullptr || shape_.numel() == 0; }
  void* data() const { return data_; }
  template <class T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }
  float* f32() const;  // checks dtype
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  Dims strides() const;  // contiguous row-major, in elements
  // Same memory, another shape of equal element count.
  Tensor reshape(Shape s) const;

 private:
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_;
};

}  // namespace myelin
