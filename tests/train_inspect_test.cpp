// filters_png and activations_png: the pictures decode, with the grid sizes the tiling promises.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/image_codec.h"
#include "model/adapt.h"
#include "support/data_files.h"
#include "support/expect_error.h"
#include "train/checkpoint.h"
#include "train/inspect.h"
#include "train/session.h"

using namespace myelin;
using myelin::testing::expect_error;
using myelin::testing::TempDir;

namespace {

std::string write_random_weights(const NetworkSpec& spec, const std::string& path) {
  SessionOptions so;
  so.device = Device::cpu();
  so.backend.threads = 1;
  so.batch = 1;
  so.train = false;
  Session s(spec, so);
  std::vector<NamedTensor> tensors;
  for (const std::string& n : s.param_names()) tensors.push_back({n, s.read(n)});
  for (const std::string& n : s.state_names()) tensors.push_back({n, s.read(n)});
  write_safetensors(path, tensors, {{"network", spec.name}});
  return path;
}

data::RawImage decode(const std::vector<uint8_t>& png) {
  data::RawImage img;
  data::decode_image("picture", png.data(), png.size(), img);
  return img;
}

std::vector<uint8_t> gray_png(int side, uint32_t seed) {
  std::vector<uint8_t> px = myelin::testing::random_pixels(side, side, 1, seed);
  return data::encode_png(px.data(), side, side, 1);
}

}  // namespace

TEST(FiltersPng, LenetConv1IsAGridOfTwentyUpscaledFilters) {
  TempDir dir;
  NetworkSpec lenet = load_network("lenet");
  std::string w = write_random_weights(lenet, dir / "w.safetensors");
  data::RawImage img = decode(filters_png(lenet, w));  // the first conv: conv1
  // 20 filters of 5x5 upscaled to 25x25: 5 columns, 4 rows, 1-pixel gaps.
  EXPECT_EQ(img.width, 5 * 25 + 4);
  EXPECT_EQ(img.height, 4 * 25 + 3);
  EXPECT_EQ(img.channels, 1);
  // Each filter is normalised on its own: every tile reaches black and white.
  for (int t = 0; t < 20; ++t) {
    int x0 = (t % 5) * 26, y0 = (t / 5) * 26, lo = 255, hi = 0;
    for (int y = 0; y < 25; ++y)
      for (int x = 0; x < 25; ++x) {
        int v = img.pixels[static_cast<size_t>((y0 + y) * img.width + x0 + x)];
        lo = std::min(lo, v), hi = std::max(hi, v);
      }
    EXPECT_EQ(lo, 0) << t;
    EXPECT_EQ(hi, 255) << t;
  }
}

TEST(FiltersPng, ColorFiltersAndInnerLayers) {
  TempDir dir;
  NetworkSpec color = adapt_network(load_network("lenet"), {3, 32, 32}, 5);
  std::string w = write_random_weights(color, dir / "weights.safetensors");
  data::RawImage c1 = decode(filters_png(color, dir.str(), "conv1"));  // a directory holding it
  EXPECT_EQ(c1.channels, 3);
  EXPECT_EQ(c1.width, 5 * 25 + 4);
  // conv2: 50 filters over 20 channels, one row per filter.
  data::RawImage c2 = decode(filters_png(color, w, "conv2"));
  EXPECT_EQ(c2.channels, 1);
  EXPECT_EQ(c2.width, 20 * 26 - 1);
  EXPECT_EQ(c2.height, 50 * 26 - 1);
  expect_error([&] { filters_png(color, w, "ip1"); }, {"no conv layer 'ip1'", "conv1, conv2"});
}

TEST(ActivationsPng, LenetConv1ForOneImage) {
  TempDir dir;
  NetworkSpec lenet = load_network("lenet");
  ClassifyOptions o;
  o.spec = lenet;
  o.weights = write_random_weights(lenet, dir / "w.safetensors");
  data::RawImage img = decode(activations_png(o, gray_png(40, 5), "conv1"));
  // 20 channels of 24x24 (already about 24 pixels: not upscaled).
  EXPECT_EQ(img.width, 5 * 24 + 4);
  EXPECT_EQ(img.height, 4 * 24 + 3);
  EXPECT_EQ(img.channels, 1);
  // ip1: 500 features as 1x1 tiles upscaled to 24x24, 23 columns, 22 rows.
  data::RawImage ip1 = decode(activations_png(o, gray_png(28, 6), "ip1"));
  EXPECT_EQ(ip1.width, 23 * 25 - 1);
  EXPECT_EQ(ip1.height, 22 * 25 - 1);
  expect_error([&] { activations_png(o, gray_png(28, 6), "conv9"); },
               {"no layer 'conv9'", "conv1, pool1, conv2, pool2, ip1, relu1, ip2"});
  expect_error(
      [&] {
        activations_png(o, {1, 2, 3, 4, 5, 6, 7, 8}, "conv1");
      },
      {"not a PNG or JPEG image"});
}

// A convolution followed by a ReLU: engines fold the ReLU into the convolution and drop its
// output, unless the picture asks for it. conv1 shows negative values, relu1 none.
TEST(ActivationsPng, OutputsAnEngineWouldFuseAway) {
  TempDir dir;
  NetworkSpec s = parse_network(R"(
name: fused
input: [1, 12, 12]
classes: 2
layers:
  - conv: {name: conv1, filters: 4, kernel: 3, init: gaussian(0.5), bias_init: -0.2}
  - relu: {name: relu1}
  - fc:   {name: fc, outputs: 2}
)",
                                "fused.yaml");
  ClassifyOptions o;
  o.spec = s;
  o.weights = write_random_weights(s, dir / "w.safetensors");
  std::vector<uint8_t> image = gray_png(12, 8);
  data::RawImage conv = decode(activations_png(o, image, "conv1"));
  data::RawImage relu = decode(activations_png(o, image, "relu1"));
  ASSERT_EQ(conv.pixels.size(), relu.pixels.size());
  EXPECT_NE(conv.pixels, relu.pixels);
  // After the ReLU the minimum is 0 (black) and many pixels sit at it.
  int black = 0;
  for (uint8_t v : relu.pixels) black += v == 0;
  EXPECT_GT(black, 10);
}
