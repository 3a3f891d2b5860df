// An ONNX model as the two files that code opening models from files reads: the network file and
// the weights (train/predictor.h and the CLI's commands, which know nothing of ONNX). The one
// place where libmyelin, the Python module and the `myelin` commands turn an .onnx model (a file,
// or bytes in memory) into something they can open.
#pragma once
#include <cstddef>
#include <string>

#include "onnx/import.h"

namespace myelin {

struct OnnxModelFiles {
  std::string network;  // DIR/network.yaml
  std::string weights;  // DIR/weights.safetensors; its metadata names the network and classes
  ImportedNetwork imported;
};

// Imports the model at `path`, or the bytes of one (named `origin` in errors: "ONNX model in
// memory"), and writes its files into `dir`. A file that is no ONNX model is a DataError naming
// it; an op Myelin has no layer for, an UnsupportedError naming the node and op type.
OnnxModelFiles write_onnx_model_files(const std::string& path, const std::string& dir);
OnnxModelFiles write_onnx_model_files(const void* bytes, size_t size, const std::string& origin,
                                      const std::string& dir);

}  // namespace myelin
