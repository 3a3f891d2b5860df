// The trainer's Session on CUDA: step() captures the whole training step (forward, backward,
// update) as a CUDA graph and replays it, with batches through page-locked, double-buffered
// memory and the figures read one step late. Replayed steps must give the losses of eager steps
// (forward_backward + update, synchronous copies) on the same batches. Without a GPU every test
// reports itself SKIPPED.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_info.h"
#include "support/require_gpu.h"
#include "train/session.h"

using namespace myelin;

namespace {

// Convolution, batch norm, pooling, a residual add, dropout and an inner product: the kinds of
// layers whose state (running statistics, momentum, dropout step) a replayed graph must carry.
const char* kNet = R"(
name: tiny
input: [1, 12, 12]
classes: 10
train: {solver: nesterov, lr: 0.05, momentum: 0.9, weight_decay: 0.0005, batch: 32,
        label_smoothing: 0.1}
layers:
  - conv:       {name: c1, filters: 8, kernel: 3, pad: 1, bias: false, init: msra}
  - batch_norm: {name: bn1}
  - relu:       {name: r1}
  - conv:       {name: c2, filters: 8, kernel: 3, pad: 1, init: msra}
  - relu:       {name: r2}
  - add:        {name: res, input: [r2, r1]}
  - pool:       {name: p1, max: 2}
  - dropout:    {name: d1, ratio: 0.25}
  - fc:         {name: fc, outputs: 10}
)";

Batch make_batch(int64_t batch, int64_t i) {
  Batch b;
  b.images = Tensor::empty(Shape{batch, 1, 12, 12}, DType::f32);
  b.labels = Tensor::empty(Shape{batch}, DType::i32);
  std::mt19937 rng(static_cast<uint32_t>(1234 + i));
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t k = 0; k < b.images.numel(); ++k) b.images.f32()[k] = u(rng);
  for (int64_t k = 0; k < batch; ++k)
    static_cast<int32_t*>(b.labels.data())[k] = static_cast<int32_t>(rng() % 10);
  b.count = batch;
  b.index = i;
  return b;
}

SessionOptions options(const NetworkSpec& spec, bool graph, const std::string& precision) {
  SessionOptions o;
  o.device = Device::cuda(0);
  o.backend.precision = precision;
  o.batch = spec.recipe.batch;
  o.eval = false;
  o.seed = 5;
  o.recipe = spec.recipe;
  o.graph = graph;
  return o;
}

// Losses of `steps` steps on batches 0, 1, ...: eagerly (forward_backward, last_stats, update)
// or through step() (captured from the second step on), read with step_stats(lag).
std::vector<float> losses(const NetworkSpec& spec, bool whole_steps, bool graph, int steps,
                          const std::string& precision, int lag, bool* replayed = nullptr) {
  Session s(spec, options(spec, graph, precision));
  std::vector<float> out;
  for (int i = 0; i < steps; ++i) {
    Hyper h = Hyper::from(spec.recipe, spec.recipe.lr * (1.0 - 0.05 * i), i);
    s.feed(make_batch(spec.recipe.batch, i));
    if (whole_steps) {
      s.step(h, static_cast<uint64_t>(i));
      if (i >= lag) out.push_back(s.step_stats(lag).loss);
    } else {
      s.forward_backward(static_cast<uint64_t>(i));
      out.push_back(s.last_stats().loss);
      s.update(h, static_cast<uint64_t>(i));
    }
  }
  if (whole_steps)
    for (int back = lag - 1; back >= 0; --back) out.push_back(s.step_stats(back).loss);
  if (replayed) *replayed = s.graph_replay();
  return out;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float rel) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(std::isfinite(a[i]));
    EXPECT_NEAR(a[i], b[i], rel * std::max(1.0f, std::fabs(b[i]))) << "step " << i;
  }
}

TEST(CudaSession, ReplayedStepsGiveTheLossesOfEagerSteps) {
  REQUIRE_GPU();
  NetworkSpec spec = parse_network(kNet, "tiny.yaml");
  const int steps = 8;
  std::vector<float> eager = losses(spec, false, false, steps, "fp32", 0);
  bool replayed = false;
  std::vector<float> graph = losses(spec, true, true, steps, "fp32", 1, &replayed);
  EXPECT_TRUE(replayed) << "step() did not capture a CUDA graph";
  expect_close(graph, eager, 1e-5f);
  // The loss must move: otherwise equal losses would prove nothing about the update.
  EXPECT_NE(eager.front(), eager.back());
}

TEST(CudaSession, WholeEagerStepsMatchReplayedStepsInBf16) {
  REQUIRE_GPU();
  NetworkSpec spec = parse_network(kNet, "tiny.yaml");
  std::vector<float> eager = losses(spec, true, false, 6, "bf16", 0);
  std::vector<float> graph = losses(spec, true, true, 6, "bf16", 0);
  expect_close(graph, eager, 1e-2f);
}

// fp16 trains with dynamic loss scaling (65536 at first): the replayed steps follow fp32's losses
// and nothing overflows in a few steps, so the scale stays where it started.
TEST(CudaSession, Fp16StepsWithLossScalingFollowFp32) {
  REQUIRE_GPU();
  NetworkSpec spec = parse_network(kNet, "tiny.yaml");
  std::vector<float> fp32 = losses(spec, true, true, 6, "fp32", 0);
  std::vector<float> fp16 = losses(spec, true, true, 6, "fp16", 0);
  expect_close(fp16, fp32, 2e-2f);
  Session s(spec, options(spec, true, "fp16"));
  s.feed(make_batch(spec.recipe.batch, 0));
  s.step(Hyper::from(spec.recipe, spec.recipe.lr, 0), 0);
  s.step_stats();
  EXPECT_EQ(s.read("loss_scale").f32()[0], 65536.0f);
}

TEST(CudaSession, LaggedStatisticsAreThoseOfThePreviousStep) {
  REQUIRE_GPU();
  NetworkSpec spec = parse_network(kNet, "tiny.yaml");
  std::vector<float> now = losses(spec, true, true, 6, "fp32", 0);
  std::vector<float> late = losses(spec, true, true, 6, "fp32", 1);
  expect_close(late, now, 1e-5f);
}

TEST(CudaSession, StepWithoutFeedReusesTheLastBatch) {
  REQUIRE_GPU();
  NetworkSpec spec = parse_network(kNet, "tiny.yaml");
  // Learning rate 0 (below): no learning, so the same batch gives the same loss.
  spec.recipe.weight_decay = 0;
  std::erase_if(spec.layers, [](const LayerSpec& l) { return l.type == "dropout"; });
  Session s(spec, options(spec, true, "fp32"));
  s.feed(make_batch(spec.recipe.batch, 3));
  Hyper h = Hyper::from(spec.recipe, 0.0, 0);
  std::vector<float> got;
  for (int i = 0; i < 4; ++i) {
    s.step(h, static_cast<uint64_t>(i));
    got.push_back(s.step_stats().loss);
  }
  for (float l : got) EXPECT_NEAR(l, got[0], 1e-5f * std::fabs(got[0]));
}

TEST(CudaSession, PipelinedStepsNeedAccumulateOne) {
  REQUIRE_GPU();
  NetworkSpec spec = parse_network(kNet, "tiny.yaml");
  spec.recipe.accumulate = 2;
  Session s(spec, options(spec, true, "fp32"));
  s.feed(make_batch(spec.recipe.batch, 0));
  EXPECT_THROW(s.step(Hyper::from(spec.recipe, 0.01, 0), 0), Error);
}

}  // namespace
