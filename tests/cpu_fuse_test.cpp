// The CPU engine's ReLU fusion (CpuBackend::fuse): a training step of small LeNet-, AlexNet- and
// ResNet-like graphs compiled with it and with MYELIN_CPU_FUSE=0 gives the same loss, outputs and
// gradients, with fewer nodes and a smaller arena; a ReLU whose input is read by anything else
// (or kept) is left alone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <tuple>

#include "core/backend.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;

namespace {

// A step-compared network and how many ReLUs should fuse.
struct Net : StepNet {
  int fusable = 0;
};

// MYELIN_CPU_FUSE on or off; labels in [0, 5).
StepResult run(const Net& net, bool fuse) {
  return run_step(
      net, fuse, StepOptions{.switch_env = "MYELIN_CPU_FUSE", .bind_seed = 11, .label_classes = 5});
}

// LeNet/AlexNet-like: a first convolution (im2col + SGEMM: 3 input channels), a second one that
// oneDNN's blocked kernel takes (16 -> 32 channels), each with a ReLU; inner products with and
// without bias, each with a ReLU; the last one gives the logits. In training the second ReLU's
// gradient fuses too, into the 2x2 max pooling's gradient after it (5x5: a row and column left
// out).
Net conv_fc_net(bool training) {
  Graph g(training);
  StepBuilder b{g};
  ValueId x = g.param("data", Shape{5, 3, 12, 12}, Init{});  // a param: its gradient is checked
  ValueId h = b.relu(b.conv(x, "conv1", 16, 3, {{"pad", int64_t{1}}}), "relu1");
  h = b.relu(b.conv(h, "conv2", 32, 3, {{"stride", int64_t{2}}}), "relu2");
  h = g.add1("max_pool2d", "pool2", {h}, Attrs{{"kernel", int64_t{2}}});
  h = b.relu(b.fc(h, "ip1", 40), "relu3");
  h = b.relu(b.fc(h, "ip2", 24, false), "relu4");
  return Net{finish_step_net(std::move(g), b.fc(h, "ip3", 10)), training ? 5 : 4};
}

// ResNet-like: conv -> BN -> ReLU twice, then a residual sum and a leaky ReLU of an inner product.
// In training the two ReLUs' gradients fuse into the batch norms' gradients too.
Net bn_net(bool training) {
  Graph g(training);
  StepBuilder b{g};
  ValueId x = g.param("data", Shape{4, 2, 9, 9}, Init{});
  ValueId h = b.relu(b.bn(b.conv(x, "conv1", 16, 3, {{"pad", int64_t{1}}}), "bn1"), "relu1");
  ValueId r = b.relu(b.bn(b.conv(h, "conv2", 16, 3, {{"pad", int64_t{1}}}), "bn2"), "relu2");
  h = g.add1("add", "sum", {h, r});
  h = g.add1("leaky_relu", "relu3", {b.fc(h, "ip1", 20)}, Attrs{{"alpha", 0.1}});
  return Net{finish_step_net(std::move(g), b.fc(h, "ip2", 6)), training ? 5 : 3};
}

// Where fusion must not happen: the convolution's output also feeds a residual sum, an inner
// product's output is kept, a ReLU of a pooling (no epilogue there), a sigmoid, and a leaky ReLU
// with a negative slope (its output's sign is not its input's).
Net unfusable_net(bool training) {
  Graph g(training);
  StepBuilder b{g};
  ValueId x = g.param("data", Shape{3, 4, 8, 8}, Init{});
  ValueId t = b.conv(x, "conv1", 4, 3, {{"pad", int64_t{1}}});
  ValueId h = g.add1("add", "sum", {t, b.relu(t, "relu1")});
  h = b.relu(g.add1("max_pool2d", "pool", {h}, Attrs{{"kernel", int64_t{2}}}), "relu2");
  ValueId kept = b.fc(h, "ip1", 12);
  g.keep(kept);
  h = g.add1("sigmoid", "sig", {b.fc(b.relu(kept, "relu3"), "ip2", 12)});
  h = g.add1("leaky_relu", "neg", {b.fc(h, "ip3", 12)}, Attrs{{"alpha", -0.5}});
  Net n{finish_step_net(std::move(g), b.fc(h, "ip4", 5)), 0};
  n.compared.push_back(kept);
  return n;
}

// The stem chain on a [3, cin, side, side] image, a parameter (its gradient asked) or an input:
// conv1 (24 filters, 3x3, `conv` its stride and padding) -> bn1 -> relu1 -> 2x2 pool1, then
// conv2 + relu2 and an inner product; `fusable`: 2 nodes in training, 1 in inference.
Net stem_chain(bool training, bool image_is_param, int64_t side, int64_t cin, const Attrs& conv) {
  Graph g(training);
  StepBuilder b{g};
  const Shape image{3, cin, side, side};
  ValueId x = image_is_param ? g.param("data", image, Init{}) : g.input("data", image);
  ValueId w = g.param("conv1.weight", Shape{24, cin, 3, 3}, Init{});
  ValueId h = b.relu(b.bn(g.add1("conv2d", "conv1", {x, w}, conv), "bn1"), "relu1");
  h = g.add1("max_pool2d", "pool1", {h}, Attrs{{"kernel", int64_t{2}}, {"stride", int64_t{2}}});
  h = b.relu(b.conv(h, "conv2", 24, 3, {{"pad", int64_t{1}}}), "relu2");
  Net n{finish_step_net(std::move(g), b.fc(h, "ip", 5)), training ? 2 : 1};
  for (const char* state : {"bn1.mean", "bn1.var"}) n.compared.push_back(n.graph.find(state));
  return n;
}

// A ResNet stem: a thin convolution (im2col + SGEMM, plain output), batch norm, ReLU and a 2x2
// max pooling, then a 24-channel convolution (blocked) and the inner product. `side` odd: the
// pooling leaves a row and a column out. The batch norm's running statistics are compared too.
// The first convolution has no bias, as in ResNets: its gradient would be zero but for rounding.
Net stem_net(bool training, int64_t side) {
  return stem_chain(training, true, side, 1, Attrs{{"pad", int64_t{1}}});
}

// MYELIN_CPU_BN_POOL on or off (the other fusions on but the stem convolution's, which would take
// the convolution in where no gradient is asked for the image): the batch norm + ReLU + pooling
// chain fused into one node forward and one backward (`fusable` nodes fewer), the same step
// otherwise.
void expect_same_bn_pool_step(const Net& net) {
  const StepOptions o{.switch_env = "MYELIN_CPU_BN_POOL", .bind_seed = 5, .label_classes = 5};
  setenv("MYELIN_CPU_STEM", "0", 1);
  StepResult off = run_step(net, false, o), on = run_step(net, true, o);
  unsetenv("MYELIN_CPU_STEM");
  EXPECT_EQ(on.nodes + net.fusable, off.nodes) << on.graph.dump();
  int pooled = 0;
  for (const Node& n : on.graph.nodes()) pooled += n.attrs.s("pool", "") == "max2";
  EXPECT_EQ(pooled, net.fusable);
  EXPECT_LT(on.arena, off.arena);
  expect_steps_match(off, on, 1e-5, "fused and unfused batch norm + pooling differ");
}

int fused_nodes(const Graph& g) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.attrs.has("post");
  return n;
}

