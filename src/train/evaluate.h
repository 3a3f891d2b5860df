// Evaluation of trained weights on a dataset (`myelin test`), through the network's inference
// program in a Session. Classifying image files (`myelin classify`) is train/inference.h.
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
#include "train/inference.h"

namespace myelin {

class Session;

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
// mistakes. With `mirror`, an image's logits are the mean of its own and its mirror image's
// (Recipe::test_mirror; text batches are scored as they are).
EvalResult evaluate_batches(Session& s, BatchSource& loader, const std::vector<std::string>& names,
                            int worst = 20, bool mirror = false);

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
  int worst = 20;              // the most confident mistakes kept in EvalResult::worst (0: none)
  std::optional<bool> mirror;  // score images with their mirrors too [the recipe's test_mirror]
};
EvalResult evaluate(const EvalOptions& o);

// UsageError unless trained weights scoring `classes` symbols can read text dataset `data` of
// `symbols` symbols (training, testing).
void check_text_vocabulary(const std::string& data, int64_t symbols, int64_t classes);
}  // namespace myelin
