// Sequence networks end to end on the CPU: network files with recurrent layers and token inputs
// build with PyTorch's parameter names and the right shapes, carried state changes what the next
// batch sees, and a small LSTM learns a task only memory solves.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "data/loader.h"
#include "model/network.h"
#include "support/expect_error.h"
#include "train/session.h"

namespace myelin {

namespace {

const char* kCharNet = R"(name: tiny-char
input: [6]
input_type: tokens
classes: 5
layers:
  - embedding: {name: embed, size: 4}
  - lstm: {name: lstm, hidden: 3, layers: 2, carry_state: true}
  - fc: {name: out, outputs: 5, axis: 2}
)";

SessionOptions cpu_options(int64_t batch, bool train) {
  SessionOptions so;
  so.device = Device::cpu();
  so.backend.threads = 1;
  so.batch = so.eval_batch = batch;
  so.train = train;
  return so;
}

// A batch of `batch` sequences of `steps` tokens below `vocabulary`, labelled with the next.
Batch token_batch(int64_t batch, int64_t steps, int vocabulary, uint32_t seed) {
  Batch b;
  b.images = Tensor::empty(Shape{batch, steps}, DType::i32);
  b.labels = Tensor::empty(Shape{batch, steps}, DType::i32);
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < batch * steps; ++i) {
    b.images.data_as<int32_t>()[i] = static_cast<int32_t>(rng() % vocabulary);
    b.labels.data_as<int32_t>()[i] = static_cast<int32_t>(rng() % vocabulary);
  }
  b.count = batch;
  return b;
}

}  // namespace

TEST(SequenceNetworks, RecurrentLayersUsePyTorchNamesAndShapes) {
  NetworkSpec spec = parse_network(kCharNet, "tiny-char.yaml");
  Session s(spec, cpu_options(2, false));
  std::vector<std::string> names = s.param_names();
  for (const char* want :
       {"embed.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
        "lstm.bias_hh_l0", "lstm.weight_ih_l1", "lstm.bias_hh_l1", "out.weight", "out.bias"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  EXPECT_EQ(s.read("embed.weight").shape(), (Shape{5, 4}));  // vocabulary = classes
  EXPECT_EQ(s.read("lstm.weight_ih_l0").shape(), (Shape{12, 4}));
  EXPECT_EQ(s.read("lstm.weight_ih_l1").shape(), (Shape{12, 3}));
  EXPECT_EQ(s.read("lstm.weight_hh_l1").shape(), (Shape{12, 3}));
}

TEST(SequenceNetworks, BidirectionalLastStateFeedsAClassifier) {
  NetworkSpec spec = load_network("lstm-fmnist");
  spec.layers[1].attrs.set("bidirectional", int64_t{1});
  NetworkCost cost = network_cost(spec);
  EXPECT_EQ(cost.layers[1].output, (Shape{1, 256}));  // both directions' final states
  // Per direction: 4 gates x 128 x (28 + 128) weights and two biases of 4 x 128.
  EXPECT_EQ(cost.layers[1].params, 2 * (4 * 128 * (28 + 128) + 2 * 4 * 128));
}

TEST(SequenceNetworks, CarriedStateChangesTheNextBatchUntilReset) {
  NetworkSpec spec = parse_network(kCharNet, "tiny-char.yaml");
  Session s(spec, cpu_options(3, false));
  Batch b = token_batch(3, 6, 5, 7);
  float first = s.evaluate(b).loss;
  float again = s.evaluate(b).loss;  // starts from the first pass's final state
  EXPECT_NE(first, again);
  s.reset_carried_states();
  EXPECT_FLOAT_EQ(s.evaluate(b).loss, first);

  spec.layers[1].attrs.set("carry_state", int64_t{0});
  Session plain(spec, cpu_options(3, false));
  EXPECT_FLOAT_EQ(plain.evaluate(b).loss, plain.evaluate(b).loss);
}

TEST(SequenceNetworks, ABadSequenceLengthOrLastLayerIsAClearError) {
  std::string text = kCharNet;
  std::string zero = text;
  zero.replace(zero.find("input: [6]"), 10, "input: [0]");
  testing::expect_error([&] { build_network(parse_network(zero, "zero.yaml"), 2, true); },
                        {"zero.yaml", "sequence length"});
  std::string flat = text;
  flat.replace(flat.find("axis: 2"), 7, "axis: 1");
  testing::expect_error([&] { build_network(parse_network(flat, "flat.yaml"), 2, true); },
                        {"flat.yaml", "[N, steps, classes]"});
}

// The label of each step is the token three steps back (the first three: the token itself): only
// a network that remembers can be right. A 2-layer LSTM trained with Adam gets it nearly always
// after a few hundred steps.
TEST(SequenceNetworks, AnLstmLearnsToRecallThreeStepsBack) {
  std::string text = kCharNet;
  text.replace(text.find("carry_state: true"), 17, "carry_state: false");
  text.replace(text.find("hidden: 3"), 9, "hidden: 24");
  text.replace(text.find("input: [6]"), 10, "input: [8]");
  NetworkSpec spec = parse_network(text, "recall.yaml");
  spec.recipe.solver = "adam";
  SessionOptions so = cpu_options(16, true);
  so.recipe = spec.recipe;
  Session s(spec, so);
  std::mt19937 rng(3);
  Hyper h;
  h.lr = 0.01f;
  float accuracy = 0;
  for (int step = 0; step < 400; ++step) {
    Batch b = token_batch(16, 8, 5, rng());
    for (int64_t n = 0; n < 16; ++n)
      for (int64_t t = 0; t < 8; ++t)
        b.labels.data_as<int32_t>()[n * 8 + t] =
            b.images.data_as<int32_t>()[n * 8 + (t >= 3 ? t - 3 : t)];
    s.feed(b);
    h.t = static_cast<float>(step + 1);
    s.step(h, static_cast<uint64_t>(step));
    if (step >= 380) accuracy += s.step_stats().top1 / 20;
  }
  EXPECT_GT(accuracy, 0.90) << "mean top-1 over the last 20 steps (chance: 0.2)";
}

}  // namespace myelin
