// IDX datasets: Fashion-MNIST from Debian's package, generated IDX directories, broken files.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "support/data_files.h"
#include "support/expect_error.h"

using namespace myelin;
using myelin::testing::expect_error;
using myelin::testing::TempDir;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist";

bool have_fashion() {
  return std::filesystem::exists(std::string(kFashion) + "/train-images-idx3-ubyte.gz");
}

// A small IDX dataset of n random 5x7 images with labels i % classes.
struct SmallIdx {
  std::vector<uint8_t> images, labels;
  int n, h = 5, w = 7;
  SmallIdx(int n_, int classes, uint32_t seed) : n(n_) {
    images = myelin::testing::random_pixels(w, h * n, 1, seed);
    for (int i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>((i * 7 + 3) % classes));
  }
  void write(const std::string& dir, const std::string& prefix, bool gz) const {
    std::string ext = gz ? ".gz" : "";
    myelin::testing::write_idx(dir + "/" + prefix + "-images-idx3-ubyte" + ext,
                               {uint32_t(n), uint32_t(h), uint32_t(w)}, images, gz);
    myelin::testing::write_idx(dir + "/" + prefix + "-labels-idx1-ubyte" + ext, {uint32_t(n)},
                               labels, gz);
  }
};

void expect_same_examples(const Dataset& d, const SmallIdx& src) {
  ASSERT_EQ(d.size(), src.n);
  ASSERT_EQ(d.example_shape(), (Shape{1, src.h, src.w}));
  std::vector<uint8_t> px(static_cast<size_t>(src.h * src.w));
  for (int i = 0; i < src.n; ++i) {
    int32_t label = -1;
    d.read(i, px.data(), &label);
    EXPECT_EQ(label, src.labels[static_cast<size_t>(i)]) << "example " << i;
    EXPECT_TRUE(std::equal(px.begin(), px.end(), src.images.begin() + i * src.h * src.w)) << i;
  }
}

}  // namespace

