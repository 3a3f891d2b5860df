// Dataset previews: each PNG is decoded again and compared pixel by pixel with the examples it
// shows; grids of a class on Fashion-MNIST's 60,000 training examples are quick and
// deterministic.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"
#include "data/dataset.h"
#include "data/dataset_util.h"
#include "data/image_codec.h"
#include "data/preview.h"
#include "support/data_files.h"
#include "support/expect_error.h"

using namespace myelin;
using myelin::testing::expect_error;
using myelin::testing::TempDir;
namespace tf = myelin::testing;

namespace {

data::RawImage decode(const std::vector<uint8_t>& png) {
  data::RawImage img;
  data::decode_image("preview.png", png.data(), png.size(), img);
  return img;
}

std::vector<uint8_t> example(const Dataset& d, int64_t i) {
  std::vector<uint8_t> px(static_cast<size_t>(d.example_shape().numel()));
  int32_t label;
  d.read(i, px.data(), &label);
  return px;
}

// Pixel (x, y, k) of a decoded image.
uint8_t at(const data::RawImage& img, int x, int y, int k) {
  return img.pixels[(static_cast<size_t>(y) * img.width + x) * img.channels + k];
}

// Checks the cell at (x0, y0) of `img` against example `chw` of shape c x h x w.
void expect_cell(const data::RawImage& img, const std::vector<uint8_t>& chw, int c, int h, int w,
                 int x0, int y0) {
  ASSERT_EQ(img.channels, c);
  int wrong = 0;
  for (int k = 0; k < c; ++k)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        wrong += at(img, x0 + x, y0 + y, k) != chw[(static_cast<size_t>(k) * h + y) * w + x];
  EXPECT_EQ(wrong, 0) << "cell at " << x0 << "," << y0;
}

// Three classes of color images of several sizes.
struct Folder {
  TempDir dir;
  std::string root = dir / "pets";
  Folder() {
    uint32_t seed = 1;
    for (std::string cls : {"cat", "dog", "eel"})
      for (int i = 0; i < 3; ++i, ++seed)
        tf::write_png(root + "/" + cls + "/" + std::to_string(i) + ".png",
                      tf::random_pixels(6 + i, 5, 3, seed), 6 + i, 5, 3);
  }
  std::shared_ptr<Dataset> open(OpenOptions o = {}) const {
    o.validation_percent = 0;
    return open_dataset(root, o).train;
  }
};

const Dataset& fashion_train() {
  static DatasetSplits s = open_dataset("fashion-mnist");
  return *s.train;
}

}  // namespace

TEST(Preview, MeanPngIsTheRoundedMeanImage) {
  Folder f;
  auto d = f.open();  // 3 x 5 x 6, from the first image
  data::RawImage img = decode(mean_png(*d));
  ASSERT_EQ(img.width, 6);
  ASSERT_EQ(img.height, 5);
  auto mean = d->mean_image();
  std::vector<uint8_t> rounded(mean->size());
  for (size_t i = 0; i < rounded.size(); ++i)
    rounded[i] = static_cast<uint8_t>(std::lround((*mean)[i]));
  expect_cell(img, rounded, 3, 5, 6, 0, 0);
}

TEST(Preview, ExamplePngIsTheExampleScaledUp) {
  Folder f;
  auto d = f.open();
  for (int scale : {1, 3}) {
    data::RawImage img = decode(example_png(*d, 4, scale));
    ASSERT_EQ(img.width, 6 * scale);
    ASSERT_EQ(img.height, 5 * scale);
    std::vector<uint8_t> px = example(*d, 4);
    int wrong = 0;
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x)
        for (int k = 0; k < 3; ++k)
          wrong += at(img, x, y, k) != px[(static_cast<size_t>(k) * 5 + y / scale) * 6 + x / scale];
    EXPECT_EQ(wrong, 0) << "scale " << scale;
  }
  // Gray stays gray.
  EXPECT_EQ(decode(example_png(fashion_train(), 0, 2)).channels, 1);
}

