// Evaluation of trained weights on a dataset (`myelin test`) and classification of image files
// (`myelin classify`). Both run the network's inference program through a Session.
#pragma once
#include <cstdint>
#include <memory>
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
  // A misclassified example: its index in the evaluated set (the loader's order, unshuffled), its
  // true and predicted classes and the softmax probabilities of both.
  struct Mistake {
    int64_t index = 0;
    int label = 0, predicted = 0;
    double probability = 0;       // of the predicted class
    double true_probability = 0;  // of the true class
  };
  int64_t examples = 0;
  double loss = 0, top1 = 0, top5 = 0;  // accuracies as fractions
  int classes = 0;
  std::vector<std::string> class_names;
  std::vector<double> per_class;   // accuracy per true class (NaN: no examples)
  std::vector<int64_t> confusion;  // [true][predicted], classes x classes
  double seconds = 0, images_per_second = 0;
  // The misclassified examples the network was surest of, most confident first (ties: lower index
  // first); at most EvalOptions::worst of them.
  std::vector<Mistake> worst;
  // A text dataset: the examples are tokens, each step's next symbol the class.
  bool text = false;
  double bits_per_symbol() const;  // the loss in bits
  nlohmann::json to_json() const;
  std::string report() const;  // a table: accuracy, per-class accuracy, confusion matrix
};

// Every batch of `loader` (started at epoch 0, unshuffled) through the session's inference
// program; a short last batch counts only its real rows. Keeps the `worst` most confident
// mistakes.
EvalResult evaluate_batches(Session& s, BatchSource& loader, const std::vector<std::string>& names,
                            int worst = 20);

struct EvalOptions {
  std::string model;                // network name or file; empty: from the weights' metadata
  std::optional<NetworkSpec> spec;  // or the network itself
  std::string weights;              // .safetensors file, snapshot or run directory (required)
  std::string data = "fashion-mnist";
  OpenOptions open;
  bool train_split = false;  // evaluate the training set instead of the test set (text: the
                             // training stream instead of the validation stream)
  int64_t limit = 0;         // only the first N examples (0: all)
  std::string device = "cpu";
  int threads = 0, loader_threads = 2;
  int64_t batch = 100;
  std::string precision = "fp32";
  int worst = 20;  // the most confident mistakes kept in EvalResult::worst (0: none)
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
// UsageError unless trained weights scoring `classes` symbols can read text dataset `data` of
// `symbols` symbols (training, testing).
void check_text_vocabulary(const std::string& data, int64_t symbols, int64_t classes);
// The network named by a spec, a model name, or else the weights' metadata.
NetworkSpec resolve_spec(const std::optional<NetworkSpec>& spec, const std::string& model,
                         const std::string& weights);

}  // namespace myelin
