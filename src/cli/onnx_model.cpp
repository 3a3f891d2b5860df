#include "cli/onnx_model.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#if MYELIN_WITH_ONNX
#include "onnx/model_files.h"
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
  OnnxModelFiles files = write_onnx_model_files(model, dir.empty() ? scratch.get() : dir);
  if (!quiet) std::fprintf(stderr, "%s", import_summary(files.imported).c_str());
  return {files.network, weights.empty() ? files.weights : weights};
#else
  (void)dir, (void)quiet, (void)weights;
  throw UnsupportedError("--model " + model +
                         ": this myelin was built without ONNX support (needs libonnx-dev and "
                         "libprotobuf-dev)");
#endif
}

}  // namespace myelin::cli
