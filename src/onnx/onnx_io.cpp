#include "onnx/onnx_io.h"

#include <google/protobuf/io/coded_stream.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace myelin::onnx_io {
namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31)
    v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    v = std::ldexp(static_cast<float>(man | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

float bf16_to_float(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

DType element_dtype(int onnx_type, const std::string& where) {
  switch (onnx_type) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
    case onnx::TensorProto::DOUBLE:
      return DType::f32;
    case onnx::TensorProto::INT32:
      return DType::i32;
    case onnx::TensorProto::INT64:
      return DType::i64;
    default:
      throw DataError(where, -1,
                      "tensor element type " + std::to_string(onnx_type) +
                          " is not supported (expected float, float16, bfloat16, double, int32 or "
                          "int64)");
  }
}

size_t stored_size(int onnx_type) {
  switch (onnx_type) {
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      return 2;
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64:
      return 8;
    default:
      return 4;
  }
}

// Element i of a raw little-endian buffer, as the tensor's dtype.
void convert_raw(const std::string& raw, int onnx_type, Tensor& t) {
  const char* src = raw.data();
  const int64_t n = t.numel();
  switch (onnx_type) {
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        t.f32()[i] = onnx_type == onnx::TensorProto::FLOAT16 ? half_to_float(h) : bf16_to_float(h);
      }
      break;
    case onnx::TensorProto::DOUBLE:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        t.f32()[i] = static_cast<float>(d);
      }
      break;
    default:
      std::memcpy(t.data(), src, t.nbytes());
  }
}

void convert_typed(const onnx::TensorProto& p, Tensor& t, const std::string& where) {
  const int64_t n = t.numel();
  auto check = [&](int64_t have) {
    if (have != n)
      throw DataError(
          where, -1,
          "holds " + std::to_string(have) + " values, its shape needs " + std::to_string(n));
  };
  switch (p.data_type()) {
    case onnx::TensorProto::FLOAT:
      check(p.float_data_size());
      std::copy(p.float_data().begin(), p.float_data().end(), t.f32());
      break;
    case onnx::TensorProto::DOUBLE:
      check(p.double_data_size());
      for (int64_t i = 0; i < n; ++i) t.f32()[i] = static_cast<float>(p.double_data(i));
      break;
    case onnx::TensorProto::INT64:
      check(p.int64_data_size());
      std::copy(p.int64_data().begin(), p.int64_data().end(), t.data_as<int64_t>());
      break;
    case onnx::TensorProto::INT32:
      check(p.int32_data_size());
      std::copy(p.int32_data().begin(), p.int32_data().end(), t.data_as<int32_t>());
      break;
    default:  // FLOAT16 / BFLOAT16: bit patterns in int32_data
      check(p.int32_data_size());
      for (int64_t i = 0; i < n; ++i) {
        const auto h = static_cast<uint16_t>(p.int32_data(i));
        t.f32()[i] =
            p.data_type() == onnx::TensorProto::FLOAT16 ? half_to_float(h) : bf16_to_float(h);
      }
  }
}

}  // namespace

onnx::ModelProto parse_model(const void* data, size_t size, const std::string& what) {
  if (size > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw DataError(what, -1, "is over 2 GiB; ONNX files with external data are not supported");
  google::protobuf::io::CodedInputStream in(static_cast<const uint8_t*>(data),
                                            static_cast<int>(size));
  in.SetTotalBytesLimit(std::numeric_limits<int>::max());
  onnx::ModelProto model;
  if (!model.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage())
    throw DataError(what, static_cast<int64_t>(in.CurrentPosition()),
                    "not a valid ONNX model (truncated or not an ONNX file)");
  if (!model.has_graph() || model.graph().node_size() == 0)
    throw DataError(what, -1, "not a valid ONNX model: it has no graph nodes");
  return model;
}

onnx::ModelProto read_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(path, -1, "cannot open the ONNX file");
  std::ostringstream bytes;
  bytes << f.rdbuf();
  const std::string s = bytes.str();
  return parse_model(s.data(), s.size(), path);
}

void write_model(const onnx::ModelProto& model, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !model.SerializeToOstream(&f) || !f.flush())
      throw DataError(path, -1, "cannot write the ONNX file");
  }
  std::filesystem::rename(tmp, path);
}

onnx::TensorProto to_proto(const std::string& name, const Tensor& t) {
  onnx::TensorProto p;
  p.set_name(name);
  for (int64_t d : t.shape().dims) p.add_dims(d);
  switch (t.dtype()) {
    case DType::f32:
      p.set_data_type(onnx::TensorProto::FLOAT);
      break;
    case DType::i32:
      p.set_data_type(onnx::TensorProto::INT32);
      break;
    case DType::i64:
      p.set_data_type(onnx::TensorProto::INT64);
      break;
    default:
      throw Error("ONNX export: tensor '" + name + "' has dtype " + dtype_name(t.dtype()) +
                  "; only f32, i32 and i64 are written");
  }
  p.set_raw_data(t.data(), t.nbytes());
  return p;
}

Tensor from_proto(const onnx::TensorProto& p, const std::string& where) {
  if (p.data_location() == onnx::TensorProto::EXTERNAL)
    throw DataError(where, -1, "tensor data stored outside the file is not supported");
  Dims dims(p.dims().begin(), p.dims().end());
  for (int64_t d : dims)
    if (d < 0) throw DataError(where, -1, "negative dimension " + std::to_string(d));
  Tensor t = Tensor::empty(Shape(dims), element_dtype(p.data_type(), where));
  if (p.has_raw_data()) {
    const size_t want = static_cast<size_t>(t.numel()) * stored_size(p.data_type());
    if (p.raw_data().size() != want)
      throw DataError(where, -1,
                      "raw data is " + std::to_string(p.raw_data().size()) +
                          " bytes, its shape and type need " + std::to_string(want));
    convert_raw(p.raw_data(), p.data_type(), t);
  } else {
    convert_typed(p, t, where);
  }
  return t;
}

}  // namespace myelin::onnx_io
