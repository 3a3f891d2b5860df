// The CPU engine's ReLU fusion (CpuBackend::fuse): a training step of small LeNet-, AlexNet- and
// ResNet-like graphs compiled with it and with MYELIN_CPU_FUSE=0 gives the same loss, outputs and
// gradients, with fewer nodes and a smaller arena; a ReLU whose input is read by anything else
// (or kept) is left alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>

#include "core/autodiff.h"
#include "core/backend.h"
#include "core/executor.h"

using namespace myelin;

namespace {

// A graph, the values compared between the two programs, and how many ReLUs should fuse.
struct Net {
  Graph graph;
  std::vector<ValueId> compared;
  int fusable = 0;
};

struct Builder {
  Graph& g;
  ValueId conv(ValueId x, const std::string& name, int64_t o, int64_t k, Attrs a = {}) {
    const Shape& xs = g.value(x).shape;
    ValueId w = g.param(name + ".weight", Shape{o, xs[1], k, k}, Init{});
    ValueId b = g.param(name + ".bias", Shape{o}, Init{});
    return g.add1("conv2d", name, {x, w, b}, a);
  }
  ValueId fc(ValueId x, const std::string& name, int64_t o, bool bias = true) {
    const Shape& xs = g.value(x).shape;
    ValueId w = g.param(name + ".weight", Shape{o, xs.numel() / xs[0]}, Init{});
    if (!bias) return g.add1("inner_product", name, {x, w});
    return g.add1("inner_product", name, {x, w, g.param(name + ".bias", Shape{o}, Init{})});
  }
  ValueId bn(ValueId x, const std::string& name) {
    Shape c{g.value(x).shape[1]};
    return g.add1("batch_norm", name,
                  {x, g.param(name + ".gamma", c, Init{}), g.param(name + ".beta", c, Init{}),
                   g.state(name + ".mean", c, Init{}), g.state(name + ".var", c, Init{})});
  }
  ValueId relu(ValueId x, const std::string& name) { return g.add1("relu", name, {x}); }
};

// Ends a network: loss over `logits`, gradients of every parameter and of the input, all kept.
Net finish(Graph g, ValueId logits, int fusable) {
  Net n{std::move(g), {}, fusable};
  Graph& gr = n.graph;
  ValueId label = gr.input("label", Shape{gr.value(logits).shape[0]}, DType::i32);
  ValueId loss = gr.add1("softmax_cross_entropy", "loss", {logits, label});
  gr.keep(loss);
  gr.keep(logits);
  n.compared = {loss, logits};
  if (!gr.training()) return n;
  std::vector<ValueId> wrt = gr.params();
  for (auto [p, dp] : differentiate(gr, loss, wrt)) n.compared.push_back(dp);
  return n;
}

// LeNet/AlexNet-like: a first convolution (im2col + SGEMM: 3 input channels), a second one that
// oneDNN's blocked kernel takes (16 -> 32 channels), each with a ReLU; inner products with and
// without bias, each with a ReLU; the last one gives the logits.
Net conv_fc_net(bool training) {
  Graph g(training);
  Builder b{g};
  ValueId x = g.param("data", Shape{5, 3, 12, 12}, Init{});  // a param: its gradient is checked
  ValueId h = b.relu(b.conv(x, "conv1", 16, 3, {{"pad", int64_t{1}}}), "relu1");
  h = b.relu(b.conv(h, "conv2", 32, 3, {{"stride", int64_t{2}}}), "relu2");
  h = g.add1("max_pool2d", "pool2", {h}, Attrs{{"kernel", int64_t{2}}});
  h = b.relu(b.fc(h, "ip1", 40), "relu3");
  h = b.relu(b.fc(h, "ip2", 24, false), "relu4");
  return finish(std::move(g), b.fc(h, "ip3", 10), 4);
}

// ResNet-like: conv -> BN -> ReLU twice, then a residual sum and a leaky ReLU of an inner product.
Net bn_net(bool training) {
  Graph g(training);
  Builder b{g};
  ValueId x = g.param("data", Shape{4, 2, 9, 9}, Init{});
  ValueId h = b.relu(b.bn(b.conv(x, "conv1", 16, 3, {{"pad", int64_t{1}}}), "bn1"), "relu1");
  ValueId r = b.relu(b.bn(b.conv(h, "conv2", 16, 3, {{"pad", int64_t{1}}}), "bn2"), "relu2");
  h = g.add1("add", "sum", {h, r});
  h = g.add1("leaky_relu", "relu3", {b.fc(h, "ip1", 20)}, Attrs{{"alpha", 0.1}});
  return finish(std::move(g), b.fc(h, "ip2", 6), 3);
}

// Where fusion must not happen: the convolution's output also feeds a residual sum, an inner
// product's output is kept, a ReLU of a pooling (no epilogue there), a sigmoid, and a leaky ReLU
// with a negative slope (its output's sign is not its input's).
Net unfusable_net(bool training) {
  Graph g(training);
  Builder b{g};
  ValueId x = g.param("data", Shape{3, 4, 8, 8}, Init{});
  ValueId t = b.conv(x, "conv1", 4, 3, {{"pad", int64_t{1}}});
  ValueId h = g.add1("add", "sum", {t, b.relu(t, "relu1")});
  h = b.relu(g.add1("max_pool2d", "pool", {h}, Attrs{{"kernel", int64_t{2}}}), "relu2");
  ValueId kept = b.fc(h, "ip1", 12);
  g.keep(kept);
  h = g.add1("sigmoid", "sig", {b.fc(b.relu(kept, "relu3"), "ip2", 12)});
  h = g.add1("leaky_relu", "neg", {b.fc(h, "ip3", 12)}, Attrs{{"alpha", -0.5}});
  Net n = finish(std::move(g), b.fc(h, "ip4", 5), 0);
  n.compared.push_back(kept);
  return n;
}

struct Result {
  std::map<std::string, std::vector<float>> values;  // by value name
  size_t nodes = 0, arena = 0;
  Graph graph{true};
};

// Compiles `net` on the CPU with fusion on or off, binds deterministic random inputs, parameters
// and states, runs one step and reads the compared values.
Result run(const Net& net, bool fuse) {
  setenv("MYELIN_CPU_FUSE", fuse ? "1" : "0", 1);
  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = 2});
  Program p(net.graph, *backend);
  unsetenv("MYELIN_CPU_FUSE");
  std::mt19937 rng(11);
  std::vector<Tensor> bound;
  for (size_t v = 0; v < net.graph.values().size(); ++v) {
    const Value& val = net.graph.values()[v];
    if (val.kind == ValueKind::activation) continue;
    Tensor t = Tensor::empty(val.shape, val.dtype);
    bool positive = val.name.ends_with(".var") || val.name.ends_with(".gamma");
    std::uniform_real_distribution<float> d(positive ? 0.5f : -1.0f, positive ? 1.5f : 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (val.dtype == DType::i32)
        t.data_as<int32_t>()[i] = static_cast<int32_t>(rng() % 5);
      else
        t.f32()[i] = d(rng);
    }
    p.bind(static_cast<ValueId>(v), t);
    bound.push_back(std::move(t));
  }
  p.run(StepContext{});
  Result r;
  for (ValueId v : net.compared) {
    Tensor t = p.tensor(v);
    r.values[net.graph.value(v).name].assign(t.f32(), t.f32() + t.numel());
  }
  r.nodes = p.graph().nodes().size();
  r.arena = p.plan().arena_bytes;
  r.graph = p.graph();
  return r;
}

