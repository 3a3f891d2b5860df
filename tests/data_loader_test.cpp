// The Loader: determinism, coverage of each epoch, resuming, transforms, errors, throughput.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "data/loader.h"

using namespace myelin;

namespace {

// Example i is a 1 x 6 x 5 image whose pixels are (i * 31 + k) % 251 + 1 for k = 0.., label i % 7;
// example `bad` (if any) throws a DataError.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n, int64_t bad = -1, int64_t c = 1) : n_(n), bad_(bad), c_(c) {}
  int64_t size() const override { return n_; }
  Shape example_shape() const override { return {c_, 6, 5}; }
  int num_classes() const override { return 7; }
  const std::vector<std::string>& class_names() const override { return names_; }
  void read(int64_t i, uint8_t* px, int32_t* label) const override {
    if (i == bad_) throw DataError("counting.bin", i * 30, "broken example");
    for (int64_t k = 0; k < c_ * 30; ++k) px[k] = pixel(i, k);
    *label = static_cast<int32_t>(i % 7);
  }
  std::string describe() const override { return "counting"; }
  static uint8_t pixel(int64_t i, int64_t k) {
    return static_cast<uint8_t>((i * 31 + k) % 251 + 1);
  }

 private:
  int64_t n_, bad_, c_;
  std::vector<std::string> names_ = {"a", "b", "c", "d", "e", "f", "g"};
};

struct Copy {
  std::vector<float> images;
  std::vector<int32_t> labels;
  int64_t count, index;
  bool operator==(const Copy& o) const = default;
};

std::vector<Copy> run_epoch(Loader& l, int64_t epoch, int64_t skip = 0) {
  l.start_epoch(epoch, skip);
  std::vector<Copy> out;
  Batch b;
  while (l.next(b)) {
    const float* im = b.images.f32();
    const auto* lb = b.labels.data_as<int32_t>();
    out.push_back({{im, im + b.images.numel()}, {lb, lb + b.labels.numel()}, b.count, b.index});
    EXPECT_EQ(b.epoch, epoch);
  }
  return out;
}

// Which example a transform-free row came from: pixel 0 is (i * 31) % 251 + 1, and pixel 1
// disambiguates nothing more; search the small dataset instead.
int64_t example_of(const float* row, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    bool same = true;
    for (int k = 0; k < 30 && same; ++k)
      same = row[k] == static_cast<float>(CountingDataset::pixel(i, k));
    if (same) return i;
  }
  return -1;
}

LoaderOptions raw(int64_t batch) {
  LoaderOptions o;
  o.batch = batch;
  o.transforms.scale = 1.0;  // floats equal the stored bytes
  return o;
}

}  // namespace

TEST(Loader, EveryExampleAppearsExactlyOncePerEpoch) {
  auto data = std::make_shared<CountingDataset>(103);
  LoaderOptions o = raw(10);
  o.drop_last = false;
  Loader l(data, o);
  EXPECT_EQ(l.batches_per_epoch(), 11);
  EXPECT_EQ(l.batch_shape(), (Shape{10, 1, 6, 5}));
  for (int64_t epoch : {0, 1}) {
    std::vector<Copy> batches = run_epoch(l, epoch);
    ASSERT_EQ(batches.size(), 11u);
    std::multiset<int64_t> seen;
    for (const Copy& b : batches) {
      for (int64_t r = 0; r < b.count; ++r) {
        int64_t i = example_of(b.images.data() + r * 30, 103);
        ASSERT_GE(i, 0) << "batch " << b.index << " row " << r << " is no example";
        EXPECT_EQ(b.labels[static_cast<size_t>(r)], i % 7);
        seen.insert(i);
      }
    }
    EXPECT_EQ(seen.size(), 103u);
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 103u) << "an example came twice";
    const Copy& last = batches.back();
    EXPECT_EQ(last.count, 3);  // 103 = 10 * 10 + 3; the rest of the batch is zeros, label 0
    for (size_t k = 3 * 30; k < last.images.size(); ++k) ASSERT_EQ(last.images[k], 0.0f);
    for (size_t r = 3; r < 10; ++r) EXPECT_EQ(last.labels[r], 0);
  }
}

