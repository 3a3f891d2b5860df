// A trained model opened for inference: its network, class names and one Session sized for
// `batch` examples, run one call at a time. Python's myelin.Model wraps it.
#pragma once
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/network.h"
#include "train/checkpoint.h"
#include "train/session.h"

namespace myelin::python {

struct ModelOptions {
  std::string device = "cpu";
  int threads = 0;     // 0: all cores
  int64_t batch = 64;  // the session's batch: longer inputs run in chunks, shorter ones padded
};

class Model {
 public:
  // `path`: a bundle (.tar.gz), a run or snapshot directory, or a .safetensors file whose
  // network is recorded in it; or, with `weights`, the network (standard name or file). A
  // `network` given as a spec takes the place of a name and needs weights (`path` then names
  // them).
  static std::unique_ptr<Model> open(const std::string& path, const std::string& weights,
                                     const std::optional<NetworkSpec>& network,
                                     const ModelOptions& o);

  const NetworkSpec& spec() const { return spec_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  int64_t batch() const { return batch_; }
  int64_t example_size() const { return example_; }  // floats per example
  const std::string& device() const { return device_; }

  // `n` examples in, n x classes out: softmax probabilities, or the logits. `input` is read in
  // place for every whole chunk of `batch` examples; only a short last chunk is copied (padded).
  // Thread-safe; call it without holding the GIL.
  void run(const float* input, int64_t n, float* out, bool logits);
  // Parameters and states (batch-norm statistics) by name, as host tensors.
  std::vector<NamedTensor> weights();
  // The weights as safetensors, with the metadata `myelin classify` and Model::open read back.
  void save(const std::string& path);

 private:
  Model(NetworkSpec spec, std::vector<std::string> class_names, const std::string& weights,
        const ModelOptions& o);
  NetworkSpec spec_;
  std::vector<std::string> class_names_;
  std::string device_;
  int64_t batch_ = 0, example_ = 0;
  std::unique_ptr<Session> session_;
  Tensor labels_, padded_;  // zero labels (unused by inference); the short last chunk
  std::mutex mutex_;
};

}  // namespace myelin::python
