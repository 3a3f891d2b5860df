#include "train/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <span>

#include "core/error.h"
#include "data/batch_transform.h"
#include "data/dataset_util.h"
#include "data/image_codec.h"
#include "data/io.h"
#include "data/resize.h"
#include "data/text.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/session.h"

namespace myelin {

using json = nlohmann::json;

json EvalResult::to_json() const {
  std::vector<json> per;
  for (double a : per_class) per.push_back(std::isfinite(a) ? json(a) : json(nullptr));
  json rows = json::array();  // rows: true class, columns: predicted
  const auto n = static_cast<size_t>(std::lround(std::sqrt(double(confusion.size()))));
  for (size_t c = 0; c < n; ++c)
    rows.push_back(std::vector<int64_t>(confusion.begin() + static_cast<ptrdiff_t>(c * n),
                                        confusion.begin() + static_cast<ptrdiff_t>((c + 1) * n)));
  json mistakes = json::array();
  for (const Mistake& m : worst) {
    json j = {{"index", m.index},
              {"label", m.label},
              {"predicted", m.predicted},
              {"probability", m.probability},
              {"true_probability", m.true_probability}};
    if (static_cast<size_t>(std::max(m.label, m.predicted)) < class_names.size())
      j["label_name"] = class_names[m.label], j["predicted_name"] = class_names[m.predicted];
    mistakes.push_back(std::move(j));
  }
  json j = {{"examples", examples},
            {"loss", loss},
            {"top1", top1},
            {"top5", top5},
            {"class_names", class_names},
            {"per_class_accuracy", per},
            {"confusion", rows},
            {"seconds", seconds},
            {"images_per_second", images_per_second},
            {"worst", mistakes}};
  if (text) j["bits_per_symbol"] = bits_per_symbol();
  return j;
}

double EvalResult::bits_per_symbol() const {
  return loss / std::log(2.0);
}

namespace {

class WorstMistakes {
 public:
  using Mistake = EvalResult::Mistake;
  WorstMistakes(int classes, int keep) : classes_(classes), keep_(std::max(0, keep)) {}

  void add(const float* logits, const int32_t* labels, int64_t count, int64_t first_index) {
    if (keep_ == 0) return;
    for (int64_t r = 0; r < count; ++r) {
      const float* row = logits + r * classes_;
      int pred = 0;  // the first largest, as ClassificationTally counts it
      for (int c = 1; c < classes_; ++c)
        if (row[c] > row[pred]) pred = c;
      int y = labels[r];
      if (pred == y || y < 0 || y >= classes_) continue;
      std::vector<double> p = softmax_row(row, classes_);
      found_.push_back({first_index + r, y, pred, p[pred], p[y]});
      if (found_.size() >= 2 * static_cast<size_t>(keep_) + 64) trim();
    }
  }

  std::vector<Mistake> take() {
    trim();
    return std::move(found_);
  }

 private:
  static bool before(const Mistake& a, const Mistake& b) {
    return a.probability != b.probability ? a.probability > b.probability : a.index < b.index;
  }
  void trim() {
    size_t n = std::min(found_.size(), static_cast<size_t>(keep_));
    std::partial_sort(found_.begin(), found_.begin() + static_cast<ptrdiff_t>(n), found_.end(),
                      before);
    found_.resize(n);
  }