TEST(Loader, SameSeedSameBatchesWhateverTheThreadCount) {
  auto data = std::make_shared<CountingDataset>(200, -1, 3);
  LoaderOptions o;
  o.batch = 16;
  o.transforms.crop = 4;
  o.transforms.pad = 1;
  o.transforms.mirror = true;
  o.transforms.mean = {10, 20, 30};
  o.seed = 42;
  o.threads = 1;
  Loader one(data, o);
  o.threads = 4;
  o.prefetch = 2;
  Loader four(data, o);
  std::vector<Copy> a0 = run_epoch(one, 0), b0 = run_epoch(four, 0);
  EXPECT_EQ(a0, b0);
  EXPECT_EQ(run_epoch(one, 3), run_epoch(four, 3));
  EXPECT_NE(a0, run_epoch(one, 1)) << "another epoch shuffles differently";
  o.seed = 43;
  Loader other(data, o);
  EXPECT_NE(a0, run_epoch(other, 0)) << "another seed shuffles differently";
}

TEST(Loader, SkipBatchesResumesMidEpoch) {
  auto data = std::make_shared<CountingDataset>(95);
  LoaderOptions o = raw(8);
  o.transforms.crop = 3;
  o.transforms.mirror = true;
  Loader l(data, o);
  std::vector<Copy> full = run_epoch(l, 2);
  ASSERT_EQ(full.size(), 11u);
  std::vector<Copy> tail = run_epoch(l, 2, 7);
  ASSERT_EQ(tail.size(), 4u);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), full.begin() + 7));
  EXPECT_TRUE(run_epoch(l, 2, 50).empty());
}

TEST(Loader, RestartingAnEpochMidwayDropsTheOldBatches) {
  auto data = std::make_shared<CountingDataset>(300);
  LoaderOptions o = raw(4);
  o.prefetch = 8;
  Loader l(data, o);
  l.start_epoch(0);
  Batch b;
  ASSERT_TRUE(l.next(b));
  ASSERT_TRUE(l.next(b));  // workers are now filling batches 2.. of epoch 0
  std::vector<Copy> fresh = run_epoch(l, 5);
  Loader again(data, o);
  EXPECT_EQ(fresh, run_epoch(again, 5));
}

// Pixels are never 0 (see CountingDataset), so zeros are the cutout: one square, cut x cut or
// clipped at the image's edges, the same in every channel, somewhere else for each example;
// none at test time.
TEST(Loader, CutoutZeroesOneSquarePerTrainingImage) {
  auto data = std::make_shared<CountingDataset>(64, -1, 2);
  LoaderOptions o = raw(64);
  o.transforms.cutout = 3;
  Loader loader(data, o);
  std::vector<Copy> train = run_epoch(loader, 0);
  ASSERT_EQ(train.size(), 1u);
  std::set<std::pair<int, int>> corners;
  bool clipped = false;
  for (int e = 0; e < 64; ++e) {
    const float* img = train[0].images.data() + e * 60;
    int y0 = 99, y1 = -1, x0 = 99, x1 = -1, zeros = 0;
    for (int c = 0; c < 2; ++c)
      for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 5; ++x)
          if (img[(c * 6 + y) * 5 + x] == 0.0f) {
            ++zeros;
            y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
          }
    ASSERT_GT(zeros, 0) << "example " << e;
    const int h = y1 - y0 + 1, w = x1 - x0 + 1;
    EXPECT_EQ(zeros, 2 * h * w) << "not one square in both channels, example " << e;
    EXPECT_LE(h, 3);
    EXPECT_LE(w, 3);
    clipped |= h < 3 || w < 3;
    corners.insert({y0, x0});
  }
  EXPECT_TRUE(clipped) << "a square centred near an edge is clipped";
  EXPECT_GT(corners.size(), 8u) << "the square moves between examples";
  o.training = false;
  Loader test(data, o);
  std::vector<Copy> tested = run_epoch(test, 0);
  for (float v : tested[0].images) EXPECT_NE(v, 0.0f);
}

TEST(Loader, ScaleAndPerChannelMean) {
  auto data = std::make_shared<CountingDataset>(12, -1, 3);
  LoaderOptions o;
  o.batch = 4;
  o.shuffle = false;
  o.transforms.scale = 0.5;
  o.transforms.mean = {1, 2, 3};
  Loader l(data, o);
  std::vector<Copy> batches = run_epoch(l, 0);
  const Copy& b = batches[1];  // examples 4..7 in order
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t k = 0; k < 90; ++k)
      ASSERT_FLOAT_EQ(b.images[static_cast<size_t>(r * 90 + k)],
                      (CountingDataset::pixel(4 + r, k) - (1 + k / 30)) * 0.5f);
}

TEST(Loader, MeanImageIsSubtractedPixelByPixel) {
  auto data = std::make_shared<CountingDataset>(5);
  LoaderOptions o = raw(5);
  o.shuffle = false;
  o.transforms.mean_image = std::make_shared<std::vector<float>>(30);
  for (int k = 0; k < 30; ++k) (*o.transforms.mean_image)[k] = 0.5f * k;
  Loader l(data, o);
  Copy b = run_epoch(l, 0).at(0);
  for (int64_t r = 0; r < 5; ++r)
    for (int k = 0; k < 30; ++k)
      ASSERT_FLOAT_EQ(b.images[static_cast<size_t>(r * 30 + k)],
                      CountingDataset::pixel(r, k) - 0.5f * k);
}

