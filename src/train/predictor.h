// A trained classifier opened for inference: the one inference path of `myelin serve-model`,
// libmyelin (src/capi) and the Python module. It opens a bundle (.tar.gz, see bundle.h, from a
// file or from memory), a run directory or weights file (the network named by the weights'
// metadata, or the run's own network.yaml), or a network (name, file or spec) with weights. An
// ONNX model is first imported into such files (onnx/model_files.h): this layer knows no ONNX.
// It holds `instances` independent copies of the network, so that as many threads can run
// batches at once, and turns batches of inputs [n, C, H, W] into softmax probabilities (or
// logits) [n, classes].
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/network.h"
#include "train/checkpoint.h"
#include "train/inference.h"

namespace myelin {

struct PredictorOptions {
  std::string weights;  // with a network (name or file) as the model; empty: the model is a
                        // bundle, a run directory or a weights file
  std::string device = "cpu";
  int threads = 0;  // per instance; 0: the machine's cores shared out between the instances
  std::string precision = "fp32";
  int64_t max_batch = 64;
  int instances = 1;
  // Each instance compiles the network for every power of two up to max_batch (and max_batch),
  // so a batch of n runs at the smallest of those sizes that holds it instead of padded to
  // max_batch. It costs a copy of the weights per size; off: one size, short batches padded.
  bool batch_sizes = true;
};

enum class Scores { probabilities, logits };

class Predictor {
 public:
  // `model`: a bundle (.tar.gz), a run directory, a weights file, or (with o.weights) a network
  // name or file. Throws DataError for missing or corrupt files, UsageError for a network that
  // does not read images.
  Predictor(const std::string& model, const PredictorOptions& o);
  // A network built in code, with o.weights (required).
  Predictor(const NetworkSpec& network, const PredictorOptions& o);
  // A bundle's bytes (.tar.gz) held in memory; errors name it `name` ("bundle in memory").
  Predictor(const void* bundle, size_t size, const std::string& name, const PredictorOptions& o);
  ~Predictor();
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  const NetworkSpec& spec() const { return spec_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  const std::string& source() const { return source_; }  // what was opened, as given
  const PredictorOptions& options() const { return options_; }
  int64_t classes() const { return spec_.classes; }
  int64_t example_size() const { return example_; }  // floats per example: C*H*W
  int64_t max_batch() const { return options_.max_batch; }
  int instances() const { return static_cast<int>(instances_.size()); }
  std::vector<int64_t> compiled_batches() const;  // the batch sizes each instance runs at

  // Softmax probabilities (or logits) [n, classes] of n examples (1 <= n <= max_batch) on one
  // instance. Calls on the same instance run one after the other; on different instances, at
  // once. An input of exactly a compiled batch size is read where it lies; others are copied
  // and padded.
  void run(int instance, const float* input, int64_t n, float* out,
           Scores scores = Scores::probabilities);
  // Any number of examples (n >= 1), in chunks of max_batch, each on an idle instance (or, when
  // all are busy, the next in turn): safe to call from any number of threads at once.
  void run(const float* input, int64_t n, float* out, Scores scores = Scores::probabilities);
  // Parameters and states (batch-norm statistics) by name, as host tensors (instance 0's).
  std::vector<NamedTensor> weights();

  // One encoded PNG or JPEG image as the network's input (example_size() floats), as
  // `myelin classify` prepares it; DataError naming `name` for bytes that are not an image.
  void prepare(const std::string& name, const std::vector<uint8_t>& encoded, float* out,
               const std::string& resize_mode = "squash") const;
  // ShapeError unless `shape` is [n, C, H, W] with the network's C, H, W and n >= 1.
  void check_shape(const Dims& shape) const;

 private:
  struct Instance;
  void use_threads_here() const;
  void open_bundle(const std::string& path);
  void open(const NetworkSpec& spec, const std::string& weights, std::vector<std::string> names);
  void run_on(Instance& inst, const float* input, int64_t n, float* out, Scores scores);
  Instance& lock_idle_instance(std::unique_lock<std::mutex>& lock);

  PredictorOptions options_;
  std::string source_;
  NetworkSpec spec_;
  std::vector<std::string> class_names_;
  int64_t example_ = 0;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::atomic<size_t> next_instance_{0};  // when every instance is busy
};

// A fresh directory under the system's temp directory, removed with everything in it when this
// object goes: for model files unpacked or converted only to be read at start.
class TemporaryDirectory {
 public:
  TemporaryDirectory();
  ~TemporaryDirectory();
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The k most probable classes of one row of probabilities, most probable first (ties: lower
// label first); k is clamped to 1..classes.
std::vector<Prediction> top_classes(const float* probabilities, int64_t classes, int k,
                                    const std::vector<std::string>& names);

}  // namespace myelin