TEST(FashionMnist, OpensWithPublishedCountsShapesAndClasses) {
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto t0 = std::chrono::steady_clock::now();
  DatasetSplits s = open_dataset("fashion-mnist");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fashion-mnist: 70000 examples opened in %.3f s\n", seconds);
  EXPECT_LT(seconds, 2.0) << "loading must decompress once, in well under a second";

  ASSERT_TRUE(s.train && s.test);
  EXPECT_EQ(s.train->size(), 60000);
  EXPECT_EQ(s.test->size(), 10000);
  EXPECT_EQ(s.train->example_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(s.test->example_shape(), (Shape{1, 28, 28}));
  ASSERT_EQ(s.train->num_classes(), 10);
  EXPECT_EQ(s.train->class_names()[0], "T-shirt/top");
  EXPECT_EQ(s.train->class_names()[9], "Ankle boot");
  EXPECT_EQ(s.train->describe(), "fashion-mnist train: 60000 x [1, 28, 28], 10 classes");
  EXPECT_EQ(s.train->class_counts(), std::vector<int64_t>(10, 6000));
  EXPECT_EQ(s.test->class_counts(), std::vector<int64_t>(10, 1000));
}

TEST(FashionMnist, FirstExamplesAndMeanMatchTheFiles) {
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  DatasetSplits s = open_dataset(kFashion);  // the directory works as well as the name
  std::vector<int32_t> first;
  for (int i = 0; i < 10; ++i) first.push_back(s.train->label(i));
  EXPECT_EQ(first, (std::vector<int32_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  EXPECT_EQ(s.test->label(0), 9);
  std::vector<uint8_t> px(784);
  int32_t label = -1;
  s.train->read(0, px.data(), &label);
  EXPECT_EQ(label, 9);
  EXPECT_EQ(std::accumulate(px.begin(), px.end(), 0), 76247);  // pixel sum of the first image
  auto mean = s.train->mean_image();
  std::vector<float> per_channel = channel_means(*mean, s.train->example_shape());
  EXPECT_NEAR(per_channel[0], 72.940, 0.01);
}

TEST(Idx, ReadsPlainAndGzippedDirectories) {
  for (bool gz : {false, true}) {
    TempDir dir;
    SmallIdx train(23, 4, 1), test(9, 4, 2);
    train.write(dir.str(), "train", gz);
    test.write(dir.str(), "t10k", gz);
    DatasetSplits s = open_dataset(dir.str());
    expect_same_examples(*s.train, train);
    expect_same_examples(*s.test, test);
    EXPECT_EQ(s.train->class_names(), (std::vector<std::string>{"0", "1", "2", "3"}));
  }
}

TEST(Idx, WithoutTestFilesCarvesAStratifiedValidationSplit) {
  TempDir dir;
  SmallIdx train(100, 4, 3);
  train.write(dir.str(), "train", true);
  OpenOptions o;
  o.validation_percent = 20;
  o.seed = 7;
  DatasetSplits a = open_dataset(dir.str(), o), b = open_dataset(dir.str(), o);
  ASSERT_TRUE(a.test);
  EXPECT_EQ(a.train->size() + a.test->size(), 100);
  EXPECT_EQ(a.test->class_counts(), (std::vector<int64_t>{5, 5, 5, 5}));
  std::vector<uint8_t> pa(35), pb(35);
  int32_t la, lb;
  for (int64_t i = 0; i < a.test->size(); ++i) {  // the same seed gives the same split
    a.test->read(i, pa.data(), &la);
    b.test->read(i, pb.data(), &lb);
    EXPECT_EQ(pa, pb);
    EXPECT_EQ(la, lb);
  }
}

TEST(Idx, ClassNamesComeFromLabelsTxt) {
  TempDir dir;
  SmallIdx train(12, 3, 4);
  train.write(dir.str(), "train", false);
  myelin::testing::write_bytes(dir / "labels.txt",
                               {'c', 'a', 't', '\n', 'd', 'o', 'g', '\n', 'o', 'w', 'l', '\n'});
  OpenOptions o;
  o.validation_percent = 0;
  DatasetSplits s = open_dataset(dir.str(), o);
  EXPECT_FALSE(s.test);
  EXPECT_EQ(s.train->class_names(), (std::vector<std::string>{"cat", "dog", "owl"}));
}

TEST(IdxErrors, TruncatedGzipNamesTheFile) {
  TempDir dir;
  SmallIdx train(50, 3, 5);
  train.write(dir.str(), "train", true);
  std::string images = dir / "train-images-idx3-ubyte.gz";
  auto bytes = myelin::testing::read_bytes(images);
  bytes.resize(bytes.size() / 2);
  myelin::testing::write_bytes(images, bytes);
  expect_error([&] { open_dataset(dir.str()); }, {images, "truncated"});
}

TEST(IdxErrors, TruncatedPlainFileNamesTheFileAndSizes) {
  TempDir dir;
  SmallIdx train(50, 3, 6);
  train.write(dir.str(), "train", false);
  std::string images = dir / "train-images-idx3-ubyte";
  auto bytes = myelin::testing::read_bytes(images);
  bytes.resize(bytes.size() - 10);
  myelin::testing::write_bytes(images, bytes);
  expect_error([&] { data::read_idx(images); }, {images, "1750 data bytes", "truncated"});
}

TEST(IdxErrors, WrongMagicNamesTheFileAndOffset) {
  TempDir dir;
  SmallIdx train(10, 3, 7);
  train.write(dir.str(), "train", false);
  std::string labels = dir / "train-labels-idx1-ubyte";
  auto bytes = myelin::testing::read_bytes(labels);
  bytes[0] = 'P';
  bytes[1] = 'K';
  myelin::testing::write_bytes(labels, bytes);
  expect_error([&] { open_dataset(dir.str()); }, {labels + " at byte 0", "not an IDX file", "'PK"});
}

TEST(IdxErrors, NonByteElementTypeIsRefused) {
  TempDir dir;
  std::string path = dir / "x-idx1-ubyte";
  myelin::testing::write_bytes(path, {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0x80, 0x3f});
  expect_error([&] { data::read_idx(path); }, {path + " at byte 2", "float", "0x08"});
}

TEST(IdxErrors, LabelAndImageCountMismatchNamesBothFiles) {
  TempDir dir;
  SmallIdx train(20, 3, 8);
  train.write(dir.str(), "train", true);
  std::vector<uint8_t> fewer(train.labels.begin(), train.labels.end() - 1);
  std::string labels = dir / "train-labels-idx1-ubyte.gz";
  myelin::testing::write_idx(labels, {19}, fewer, true);
  expect_error([&] { open_dataset(dir.str()); },
               {labels, "19 labels", "20 images", "train-images-idx3-ubyte.gz"});
}

TEST(IdxErrors, TrailingDataAfterThePayloadIsAnError) {
  TempDir dir;
  std::string path = dir / "train-labels-idx1-ubyte";
  myelin::testing::write_bytes(path, {0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3});
  expect_error([&] { data::read_idx(path); }, {path + " at byte 10", "unexpected data"});
}

TEST(IdxErrors, LabelOutOfRangeOfLabelsTxtNamesTheOffset) {
  TempDir dir;
  SmallIdx train(12, 5, 9);
  train.write(dir.str(), "train", false);
  myelin::testing::write_bytes(dir / "labels.txt", {'a', '\n', 'b', '\n'});
  expect_error([&] { open_dataset(dir.str()); },
               {dir / "train-labels-idx1-ubyte", "out of range", "2 classes"});
}

TEST(IdxErrors, MissingDatasetsSayWhatToInstallOrPass) {
  if (!std::filesystem::exists("/usr/share/datasets/mnist"))
    expect_error([] { open_dataset("mnist"); },
                 {"MNIST is not installed", "/usr/share/datasets/mnist"});
  expect_error([] { open_dataset("no-such-dataset-here"); },
               {"no-such-dataset-here", "fashion-mnist"});
}

TEST(IdxErrors, ResizingAFixedShapeDatasetIsAnErrorNotIgnored) {
  TempDir dir;
  SmallIdx train(10, 2, 10);
  train.write(dir.str(), "train", false);
  OpenOptions o;
  o.resize_h = o.resize_w = 32;
  expect_error([&] { open_dataset(dir.str(), o); }, {"[1, 5, 7]", "image folders"});
  o.resize_h = 5;
  o.resize_w = 7;
  o.channels = 1;
  EXPECT_NO_THROW(open_dataset(dir.str(), o)) << "asking for the shape it has is fine";
}
