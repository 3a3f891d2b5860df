// Running trained networks on images: the network and weights opened for inference, images
// prepared as the network reads them, `myelin classify`. The inference subset of this layer
// (with predictor, session and checkpoint): no datasets or loaders.
#include "train/inference.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <span>

#include "core/error.h"
#include "data/batch_transform.h"
#include "data/image_codec.h"
#include "data/io.h"
#include "data/resize.h"
#include "train/checkpoint.h"
#include "train/session.h"

namespace myelin {

using json = nlohmann::json;

Transforms transforms_from(const Recipe& r) {
  Transforms t;
  t.scale = r.scale;
  for (double m : r.mean) t.mean.push_back(static_cast<float>(m));
  t.crop = static_cast<int>(r.crop);
  t.pad = static_cast<int>(r.pad);
  t.mirror = r.mirror;
  t.cutout = static_cast<int>(r.cutout);
  return t;
}

// Softmax probabilities of one row of logits, in double.
std::vector<double> softmax_row(const float* row, int classes) {
  double max = *std::max_element(row, row + classes), sum = 0;
  std::vector<double> p(static_cast<size_t>(classes));
  for (int c = 0; c < classes; ++c) sum += p[c] = std::exp(static_cast<double>(row[c]) - max);
  for (double& x : p) x /= sum;
  return p;
}

namespace {

std::string metadata_of(const std::string& weights, const std::string& key) {
  TensorFile f = read_safetensors(resolve_weights_path(weights));
  auto it = f.metadata.find(key);
  return it == f.metadata.end() ? std::string() : it->second;
}

// Decodes images and makes them the network's input, reusing its buffers from one to the next.
class ImagePreparer {
 public:
  ImagePreparer(const NetworkSpec& spec, const std::string& resize_mode) {
    if (spec.input.size() != 3)
      throw UsageError("network '" + spec.name + "' does not take [C, H, W] images");
    c_ = static_cast<int>(spec.input[0]), h_ = static_cast<int>(spec.input[1]);
    w_ = static_cast<int>(spec.input[2]);
    Transforms t = transforms_from(spec.recipe);
    t.crop = 0, t.pad = 0, t.mirror = false, t.cutout = 0;  // images are resized to the input
    transform_ = data::BatchTransform(t, Shape{c_, h_, w_}, false, 1);
    mode_ = data::parse_resize_mode(resize_mode);
    pixels_.resize(static_cast<size_t>(c_) * h_ * w_);
  }
  size_t elements() const { return pixels_.size(); }
  void operator()(const std::string& name, const uint8_t* data, size_t size, float* out) {
    data::decode_image(name, data, size, raw_, c_ == 1 ? 1 : 0);
    data::resize_to_chw(raw_, h_, w_, c_, mode_, pixels_.data());
    transform_.apply(pixels_.data(), out, 0, 0);
  }

