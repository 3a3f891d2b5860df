// The CPU engine's blocked activations (CpuBackend::choose_storage): a training step of small
// AlexNet- and ResNet-like graphs with activations kept nChw16c (and nChw8c for 24 channels)
// between oneDNN's kernels gives the loss, outputs and every gradient of the same step with
// MYELIN_CPU_BLOCKED=0; the plan blocks exactly the values between kernels that take the layout;
// the kernels register what they take; plain rows and blocked tiles convert by the definition.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/planner.h"
#include "cpu/blocked.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;

namespace {

const Attrs pad1{{"pad", int64_t{1}}};

// AlexNet-like: a thin first convolution (im2col + SGEMM, NCHW), then 16 -> 32 channels on
// oneDNN's blocked kernels, a padded 3x3 max pooling (9x9: one whole and one partial LRN tile of
// 64 pixels), LRN across the two channel blocks, another blocked convolution, an average pooling
// and a last convolution whose output the inner product reads as NCHW.
StepNet alexnet_like(bool training, ValueId* data = nullptr) {
  Graph g(training);
  StepBuilder b{g};
  ValueId x = g.param("data", Shape{3, 3, 18, 18}, Init{});
  if (data) *data = x;
  ValueId h = b.conv_relu(x, "conv1", 16, 3, pad1);
  h = b.conv_relu(h, "conv2", 32, 3, pad1);
  h = g.add1("max_pool2d", "pool2", {h},
             Attrs{{"kernel", int64_t{3}}, {"stride", int64_t{2}}, {"pad", int64_t{1}}});
  h = g.add1("lrn", "norm2", {h}, Attrs{{"size", int64_t{5}}, {"alpha", 0.5}});
  h = b.conv_relu(h, "conv3", 32, 3, pad1);
  h = g.add1("avg_pool2d", "pool3", {h}, Attrs{{"kernel", int64_t{2}}});
  h = b.conv_relu(h, "conv4", 16, 3, pad1);
  return finish_step_net(std::move(g), b.fc(h, "fc", 10));
}

// ResNet-like: a stem with batch norm (NCHW: its convolution is im2col + SGEMM), a residual block
// of blocked convolutions and batch norms (32 channels: two blocks) whose sum of the main path and
// a 1x1 projection stays blocked through its ReLU, then batch norm again before the inner product
// (NCHW).
StepNet resnet_like(bool training) {
  Graph g(training);
  StepBuilder b{g};
  ValueId x = g.param("data", Shape{4, 2, 9, 9}, Init{});
  ValueId h =
      g.add1("relu", "stem_relu", {b.bn(b.conv_no_bias(x, "stem", 16, 3, pad1), "stem_bn")});
  ValueId r = b.relu(b.bn(b.conv_no_bias(h, "res_a", 32, 3, pad1), "res_a_bn"), "res_a_relu");
  r = b.bn(b.conv_no_bias(r, "res_b", 32, 3, pad1), "res_b_bn");
  ValueId s = g.add1("add", "sum", {r, b.conv(h, "proj", 32, 1)});
  s = g.add1("relu", "sum_relu", {s});
  h = g.add1("relu", "head_relu", {b.bn(b.conv_no_bias(s, "head", 16, 3, pad1), "head_bn")});
  return finish_step_net(std::move(g), b.fc(h, "fc", 6));
}

// The small ResNet of models/resnet.yaml, narrower inputs: a thin stem (im2col + SGEMM, NCHW
// output) whose batch norm writes the blocked layout, a 2x2 max pooling, a residual block of 24
// channels (nchw8c; with MYELIN_CPU_BLOCK8=0 nchw16c padded to 32) with an identity shortcut, then
// 48 channels at stride 2 with a 1x1 projection, and the inner product over the last block's output
// (NCHW).
StepNet small_resnet(bool training) {
  Graph g(training);
  StepBuilder b{g};
  const Attrs stride2{{"stride", int64_t{2}}, {"pad", int64_t{1}}};
  ValueId x = g.param("data", Shape{4, 1, 11, 11}, Init{});  // odd: the pooling drops a row
  ValueId h = b.relu(b.bn(b.conv_no_bias(x, "conv1", 24, 3, pad1), "bn1"), "relu1");
  h = g.add1("max_pool2d", "pool1", {h}, Attrs{{"kernel", int64_t{2}}, {"stride", int64_t{2}}});
  ValueId r = b.relu(b.bn(b.conv_no_bias(h, "res1_conv1", 24, 3, pad1), "res1_bn1"), "res1_relu1");
  r = b.bn(b.conv_no_bias(r, "res1_conv2", 24, 3, pad1), "res1_bn2");
  h = b.relu(g.add1("add", "res1", {r, h}), "res1_relu");
  r = b.relu(b.bn(b.conv_no_bias(h, "res2_conv1", 48, 3, stride2), "res2_bn1"), "res2_relu1");
  r = b.bn(b.conv_no_bias(r, "res2_conv2", 48, 3, pad1), "res2_bn2");
  ValueId p =
      b.bn(b.conv_no_bias(h, "res2_proj", 48, 1, Attrs{{"stride", int64_t{2}}}), "res2_proj_bn");
  h = b.relu(g.add1("add", "res2", {r, p}), "res2_relu");
  return finish_step_net(std::move(g), b.fc(h, "fc", 6));
}

// 24 channels in blocks of 8 through the other pooling kernels: a padded 3x3 stride-2 max pooling
// (oneDNN forward, our window gradient) and a global average pooling (oneDNN), between blocked
// convolutions (16 -> 24, 24 -> 24 and a 1x1 24 -> 24 after the global pooling; biases
// included: the bias gradient reads nchw8c).
StepNet pooled_24(bool training) {
  Graph g(training);
  StepBuilder b{g};
  ValueId x = g.param("data", Shape{4, 16, 9, 9}, Init{});
  ValueId h = b.conv_relu(x, "conv1", 24, 3, pad1);
  h = g.add1("max_pool2d", "pool1", {h},
             Attrs{{"kernel", int64_t{3}}, {"stride", int64_t{2}}, {"pad", int64_t{1}}});
  h = b.conv_relu(h, "conv2", 24, 3, pad1);
  h = g.add1("avg_pool2d", "pool2", {h}, Attrs{{"kernel", int64_t{5}}});
  h = b.conv_relu(h, "conv3", 24, 1);  // reads the pooling's output blocked; the fc's input plain
  return finish_step_net(std::move(g), b.fc(h, "fc", 6));
}

// MYELIN_CPU_BLOCKED on or off; labels in [0, 6), step seed 3.
StepResult run(const StepNet& net, bool blocked) {
  return run_step(
      net, blocked,
      StepOptions{
          .switch_env = "MYELIN_CPU_BLOCKED", .bind_seed = 7, .label_classes = 6, .step_seed = 3});
}

std::set<std::string> blocked_values(const Graph& g) {
  std::set<std::string> names;
  for (const Value& v : g.values())
    if (cpu::is_blocked(v.layout)) names.insert(v.name);
  return names;
}

// The layout the plan gave the value named `name` (a failure where there is none).
Layout layout_of(const Graph& g, const std::string& name) {
  ValueId v = g.find(name);
  EXPECT_NE(v, kNoValue) << name;
  return v == kNoValue ? Layout::nchw : g.value(v).layout;
}

// Blocked and plain steps agree value by value, and the blocked one did block something.
void expect_same_step(const StepNet& net) {
  StepResult off = run(net, false), on = run(net, true);
  EXPECT_TRUE(blocked_values(off.graph).empty());
  EXPECT_FALSE(blocked_values(on.graph).empty());
  expect_steps_match(off, on, 1e-5, "blocked and plain steps differ");
}

}  // namespace

