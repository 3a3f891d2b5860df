// ONNX files: reading and writing ModelProto, and tensors between Myelin and TensorProto. Shared
// by export (export.*) and import (import.*).
#pragma once
#include <onnx/onnx_pb.h>

#include <string>

#include "core/tensor.h"

namespace myelin::onnx_io {

// A model from a file or from memory. A file that is not a valid ModelProto (truncated, not
// ONNX, over 2 GiB) is a DataError naming the path; `what` names the buffer for memory input.
onnx::ModelProto read_model(const std::string& path);
onnx::ModelProto parse_model(const void* data, size_t size, const std::string& what);
// Serialized to `path` atomically (temporary file, rename).
void write_model(const onnx::ModelProto& model, const std::string& path);

// f32, i32 and i64 host tensors; the data goes in raw_data (little-endian), as PyTorch writes it.
onnx::TensorProto to_proto(const std::string& name, const Tensor& t);
// raw_data or the typed fields (float_data, int32_data, int64_data, double_data); f16/bf16/f64
// are converted to f32. `where` names the file and tensor in errors.
Tensor from_proto(const onnx::TensorProto& p, const std::string& where);

}  // namespace myelin::onnx_io
