#include "onnx/model_files.h"

#include <filesystem>

#include "onnx/onnx_io.h"

namespace myelin {

namespace fs = std::filesystem;

namespace {

OnnxModelFiles write_files(ImportedNetwork net, const std::string& dir) {
  OnnxModelFiles f;
  f.network = fs::absolute(fs::path(dir) / "network.yaml").string();
  f.weights = fs::absolute(fs::path(dir) / "weights.safetensors").string();
  write_imported(net, f.network, f.weights);
  f.imported = std::move(net);
  return f;
}

}  // namespace

OnnxModelFiles write_onnx_model_files(const std::string& path, const std::string& dir) {
  return write_files(import_onnx_file(path), dir);
}

OnnxModelFiles write_onnx_model_files(const void* bytes, size_t size, const std::string& origin,
                                      const std::string& dir) {
  return write_files(import_onnx(onnx_io::parse_model(bytes, size, origin), origin), dir);
}

}  // namespace myelin