TEST(CpuBlocked, ConvPoolLrnTrainingStepMatches) {
  expect_same_step(alexnet_like(true));
}

TEST(CpuBlocked, ConvBatchNormResidualTrainingStepMatches) {
  expect_same_step(resnet_like(true));
}

// 24 channels in blocks of 8: oneDNN's 8-channel convolutions, batch norm (converting from the
// stem's plain convolution), the 2x2 pooling, the residual sum and ReLUs, forward and gradients.
TEST(CpuBlocked, EightChannelBlocksTrainingStepMatches) {
  expect_same_step(small_resnet(true));
}

TEST(CpuBlocked, EightChannelBlocksPoolingStepMatches) {
  StepNet net = pooled_24(true);
  expect_same_step(net);
  StepResult r = run(net, true);
  for (const char* name :
       {"conv1_relu.activation", "pool1.max_pool2d", "conv2_relu.activation", "pool2.avg_pool2d"}) {
    ValueId v = r.graph.find(name);
    ASSERT_NE(v, kNoValue) << name;
    EXPECT_EQ(r.graph.value(v).layout, Layout::nchw8c) << name;
  }
  int blocked_bias_grads = 0;
  for (const Node& n : r.graph.nodes())
    if (n.op == "bias_grad")
      blocked_bias_grads += r.graph.value(n.inputs[0]).layout == Layout::nchw8c;
  EXPECT_GE(blocked_bias_grads, 1);
  expect_same_step(pooled_24(false));
}

