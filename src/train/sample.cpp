#include "train/sample.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "data/dataset_util.h"
#include "data/text.h"
#include "train/evaluate.h"
#include "train/session.h"

namespace myelin {

namespace {

bool carries_state(const NetworkSpec& spec) {
  return std::any_of(spec.layers.begin(), spec.layers.end(),
                     [](const LayerSpec& l) { return l.attrs.i("carry_state", 0) != 0; });
}

// Word-level vocabularies hold symbols of several characters; character-level ones never do.
std::string level_of(const std::vector<std::string>& vocabulary) {
  for (const std::string& s : vocabulary) {
    size_t code_points = 0;
    for (unsigned char c : s) code_points += (c & 0xC0) != 0x80;
    if (code_points > 1) return "word";
  }
  return "char";
}

int32_t draw(const float* scores, int64_t classes, double temperature, std::mt19937_64& rng) {
  std::vector<double> p(static_cast<size_t>(classes));
  const double top = *std::max_element(scores, scores + classes);
  for (int64_t k = 0; k < classes; ++k) p[k] = std::exp((scores[k] - top) / temperature);
  return static_cast<int32_t>(std::discrete_distribution<int64_t>(p.begin(), p.end())(rng));
}

}  // namespace

NetworkSpec sample_network(NetworkSpec spec) {
  if (spec.input_type != "tokens" || !carries_state(spec))
    throw UsageError("network '" + spec.name +
                     "' is not a text network whose recurrent layers carry their state "
                     "(input_type: tokens and an lstm, gru or rnn layer with carry_state: true)");
  spec.input = {1};  // one symbol per step, the state carrying the rest
  return spec;
}

TextSampler::TextSampler(Session& session, std::vector<std::string> vocabulary)
    : session_(session), vocabulary_(std::move(vocabulary)), level_(level_of(vocabulary_)) {}

std::string TextSampler::run(const std::string& prime_text, int64_t length, double temperature,
                             uint64_t seed,
                             const std::function<void(const std::string&)>& on_symbol) {
  if (!(temperature > 0 && temperature <= 100))
    throw UsageError("the temperature must be in (0, 100], got " + std::to_string(temperature));
  if (length < 0 || length > 1000000) throw UsageError("the length must be in 0..1000000 symbols");
  std::vector<int32_t> prime = encode_text(vocabulary_, level_, prime_text);
  if (prime.empty()) {
    auto newline = std::find(vocabulary_.begin(), vocabulary_.end(), "\n");
    prime.push_back(newline == vocabulary_.end() ? 0 : int32_t(newline - vocabulary_.begin()));
  }
  session_.reset_carried_states();
  Batch b;
  b.images = Tensor::empty(Shape{1, 1}, DType::i32);
  b.labels = Tensor::empty(Shape{1, 1}, DType::i32);
  b.labels.data_as<int32_t>()[0] = 0;
  b.count = 1;
  Tensor scores;
  auto read = [&](int32_t token) {
    b.images.data_as<int32_t>()[0] = token;
    session_.evaluate(b, &scores);
  };
  for (int32_t token : prime) read(token);
  std::mt19937_64 rng(seed);
  const auto classes = static_cast<int64_t>(vocabulary_.size());
  std::string text;
  for (int64_t i = 0; i < length; ++i) {
    int32_t next = draw(scores.f32(), classes, temperature, rng);
    text += vocabulary_[next];
    if (on_symbol) on_symbol(vocabulary_[next]);
    read(next);
  }
  return text;
}

std::string sample_text(const SampleOptions& o,
                        const std::function<void(const std::string&)>& on_symbol) {
  NetworkSpec spec = sample_network(resolve_spec(o.spec, o.model, o.weights));
  const auto classes = static_cast<int>(spec.classes);
  std::vector<std::string> vocabulary = class_names_from(o.weights, classes);
  if (vocabulary == data::numbered_classes(classes))  // what the metadata gives when it has none
    throw UsageError("the weights hold no vocabulary: were they trained on a text dataset?");
  auto session = inference_session(spec, o.device, o.threads, "fp32", 1, o.weights);
  return TextSampler(*session, vocabulary).run(o.prime, o.length, o.temperature, o.seed, on_symbol);
}

}  // namespace myelin
