#include "train/predictor.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
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
    std::vector<double> p = softmax_row(logits + r * classes, static_cast<int>(classes));
    std::copy(p.begin(), p.end(), out + r * classes);
  }
}

PredictorOptions checked(PredictorOptions o) {
  if (o.max_batch < 1) throw UsageError("the largest batch must be at least 1");
  if (o.instances < 1) throw UsageError("at least one instance is needed");
  if (o.threads == 0 && o.instances > 1 && o.device == "cpu")
    o.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / o.instances);
  return o;
}

void require_exists(const std::string& path) {
  if (!fs::exists(path)) throw DataError(path, -1, "no such file or directory");
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
    : options_(checked(o)), source_(model) {
  if (!o.weights.empty()) {
    require_exists(o.weights);
    open(resolve_spec(std::nullopt, model, o.weights), o.weights, {});
    return;
  }
  require_exists(model);
  const fs::path own = fs::path(model) / "network.yaml";  // a run keeps the network it trained
  if (is_gzip(model))
    open_bundle(model);
  else if (fs::is_directory(model) && fs::exists(own))
    open(load_network(own.string()), model, {});
  else
    open(resolve_spec(std::nullopt, "", model), model, {});
}

Predictor::Predictor(const NetworkSpec& network, const PredictorOptions& o)
    : options_(checked(o)), source_(network.name) {
  if (o.weights.empty()) throw UsageError("network '" + network.name + "' needs weights");
  require_exists(o.weights);
  open(network, o.weights, {});
}

Predictor::Predictor(const void* bundle, size_t size, const std::string& name,
                     const PredictorOptions& o)
    : options_(checked(o)), source_(name) {
  TemporaryDirectory dir;
  const std::string file = dir.path() + "/bundle.tar.gz";
  {
    std::ofstream f(file, std::ios::binary);
    f.write(static_cast<const char*>(bundle), static_cast<std::streamsize>(size));
    if (!f) throw Error("cannot write a temporary file " + file);
  }
  try {
    open_bundle(file);
  } catch (const DataError& e) {  // name the buffer, not the temporary file
    std::string what = e.what();
    for (size_t at; (at = what.find(file)) != std::string::npos;)
      what.replace(at, file.size(), name);
    throw DataError(name, -1, what.substr(what.find(": ") + 2));
  }
}

Predictor::~Predictor() = default;

// A bundle: unpacked into a temporary directory, gone once the weights are in the sessions.
void Predictor::open_bundle(const std::string& path) {
  TemporaryDirectory dir;
  ExtractLimits limits;
  limits.max_files = 100;
  fs::path root = extract_archive(path, dir.path() + "/bundle", limits).root;
  for (const char* f : {"network.yaml", "weights.safetensors"})
    if (!fs::exists(root / f))
      throw DataError(path, -1, std::string("not a model bundle: it holds no ") + f);
  open(load_network((root / "network.yaml").string()), (root / "weights.safetensors").string(),
       read_labels(root / "labels.txt"));
}

void Predictor::open(const NetworkSpec& spec, const std::string& weights,
                     std::vector<std::string> names) {
  spec_ = spec;
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

void Predictor::run(int instance, const float* input, int64_t n, float* out, Scores scores) {
  if (instance < 0 || instance >= instances())
    throw UsageError("no instance " + std::to_string(instance) + " (the model has " +
                     std::to_string(instances()) + ")");
  Instance& inst = *instances_[static_cast<size_t>(instance)];
  std::lock_guard<std::mutex> lock(inst.mutex);
  run_on(inst, input, n, out, scores);
}

void Predictor::run(const float* input, int64_t n, float* out, Scores scores) {
  if (n < 1)
    throw ShapeError("a batch of " + std::to_string(n) + " examples (expected at least 1)");
  for (int64_t first = 0; first < n; first += max_batch()) {
    std::unique_lock<std::mutex> lock;
    Instance& inst = lock_idle_instance(lock);
    run_on(inst, input + first * example_, std::min(n - first, max_batch()),
           out + first * spec_.classes, scores);
  }
}

// The first instance not running a batch, else the next in turn (then waiting for it).
Predictor::Instance& Predictor::lock_idle_instance(std::unique_lock<std::mutex>& lock) {
  for (auto& inst : instances_) {
    lock = std::unique_lock<std::mutex>(inst->mutex, std::try_to_lock);
    if (lock.owns_lock()) return *inst;
  }
  Instance& inst = *instances_[next_instance_++ % instances_.size()];
  lock = std::unique_lock<std::mutex>(inst.mutex);
  return inst;
}

// On a locked instance.
void Predictor::run_on(Instance& inst, const float* input, int64_t n, float* out, Scores scores) {
  if (n < 1 || n > max_batch())
    throw ShapeError("a batch of " + std::to_string(n) + " examples (expected 1 to " +
                     std::to_string(max_batch()) + ")");
  use_threads_here();
  Instance::Sized& s = inst.fitting(n);
  Batch batch = s.input;
  if (n == s.batch) {  // the caller's memory itself: the session only reads it
    batch.images = Tensor(const_cast<float*>(input), s.input.images.shape(), DType::f32);
  } else {
    float* images = s.input.images.f32();
    std::memcpy(images, input, sizeof(float) * static_cast<size_t>(n * example_));
    std::fill(images + n * example_, images + s.batch * example_, 0.0f);  // padding
  }
  batch.count = n;
  s.session->evaluate(batch, &s.logits);
  if (scores == Scores::logits)
    std::memcpy(out, s.logits.f32(), sizeof(float) * static_cast<size_t>(n * spec_.classes));
  else
    softmax_rows(s.logits.f32(), n, spec_.classes, out);
}

std::vector<NamedTensor> Predictor::weights() {
  Instance& inst = *instances_.front();
  std::lock_guard<std::mutex> lock(inst.mutex);
  return capture_checkpoint(*inst.sizes.front().session, TrainerState{}).weights.tensors;
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