// MYELIN_CPU_BLOCK8=0 for the test's scope: 24 channels stored nchw16c, padded to 32.
struct Block16Only {
  Block16Only() { setenv("MYELIN_CPU_BLOCK8", "0", 1); }
  ~Block16Only() { unsetenv("MYELIN_CPU_BLOCK8"); }
};

// 24 channels padded to two blocks of 16, padding zero through every kernel (the plain step
// would not match if a padding channel leaked into a real one; run_step poisons the arena).
TEST(CpuBlocked, PaddedChannelsTrainingStepMatches) {
  Block16Only padded;
  expect_same_step(small_resnet(true));
}

TEST(CpuBlocked, InferenceGraphsMatch) {
  expect_same_step(alexnet_like(false));
  expect_same_step(resnet_like(false));
  expect_same_step(small_resnet(false));
  Block16Only padded;
  expect_same_step(small_resnet(false));
}

// Which values the plan blocks: those between kernels that take nChw16c, with 16k channels.
TEST(CpuBlocked, PlanBlocksTheChainBetweenBlockedKernels) {
  ValueId data = kNoValue;
  StepNet net = alexnet_like(true, &data);
  StepResult r = run(net, true);
  const Graph& g = r.graph;
  auto layout = [&](const std::string& name) { return layout_of(g, name); };
  // The ReLUs are fused: each convolution writes its ReLU's output.
  for (const char* name : {"conv2_relu.activation", "pool2.max_pool2d", "norm2.lrn",
                           "conv3_relu.activation", "pool3.avg_pool2d"})
    EXPECT_EQ(layout(name), Layout::nchw16c) << name;
  // The data (a parameter), the thin first convolution's output (im2col + SGEMM), the inner
  // product's input and the kept logits stay NCHW, and so does every parameter gradient.
  EXPECT_EQ(g.value(data).layout, Layout::nchw);
  for (const char* name : {"conv1_relu.activation", "conv4_relu.activation", "fc.inner_product"})
    EXPECT_EQ(layout(name), Layout::nchw) << name;
  for (ValueId v : g.kept()) EXPECT_EQ(g.value(v).layout, Layout::nchw) << g.value(v).name;
  // Gradients flowing back through the chain are blocked too: the LRN's input gradient.
  int blocked_grads = 0;
  for (const Node& n : g.nodes())
    if (n.op == "lrn_grad") blocked_grads += g.value(n.outputs[0]).layout == Layout::nchw16c;
  EXPECT_EQ(blocked_grads, 1);
}

// The residual block is blocked, its batch norms, sum and ReLU included (kernels whose operands
// agree; the sum and its ReLU are the last batch norm's, fuse.cpp, so the values between them are
// not stored); batch norm converts where its neighbours differ: the stem's writes the blocked
// input of the block from its plain convolution, the head's reads its blocked convolution and
// writes the plain input of the inner product.
TEST(CpuBlocked, PlanBlocksTheResidualBlockBetweenBatchNorms) {
  StepResult r = run(resnet_like(true), true);
  const Graph& g = r.graph;
  auto layout = [&](const std::string& name) { return layout_of(g, name); };
  for (const char* name : {"res_b_bn.batch_norm.0", "sum.add"})
    EXPECT_EQ(g.value(g.find(name)).producer, -1) << name;
  for (const char* name : {"stem_relu.activation", "res_a.conv2d", "res_a_relu.activation",
                           "res_b.conv2d", "proj.conv2d", "sum_relu.activation", "head.conv2d"})
    EXPECT_EQ(layout(name), Layout::nchw16c) << name;
  for (const char* name : {"stem.conv2d", "head_relu.activation"})
    EXPECT_EQ(layout(name), Layout::nchw) << name;
  // Gradients: batch norm's dy is blocked but for the head's (the gradient of its ReLU, whose
  // output is plain), its dx but for the stem's (read by the stem's im2col + SGEMM weight
  // gradient).
  int blocked_dy = 0, blocked_dx = 0;
  for (const Node& n : g.nodes())
    if (n.op == "batch_norm_grad") {
      blocked_dy += g.value(n.inputs[0]).layout == Layout::nchw16c;
      blocked_dx += g.value(n.outputs[0]).layout == Layout::nchw16c;
    }
  EXPECT_EQ(blocked_dy, 3);
  EXPECT_EQ(blocked_dx, 3);
}

