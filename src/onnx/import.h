// ONNX models (as PyTorch's torch.onnx.export writes CNNs, opsets 13-17) as Myelin networks:
// a NetworkSpec and its weights, named as Myelin's layers name their parameters (conv1.weight,
// bn.running_mean, ...), so that load_weights finds them.
//
// Each ONNX node becomes one layer (Conv -> conv, Gemm and MatMul + Add -> fc, ...); Identity
// passes its input through, Constant nodes feed shapes, and a Softmax or LogSoftmax that gives
// the graph's output is dropped: a Myelin network ends in its logits (the loss and `classify`
// apply softmax). An op or attribute Myelin has no layer for is an UnsupportedError naming the
// node (its name, or #index when unnamed) and its op type, listing the ops that import.
//
// Pixels: an imported network takes the dataset's pixel values as they are (recipe.scale 1, no
// mean), unless the model's metadata_props carry Myelin's preprocessing (myelin.input_scale,
// myelin.input_mean, as `myelin export` writes them) or the options say otherwise.
#pragma once
#include <onnx/onnx_pb.h>

#include <optional>
#include <string>
#include <vector>

#include "model/network.h"
#include "train/checkpoint.h"

namespace myelin {

struct OnnxImportOptions {
  std::string name;                         // the network's name (default: the file's stem)
  std::optional<double> scale;              // recipe.scale (default: metadata, else 1)
  std::optional<std::vector<double>> mean;  // recipe.mean in pixel units (default: metadata)
};

struct ImportedNetwork {
  NetworkSpec spec;
  std::vector<NamedTensor> weights;      // parameters and batch-norm statistics
  std::vector<std::string> class_names;  // from the metadata (myelin.class_names), else empty
  std::vector<std::string> notes;        // what was dropped or assumed, one line each
  int64_t opset = 0;                     // of the default ONNX domain
  std::string producer;                  // "pytorch 1.13.1"
};

// `origin` names the model in errors (a path, or "memory"). Throws UnsupportedError for what
// does not import and DataError for inconsistent data (a weight of the wrong shape).
ImportedNetwork import_onnx(const onnx::ModelProto& model, const std::string& origin,
                            const OnnxImportOptions& options = {});
ImportedNetwork import_onnx_file(const std::string& path, const OnnxImportOptions& options = {});

// The layer table (describe_network), the preprocessing and the notes, for people.
std::string import_summary(const ImportedNetwork& net);

// Writes the network file and the weights (a .safetensors file whose metadata names the network
// and the classes, as the trainer's do, so `myelin classify` names the classes).
void write_imported(const ImportedNetwork& net, const std::string& network_path,
                    const std::string& weights_path);

// Ops that import, comma-separated ("Add, AveragePool, BatchNormalization, ...").
std::string importable_ops();

}  // namespace myelin