TEST(Preview, ClassGridOnSixtyThousandExamplesIsQuickAndDeterministic) {
  const Dataset& d = fashion_train();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<uint8_t> png = examples_grid_png(d, 3, 10, 4, 7);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 500) << "reads labels only, not every example";
  std::vector<int64_t> picked = sample_examples(d, 3, 10, 7);
  ASSERT_EQ(picked.size(), 10u);
  EXPECT_TRUE(std::is_sorted(picked.begin(), picked.end()));
  data::RawImage img = decode(png);
  ASSERT_EQ(img.width, 4 * 29 - 1);  // 4 columns of 28 and 3 gaps
  ASSERT_EQ(img.height, 3 * 29 - 1);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(d.label(picked[static_cast<size_t>(i)]), 3);
    expect_cell(img, example(d, picked[static_cast<size_t>(i)]), 1, 28, 28, (i % 4) * 29,
                (i / 4) * 29);
  }
  EXPECT_EQ(at(img, 28, 0, 0), 255);           // a gap
  EXPECT_EQ(at(img, 3 * 29, 2 * 29, 0), 255);  // the empty cells after the 10th
  EXPECT_EQ(examples_grid_png(d, 3, 10, 4, 7), png);
  EXPECT_NE(sample_examples(d, 3, 10, 8), picked);
  // Any class: labels vary.
  std::vector<int64_t> any = sample_examples(d, -1, 50, 1);
  std::set<int32_t> labels;
  for (int64_t i : any) labels.insert(d.label(i));
  EXPECT_GT(labels.size(), 5u);
  EXPECT_EQ(decode(examples_grid_png(d, -1, 50, 10, 1)).width, 10 * 29 - 1);
}

TEST(Preview, GridOfFewerExamplesThanAsked) {
  Folder f;
  auto d = f.open();
  data::RawImage img = decode(examples_grid_png(*d, 1, 100, 8, 1));  // 3 dogs, 1 row
  EXPECT_EQ(img.width, 3 * 7 - 1);
  EXPECT_EQ(img.height, 5);
  for (int i = 0; i < 3; ++i) expect_cell(img, example(*d, 3 + i), 3, 5, 6, i * 7, 0);
}

TEST(Preview, SourcePreviewIsTheFirstImagesResizedAsTheDatasetWouldBe) {
  Folder f;
  OpenOptions o;
  o.resize_h = 8, o.resize_w = 10, o.channels = 1, o.resize_mode = "fill";
  o.validation_percent = 50;  // ignored: the first images of the whole source
  data::RawImage img = decode(preview_source_png(f.root, o, 5));
  ASSERT_EQ(img.channels, 1);
  ASSERT_EQ(img.width, 3 * 11 - 1);  // ceil(sqrt(5)) = 3 columns, 2 rows
  ASSERT_EQ(img.height, 2 * 9 - 1);
  auto d = f.open(o);
  for (int i = 0; i < 5; ++i) expect_cell(img, example(*d, i), 1, 8, 10, (i % 3) * 11, (i / 3) * 9);
  // More than there are: all 9.
  EXPECT_EQ(decode(preview_source_png(f.root, o, 50)).width, 3 * 11 - 1);
  expect_error([&] { preview_source_png(f.dir / "nothing", o, 5); }, {"nothing"});
}

TEST(Preview, BadRequestsAreErrors) {
  Folder f;
  auto d = f.open();
  expect_error([&] { example_png(*d, 9); }, {"no example 9"});
  expect_error([&] { example_png(*d, -1); }, {"no example -1"});
  expect_error([&] { example_png(*d, 0, 0); }, {"scale"});
  expect_error([&] { examples_grid_png(*d, 3, 4, 2, 1); }, {"no class 3"});
  expect_error([&] { examples_grid_png(*d, 0, 0, 2, 1); }, {"asked for 0"});
  expect_error([&] { examples_grid_png(*d, 0, 4, 0, 1); }, {"column"});
  // The first 10 Fashion-MNIST examples have no trouser (class 1).
  std::vector<int64_t> first(10);
  std::iota(first.begin(), first.end(), 0);
  auto all = std::shared_ptr<Dataset>(&const_cast<Dataset&>(fashion_train()), [](Dataset*) {});
  data::SubsetDataset few(all, first, "first 10");
  expect_error([&] { examples_grid_png(few, 1, 4, 2, 1); }, {"no examples of class 1"});
}
