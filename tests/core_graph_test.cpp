// The graph IR, autodiff, the memory planner and the ops' FLOP rules.
#include <gtest/gtest.h>

#include <map>

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

// Each op's FLOPs by hand from its shapes: a multiply-add counts 2, a bias add 1 per output.
TEST(OpFlops, FollowTheOpsRules) {
  Graph g(true);
  ValueId x = g.input("data", Shape{2, 4, 9, 9});
  ValueId w = g.param("conv.weight", Shape{6, 2, 3, 3}, {"xavier"});
  ValueId b = g.param("conv.bias", Shape{6}, {});
  Attrs conv{{"stride", int64_t{2}}, {"groups", int64_t{2}}};
  ValueId y = g.add1("conv2d", "conv", {x, w, b}, conv);  // [2, 6, 4, 4]
  ValueId r = g.add1("relu", "relu", {y});
  ValueId p = g.add1("max_pool2d", "pool", {r}, Attrs{{"kernel", int64_t{2}}});  // [2, 6, 2, 2]
  ValueId f = g.add1("flatten", "flat", {p});
  ValueId fw = g.param("fc.weight", Shape{5, 24}, {"xavier"});
  ValueId fb = g.param("fc.bias", Shape{5}, {});
  ValueId logits = g.add1("inner_product", "fc", {f, fw, fb});
  ValueId labels = g.input("label", Shape{2}, DType::i32);
  ValueId loss = g.add1("softmax_cross_entropy", "loss", {logits, labels});
  differentiate(g, loss, g.params());
  std::map<std::string, double> by_op;
  for (const Node& n : g.nodes()) by_op[n.op] += op_flops(g, n);
  const double taps = 2 * 3 * 3, conv_out = 2 * 6 * 4 * 4;
  EXPECT_EQ(by_op["conv2d"], conv_out * (2 * taps + 1));
  EXPECT_EQ(by_op["conv2d_grad_weight"], conv_out * 2 * taps);
  EXPECT_EQ(by_op.count("conv2d_grad_input"), 0u);  // the data needs no gradient
  EXPECT_EQ(by_op["activation"], conv_out);         // the elementwise default
  EXPECT_EQ(by_op["max_pool2d"], 2 * 6 * 2 * 2 * 4.0);
  EXPECT_EQ(by_op["max_pool2d_grad"], 2 * 6 * 2 * 2 * 4.0);
  EXPECT_EQ(by_op["inner_product"], 2 * 5 * (2 * 24 + 1.0));
  EXPECT_EQ(by_op["bias_grad"], conv_out + 2 * 5);  // an add per element of dy
  EXPECT_EQ(by_op["reshape"], 0);                   // a view
  EXPECT_EQ(by_op["softmax_cross_entropy"], 3 * 2 * 5.0);
  // The inner product's gradients are matrix products, each 2 * 24 * 5 multiply-adds:
  // dx[2, 24] = dy[2, 5] w[5, 24] and dw[5, 24] = dy^T x[2, 24].
  EXPECT_EQ(by_op["matmul"], 2 * (2 * 2 * 24 * 5.0));
  // A ReLU folded into its producer still counts.
  Node fused = g.nodes()[0];
  fused.attrs.set("post", std::string("relu"));
  EXPECT_EQ(op_flops(g, fused), conv_out * (2 * taps + 2));
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

// nchw16c values take their channels rounded up to whole blocks of 16 (the padding is stored).
TEST(Planner, BlockedValuesTakeTheirPadding) {
  EXPECT_EQ(stored_numel(Shape{2, 24, 3, 3}, Layout::nchw), 2 * 24 * 9);
  EXPECT_EQ(stored_numel(Shape{2, 24, 3, 3}, Layout::nchw16c), 2 * 32 * 9);
  EXPECT_EQ(stored_numel(Shape{2, 48, 3, 3}, Layout::nchw16c), 2 * 48 * 9);
  Graph g;
  ValueId x = g.input("data", Shape{8, 24, 16, 16});
  ValueId h = g.add1("relu", "r0", {x});
  g.keep(g.add1("relu", "r1", {h}));
  const size_t plain = plan_memory(g).naive_bytes;
  g.value(h).layout = Layout::nchw16c;
  MemoryPlan plan = plan_memory(g);
  EXPECT_EQ(plan.naive_bytes, plain + 8u * (32 - 24) * 16 * 16 * 4);
  EXPECT_GE(plan.arena_bytes, plan.naive_bytes);  // both live at once
}
