// Evaluation of trained weights on a dataset (`myelin test`) and classification of image files
// (`myelin classify`). Both run the network's inference program through a Session.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "model/network.h"

namespace myelin {

class Session;

// The loader transforms a network's recipe asks for (scale, per-channel mean, crop, pad, mirror).
Transforms transforms_from(const Recipe& r);

struct EvalResult {
  int64_t examples = 0;
  double loss = 0, top1 = 0, top5 = 0;  // accuracies as fractions
  int classes = 0;
  std::vector<std::string> class_names;
  std::vector<double> per_class;   // accuracy per true class (NaN: no examples)
  std::vector<int64_t> confusion;  // [true][predicted], classes x classes
  double seconds = 0, images_per_second = 0;
  nlohmann::json to_json() const;
  std::string report() const;  // a table: accuracy, per-class accuracy, confusion matrix
};

// Every batch of `loader` (started at epoch 0) through the session's inference program; a short
// last batch counts only its real rows.
EvalResult evaluate_batches(Session& s, Loader& loader, const std::vector<std::string>& names);

struct EvalOptions {
  std::string model;                // network name or file; empty: from the weights' metadata
  std::optional<NetworkSpec> spec;  // or the network itself
  std::string weights;              // .safetensors file, snapshot or run directory (required)
  std::string data = "fashion-mnist";
  OpenOptions open;
  bool train_split = false;  // evaluate the training set instead of the test set
  int64_t limit = 0;         // only the first N examples (0: all)
  std::string device = "cpu";
  int threads = 0, loader_threads = 2;
  int64_t batch = 100;
  std::string precision = "fp32";
};
EvalResult evaluate(const EvalOptions& o);

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

}  // namespace myelin
