// Evaluation's worst mistakes, checked against probabilities computed here from the weights; and
// classification of images held in memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "data/image_codec.h"
#include "support/data_files.h"
#include "support/expect_error.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/session.h"

using namespace myelin;
using myelin::testing::TempDir;

namespace {

// Random 8-bit examples with random labels, in memory.
class RandomDataset : public Dataset {
 public:
  RandomDataset(int64_t n, Shape chw, int classes, uint32_t seed)
      : chw_(std::move(chw)), classes_(classes), names_{"a", "b", "c"} {
    std::mt19937 rng(seed);
    pixels_.resize(static_cast<size_t>(n * chw_.numel()));
    for (auto& p : pixels_) p = static_cast<uint8_t>(rng() % 256);
    for (int64_t i = 0; i < n; ++i) labels_.push_back(static_cast<int32_t>(rng() % classes));
  }
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Shape example_shape() const override { return chw_; }
  int num_classes() const override { return classes_; }
  const std::vector<std::string>& class_names() const override { return names_; }
  void read(int64_t i, uint8_t* px, int32_t* label) const override {
    std::copy_n(pixels_.data() + i * chw_.numel(), chw_.numel(), px);
    *label = labels_[static_cast<size_t>(i)];
  }
  std::string describe() const override { return "random"; }
  const uint8_t* pixels(int64_t i) const { return pixels_.data() + i * chw_.numel(); }

 private:
  Shape chw_;
  int classes_;
  std::vector<std::string> names_;
  std::vector<uint8_t> pixels_;
  std::vector<int32_t> labels_;
};

const char* kTiny = R"(
name: tiny
input: [1, 4, 4]
classes: 3
layers:
  - fc: {name: fc, outputs: 3, init: gaussian(0.05)}
)";

SessionOptions eval_options(int64_t batch) {
  SessionOptions so;
  so.device = Device::cpu();
  so.backend.threads = 1;
  so.batch = so.eval_batch = batch;
  so.train = false;
  return so;
}

// Every parameter and state of a freshly initialised network, as a weights file.
std::string write_random_weights(const NetworkSpec& spec, const std::string& path) {
  Session s(spec, eval_options(1));
  std::vector<NamedTensor> tensors;
  for (const std::string& n : s.param_names()) tensors.push_back({n, s.read(n)});
  for (const std::string& n : s.state_names()) tensors.push_back({n, s.read(n)});
  write_safetensors(path, tensors, {{"network", spec.name}});
  return path;
}

// The test order over `data`, in batches of `batch`, with the recipe's transforms.
std::unique_ptr<Loader> test_loader(std::shared_ptr<Dataset> data, int64_t batch,
                                    const Recipe& recipe) {
  LoaderOptions lo;
  lo.batch = batch;
  lo.shuffle = lo.training = lo.drop_last = false;
  lo.transforms = transforms_from(recipe);
  return std::make_unique<Loader>(std::move(data), lo);
}

}  // namespace

TEST(EvaluateWorst, MostConfidentMistakesInOrder) {
  NetworkSpec spec = parse_network(kTiny, "tiny.yaml");
  auto data = std::make_shared<RandomDataset>(30, Shape{1, 4, 4}, 3, 7);
  SessionOptions so = eval_options(7);  // 30 = 4 x 7 + 2: a short last batch
  so.seed = 3;
  Session s(spec, so);
  auto loader = test_loader(data, 7, spec.recipe);
  EvalResult r = evaluate_batches(s, *loader, data->class_names(), 5);

  // The same from the weights, in double.
  Tensor w = s.read("fc.weight"), b = s.read("fc.bias");
  std::vector<EvalResult::Mistake> expected;
  for (int64_t i = 0; i < data->size(); ++i) {
    double logit[3], max = -1e300, sum = 0;
    for (int c = 0; c < 3; ++c) {
      logit[c] = b.f32()[c];
      for (int k = 0; k < 16; ++k)
        logit[c] += double(w.f32()[c * 16 + k]) * data->pixels(i)[k] * spec.recipe.scale;
      max = std::max(max, logit[c]);
    }
    for (double l : logit) sum += std::exp(l - max);
    int pred = int(std::max_element(logit, logit + 3) - logit);
    int32_t y = data->label(i);
    if (pred != y)
      expected.push_back(
          {i, y, pred, std::exp(logit[pred] - max) / sum, std::exp(logit[y] - max) / sum});
  }
  std::sort(expected.begin(), expected.end(),
            [](const auto& a, const auto& b2) { return a.probability > b2.probability; });
  ASSERT_GE(expected.size(), 5u) << "the random network should miss more than 5 of 30";
  expected.resize(5);
  ASSERT_EQ(r.worst.size(), 5u);
  for (size_t k = 0; k < 5; ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(r.worst[k].index, expected[k].index);
    EXPECT_EQ(r.worst[k].label, expected[k].label);
    EXPECT_EQ(r.worst[k].predicted, expected[k].predicted);
    EXPECT_NEAR(r.worst[k].probability, expected[k].probability, 1e-5);
    EXPECT_NEAR(r.worst[k].true_probability, expected[k].true_probability, 1e-5);
  }
  nlohmann::json j = r.to_json();
  ASSERT_EQ(j["worst"].size(), 5u);
  EXPECT_EQ(j["worst"][0]["index"], expected[0].index);
  EXPECT_EQ(j["worst"][0]["label_name"], data->class_names()[expected[0].label]);
  EvalOptions defaults;
  EXPECT_EQ(defaults.worst, 20);
}

