// Opening trained models (bundles, run directories, weights files, ONNX models) for myelin.Model.
#include "model.h"

#include <filesystem>

#include "core/error.h"
#include "train/checkpoint.h"
#if MYELIN_WITH_ONNX
#include "onnx/model_files.h"
#endif

namespace myelin::python {

namespace fs = std::filesystem;

namespace {

// An ONNX model (its path, or its bytes named `origin`), imported into a temporary network file
// and weights (o.weights, when given, in place of the model's own), gone once they are read.
std::unique_ptr<Predictor> open_onnx(const std::string& path, std::string_view bytes,
                                     const std::string& origin, PredictorOptions o) {
#if MYELIN_WITH_ONNX
  TemporaryDirectory dir;
  OnnxModelFiles files =
      path.empty() ? write_onnx_model_files(bytes.data(), bytes.size(), origin, dir.path())
                   : write_onnx_model_files(path, dir.path());
  if (o.weights.empty()) o.weights = files.weights;
  return std::make_unique<Predictor>(files.network, o);
#else
  (void)path, (void)bytes, (void)o;
  throw UnsupportedError(origin +
                         ": this build of Myelin has no ONNX import: rebuild it with libonnx-dev "
                         "and libprotobuf-dev installed (MYELIN_ONNX)");
#endif
}

}  // namespace

std::unique_ptr<Predictor> open_model(const std::string& path,
                                      const std::optional<NetworkSpec>& network,
                                      PredictorOptions o) {
  if (network) {
    o.weights = path;
    return std::make_unique<Predictor>(*network, o);
  }
  if (fs::path(path).extension() == ".onnx") return open_onnx(path, {}, path, o);
  return std::make_unique<Predictor>(path, o);
}

std::unique_ptr<Predictor> open_model_bytes(std::string_view bytes, const PredictorOptions& o) {
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
      static_cast<unsigned char>(bytes[1]) == 0x8b)
    return std::make_unique<Predictor>(bytes.data(), bytes.size(), "bundle in memory", o);
  return open_onnx("", bytes, "ONNX model in memory", o);
}

void save_weights(Predictor& p, const std::string& path) {
  TrainerState s;
  s.network = p.spec().name;
  s.class_names = p.class_names();
  // The network as open_model and `myelin classify` find it again: its file, else (a network
  // built in code, or imported from ONNX into a directory since removed) written beside the
  // weights as WEIGHTS.network.yaml.
  std::string network = p.spec().file;
  if (network.empty() || !fs::exists(network)) {
    network = fs::path(path).replace_extension(".network.yaml").string();
    NetworkSpec spec = p.spec();
    spec.file.clear();
    write_file_atomic(network, write_network(spec));
  }
  s.options = {{"model", fs::absolute(network).string()}};
  write_safetensors(path, p.weights(), weights_metadata(s));
}

}  // namespace myelin::python
