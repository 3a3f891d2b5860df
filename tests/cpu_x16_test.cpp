// share_wide_inputs (cpu/fuse_x16.cpp): a 24-channel activation read by a 3x3 stride-2
// convolution to 48 channels and by a 1x1 projection beside it (the small ResNet's second
// residual block) is converted to nChw16c once, by the first convolution's forward, and the
// weight gradients and the projection read that copy. With MYELIN_CPU_SHARE_X16 on and off the
// step agrees (the projection's kernels change: not to the bit), blocked and plain.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/backend.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;

namespace {

// conv (3 -> 24 channels, plain: im2col + SGEMM) -> batch norm -> ReLU stores h nChw8c; h is
// read by a 3x3 stride-2 convolution and a 1x1 stride-2 projection to 48 channels.
StepNet wide_net(bool training) {
  Graph g(training);
  StepBuilder b{g};
  const Attrs pad1{{"pad", int64_t{1}}};
  ValueId x = g.param("data", Shape{3, 3, 10, 10}, Init{});
  ValueId h = b.relu(b.bn(b.conv(x, "conv1", 24, 3, pad1), "bn1"), "relu1");
  ValueId r = b.bn(b.conv(h, "conv2", 48, 3, {{"pad", int64_t{1}}, {"stride", int64_t{2}}}), "bn2");
  ValueId p = b.bn(b.conv(h, "proj", 48, 1, {{"stride", int64_t{2}}}), "proj_bn");
  h = b.relu(g.add1("add", "sum", {r, p}), "sum_relu");
  return finish_step_net(std::move(g), b.fc(h, "ip", 5));
}

// The copy: the output of the node with "x16_out", or kNoValue.
ValueId copy_of(const Graph& g) {
  ValueId copy = kNoValue;
  for (const Node& n : g.nodes())
    if (n.attrs.has("x16_out")) copy = n.outputs.at(1);
  return copy;
}

int readers(const Graph& g, ValueId v) {
  int r = 0;
  for (const Node& n : g.nodes())
    for (ValueId i : n.inputs) r += i == v;
  return r;
}

void expect_same_step(bool training, const char* blocked) {
  const StepOptions o{.switch_env = "MYELIN_CPU_SHARE_X16", .bind_seed = 7, .label_classes = 5};
  setenv("MYELIN_CPU_BLOCKED", blocked, 1);
  const StepNet net = wide_net(training);
  StepResult off = run_step(net, false, o), on = run_step(net, true, o);
  unsetenv("MYELIN_CPU_BLOCKED");
  EXPECT_EQ(on.nodes, off.nodes);
  EXPECT_EQ(copy_of(off.graph), kNoValue);
  const ValueId copy = copy_of(on.graph);
  ASSERT_NE(copy, kNoValue) << on.graph.dump();
  // The projection, and in training both weight gradients.
  EXPECT_EQ(readers(on.graph, copy), training ? 3 : 1) << on.graph.dump();
  const Layout want = std::string(blocked) == "1" ? Layout::nchw16c : Layout::nchw;
  EXPECT_EQ(on.graph.value(copy).layout, want);
  expect_steps_match(off, on, 1e-5, "steps with and without the shared nChw16c input differ");
}

}  // namespace

TEST(CpuX16, SharedWideInputStepMatches) {
  for (const char* blocked : {"1", "0"}) {
    expect_same_step(true, blocked);
    expect_same_step(false, blocked);
  }
}

// With 16-channel blocks for 24 channels (MYELIN_CPU_BLOCK8=0) nothing converts: no copy.
TEST(CpuX16, NoCopyWithoutEightChannelBlocks) {
  const StepOptions o{.switch_env = "MYELIN_CPU_SHARE_X16", .bind_seed = 7, .label_classes = 5};
  setenv("MYELIN_CPU_BLOCK8", "0", 1);
  StepResult on = run_step(wide_net(true), true, o);
  unsetenv("MYELIN_CPU_BLOCK8");
  EXPECT_EQ(copy_of(on.graph), kNoValue) << on.graph.dump();
}