// 24 channels are blocked in 8s (48 in 16s): the whole residual block of 24 channels and the
// pooling before it, from the stem's batch norm on (which writes the pooling's output: the ReLU's
// output between them is not stored, nor are the sums, done by the batch norms before them,
// fuse.cpp); the stem's convolution (im2col + SGEMM) and the last sum's ReLU, which the inner
// product reads, stay NCHW.
TEST(CpuBlocked, PlanBlocks24ChannelsInEights) {
  StepResult r = run(small_resnet(true), true);
  const Graph& g = r.graph;
  auto layout = [&](const std::string& name) { return layout_of(g, name); };
  for (const char* name : {"relu1.activation", "res1.add", "res2.add"})
    EXPECT_EQ(g.value(g.find(name)).producer, -1) << name;
  for (const char* name : {"pool1.max_pool2d", "res1_conv1.conv2d", "res1_relu1.activation",
                           "res1_conv2.conv2d", "res1_relu.activation"})
    EXPECT_EQ(layout(name), Layout::nchw8c) << name;
  EXPECT_EQ(layout("res2_conv1.conv2d"), Layout::nchw16c);
  for (const char* name : {"conv1.conv2d", "res2_relu.activation"})
    EXPECT_EQ(layout(name), Layout::nchw) << name;
  // No 24-channel activation gradient is plain but the stem's batch norm's dx.
  for (const Node& n : g.nodes())
    for (ValueId v : n.outputs) {
      const Value& val = g.value(v);
      if (n.phase != Phase::backward || val.kind != ValueKind::activation ||
          val.shape.rank() != 4 || val.shape[1] != 24 || n.op == "batch_norm_grad" ||
          n.op == "conv2d_grad_weight")
        continue;
      EXPECT_EQ(val.layout, Layout::nchw8c) << val.name;
    }
  // Blocks of 16 store padding: 24-channel values take 32 channels' bytes; blocks of 8 none.
  Block16Only padded;
  StepResult r16 = run(small_resnet(true), true);
  EXPECT_EQ(r16.graph.value(r16.graph.find("res1_relu.activation")).layout, Layout::nchw16c);
  EXPECT_GT(r16.arena, r.arena);
}

TEST(CpuBlocked, KeptValuesAndPlainConvolutionsStayPlain) {
  StepNet net = alexnet_like(true);
  ValueId pooled = net.graph.find("pool2.max_pool2d");
  ASSERT_NE(pooled, kNoValue);
  net.graph.keep(pooled);
  StepResult r = run(net, true);
  // Kept: the pooling's input and the LRN after it (tied to it) stay NCHW with it.
  EXPECT_EQ(r.graph.value(pooled).layout, Layout::nchw);
  EXPECT_EQ(r.graph.value(r.graph.find("conv2_relu.activation")).layout, Layout::nchw);
  EXPECT_EQ(r.graph.value(r.graph.find("norm2.lrn")).layout, Layout::nchw);
  EXPECT_EQ(r.graph.value(r.graph.find("conv3_relu.activation")).layout, Layout::nchw16c);
  // Convolutions pinned to im2col + SGEMM take no blocked operand, so nothing is blocked.
  setenv("MYELIN_CPU_LAYOUT", "gemm", 1);
  StepResult gemm = run(alexnet_like(true), true);
  unsetenv("MYELIN_CPU_LAYOUT");
  EXPECT_TRUE(blocked_values(gemm.graph).empty());
}

// Each kernel states where it is registered which operands take nchw16c: a convolution for the
// nodes on oneDNN's blocked kernels, each operand on its own; an elementwise kernel for every
// node, only all alike; batch norm for every node, each operand on its own; softmax, dropout,
// inner products and bias_add never.
TEST(CpuBlocked, KernelsRegisterTheLayoutTheyTake) {
  const KernelStorage* conv = kernel_storage("conv2d", DeviceKind::cpu);
  ASSERT_TRUE(conv && conv->layout);
  EXPECT_TRUE(conv->layout->when);
  EXPECT_EQ(conv->layout->slots.in, std::vector<int>{0});
  // y and, with "x16_out", x converted to nChw16c (fuse_x16.cpp)
  EXPECT_EQ(conv->layout->slots.out, (std::vector<int>{0, 1}));
  EXPECT_FALSE(conv->layout->slots.tied);
  EXPECT_FALSE(conv->half);
  const KernelStorage* add = kernel_storage("add", DeviceKind::cpu);
  ASSERT_TRUE(add && add->layout);
  EXPECT_FALSE(add->layout->when);
  EXPECT_TRUE(add->layout->slots.tied);
  const KernelStorage* bn = kernel_storage("batch_norm_grad", DeviceKind::cpu);
  ASSERT_TRUE(bn && bn->layout);
  EXPECT_FALSE(bn->layout->slots.tied);  // it converts between layouts
  // dy, x and, fused into the batch norm + pooling gradient, dy's second addend (bn_pool.cpp: 6,
  // or 7 after the stem's weights, 8 after its weights and image statistics or picks, 9 after
  // all three)
  EXPECT_EQ(bn->layout->slots.in, (std::vector<int>{0, 1, 6, 7, 8, 9}));
  for (const char* op : {"softmax", "dropout", "inner_product", "bias_add"}) {
    const KernelStorage* s = kernel_storage(op, DeviceKind::cpu);
    ASSERT_NE(s, nullptr) << op;
    EXPECT_FALSE(s->layout) << op;
  }
  EXPECT_EQ(kernel_storage("no_such_op", DeviceKind::cpu), nullptr);
}