  int classes_, keep_;
  std::vector<Mistake> found_;
};

}  // namespace

std::string EvalResult::report() const {
  std::string s;
  char buf[256];
  if (text) {  // a symbol table and confusion matrix of a whole vocabulary would be noise
    std::snprintf(buf, sizeof buf,
                  "%lld tokens: %.3f bits per symbol (loss %.4f)  next symbol top-1 %.2f%%  "
                  "top-5 %.2f%%  (%.0f tokens/s)\n",
                  static_cast<long long>(examples), bits_per_symbol(), loss, top1 * 100, top5 * 100,
                  images_per_second);
    return buf;
  }
  std::snprintf(buf, sizeof buf,
                "%lld examples: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%.0f img/s)\n",
                static_cast<long long>(examples), top1 * 100, top5 * 100, loss, images_per_second);
  s += buf;
  size_t width = 5;
  for (const std::string& n : class_names) width = std::max(width, n.size());
  s += "\nper class:\n";
  for (int c = 0; c < classes; ++c) {
    std::snprintf(buf, sizeof buf, "  %-*s %6.2f%%\n", static_cast<int>(width),
                  c < static_cast<int>(class_names.size()) ? class_names[c].c_str() : "?",
                  per_class[c] * 100);
    s += buf;
  }
  s += "\nconfusion (rows: true class, columns: predicted):\n";
  for (int c = 0; c < classes; ++c) {
    s += "  ";
    for (int p = 0; p < classes; ++p) {
      std::snprintf(buf, sizeof buf, "%6lld",
                    static_cast<long long>(confusion[static_cast<size_t>(c) * classes + p]));
      s += buf;
    }
    s += "\n";
  }
  return s;
}

namespace {

// Each image of a [B, C, H, W] batch mirrored left to right, in place.
void mirror_images(const Tensor& images) {
  const int64_t w = images.shape()[3], rows = images.numel() / w;
  float* p = images.f32();
  for (int64_t r = 0; r < rows; ++r) std::reverse(p + r * w, p + (r + 1) * w);
}

// The batch's logits, averaged with its mirror images' when `mirror` (images only).
void score(Session& s, Batch& b, Tensor& logits, bool mirror, std::vector<float>& first) {
  s.evaluate(b, &logits);
  if (!mirror || b.images.shape().rank() != 4 || b.images.dtype() != DType::f32) return;
  first.assign(logits.f32(), logits.f32() + logits.numel());
  mirror_images(b.images);
  s.evaluate(b, &logits);
  float* l = logits.f32();
  for (size_t i = 0; i < first.size(); ++i) l[i] = (first[i] + l[i]) / 2;
}

}  // namespace

EvalResult evaluate_batches(Session& s, BatchSource& loader, const std::vector<std::string>& names,
                            int worst, bool mirror) {
  auto t0 = std::chrono::steady_clock::now();
  int classes = static_cast<int>(s.spec().classes);
  ClassificationTally tally(classes);
  WorstMistakes mistakes(classes, worst);
  s.reset_carried_states();  // text: the stream is read from its start, from a zero state
  loader.start_epoch(0);
  Batch b;
  Tensor logits;
  std::vector<float> first;
  while (loader.next(b)) {
    score(s, b, logits, mirror, first);
    // Text batches label every step: a row of logits per label.
    const int64_t labels = b.labels.numel() / b.labels.shape()[0];
    tally.add(logits.f32(), b.labels.data_as<int32_t>(), b.count * labels);
    mistakes.add(logits.f32(), b.labels.data_as<int32_t>(), b.count * labels,
                 b.index * b.labels.numel());
  }
  EvalResult r;
  r.examples = tally.examples();
  r.loss = tally.loss(), r.top1 = tally.top1(), r.top5 = tally.top5();
  r.classes = classes;
  r.class_names = names;
  r.per_class = tally.per_class_accuracy();
  r.confusion = tally.confusion();
  r.worst = mistakes.take();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.images_per_second = r.seconds > 0 ? static_cast<double>(r.examples) / r.seconds : 0;
  return r;
}

void check_text_vocabulary(const std::string& data, int64_t symbols, int64_t classes) {
  if (symbols != classes)
    throw UsageError("dataset '" + data + "' has " + std::to_string(symbols) +
                     " symbols but the network's weights score " + std::to_string(classes) +
                     ": a model trained on one vocabulary cannot read another");
}

// A text dataset's validation (or training) stream, read in contiguous rows as training reads it.
EvalResult evaluate_text(const EvalOptions& o, const NetworkSpec& spec) {
  if (spec.input_type != "tokens")
    throw UsageError("dataset '" + o.data + "' is text and network '" + spec.name +
                     "' reads images");
  TextCorpus corpus = load_text_dataset(o.data);
  check_text_vocabulary(o.data, static_cast<int64_t>(corpus.vocabulary.size()), spec.classes);
  auto tokens = std::make_shared<std::vector<int32_t>>(
      std::move(o.train_split ? corpus.train : corpus.validation));
  if (o.limit > 0 && o.limit < static_cast<int64_t>(tokens->size()))
    tokens->resize(static_cast<size_t>(o.limit));
  const int64_t steps = spec.input[0];
  const int64_t rows = (static_cast<int64_t>(tokens->size()) - 1) / steps;
  if (rows < 1)
    throw UsageError("the text (" + std::to_string(tokens->size()) +
                     " tokens) is shorter than one sequence of " + std::to_string(steps) +
                     " steps");
  const int64_t batch = std::max<int64_t>(1, std::min(o.batch, rows));
  auto session = inference_session(spec, o.device, o.threads, o.precision, batch, o.weights);
  TextLoader loader(tokens, batch, steps);
  EvalResult r = evaluate_batches(*session, loader, corpus.vocabulary, o.worst);
  r.text = true;
  return r;
}

EvalResult evaluate(const EvalOptions& o) {
  NetworkSpec spec = resolve_spec(o.spec, o.model, o.weights);
  if (is_text_dataset(o.data)) return evaluate_text(o, spec);
  DatasetSplits splits = open_dataset(o.data, o.open);
  std::shared_ptr<Dataset> data = o.train_split ? splits.train : splits.test;
  if (!data)
    throw UsageError("dataset '" + o.data + "' has no " + (o.train_split ? "training" : "test") +
                     " set");
  if (o.limit > 0 && o.limit < data->size()) {
    std::vector<int64_t> first(static_cast<size_t>(o.limit));
    std::iota(first.begin(), first.end(), 0);
    data = std::make_shared<data::SubsetDataset>(
        data, first, o.data + " (first " + std::to_string(o.limit) + ")");
  }
  if (data->num_classes() > spec.classes)
    throw UsageError("dataset '" + o.data + "' has " + std::to_string(data->num_classes()) +
                     " classes, network '" + spec.name + "' only " + std::to_string(spec.classes));
  int64_t batch = std::max<int64_t>(1, std::min(o.batch, data->size()));
  auto session = inference_session(spec, o.device, o.threads, o.precision, batch, o.weights);
  LoaderOptions lo;
  lo.batch = batch;
  lo.shuffle = false;
  lo.training = false;
  lo.drop_last = false;
  lo.threads = o.loader_threads;
  lo.transforms = transforms_from(spec.recipe);
  Loader loader(data, lo);
  std::vector<std::string> names = data->class_names();
  names.resize(static_cast<size_t>(spec.classes));
  return evaluate_batches(*session, loader, names, o.worst,
                          o.mirror.value_or(spec.recipe.test_mirror));
}

}  // namespace myelin