int fused_nodes(const Graph& g) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.attrs.has("post");
  return n;
}

// Fused and unfused steps agree value by value; the fused graph lost one node per fused ReLU.
void expect_same_step(const Net& net) {
  Result off = run(net, false), on = run(net, true);
  EXPECT_EQ(fused_nodes(off.graph), 0);
  EXPECT_EQ(fused_nodes(on.graph), net.fusable) << on.graph.dump();
  EXPECT_EQ(on.nodes + net.fusable, off.nodes);
  // Training keeps each pre-activation value until the ReLU's gradient, so dropping it shrinks
  // the arena; at inference the peak may lie elsewhere (bn_net's residual sum).
  if (net.fusable == 0)
    EXPECT_EQ(on.arena, off.arena);
  else if (net.graph.training())
    EXPECT_LT(on.arena, off.arena);
  else
    EXPECT_LE(on.arena, off.arena);
  for (const auto& [name, want] : off.values) {
    const std::vector<float>& got = on.values.at(name);
    ASSERT_EQ(got.size(), want.size()) << name;
    double diff = 0, norm = 0;
    for (size_t i = 0; i < want.size(); ++i)
      diff = std::max(diff, std::abs(double(got[i]) - want[i])),
      norm = std::max(norm, std::abs(double(want[i])));
    EXPECT_GT(norm, 0) << name;
    EXPECT_LE(diff, 1e-6 * norm) << name << ": fused and unfused steps differ";
  }
}

}  // namespace