 private:
  int c_ = 0, h_ = 0, w_ = 0;
  data::BatchTransform transform_;
  data::ResizeMode mode_{};
  data::RawImage raw_;
  std::vector<uint8_t> pixels_;
};

std::vector<Prediction> top_predictions(const float* row, int classes, int k,
                                        const std::vector<std::string>& names) {
  std::vector<double> p = softmax_row(row, classes);
  std::vector<int> order(static_cast<size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return row[a] > row[b]; });
  std::vector<Prediction> top;
  for (int j = 0; j < k; ++j) top.push_back({order[j], names.at(order[j]), p[order[j]]});
  return top;
}

// The bytes of image i (for the path version, read into `scratch`).
using ImageBytes = std::function<std::span<const uint8_t>(size_t i, std::vector<uint8_t>& scratch)>;

// Classifies `names.size()` images in batches of up to 64; both classify() overloads run this.
std::vector<Classification> classify_images(const ClassifyOptions& o,
                                            const std::vector<std::string>& names,
                                            const ImageBytes& bytes_of) {
  if (names.empty()) throw UsageError("no images to classify");
  NetworkSpec spec = resolve_spec(o.spec, o.model, o.weights);
  ImagePreparer prepare(spec, o.resize_mode);
  int64_t batch = std::min<int64_t>(static_cast<int64_t>(names.size()), 64);
  auto session = inference_session(spec, o.device, o.threads, o.precision, batch, o.weights);
  int classes = static_cast<int>(spec.classes);
  std::vector<std::string> class_names =
      o.class_names.empty() ? class_names_from(o.weights, classes) : o.class_names;
  int k = std::clamp(o.top_k, 1, classes);
  std::vector<Classification> out;
  std::vector<uint8_t> scratch;
  Dims shape{batch};
  shape.insert(shape.end(), spec.input.begin(), spec.input.end());
  for (size_t first = 0; first < names.size(); first += static_cast<size_t>(batch)) {
    Batch b;
    b.images = Tensor::empty(Shape(shape));
    b.labels = Tensor::empty(Shape{batch}, DType::i32);
    size_t n = std::min(names.size() - first, static_cast<size_t>(batch));
    for (size_t i = 0; i < n; ++i) {
      std::span<const uint8_t> bytes = bytes_of(first + i, scratch);
      prepare(names[first + i], bytes.data(), bytes.size(),
              b.images.f32() + i * prepare.elements());
    }
    b.count = static_cast<int64_t>(n);
    Tensor logits;
    session->evaluate(b, &logits);
    for (size_t i = 0; i < n; ++i)
      out.push_back(
          {names[first + i], top_predictions(logits.f32() + i * classes, classes, k, class_names)});
  }
  return out;
}

}  // namespace

NetworkSpec resolve_spec(const std::optional<NetworkSpec>& spec, const std::string& model,
                         const std::string& weights) {
  if (spec) return *spec;
  if (!model.empty()) return load_network(model);
  std::string from_weights = metadata_of(weights, "model");
  if (from_weights.empty()) from_weights = metadata_of(weights, "network");
  if (from_weights.empty())
    throw UsageError("no network given, and the weights file " + resolve_weights_path(weights) +
                     " does not name one: pass --model");
  return load_network(from_weights);
}

std::unique_ptr<Session> inference_session(const NetworkSpec& spec, const std::string& device,
                                           int threads, const std::string& precision, int64_t batch,
                                           const std::string& weights) {
  if (weights.empty()) throw UsageError("no weights given (--weights FILE or run directory)");
  SessionOptions so;
  so.device = Device::parse(device);
  so.backend.threads = threads;
  so.backend.precision = precision;
  so.batch = so.eval_batch = batch;
  so.train = false;
  so.recipe = spec.recipe;
  auto s = std::make_unique<Session>(spec, so);
  load_weights(*s, weights, true);
  return s;
}

std::vector<Classification> classify(const ClassifyOptions& o,
                                     const std::vector<std::string>& images) {
  return classify_images(o, images, [&](size_t i, std::vector<uint8_t>& scratch) {
    scratch = data::read_file(images[i]);
    return std::span<const uint8_t>(scratch);
  });
}

std::vector<Classification> classify_bytes(
    const ClassifyOptions& o, const std::vector<std::vector<uint8_t>>& encoded_images) {
  std::vector<std::string> names;
  for (size_t i = 0; i < encoded_images.size(); ++i)
    names.push_back("image " + std::to_string(i + 1));
  return classify_images(o, names, [&](size_t i, std::vector<uint8_t>&) {
    return std::span<const uint8_t>(encoded_images[i]);
  });
}

void prepare_image(const NetworkSpec& spec, const std::string& resize_mode, const std::string& name,
                   const std::vector<uint8_t>& encoded, float* out) {
  ImagePreparer prepare(spec, resize_mode);
  prepare(name, encoded.data(), encoded.size(), out);
}

std::vector<std::string> class_names_from(const std::string& weights, int classes) {
  std::string text = metadata_of(weights, "class_names");
  json j = json::parse(text, nullptr, false);
  std::vector<std::string> names;
  if (j.is_array())
    for (const json& n : j)
      if (n.is_string()) names.push_back(n.get<std::string>());
  // None recorded: "0", "1", ..., as datasets number theirs (data/dataset_util.h is not part of
  // the inference subset of data/).
  if (static_cast<int>(names.size()) != classes) {
    names.clear();
    for (int k = 0; k < classes; ++k) names.push_back(std::to_string(k));
  }
  return names;
}

}  // namespace myelin
