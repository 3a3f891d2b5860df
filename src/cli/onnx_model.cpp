#include "cli/onnx_model.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#if MYELIN_WITH_ONNX
#include "onnx/import.h"
#endif

namespace myelin::cli {

namespace fs = std::filesystem;

namespace {

// Imports for one command run live in a directory removed when the program ends.
class ScratchDir {
 public:
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& get() {
    if (path_.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "myelin-onnx-XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw Error("cannot create a temporary directory for the import");
      path_ = tmpl;
    }
    return path_;
  }

 private:
  std::string path_;
};

}  // namespace

bool is_onnx_path(const std::string& model) {
  return fs::path(model).extension() == ".onnx";
}

ModelFiles resolve_model(const std::string& model, const std::string& weights,
                         const std::string& dir, bool quiet) {
  if (!is_onnx_path(model)) return {model, weights};
#if MYELIN_WITH_ONNX
  static ScratchDir scratch;
  const fs::path out = dir.empty() ? fs::path(scratch.get()) : fs::path(dir);
  ImportedNetwork net = import_onnx_file(model);
  const std::string network = fs::absolute(out / "network.yaml").string();
  const std::string imported = fs::absolute(out / "weights.safetensors").string();
  write_imported(net, network, imported);
  if (!quiet) std::fprintf(stderr, "%s", import_summary(net).c_str());
  return {network, weights.empty() ? imported : weights};
#else
  (void)dir, (void)quiet, (void)weights;
  throw UnsupportedError("--model " + model +
                         ": this myelin was built without ONNX support (needs libonnx-dev and "
                         "libprotobuf-dev)");
#endif
}

}  // namespace myelin::cli
