// Opening trained models (bundles, run directories, weights files) and running them.
#include "model.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/archive.h"
#include "train/evaluate.h"

namespace myelin::python {

namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp directory, removed with this object.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "myelin-python-XXXXXX").string();
    if (!mkdtemp(t.data())) throw Error("cannot create a temporary directory in " + t);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool is_gzip(const std::string& path) {
  if (!fs::is_regular_file(path)) return false;
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

void require_exists(const std::string& path) {
  if (!fs::exists(path)) throw DataError(path, -1, "no such file or directory");
}

void softmax_rows(const float* logits, int64_t rows, int64_t classes, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * classes;
    float* y = out + r * classes;
    float top = *std::max_element(x, x + classes);
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += y[j] = std::exp(x[j] - top);
    for (int64_t j = 0; j < classes; ++j) y[j] = static_cast<float>(y[j] / sum);
  }
}

}  // namespace

Model::Model(NetworkSpec spec, std::vector<std::string> class_names, const std::string& weights,
             const ModelOptions& o)
    : spec_(std::move(spec)), device_(o.device), batch_(o.batch) {
  if (spec_.input_type != "image")
    throw UsageError("network '" + spec_.name + "' reads " + spec_.input_type +
                     ", not images: myelin.Model runs image classifiers");
  if (batch_ < 1) throw UsageError("batch must be at least 1, got " + std::to_string(batch_));
  example_ = Shape(spec_.input).numel();
  session_ = inference_session(spec_, device_, o.threads, "fp32", batch_, weights);
  const auto classes = static_cast<size_t>(spec_.classes);
  class_names_ = class_names.size() == classes
                     ? std::move(class_names)
                     : class_names_from(weights, static_cast<int>(classes));
  labels_ = Tensor::empty(Shape{batch_}, DType::i32);
}

std::unique_ptr<Model> Model::open(const std::string& path, const std::string& weights,
                                   const std::optional<NetworkSpec>& network,
                                   const ModelOptions& o) {
  auto make = [&](NetworkSpec spec, std::vector<std::string> names, const std::string& w) {
    return std::unique_ptr<Model>(new Model(std::move(spec), std::move(names), w, o));
  };
  if (network || !weights.empty()) {  // a network and its weights
    const std::string& w = network ? path : weights;
    require_exists(w);
    return make(resolve_spec(network, network ? "" : path, w), {}, w);
  }
  require_exists(path);
  if (is_gzip(path)) {  // a bundle, unpacked for as long as it takes to read it
    TempDir dir;
    ExtractLimits limits;
    limits.max_files = 100;
    fs::path root = extract_archive(path, (dir.path / "bundle").string(), limits).root;
    for (const char* f : {"network.yaml", "weights.safetensors"})
      if (!fs::exists(root / f))
        throw DataError(path, -1, std::string("not a model bundle: it holds no ") + f);
    return make(load_network((root / "network.yaml").string()), read_lines(root / "labels.txt"),
                (root / "weights.safetensors").string());
  }
  // A run directory keeps the network it trained when it was not a standard one.
  fs::path own = fs::path(path) / "network.yaml";
  if (fs::is_directory(path) && fs::exists(own)) return make(load_network(own.string()), {}, path);
  return make(resolve_spec(std::nullopt, "", path), {}, path);
}

void Model::run(const float* input, int64_t n, float* out, bool logits) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t classes = spec_.classes;
  Dims dims{batch_};
  dims.insert(dims.end(), spec_.input.begin(), spec_.input.end());
  const Shape shape(dims);
  Tensor scores;
  for (int64_t first = 0; first < n; first += batch_) {
    const int64_t rows = std::min(n - first, batch_);
    const float* src = input + first * example_;
    Batch b;
    b.labels = labels_;
    b.count = rows;
    if (rows == batch_) {  // the caller's memory itself: the session only reads it
      b.images = Tensor(const_cast<float*>(src), shape, DType::f32);
    } else {
      if (padded_.shape() != shape) padded_ = Tensor::empty(shape);
      float* p = padded_.f32();
      std::memcpy(p, src, sizeof(float) * static_cast<size_t>(rows * example_));
      std::fill(p + rows * example_, p + batch_ * example_, 0.0f);
      b.images = padded_;
    }
    session_->evaluate(b, &scores);
    float* dst = out + first * classes;
    if (logits)
      std::memcpy(dst, scores.f32(), sizeof(float) * static_cast<size_t>(rows * classes));
    else
      softmax_rows(scores.f32(), rows, classes, dst);
  }
}

std::vector<NamedTensor> Model::weights() {
  std::lock_guard<std::mutex> lock(mutex_);
  return capture_checkpoint(*session_, TrainerState{}).weights.tensors;
}

void Model::save(const std::string& path) {
  TrainerState s;
  s.network = spec_.name;
  s.class_names = class_names_;
  // The network as Model::open and `myelin classify` find it again: its file, else its name.
  s.options = {{"model", !spec_.file.empty() && fs::exists(spec_.file)
                             ? fs::absolute(spec_.file).string()
                             : spec_.name}};
  write_safetensors(path, weights(), weights_metadata(s));
}

}  // namespace myelin::python
