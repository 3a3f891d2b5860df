// `--model FILE.onnx` wherever a command takes a model: the ONNX model is imported into a network
// file and a weights file, which the command then loads as it loads any network (the model layer
// knows nothing of ONNX).
#pragma once
#include <string>

namespace myelin::cli {

bool is_onnx_path(const std::string& model);

struct ModelFiles {
  std::string model;    // a network name or file
  std::string weights;  // the weights to start from or evaluate ("" for none)
};

// For an .onnx `model`: imports it into `dir` (DIR/network.yaml, DIR/weights.safetensors; a
// fresh temporary directory, removed at exit, when `dir` is empty) and returns those files, the
// user's `weights` taking precedence. Prints the import summary to stderr unless `quiet`. Any
// other model comes back as given.
ModelFiles resolve_model(const std::string& model, const std::string& weights,
                         const std::string& dir = "", bool quiet = false);

}  // namespace myelin::cli
