// myelin.Model's engine is train/predictor.h's Predictor, the inference path libmyelin and
// `myelin serve-model` share; this opens one from what Model.load takes and saves its weights.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "model/network.h"
#include "train/predictor.h"

namespace myelin::python {

// `path`: a bundle (.tar.gz), a run or snapshot directory, a .safetensors file whose network is
// recorded in it, or an ONNX model (.onnx); or, with o.weights, the network (standard name, file
// or .onnx model). A `network` given as a spec takes the place of a name and needs weights
// (`path` then names them).
std::unique_ptr<Predictor> open_model(const std::string& path,
                                      const std::optional<NetworkSpec>& network,
                                      PredictorOptions o);
// The bytes of a bundle (gzip) or else of an ONNX model.
std::unique_ptr<Predictor> open_model_bytes(std::string_view bytes, const PredictorOptions& o);

// The weights as safetensors, with the metadata `myelin classify` and open_model read back.
void save_weights(Predictor& p, const std::string& path);

}  // namespace myelin::python