// Plain rows and blocked tiles (16 and 8 channels) made from each other, for pixel counts with
// and without a remainder of the block and a partial last block: lanes past the real channels are
// zero, and tile_to_rows writes the real rows only.
TEST(CpuBlocked, RowsAndTilesConvert) {
  for (int64_t b : {8, 16})
    for (int64_t s : {5, 8, 16, 37, 196})
      for (int64_t real : {b / 2 + 1, b}) {
        std::vector<float> rows(static_cast<size_t>((b + 1) * s)), tile(static_cast<size_t>(b * s));
        std::fill(tile.begin(), tile.end(), -1.0f);
        for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i) + 0.5f;
        cpu::rows_to_tile(rows.data(), s, real, tile.data(), b);
        for (int64_t i = 0; i < s; ++i)
          for (int64_t k = 0; k < b; ++k)
            ASSERT_EQ(tile[i * b + k], k < real ? rows[k * s + i] : 0.0f) << b << " " << s;
        std::vector<float> back(rows.size(), -7);
        cpu::tile_to_rows(tile.data(), s, real, back.data(), b);
        for (int64_t i = 0; i < (b + 1) * s; ++i)
          ASSERT_EQ(back[i], i < real * s ? rows[i] : -7.0f) << b << " " << s << " " << i;
      }
}

// nChw8c and nChw16c made from each other (reblock): every channel where the definition puts it,
// the padding of 16-channel blocks zero (24 and 40 channels), and back unchanged.
TEST(CpuBlocked, EightAndSixteenChannelBlocksConvert) {
  const int64_t n = 3, hw = 5;
  for (int64_t c : {8, 16, 24, 40}) {
    auto at = [&](int64_t block, int64_t i, int64_t ch, int64_t p) {
      return ((i * cpu::channel_blocks(c, block) + ch / block) * hw + p) * block + ch % block;
    };
    std::vector<float> x8(static_cast<size_t>(n * cpu::padded_channels(c, 8) * hw));
    std::vector<float> x16(static_cast<size_t>(n * cpu::padded_channels(c, 16) * hw), -1.0f);
    for (size_t i = 0; i < x8.size(); ++i) x8[i] = static_cast<float>(i) + 0.25f;
    cpu::reblock(x8.data(), 8, x16.data(), 16, n, c, hw);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < cpu::padded_channels(c, 16); ++ch)
        for (int64_t p = 0; p < hw; ++p)
          ASSERT_EQ(x16[at(16, i, ch, p)], ch < c ? x8[at(8, i, ch, p)] : 0.0f) << c;
    std::vector<float> back(x8.size(), -1.0f);
    cpu::reblock(x16.data(), 16, back.data(), 8, n, c, hw);
    EXPECT_EQ(back, x8) << c;
  }
}

// The layout of a blocked value by its channel count.
TEST(CpuBlocked, BlockedLayoutByChannels) {
  EXPECT_EQ(cpu::blocked_layout(24), Layout::nchw8c);
  EXPECT_EQ(cpu::blocked_layout(40), Layout::nchw8c);
  for (int64_t c : {16, 32, 48, 20, 3}) EXPECT_EQ(cpu::blocked_layout(c), Layout::nchw16c) << c;
  Block16Only padded;
  EXPECT_EQ(cpu::blocked_layout(24), Layout::nchw16c);
  EXPECT_EQ(cpu::block_of(Layout::nchw8c), 8);
  EXPECT_EQ(cpu::block_of(Layout::nchw), 0);
  EXPECT_EQ(stored_numel(Shape{2, 24, 3, 3}, Layout::nchw8c), 2 * 24 * 9);  // never padded
  EXPECT_EQ(stored_numel(Shape{2, 24, 3, 3}, Layout::nchw16c), 2 * 32 * 9);
}
