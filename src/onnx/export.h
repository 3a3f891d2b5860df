// A trained Myelin network as an ONNX model (opset 17, IR version 8: onnx 1.12 and every
// onnxruntime since 1.13 read it), for inference elsewhere.
//
// The model:
//   input  "data"           float [N, C, H, W] (the network's input dims after the batch), the
//                           pixels normalised as in training: (pixel - mean[c]) * scale, pixels
//                           0-255; a text network (input_type tokens) takes int64 symbol ids
//                           [N, steps].
//   output "logits"         float [N, classes] (text: [N, steps, classes]), the last layer.
//   output "probabilities"  softmax of the logits over the classes.
// N is symbolic. Dropout is left out (the identity at inference), batch norm uses the running
// statistics, recurrent layers start from zero states. Initializers keep the weights' names
// (conv1.weight, bn1.running_mean, ...), except recurrent weights, re-laid out for ONNX as
// LAYER.LSTM_l0.W / .R / .B. metadata_props say how to feed the model (kMeta* below).
#pragma once
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "model/network.h"
#include "train/checkpoint.h"

namespace myelin {

constexpr int64_t kOnnxOpset = 17;
constexpr int64_t kOnnxIrVersion = 8;

// metadata_props keys.
inline constexpr const char* kMetaNetwork = "myelin.network";           // the network's name
inline constexpr const char* kMetaNetworkYaml = "myelin.network_yaml";  // its network file
inline constexpr const char* kMetaInputType = "myelin.input_type";      // image | tokens
inline constexpr const char* kMetaInputLayout = "myelin.input_layout";  // NCHW, NCW, NC or NT
inline constexpr const char* kMetaScale = "myelin.input_scale";         // images: the scale
inline constexpr const char* kMetaMean = "myelin.input_mean";  // images: JSON array, pixel units
inline constexpr const char* kMetaPreprocessing = "myelin.preprocessing";  // the rule in words
inline constexpr const char* kMetaClassNames = "myelin.class_names";  // JSON array, label order

struct OnnxExportOptions {
  std::vector<std::string> class_names;    // empty: "0", "1", ...
  std::string weights_origin = "weights";  // names the weights in errors
};

// Every parameter and batch-norm statistic of the network must be in `weights` with its shape
// (DataError naming each missing or mis-shaped tensor); a bad network file is a ParseError and
// a layer type without an ONNX counterpart an UnsupportedError naming the layer.
onnx::ModelProto export_onnx(const NetworkSpec& spec, const TensorFile& weights,
                             const OnnxExportOptions& options = {});

struct OnnxExportSummary {
  std::string weights_path;                             // the .safetensors file read
  int64_t nodes = 0, initializers = 0, parameters = 0;  // parameters: elements of initializers
  size_t bytes = 0;                                     // of the file written
};

// Reads `weights` (a .safetensors file, a snapshot or a run directory), exports and writes
// `out_path` atomically. Class names come from the weights' metadata.
OnnxExportSummary export_onnx_file(const NetworkSpec& spec, const std::string& weights,
                                   const std::string& out_path);

}  // namespace myelin
