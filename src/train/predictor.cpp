#include "train/predictor.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "data/archive.h"
#include "data/loader.h"
#include "train/session.h"

namespace myelin {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_labels(const fs::path& file) {
  std::vector<std::string> names;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  return names;
}

bool is_gzip(const std::string& path) {
  if (!fs::is_regular_file(path)) return false;
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return magic[0] == 0x1f && magic[1] == 0x8b;
}

// 1, 2, 4, ... below max_batch, then max_batch; or max_batch alone.
std::vector<int64_t> batch_sizes(int64_t max_batch, bool several) {
  std::vector<int64_t> sizes;
  if (several)
    for (int64_t b = 1; b < max_batch; b *= 2) sizes.push_back(b);
  sizes.push_back(max_batch);
  return sizes;
}

void softmax_rows(const float* logits, int64_t rows, int64_t classes, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * classes;
    float* y = out + r * classes;
    double top = *std::max_element(x, x + classes), sum = 0;
    std::vector<double> e(static_cast<size_t>(classes));
    for (int64_t j = 0; j < classes; ++j) sum += e[j] = std::exp(x[j] - top);
    for (int64_t j = 0; j < classes; ++j) y[j] = static_cast<float>(e[j] / sum);
  }
}

}  // namespace

TemporaryDirectory::TemporaryDirectory() {
  std::string t = (fs::temp_directory_path() / "myelin-model-XXXXXX").string();
  if (!mkdtemp(t.data())) throw Error("cannot create a temporary directory in " + t);
  path_ = t;
}

TemporaryDirectory::~TemporaryDirectory() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// One copy of the network: a session per batch size, each with its input batch allocated once.
struct Predictor::Instance {
  struct Sized {
    int64_t batch = 0;
    std::unique_ptr<Session> session;
    Batch input;
    Tensor logits;
  };
  std::vector<Sized> sizes;  // ascending batch
  std::mutex mutex;          // one batch at a time

  Sized& fitting(int64_t n) {
    for (Sized& s : sizes)
      if (s.batch >= n) return s;
    return sizes.back();
  }
};

Predictor::Predictor(const std::string& model, const PredictorOptions& o)
    : options_(o), source_(model) {
  if (options_.max_batch < 1) throw UsageError("the largest batch must be at least 1");
  if (options_.instances < 1) throw UsageError("at least one instance is needed");
  if (options_.threads == 0 && options_.instances > 1 && options_.device == "cpu")
    options_.threads =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / options_.instances);
  if (!o.weights.empty()) {
    if (!fs::exists(o.weights)) throw DataError(o.weights, -1, "no such file or directory");
    open(model, o.weights, {});
    return;
  }
  if (!fs::exists(model)) throw DataError(model, -1, "no such file or directory");
  if (!is_gzip(model)) {
    open("", model, {});
    return;
  }
  // A bundle: unpacked into a temporary directory, gone once the weights are in the sessions.
  TemporaryDirectory dir;
  ExtractLimits limits;
  limits.max_files = 100;
  fs::path root = extract_archive(model, dir.path() + "/bundle", limits).root;
  for (const char* f : {"network.yaml", "weights.safetensors"})
    if (!fs::exists(root / f))
      throw DataError(model, -1, std::string("not a model bundle: it holds no ") + f);
  open((root / "network.yaml").string(), (root / "weights.safetensors").string(),
       read_labels(root / "labels.txt"));
}

Predictor::~Predictor() = default;