TEST(CpuFuse, ConvAndInnerProductReluTrainingStepMatches) {
  Net net = conv_fc_net(true);
  expect_same_step(net);
  // Every convolution implementation, pinned, applies the ReLU the same way.
  for (const char* layout : {"gemm", "plain", "blocked"}) {
    setenv("MYELIN_CPU_LAYOUT", layout, 1);
    expect_same_step(net);
    unsetenv("MYELIN_CPU_LAYOUT");
  }
}

TEST(CpuFuse, BatchNormReluTrainingStepMatches) {
  expect_same_step(bn_net(true));
}

TEST(CpuFuse, InferenceGraphsMatch) {
  expect_same_step(conv_fc_net(false));
  expect_same_step(bn_net(false));
}

TEST(CpuFuse, ReluWhoseInputHasOtherReadersIsNotFused) {
  expect_same_step(unfusable_net(true));
  expect_same_step(unfusable_net(false));
}

// The rewrite itself: the ReLU node is gone, its producer writes the ReLU's output, the gradient
// reads that output as x, and the pre-activation value has no producer and no reader left.
TEST(CpuFuse, RewriteDropsThePreActivationValue) {
  Net net = conv_fc_net(true);
  Graph g = net.graph;
  ValueId t = g.find("conv1.conv2d"), y = g.find("relu1.activation");
  ASSERT_NE(t, kNoValue);
  ASSERT_NE(y, kNoValue);
  setenv("MYELIN_CPU_FUSE", "1", 1);  // on whatever the environment says
  make_backend(Device::cpu(), BackendOptions{.threads = 1})->fuse(g);
  unsetenv("MYELIN_CPU_FUSE");
  EXPECT_EQ(g.value(t).producer, -1);
  const Node& conv = g.nodes().at(g.value(y).producer);
  EXPECT_EQ(conv.name, "conv1");
  EXPECT_EQ(conv.attrs.s("post", ""), "relu");
  int grads = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = g.nodes()[i];
    for (ValueId v : n.inputs) EXPECT_NE(v, t) << n.name << " still reads the ReLU's input";
    for (ValueId v : n.outputs) EXPECT_EQ(g.value(v).producer, static_cast<int>(i));
    if (n.op == "activation_grad" && n.name == "relu1") {
      ++grads;
      EXPECT_EQ(n.inputs[1], y);
      EXPECT_EQ(n.inputs[2], y);
    }
  }
  EXPECT_EQ(grads, 1);
  // Off switch: the same graph through a backend with MYELIN_CPU_FUSE=0 is unchanged.
  Graph same = net.graph;
  setenv("MYELIN_CPU_FUSE", "0", 1);
  make_backend(Device::cpu(), BackendOptions{.threads = 1})->fuse(same);
  unsetenv("MYELIN_CPU_FUSE");
  EXPECT_EQ(same.dump(), net.graph.dump());
}