TEST(EvaluateWorst, NoneWhenAskedForNone) {
  NetworkSpec spec = parse_network(kTiny, "tiny.yaml");
  auto data = std::make_shared<RandomDataset>(10, Shape{1, 4, 4}, 3, 9);
  Session s(spec, eval_options(4));
  auto loader = test_loader(data, 4, spec.recipe);
  EvalResult r = evaluate_batches(s, *loader, data->class_names(), 0);
  EXPECT_TRUE(r.worst.empty());
  EXPECT_EQ(r.examples, 10);
}

// Test-time mirroring: each image scored by the mean of its logits and its mirror image's, the
// loss and accuracy computed here in double from the weights.
TEST(EvaluateMirror, ScoresTheMeanOfAnImageAndItsMirror) {
  NetworkSpec spec = parse_network(kTiny, "tiny.yaml");
  auto data = std::make_shared<RandomDataset>(30, Shape{1, 4, 4}, 3, 11);
  Session s(spec, eval_options(7));
  auto loader = test_loader(data, 7, spec.recipe);
  EvalResult plain = evaluate_batches(s, *loader, data->class_names(), 0, false);
  EvalResult mirrored = evaluate_batches(s, *loader, data->class_names(), 0, true);

  Tensor w = s.read("fc.weight"), b = s.read("fc.bias");
  double loss = 0;
  int64_t right = 0;
  for (int64_t i = 0; i < data->size(); ++i) {
    double logit[3], max = -1e300, sum = 0;
    for (int c = 0; c < 3; ++c) {
      logit[c] = b.f32()[c];
      for (int k = 0; k < 16; ++k) {
        const int mirror_k = k / 4 * 4 + 3 - k % 4;  // the same row, the column reversed
        const double px = (data->pixels(i)[k] + data->pixels(i)[mirror_k]) / 2.0;
        logit[c] += double(w.f32()[c * 16 + k]) * px * spec.recipe.scale;
      }
      max = std::max(max, logit[c]);
    }
    for (double l : logit) sum += std::exp(l - max);
    const int32_t y = data->label(i);
    loss += std::log(sum) - (logit[y] - max);
    right += std::max_element(logit, logit + 3) - logit == y;
  }
  EXPECT_NEAR(mirrored.loss, loss / 30, 1e-5);
  EXPECT_NEAR(mirrored.top1, right / 30.0, 1e-9);
  EXPECT_GT(std::abs(mirrored.loss - plain.loss), 1e-4) << "random images are not symmetric";
}

TEST(ClassifyBytes, SameAsFromFiles) {
  TempDir dir;
  NetworkSpec lenet = load_network("lenet");
  ClassifyOptions o;
  o.spec = lenet;
  o.weights = write_random_weights(lenet, dir / "w.safetensors");
  o.top_k = 3;
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> images;
  for (int i = 0; i < 3; ++i) {
    int side = 20 + 6 * i;  // resized to 28x28
    std::vector<uint8_t> px = myelin::testing::random_pixels(side, side, i == 2 ? 3 : 1, i + 1);
    paths.push_back(dir / ("x" + std::to_string(i) + ".png"));
    myelin::testing::write_png(paths.back(), px, side, side, i == 2 ? 3 : 1);
    images.push_back(myelin::testing::read_bytes(paths.back()));
  }
  std::vector<Classification> a = classify(o, paths), b = classify_bytes(o, images);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(b[i].path, "image " + std::to_string(i + 1));
    ASSERT_EQ(b[i].top.size(), 3u);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(a[i].top[k].label, b[i].top[k].label);
      EXPECT_EQ(a[i].top[k].name, b[i].top[k].name);
      EXPECT_DOUBLE_EQ(a[i].top[k].probability, b[i].top[k].probability);
    }
  }
}

TEST(ClassifyBytes, BadBytesSayWhatTheyAreNot) {
  TempDir dir;
  NetworkSpec lenet = load_network("lenet");
  ClassifyOptions o;
  o.spec = lenet;
  o.weights = write_random_weights(lenet, dir / "w.safetensors");
  std::vector<std::vector<uint8_t>> images = {{'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0}};
  myelin::testing::expect_error([&] { classify_bytes(o, images); },
                                {"image 1", "not a PNG or JPEG image"});
  EXPECT_THROW(classify_bytes(o, images), DataError);
  EXPECT_THROW(classify_bytes(o, {}), UsageError);
}
