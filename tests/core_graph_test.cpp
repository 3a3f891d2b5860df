// The graph IR, autodiff and the memory planner.
#include <gtest/gtest.h>

#include "core/autodiff.h"
#include "core/error.h"
#include "core/op_registry.h"
#include "core/planner.h"

using namespace myelin;

TEST(Graph, InfersConvAndPoolShapes) {
  Graph g;
  ValueId x = g.input("data", Shape{64, 1, 28, 28});
  ValueId w = g.param("conv1.weight", Shape{20, 1, 5, 5}, {"xavier"});
  ValueId y = g.add1("conv2d", "conv1", {x, w});
  EXPECT_EQ(g.value(y).shape, (Shape{64, 20, 24, 24}));
  ValueId p = g.add1("max_pool2d", "pool1", {y}, Attrs{{"kernel", int64_t{2}}});
  EXPECT_EQ(g.value(p).shape, (Shape{64, 20, 12, 12}));
}

TEST(Graph, ShapeMismatchNamesOpAndShapes) {
  Graph g;
  ValueId x = g.input("data", Shape{8, 3, 28, 28});
  ValueId w = g.param("conv1.weight", Shape{20, 1, 5, 5}, {"xavier"});
  try {
    g.add1("conv2d", "conv1", {x, w});
    FAIL() << "expected a ShapeError";
  } catch (const ShapeError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("conv2d 'conv1'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, 3, 28, 28]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[20, 1, 5, 5]"), std::string::npos) << msg;
  }
}

TEST(Autodiff, GivesEveryParameterAGradientOfItsShape) {
  Graph g;
  ValueId x = g.input("data", Shape{4, 1, 8, 8});
  ValueId labels = g.input("label", Shape{4}, DType::i32);
  ValueId w = g.param("conv.weight", Shape{3, 1, 3, 3}, {"xavier"});
  ValueId b = g.param("conv.bias", Shape{3}, {});
  ValueId h = g.add1("relu", "relu", {g.add1("conv2d", "conv", {x, w, b})});
  ValueId fw = g.param("fc.weight", Shape{10, 108}, {"xavier"});
  ValueId logits = g.add1("inner_product", "fc", {h, fw});
  ValueId loss = g.add1("softmax_cross_entropy", "loss", {logits, labels});
  auto grads = differentiate(g, loss, g.params());
  ASSERT_EQ(grads.size(), 3u);
  for (auto [p, dp] : grads) EXPECT_EQ(g.value(p).shape, g.value(dp).shape) << g.value(p).name;
  for (const Node& n : g.nodes())
    if (n.op == "conv2d_grad_input") ADD_FAILURE() << "no gradient is needed for the input data";
}

TEST(Planner, ReusesMemoryOfDeadValues) {
  Graph g;
  ValueId x = g.input("data", Shape{16, 1024});
  ValueId v = x;
  for (int i = 0; i < 8; ++i) v = g.add1("relu", "r" + std::to_string(i), {v});
  g.keep(v);
  MemoryPlan plan = plan_memory(g);
  EXPECT_EQ(plan.naive_bytes, 8u * 16 * 1024 * 4);
  EXPECT_LE(plan.arena_bytes, 2u * 16 * 1024 * 4);  // a chain needs two live buffers at most
  for (const Node& n : g.nodes()) {                 // no node's output overlaps its input
    if (g.value(n.inputs[0]).kind == ValueKind::activation) {
      EXPECT_NE(plan.offset[n.inputs[0]], plan.offset[n.outputs[0]]);
    }
  }
}
