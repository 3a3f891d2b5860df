// adapt_network: standard networks fitted to other datasets' input shapes and class counts.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/adapt.h"
#include "support/expect_error.h"

using namespace myelin;
using myelin::testing::expect_error;

namespace {

const LayerSpec& layer(const NetworkSpec& s, const std::string& name) {
  for (const LayerSpec& l : s.layers)
    if (l.name == name) return l;
  throw Error("no layer " + name);
}

Shape param_shape(const NetworkSpec& s, const std::string& name) {
  BuiltNetwork net = build_network(s, 2, true);
  return net.graph.value(net.graph.find(name)).shape;
}

Shape logits_shape(const NetworkSpec& s, int64_t batch) {
  BuiltNetwork net = build_network(s, batch, true);
  return net.graph.value(net.logits).shape;
}

}  // namespace

TEST(AdaptNetwork, LenetTakesColorImagesAndFiveClasses) {
  NetworkSpec lenet = load_network("lenet");
  NetworkSpec a = adapt_network(lenet, {3, 32, 32}, 5);
  EXPECT_EQ(a.input, (Dims{3, 32, 32}));
  EXPECT_EQ(a.classes, 5);
  EXPECT_EQ(layer(a, "ip2").attrs.i("outputs", 0), 5);
  EXPECT_EQ(layer(a, "ip1").attrs.i("outputs", 0), 500);  // only the logits layer changes
  EXPECT_EQ(logits_shape(a, 4), (Shape{4, 5}));
  EXPECT_EQ(param_shape(a, "conv1.weight"), (Shape{20, 3, 5, 5}));
  EXPECT_EQ(param_shape(a, "ip1.weight"), (Shape{500, 50 * 5 * 5}));  // 32 -> 28 -> 14 -> 10 -> 5
  EXPECT_EQ(a.recipe, lenet.recipe);
}

TEST(AdaptNetwork, ResnetTakesThreeChannels) {
  NetworkSpec resnet = load_network("resnet");
  NetworkSpec a = adapt_network(resnet, {3, 28, 28}, 10);
  EXPECT_EQ(param_shape(a, "conv1.weight"), (Shape{24, 3, 3, 3}));
  EXPECT_EQ(logits_shape(a, 3), (Shape{3, 10}));
  NetworkSpec b = adapt_network(resnet, {3, 28, 28}, 7);
  EXPECT_EQ(layer(b, "fc").attrs.i("outputs", 0), 7);
  EXPECT_EQ(logits_shape(b, 3), (Shape{3, 7}));
}

TEST(AdaptNetwork, UnchangedShapeReturnsTheSpec) {
  NetworkSpec lenet = load_network("lenet");
  NetworkSpec a = adapt_network(lenet, {1, 28, 28}, 10);
  EXPECT_TRUE(equivalent(a, lenet));
  EXPECT_EQ(a.file, lenet.file);
}

TEST(AdaptNetwork, TooSmallInputIsAClearError) {
  NetworkSpec lenet = load_network("lenet");
  std::string msg = expect_error(
      [&] {
        adapt_network(lenet, {3, 8, 8}, 5);
      },
      {"network 'lenet' takes [1, 28, 28]; the dataset gives [3, 8, 8]: ", "conv2"});
  EXPECT_THROW(adapt_network(lenet, {3, 8, 8}, 5), ShapeError);
}

TEST(AdaptNetwork, PerChannelMeanFollowsTheChannels) {
  NetworkSpec alexnet = load_network("alexnet");
  NetworkSpec a = adapt_network(alexnet, {1, 227, 227}, 10);
  ASSERT_EQ(a.recipe.mean.size(), 1u);
  EXPECT_NEAR(a.recipe.mean[0], (123.68 + 116.78 + 103.94) / 3, 1e-9);
  EXPECT_EQ(a.recipe.crop, 227);  // still the input size
  EXPECT_EQ(layer(a, "fc8").attrs.i("outputs", 0), 10);
  NetworkSpec b = adapt_network(alexnet, {3, 256, 256}, 1000);
  EXPECT_EQ(b.recipe.crop, 0);  // a 227 crop no longer matches the input
  EXPECT_EQ(logits_shape(b, 1), (Shape{1, 1000}));
}

TEST(AdaptNetwork, AllConvolutionalLogitsThroughGlobalPooling) {
  NetworkSpec s = parse_network(R"(
name: allconv
input: [1, 12, 12]
classes: 4
layers:
  - conv: {name: c1, filters: 8, kernel: 3}
  - relu: {name: r1}
  - conv: {name: c2, filters: 4, kernel: 1}
  - pool: {name: gap, global: avg}
)",
                                "allconv.yaml");
  NetworkSpec a = adapt_network(s, {3, 16, 16}, 6);
  EXPECT_EQ(layer(a, "c2").attrs.i("filters", 0), 6);
  EXPECT_EQ(layer(a, "c1").attrs.i("filters", 0), 8);
  EXPECT_EQ(logits_shape(a, 2), (Shape{2, 6}));
}

TEST(AdaptNetwork, LogitsLayerNotFoundSaysSo) {
  NetworkSpec s = parse_network(R"(
name: flat
input: [1, 4, 4]
classes: 8
layers:
  - conv: {name: c1, filters: 2, kernel: 3}
  - flatten: {name: f}
)",
                                "flat.yaml");
  expect_error(
      [&] {
        adapt_network(s, {1, 4, 4}, 3);
      },
      {"network 'flat' takes [1, 4, 4]", "8 classes cannot become 3"});
}