void Predictor::open(const std::string& network, const std::string& weights,
                     std::vector<std::string> names) {
  spec_ = resolve_spec(std::nullopt, network, weights);
  if (spec_.input_type != "image")
    throw UsageError("network '" + spec_.name + "' reads " + spec_.input_type +
                     ", not images: only image classifiers run here");
  example_ = std::accumulate(spec_.input.begin(), spec_.input.end(), int64_t{1},
                             std::multiplies<int64_t>());
  if (static_cast<int64_t>(names.size()) != spec_.classes)
    names = class_names_from(weights, static_cast<int>(spec_.classes));
  class_names_ = std::move(names);
  for (int i = 0; i < options_.instances; ++i) {
    auto inst = std::make_unique<Instance>();
    for (int64_t b : batch_sizes(options_.max_batch, options_.batch_sizes)) {
      Instance::Sized s;
      s.batch = b;
      s.session = inference_session(spec_, options_.device, options_.threads, options_.precision, b,
                                    weights);
      Dims shape{b};
      shape.insert(shape.end(), spec_.input.begin(), spec_.input.end());
      s.input.images = Tensor::empty(Shape(shape));
      s.input.labels = Tensor::empty(Shape{b}, DType::i32);
      std::fill_n(s.input.labels.data_as<int32_t>(), b, 0);  // the loss is computed, not read
      inst->sizes.push_back(std::move(s));
    }
    instances_.push_back(std::move(inst));
  }
}

std::vector<int64_t> Predictor::compiled_batches() const {
  return batch_sizes(options_.max_batch, options_.batch_sizes);
}

// OpenMP's thread count is a setting of each calling thread: the CPU backend set it on the thread
// that built the sessions, and batches run on others (a server's workers), which would otherwise
// run oneDNN on every core whatever --threads says.
void Predictor::use_threads_here() const {
  thread_local int applied = -1;
  if (options_.device != "cpu" || options_.threads <= 0 || applied == options_.threads) return;
  omp_set_num_threads(options_.threads);
  applied = options_.threads;
}

void Predictor::run(int instance, const float* input, int64_t n, float* probabilities) {
  if (instance < 0 || instance >= instances())
    throw UsageError("no instance " + std::to_string(instance) + " (the model has " +
                     std::to_string(instances()) + ")");
  if (n < 1 || n > max_batch())
    throw ShapeError("a batch of " + std::to_string(n) + " examples (expected 1 to " +
                     std::to_string(max_batch()) + ")");
  use_threads_here();
  Instance& inst = *instances_[static_cast<size_t>(instance)];
  std::lock_guard<std::mutex> lock(inst.mutex);
  Instance::Sized& s = inst.fitting(n);
  float* images = s.input.images.f32();
  std::memcpy(images, input, sizeof(float) * static_cast<size_t>(n * example_));
  std::fill(images + n * example_, images + s.batch * example_, 0.0f);  // padding
  s.input.count = n;
  s.session->evaluate(s.input, &s.logits);
  softmax_rows(s.logits.f32(), n, spec_.classes, probabilities);
}

void Predictor::run(const float* input, int64_t n, float* probabilities) {
  for (int64_t first = 0; first < n; first += max_batch()) {
    int64_t rows = std::min(n - first, max_batch());
    run(0, input + first * example_, rows, probabilities + first * spec_.classes);
  }
}

void Predictor::prepare(const std::string& name, const std::vector<uint8_t>& encoded, float* out,
                        const std::string& resize_mode) const {
  prepare_image(spec_, resize_mode, name, encoded, out);
}

void Predictor::check_shape(const Dims& shape) const {
  bool ok = shape.size() == spec_.input.size() + 1 && shape[0] >= 1 &&
            std::equal(spec_.input.begin(), spec_.input.end(), shape.begin() + 1);
  if (ok) return;
  auto text = [](const Dims& d, size_t from) {
    std::string s = "[";
    for (size_t i = from; i < d.size(); ++i) s += (i > from ? ", " : "") + std::to_string(d[i]);
    return s + "]";
  };
  std::string expect = "[N";
  for (int64_t d : spec_.input) expect += ", " + std::to_string(d);
  throw ShapeError("input shape " + text(shape, 0) + " does not fit network '" + spec_.name +
                   "', which takes " + expect + "] with N >= 1");
}

std::vector<Prediction> top_classes(const float* probabilities, int64_t classes, int k,
                                    const std::vector<std::string>& names) {
  std::vector<int> order(static_cast<size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  int top = static_cast<int>(std::clamp<int64_t>(k, 1, classes));
  const float* p = probabilities;
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  std::vector<Prediction> out;
  for (int j = 0; j < top; ++j)
    out.push_back({order[j], names.at(static_cast<size_t>(order[j])), p[order[j]]});
  return out;
}

}  // namespace myelin