// Fused and unfused steps agree value by value; the fused graph lost one node per fused ReLU
// (or ReLU gradient).
void expect_same_step(const Net& net) {
  StepResult off = run(net, false), on = run(net, true);
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
  expect_steps_match(off, on, 1e-6, "fused and unfused steps differ");
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

// Blocked (tiles) and plain (rows): the ReLU's gradient inside the batch norm's both ways.
TEST(CpuFuse, BatchNormReluTrainingStepMatches) {
  expect_same_step(bn_net(true));
  setenv("MYELIN_CPU_BLOCKED", "0", 1);
  expect_same_step(bn_net(true));
  unsetenv("MYELIN_CPU_BLOCKED");
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

// A stem whose image is an input (no gradient asked), so that its convolution (cin input channels,
// 3x3, `conv` its stride and padding) fuses into the batch norm too; `fusable`: the convolution
// and its weight gradient.
Net stem_input_net(bool training, int64_t side, int64_t cin, Attrs conv) {
  return stem_chain(training, false, side, cin, conv);
}

// A residual block on a dense stem whose image is an input: the pooling's gradient a sum.
Net stem_residual_net(int64_t side = 12) {
  const Attrs pad1{{"pad", int64_t{1}}};
  Graph g(true);
  StepBuilder b{g};
  ValueId x = g.input("data", Shape{3, 1, side, side});
  ValueId w = g.param("conv1.weight", Shape{24, 1, 3, 3}, Init{});
  ValueId h = b.relu(b.bn(g.add1("conv2d", "conv1", {x, w}, pad1), "bn1"), "relu1");
  h = g.add1("max_pool2d", "pool1", {h}, Attrs{{"kernel", int64_t{2}}});
  ValueId r = b.bn(b.conv(h, "conv2", 24, 3, pad1), "bn2");
  h = b.relu(g.add1("add", "sum", {r, h}), "sum_relu");
  return Net{finish_step_net(std::move(g), b.fc(h, "ip", 5)), 1};
}

// MYELIN_CPU_STEM on or off: the stem convolution computed inside the batch norm + pooling
// kernels (and its weight gradient inside their gradient's) or apart.
void expect_same_stem_step(const Net& net) {
  const StepOptions o{.switch_env = "MYELIN_CPU_STEM", .bind_seed = 9, .label_classes = 5};
  StepResult off = run_step(net, false, o), on = run_step(net, true, o);
  EXPECT_EQ(on.nodes + net.fusable, off.nodes) << on.graph.dump();
  int stems = 0;
  for (const Node& n : on.graph.nodes()) stems += n.attrs.s("conv", "") == "stem";
  EXPECT_EQ(stems, net.fusable);
  EXPECT_LT(on.arena, off.arena);
  expect_steps_match(off, on, 1e-5, "fused and unfused stem convolution differ");
}

// Residual sums after batch norms: add(bn(conv(h)), h) and its ReLU (24 channels), and
// add(bn(conv(s)), bn(proj(s))) without one (16 channels, stride 2); `fusable`: the two adds and
// the ReLU.
Net residual_net(bool training) {
  Graph g(training);
  StepBuilder b{g};
  const Attrs pad1{{"pad", int64_t{1}}}, stride2{{"stride", int64_t{2}}};
  ValueId x = g.param("data", Shape{3, 8, 9, 9}, Init{});
  ValueId h = b.conv_relu(x, "conv1", 24, 3, pad1);
  ValueId r = b.bn(b.conv(h, "conv2", 24, 3, pad1), "bn2");
  ValueId s = b.relu(g.add1("add", "sum1", {r, h}), "sum1_relu");
  ValueId t =
      b.bn(b.conv(s, "conv3", 16, 3, Attrs{{"pad", int64_t{1}}, {"stride", int64_t{2}}}), "bn3");
  t = g.add1("add", "sum2", {t, b.bn(b.conv(s, "proj", 16, 1, stride2), "proj_bn")});
  return Net{finish_step_net(std::move(g), b.fc(t, "ip", 5)), 3};
}

// MYELIN_CPU_RESIDUAL on or off: the sums (and the ReLU after one) inside the batch norms. The
// ReLU gradients stay out of the adds (which the fused ReLU's would join).
void expect_same_residual_step(const Net& net) {
  const StepOptions o{.switch_env = "MYELIN_CPU_RESIDUAL", .bind_seed = 3, .label_classes = 5};
  setenv("MYELIN_CPU_ADD_RELU_GRAD", "0", 1);
  StepResult off = run_step(net, false, o), on = run_step(net, true, o);
  unsetenv("MYELIN_CPU_ADD_RELU_GRAD");
  EXPECT_EQ(on.nodes + net.fusable, off.nodes) << on.graph.dump();
  EXPECT_LE(on.arena, off.arena);  // the peak may lie elsewhere
  expect_steps_match(off, on, 1e-5, "fused and unfused residual sums differ");
}

// Batch norm + ReLU + 2x2 max pooling as one kernel and its gradient as one, against the three
// kernels apart: even and odd sizes, 24 channels in blocks of 8 (the default), padded to 16, and
// all plain.
TEST(CpuFuse, BatchNormPoolStepMatches) {
  for (int64_t side : {8, 11}) {
    expect_same_bn_pool_step(stem_net(true, side));
    expect_same_bn_pool_step(stem_net(false, side));
  }
  for (const char* env : {"MYELIN_CPU_BLOCK8", "MYELIN_CPU_BLOCKED"}) {
    setenv(env, "0", 1);
    expect_same_bn_pool_step(stem_net(true, 11));
    unsetenv(env);
  }
}

// The stem convolution inside them: 1 and 3 input channels (9 taps: the window loops with the
// convolution inside; 27: tiles), padding 1 (even and odd sizes) and stride 2 without padding, in
// blocks of 8, 16 and plain. One channel with padding 1 is the dense stem (StemConv::dense), whose
// image moments go by rows of 16 pixels: sides 8, 16 and 21 (part of a row, whole rows, both).
TEST(CpuFuse, StemConvolutionStepMatches) {
  const Attrs pad1{{"pad", int64_t{1}}}, stride2{{"stride", int64_t{2}}};
  for (bool training : {true, false}) {
    expect_same_stem_step(stem_input_net(training, 8, 1, pad1));
    expect_same_stem_step(stem_input_net(training, 16, 1, pad1));
    expect_same_stem_step(stem_input_net(training, 21, 1, pad1));
    expect_same_stem_step(stem_input_net(training, 11, 3, pad1));
    expect_same_stem_step(stem_input_net(training, 13, 3, stride2));
    expect_same_stem_step(stem_input_net(training, 13, 1, stride2));
  }
  for (const char* env : {"MYELIN_CPU_BLOCK8", "MYELIN_CPU_BLOCKED"}) {
    setenv(env, "0", 1);
    expect_same_stem_step(stem_input_net(true, 11, 1, pad1));
    unsetenv(env);
  }
  // The image's gradient asked for (data a parameter): the convolution stays apart.
  Net with_grad = stem_net(true, 8);
  with_grad.fusable = 0;
  const StepOptions o{.switch_env = "MYELIN_CPU_STEM", .bind_seed = 9, .label_classes = 5};
  EXPECT_EQ(run_step(with_grad, true, o).nodes, run_step(with_grad, false, o).nodes);
}

// MYELIN_CPU_STEM_STATS on or off: the fused stem's gradient takes the image's statistics from the
// forward ("stem_stats": one output and one input more) or computes them again from the image.
// The same doubles either way, so the same step to the bit: 9 taps (the window loops) and 27
// (tiles), padding 1 and stride 2.
TEST(CpuFuse, StemStatisticsFromTheForwardMatch) {
  const Attrs pad1{{"pad", int64_t{1}}}, stride2{{"stride", int64_t{2}}};
  const StepOptions o{.switch_env = "MYELIN_CPU_STEM_STATS", .bind_seed = 9, .label_classes = 5};
  const std::tuple<int64_t, int64_t, Attrs> cases[] = {
      {8, 1, pad1}, {21, 1, pad1}, {11, 3, pad1}, {13, 1, stride2}};
  for (const auto& [side, cin, conv] : cases) {
    const Net net = stem_input_net(true, side, cin, conv);
    StepResult off = run_step(net, false, o), on = run_step(net, true, o);
    EXPECT_EQ(on.nodes, off.nodes);
    int passing = 0;
    for (const Node& n : on.graph.nodes()) passing += n.attrs.i("stem_stats", 0) != 0;
    EXPECT_EQ(passing, 1) << on.graph.dump();
    for (const Node& n : off.graph.nodes()) EXPECT_FALSE(n.attrs.has("stem_stats"));
    expect_steps_match(off, on, 0.0, "the stem's statistics from the forward differ");
  }
}

// MYELIN_CPU_STEM_PAIRS on or off: the dense stem's forward and gradient take its 8-lane blocks two
// at a time as 16 lanes (StemConv::pool_pair, grad_pair) or one at a time; the same operations
// lane by lane, so the same step to the bit. 24 channels (a pair and a block alone), sides even and
// odd, and with the pooling's gradient a sum (a residual block on the stem: dp added from two
// addends).
TEST(CpuFuse, StemPairsMatchBitForBit) {
  const Attrs pad1{{"pad", int64_t{1}}};
  const StepOptions o{.switch_env = "MYELIN_CPU_STEM_PAIRS", .bind_seed = 9, .label_classes = 5};
  for (const Net& net :
       {stem_input_net(true, 8, 1, pad1), stem_input_net(true, 11, 1, pad1), stem_residual_net()}) {
    for (const char* picks : {"1", "0"}) {  // the gradient from the forward's picks or not
      setenv("MYELIN_CPU_STEM_PICKS", picks, 1);
      StepResult off = run_step(net, false, o), on = run_step(net, true, o);
      unsetenv("MYELIN_CPU_STEM_PICKS");
      EXPECT_EQ(on.nodes, off.nodes);
      expect_steps_match(off, on, 0.0, "the stem's paired blocks differ");
    }
  }
}

// MYELIN_CPU_STEM_PICKS on or off: the dense stem's gradient from the picks the forward stored
// ("stem_picks", one output and one input more) or from x and z computed again. The same sum(dz)
// and weight-gradient terms; sum(dz * (x - mean)) by linearity, so close, not equal. Blocked in 8
// (pairs and a block alone) and 16, plain, sides even and odd, the pooling's gradient a sum added
// by the kernel or apart (MYELIN_CPU_DP_SUM=0: then dp is plain and the gradient's tiles have 16
// lanes where the forward's had 8; the picks go by 8 lanes either way).
TEST(CpuFuse, StemPicksStepMatches) {
  const Attrs pad1{{"pad", int64_t{1}}};
  const StepOptions o{.switch_env = "MYELIN_CPU_STEM_PICKS", .bind_seed = 9, .label_classes = 5};
  for (const char* blocked : {"1", "0"})
    for (const Net& net : {stem_input_net(true, 8, 1, pad1), stem_input_net(true, 21, 1, pad1),
                           stem_residual_net(), stem_residual_net(10)})
      for (const char* dp_sum : {"1", "0"}) {
        setenv("MYELIN_CPU_BLOCKED", blocked, 1);
        setenv("MYELIN_CPU_DP_SUM", dp_sum, 1);
        StepResult off = run_step(net, false, o), on = run_step(net, true, o);
        unsetenv("MYELIN_CPU_DP_SUM");
        unsetenv("MYELIN_CPU_BLOCKED");
        EXPECT_EQ(on.nodes, off.nodes);
        int passing = 0;
        for (const Node& n : on.graph.nodes()) passing += n.attrs.i("stem_picks", 0) != 0;
        EXPECT_EQ(passing, 2) << on.graph.dump();
        expect_steps_match(off, on, 1e-5, "the stem gradient from the forward's picks differs");
      }
}

// Residual sums inside batch norms, blocked (8 and 16 channels a block), padded and plain.
TEST(CpuFuse, ResidualSumStepMatches) {
  expect_same_residual_step(residual_net(true));
  expect_same_residual_step(residual_net(false));
  for (const char* env : {"MYELIN_CPU_BLOCK8", "MYELIN_CPU_BLOCKED"}) {
    setenv(env, "0", 1);
    expect_same_residual_step(residual_net(true));
    unsetenv(env);
  }
}

// The gradient of the ReLU after residual_net's first sum reaches it as the sum of its two
// convolutions' input gradients, and so does conv1's: the adds apply the ReLUs' masks themselves
// (a node fewer each), blocked and plain.
TEST(CpuFuse, AddReluGradientStepMatches) {
  Net net = residual_net(true);
  net.fusable = 2;
  const StepOptions o{.switch_env = "MYELIN_CPU_ADD_RELU_GRAD", .bind_seed = 4, .label_classes = 5};
  for (const char* blocked : {"1", "0"}) {
    setenv("MYELIN_CPU_BLOCKED", blocked, 1);
    StepResult off = run_step(net, false, o), on = run_step(net, true, o);
    unsetenv("MYELIN_CPU_BLOCKED");
    EXPECT_EQ(on.nodes + net.fusable, off.nodes) << on.graph.dump();
    int masked_adds = 0;
    for (const Node& n : on.graph.nodes())
      masked_adds += n.op == "add" && n.attrs.s("post", "") == "relu_grad";
    EXPECT_EQ(masked_adds, net.fusable);
    expect_steps_match(off, on, 1e-6, "fused and unfused ReLU gradients of sums differ");
  }
}

// A residual block on the fused stem: the pooling's output read by the block's convolution and its
// shortcut, so its gradient is a sum, which the batch norm + pooling gradient adds itself
// (MYELIN_CPU_DP_SUM: one node fewer), with and without the stem convolution inside, blocked and
// plain.
TEST(CpuFuse, PoolGradientSumStepMatches) {
  auto net = [](bool data_input) {
    Graph g(true);
    StepBuilder b{g};
    const Attrs pad1{{"pad", int64_t{1}}};
    ValueId x = data_input ? g.input("data", Shape{3, 1, 10, 10})
                           : g.param("data", Shape{3, 1, 10, 10}, Init{});
    ValueId w = g.param("conv1.weight", Shape{24, 1, 3, 3}, Init{});
    ValueId h = b.relu(b.bn(g.add1("conv2d", "conv1", {x, w}, pad1), "bn1"), "relu1");
    h = g.add1("max_pool2d", "pool1", {h}, Attrs{{"kernel", int64_t{2}}});
    ValueId r = b.bn(b.conv(h, "conv2", 24, 3, pad1), "bn2");
    h = b.relu(g.add1("add", "sum", {r, h}), "sum_relu");
    return Net{finish_step_net(std::move(g), b.fc(h, "ip", 5)), 1};
  };
  const StepOptions o{.switch_env = "MYELIN_CPU_DP_SUM", .bind_seed = 6, .label_classes = 5};
  for (bool data_input : {true, false})
    for (const char* blocked : {"1", "0"}) {
      setenv("MYELIN_CPU_BLOCKED", blocked, 1);
      Net n = net(data_input);
      StepResult off = run_step(n, false, o), on = run_step(n, true, o);
      // The stem's statistics passed to its gradient (an input more, before the second addend)
      // change no value's layout: the addend stays as its producer stores it.
      setenv("MYELIN_CPU_STEM_STATS", "0", 1);
      const StepResult no_stats = run_step(n, true, o);
      unsetenv("MYELIN_CPU_STEM_STATS");
      unsetenv("MYELIN_CPU_BLOCKED");
      for (const Value& v : no_stats.graph.values())
        EXPECT_EQ(on.graph.value(on.graph.find(v.name)).layout, v.layout) << v.name;
      EXPECT_EQ(on.nodes + n.fusable, off.nodes) << on.graph.dump();
      expect_steps_match(off, on, 1e-6, "fused and unfused sums into the pooling gradient differ");
    }
}
