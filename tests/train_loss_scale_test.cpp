// Dynamic loss scaling (ops/optimizer.cpp, train/session.h): on by default under fp16 on the GPU;
// here on the CPU engine in fp32, where the mechanism is the same. Scaling by a power of two is
// exact, so a scaled run that never overflows trains bit for bit like an unscaled one; a step
// whose scaled gradients overflow changes no parameter and halves the scale.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/executor.h"
#include "model/network.h"
#include "train/session.h"

using namespace myelin;

namespace {

Batch lenet_batch(int step) {
  Batch b;
  b.images = Tensor::empty(Shape{8, 1, 28, 28}, DType::f32);
  b.labels = Tensor::empty(Shape{8}, DType::i32);
  std::mt19937 rng(static_cast<uint32_t>(7 + step));
  std::uniform_real_distribution<float> u(0, 1);
  for (int64_t k = 0; k < b.images.numel(); ++k) b.images.f32()[k] = u(rng);
  for (int k = 0; k < 8; ++k)
    static_cast<int32_t*>(b.labels.data())[k] = static_cast<int32_t>(rng() % 10);
  b.count = 8;
  return b;
}

struct Trained {
  std::vector<Tensor> params;
  std::vector<float> scales;  // the loss scale after each step
};

Trained train(double loss_scale, int steps, double clip = 0) {
  NetworkSpec spec = load_network("lenet");
  spec.recipe.clip_grad_norm = clip;
  SessionOptions o;
  o.batch = 8;
  o.eval = false;
  o.recipe = spec.recipe;
  o.loss_scale = loss_scale;
  Session s(spec, o);
  Trained r;
  for (int step = 0; step < steps; ++step) {
    s.feed(lenet_batch(step));
    s.step(Hyper::from(spec.recipe, spec.recipe.lr, step), static_cast<uint64_t>(step));
    if (loss_scale > 0) r.scales.push_back(s.read("loss_scale").f32()[0]);
  }
  for (const std::string& name : s.param_names()) r.params.push_back(s.read(name));
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

TEST(LossScaling, WithoutOverflowTrainsBitForBitLikeNoScaling) {
  Trained plain = train(0, 4), scaled = train(1024, 4);
  ASSERT_EQ(plain.params.size(), scaled.params.size());
  for (size_t i = 0; i < plain.params.size(); ++i)
    EXPECT_TRUE(same_bits(plain.params[i], scaled.params[i])) << "parameter " << i;
  EXPECT_EQ(scaled.scales, std::vector<float>(4, 1024.0f)) << "no overflow, no growth yet";
}

// Clipping compares the norm of the unscaled gradients with the threshold.
TEST(LossScaling, ClipsTheUnscaledGradients) {
  Trained plain = train(0, 3, 0.05), scaled = train(4096, 3, 0.05), unclipped = train(0, 3);
  for (size_t i = 0; i < plain.params.size(); ++i)
    EXPECT_TRUE(same_bits(plain.params[i], scaled.params[i])) << "parameter " << i;
  bool clipped = false;
  for (size_t i = 0; i < plain.params.size(); ++i)
    clipped |= !same_bits(plain.params[i], unclipped.params[i]);
  EXPECT_TRUE(clipped) << "a threshold of 0.05 should clip LeNet's first steps";
}

TEST(LossScaling, AnOverflowSkipsTheStepAndHalvesTheScale) {
  Trained initial = train(1e38, 0);  // the parameters as initialised
  Trained one = train(1e38, 1);
  ASSERT_EQ(one.scales.size(), 1u);
  EXPECT_EQ(one.scales[0], 5e37f) << "the scaled gradients overflow: the scale halves";
  for (size_t i = 0; i < initial.params.size(); ++i)
    EXPECT_TRUE(same_bits(initial.params[i], one.params[i])) << "parameter " << i << " moved";
  // Halving until the gradients are finite again, then training.
  Trained many = train(1e38, 120);
  EXPECT_LT(many.scales.back(), 1e36f);
  for (size_t k = 1; k < many.scales.size(); ++k) EXPECT_LE(many.scales[k], many.scales[k - 1]);
  bool moved = false;
  for (size_t i = 0; i < initial.params.size(); ++i)
    moved |= !same_bits(initial.params[i], many.params[i]);
  EXPECT_TRUE(moved) << "training never resumed";
}

// The op alone: halve on a non-finite norm, double after growth_interval finite steps in a row,
// within [2^-24, 2^24].
TEST(LossScaling, TheScaleFollowsTheRule) {
  Graph g(true);
  ValueId scale = g.state("s", Shape{1}, Init{"constant", 8.0});
  ValueId good = g.state("n", Shape{1}, Init{});
  ValueId norm = g.input("norm", Shape{1});
  g.add("loss_scale_update", "ls", {scale, good, norm}, {{"growth_interval", int64_t{3}}});
  auto be = make_backend(Device::cpu(), BackendOptions{});
  Program p(g, *be);
  Tensor ts = Tensor::empty(Shape{1}), tn = Tensor::empty(Shape{1}), tq = Tensor::empty(Shape{1});
  ts.f32()[0] = 8, tn.f32()[0] = 0;
  p.bind(scale, ts), p.bind(good, tn), p.bind(norm, tq);
  auto after = [&](float norm_sq) {
    tq.f32()[0] = norm_sq;
    p.run({});
    return ts.f32()[0];
  };
  EXPECT_EQ(after(1.0f), 8.0f);
  EXPECT_EQ(after(2.0f), 8.0f);
  EXPECT_EQ(after(3.0f), 16.0f) << "three finite steps double it";
  EXPECT_EQ(tn.f32()[0], 0.0f);
  EXPECT_EQ(after(1.0f), 16.0f);
  EXPECT_EQ(after(INFINITY), 8.0f) << "an overflow halves it";
  EXPECT_EQ(tn.f32()[0], 0.0f) << "and restarts the count";
  EXPECT_EQ(after(NAN), 4.0f);
  ts.f32()[0] = 1.0f / 16777216;
  EXPECT_EQ(after(NAN), 1.0f / 16777216) << "not below 2^-24";
  ts.f32()[0] = 16777216, tn.f32()[0] = 2;
  EXPECT_EQ(after(1.0f), 16777216.0f) << "not above 2^24";
}

}  // namespace
