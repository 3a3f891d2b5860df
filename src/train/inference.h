// Running trained networks on images (`myelin classify`, train/predictor.h): the network and its
// weights opened for inference, images prepared as the network reads them. The inference subset of
// this layer (with predictor, session and checkpoint): it reads no datasets.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "model/network.h"

namespace myelin {

class Session;

// The loader transforms a network's recipe asks for (scale, per-channel mean, crop, pad, mirror).
Transforms transforms_from(const Recipe& r);

// Softmax probabilities of one row of logits, in double.
std::vector<double> softmax_row(const float* row, int classes);

struct ClassifyOptions {
  std::string model;  // empty: from the weights' metadata
  std::optional<NetworkSpec> spec;
  std::string weights;
  std::string device = "cpu";
  int threads = 0;
  std::string precision = "fp32";
  int top_k = 5;
  std::string resize_mode = "squash";    // crop | squash | fill
  std::vector<std::string> class_names;  // empty: from the weights' metadata, else "0", "1", ...
};

struct Prediction {
  int label = 0;
  std::string name;
  double probability = 0;
};

struct Classification {
  std::string path;
  std::vector<Prediction> top;  // most probable first
};

// Decodes each image (PNG or JPEG), converts it to the network's channels, resizes it to the
// network input and applies the recipe's scale and mean. Throws DataError naming a bad image.
std::vector<Classification> classify(const ClassifyOptions& o,
                                     const std::vector<std::string>& images);
// The same for images held in memory (uploads): each Classification's path is "image N" (N from
// 1, in order). Bytes that are not a PNG or JPEG image are a DataError saying so.
std::vector<Classification> classify_bytes(const ClassifyOptions& o,
                                           const std::vector<std::vector<uint8_t>>& encoded_images);

// One image as the network's input: decoded (PNG or JPEG; `name` for errors), converted to the
// network's channels, resized with `resize_mode` and transformed by the recipe's scale and mean.
// Writes C*H*W floats to `out`. For tools that run single images (train/inspect.h).
void prepare_image(const NetworkSpec& spec, const std::string& resize_mode, const std::string& name,
                   const std::vector<uint8_t>& encoded, float* out);

// A Session for inference on one device with `weights` loaded (every parameter required).
std::unique_ptr<Session> inference_session(const NetworkSpec& spec, const std::string& device,
                                           int threads, const std::string& precision, int64_t batch,
                                           const std::string& weights);
// The class names kept in the weights' metadata (a text network's: its vocabulary), or "0", "1",
// ... when it holds none for `classes` classes.
std::vector<std::string> class_names_from(const std::string& weights, int classes);
// The network named by a spec, a model name, or else the weights' metadata.
NetworkSpec resolve_spec(const std::optional<NetworkSpec>& spec, const std::string& model,
                         const std::string& weights);

}  // namespace myelin