TEST(Loader, TestModeCentreCropsAndNeverFlips) {
  auto data = std::make_shared<CountingDataset>(6);
  LoaderOptions o = raw(6);
  o.shuffle = false;
  o.training = false;
  o.transforms.crop = 3;
  o.transforms.mirror = true;
  Loader l(data, o);
  EXPECT_EQ(l.batch_shape(), (Shape{6, 1, 3, 3}));
  Copy b = run_epoch(l, 0).at(0);
  for (int64_t r = 0; r < 6; ++r)  // rows 1..3, columns 1..3 of the 6 x 5 image
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 3; ++x)
        ASSERT_EQ(b.images[static_cast<size_t>(r * 9 + y * 3 + x)],
                  CountingDataset::pixel(r, (y + 1) * 5 + x + 1));
}

TEST(Loader, TrainingCropsArePaddedWindowsAndSomeAreMirrored) {
  auto data = std::make_shared<CountingDataset>(64);
  LoaderOptions o = raw(64);
  o.shuffle = false;
  o.transforms.crop = 5;
  o.transforms.pad = 2;
  o.transforms.mirror = true;
  Loader l(data, o);
  Copy b = run_epoch(l, 0).at(0);
  int flipped = 0, moved = 0;
  for (int64_t r = 0; r < 64; ++r) {
    const float* out = b.images.data() + r * 25;
    // Find the window (y0, x0, flip) of the zero-padded 10 x 9 image that gives this output.
    bool found = false;
    for (int y0 = 0; y0 <= 5 && !found; ++y0)
      for (int x0 = 0; x0 <= 4 && !found; ++x0)
        for (int flip = 0; flip < 2 && !found; ++flip) {
          bool same = true;
          for (int y = 0; y < 5 && same; ++y)
            for (int x = 0; x < 5 && same; ++x) {
              int sy = y0 + y - 2, sx = x0 + (flip ? 4 - x : x) - 2;
              float want = (sy < 0 || sy >= 6 || sx < 0 || sx >= 5)
                               ? 0.0f
                               : CountingDataset::pixel(r, sy * 5 + sx);
              same = out[y * 5 + x] == want;
            }
          if (same) found = true, flipped += flip, moved += (y0 != 2 || x0 != 2);
        }
    EXPECT_TRUE(found) << "example " << r << " is no padded window";
  }
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 54);
  EXPECT_GT(moved, 32);
}

TEST(Loader, AReadErrorReachesTheCallerAndTheEpochGoesOn) {
  auto data = std::make_shared<CountingDataset>(40, 13);
  LoaderOptions o = raw(10);
  o.shuffle = false;
  Loader l(data, o);
  l.start_epoch(0);
  Batch b;
  ASSERT_TRUE(l.next(b));
  try {
    l.next(b);
    FAIL() << "expected the DataError of example 13";
  } catch (const DataError& e) {
    EXPECT_EQ(e.path(), "counting.bin");
    EXPECT_EQ(e.offset(), 13 * 30);
  }
  ASSERT_TRUE(l.next(b));
  EXPECT_EQ(b.index, 2);
}

TEST(Loader, BadOptionsAreErrors) {
  auto data = std::make_shared<CountingDataset>(10);
  LoaderOptions o = raw(4);
  o.transforms.crop = 8;
  EXPECT_THROW((Loader{data, o}), ShapeError);
  o = raw(11);
  EXPECT_THROW((Loader{data, o}), Error);
  o = raw(4);
  o.transforms.mean = {1, 2};
  EXPECT_THROW((Loader{data, o}), ShapeError);
}

TEST(Loader, FashionMnistThroughput) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  DatasetSplits s = open_dataset("fashion-mnist");
  LoaderOptions o;
  o.batch = 64;
  o.threads = 2;
  o.transforms.mean = {72.94f};
  o.transforms.crop = 28;
  o.transforms.pad = 2;
  o.transforms.mirror = true;
  Loader l(s.train, o);
  l.start_epoch(0);
  Batch b;
  int64_t images = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (l.next(b)) images += b.count;
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "loader: %lld Fashion-MNIST images in %.3f s = %.0f images/s (2 threads, pad+crop+mirror)\n",
      static_cast<long long>(images), sec, images / sec);
  EXPECT_EQ(images, 60000 / 64 * 64);
  EXPECT_GT(images / sec, 50000.0);
}
