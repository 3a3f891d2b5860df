// The packed store: round trips from Fashion-MNIST and an image folder, the stats files, and
// every kind of damage to a store file.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/image_codec.h"
#include "data/io.h"
#include "data/store.h"
#include "data/store_format.h"
#include "support/data_files.h"
#include "support/expect_error.h"

using namespace myelin;
using myelin::testing::TempDir;
namespace tf = myelin::testing;
using myelin::testing::expect_error;

namespace {

void expect_same_dataset(const Dataset& a, const Dataset& b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.example_shape(), b.example_shape());
  ASSERT_EQ(a.class_names(), b.class_names());
  size_t eb = static_cast<size_t>(a.example_shape().numel());
  std::vector<uint8_t> pa(eb), pb(eb);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    int32_t la = -1, lb = -2;
    a.read(i, pa.data(), &la);
    b.read(i, pb.data(), &lb);
    mismatches += (la != lb) || std::memcmp(pa.data(), pb.data(), eb) != 0;
  }
  EXPECT_EQ(mismatches, 0);
}

// A store of 40 random 6x5 color images in 3 classes (no validation split).
std::string small_store(const TempDir& dir) {
  for (int i = 0; i < 40; ++i)
    tf::write_png(dir / ("src/c" + std::to_string(i % 3) + "/" + std::to_string(i) + ".png"),
                  tf::random_pixels(5, 6, 3, static_cast<uint32_t>(i + 1)), 5, 6, 3);
  CreateOptions o;
  o.open.validation_percent = 0;
  create_store(dir / "src", dir / "store", o);
  return dir / "store/train.mstore";
}

void patch(const std::string& path, size_t offset, const void* bytes, size_t n) {
  auto b = tf::read_bytes(path);
  std::memcpy(b.data() + offset, bytes, n);
  tf::write_bytes(path, b);
}

// Rewrites the header and metadata checksums, so a test can reach the checks behind them.
void fix_checksums(const std::string& path) {
  auto b = tf::read_bytes(path);
  uint64_t names, labels_off, count;
  std::memcpy(&names, b.data() + data::hdr::names_offset, 8);
  std::memcpy(&labels_off, b.data() + data::hdr::labels_offset, 8);
  std::memcpy(&count, b.data() + data::hdr::count, 8);
  uint32_t meta = data::crc32(0, b.data() + names, labels_off + 4 * count - names);
  std::memcpy(b.data() + data::hdr::meta_crc, &meta, 4);
  uint32_t head = data::crc32(0, b.data(), data::hdr::header_crc);
  std::memcpy(b.data() + data::hdr::header_crc, &head, 4);
  tf::write_bytes(path, b);
}

}  // namespace

TEST(Store, FashionMnistRoundTripsWithStatsAndProgress) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TempDir dir;
  std::vector<CreateProgress> seen;
  auto t0 = std::chrono::steady_clock::now();
  StoreInfo info = create_store("fashion-mnist", dir / "fm", {},
                                [&](const CreateProgress& p) { seen.push_back(p); });
  double create_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(info.splits.size(), 2u);
  EXPECT_EQ(info.splits[0].count, 60000);
  EXPECT_EQ(info.splits[1].count, 10000);
  EXPECT_EQ(info.splits[0].class_counts, std::vector<int64_t>(10, 6000));

  // Progress: per split from 0 to its total, never backwards.
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().split, "train");
  EXPECT_EQ(seen.front().done, 0);
  EXPECT_EQ(seen.back().split, "val");
  EXPECT_EQ(seen.back().done, 10000);
  for (size_t i = 1; i < seen.size(); ++i) {
    if (seen[i].split == seen[i - 1].split) {
      EXPECT_GE(seen[i].done, seen[i - 1].done);
    }
  }

  t0 = std::chrono::steady_clock::now();
  DatasetSplits store = open_dataset(dir / "fm");
  double open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fashion-mnist store: created in %.2f s, opened in %.4f s\n", create_s, open_s);
  DatasetSplits src = open_dataset("fashion-mnist");
  expect_same_dataset(*src.train, *store.train);
  expect_same_dataset(*src.test, *store.test);
  EXPECT_EQ(store.train->class_counts(), std::vector<int64_t>(10, 6000));
  auto mean = store.train->mean_image();
  auto want = src.train->mean_image();
  ASSERT_EQ(mean->size(), 784u);
  for (size_t i = 0; i < mean->size(); ++i) ASSERT_NEAR((*mean)[i], (*want)[i], 1e-3) << i;
  EXPECT_NO_THROW(verify_store(dir / "fm/train.mstore"));

  auto j = nlohmann::json::parse(tf::read_bytes(dir / "fm/stats.json"));
  EXPECT_EQ(j["splits"]["train"]["count"], 60000);
  EXPECT_EQ(j["splits"]["val"]["class_counts"], std::vector<int64_t>(10, 1000));
  EXPECT_EQ(j["classes"][9], "Ankle boot");
  EXPECT_NEAR(j["mean_per_channel"][0].get<double>(), 72.94, 0.01);
  auto png = tf::read_bytes(dir / "fm/mean.png");
  data::RawImage img;
  data::decode_image("mean.png", png.data(), png.size(), img);
  EXPECT_EQ(img.width, 28);
  EXPECT_EQ(img.channels, 1);
}

TEST(Store, ImageFolderRoundTripKeepsResizeAndValidationSplit) {
  TempDir dir;
  for (int i = 0; i < 30; ++i)
    tf::write_png(dir / ("src/k" + std::to_string(i % 2) + "/" + std::to_string(i) + ".png"),
                  tf::random_pixels(7 + i % 4, 9, i % 3 ? 3 : 1, static_cast<uint32_t>(i + 9)),
                  7 + i % 4, 9, i % 3 ? 3 : 1);
  CreateOptions o;
  o.open.resize_h = 8;
  o.open.resize_w = 10;
  o.open.resize_mode = "fill";
  o.open.channels = 3;
  o.open.validation_percent = 20;
  o.threads = 3;
  StoreInfo info = create_store(dir / "src", dir / "out", o);
  EXPECT_EQ(info.example_shape, (Shape{3, 8, 10}));
  DatasetSplits src = open_dataset(dir / "src", o.open);
  DatasetSplits store = open_dataset(dir / "out");
  expect_same_dataset(*src.train, *store.train);
  ASSERT_TRUE(store.test);
  expect_same_dataset(*src.test, *store.test);
  EXPECT_EQ(store.test->class_counts(), (std::vector<int64_t>{3, 3}));
}

TEST(Store, RefusesToOverwriteUnlessAsked) {
  TempDir dir;
  small_store(dir);
  expect_error([&] { create_store(dir / "src", dir / "store"); }, {dir / "store", "already holds"});
  CreateOptions o;
  o.overwrite = true;
  o.open.validation_percent = 0;
  EXPECT_NO_THROW(create_store(dir / "src", dir / "store", o));
}

TEST(StoreErrors, TruncatedFileNamesPathAndSizes) {
  TempDir dir;
  std::string path = small_store(dir);
  auto b = tf::read_bytes(path);
  size_t full = b.size();
  b.resize(full - 100);
  tf::write_bytes(path, b);
  expect_error([&] { open_dataset(dir / "store"); },
               {path, "at byte " + std::to_string(full - 100), "truncated", std::to_string(full)});
  b.resize(60);
  tf::write_bytes(path, b);
  expect_error([&] { open_dataset(dir / "store"); },
               {path, "shorter than the 128-byte store header"});
}

TEST(StoreErrors, WrongMagicAndDamagedHeader) {
  TempDir dir;
  std::string path = small_store(dir);
  patch(path, data::hdr::width, "\x07\x00", 2);
  expect_error([&] { open_dataset(dir / "store"); }, {path + " at byte 124", "header checksum"});
  patch(path, 0, "GIF89a", 6);
  expect_error([&] { open_dataset(dir / "store"); },
               {path + " at byte 0", "not a Myelin dataset store", "GIF89a"});
}

TEST(StoreErrors, SizesThatDisagreeWithTheFileNameTheField) {
  TempDir dir;
  std::string path = small_store(dir);
  uint32_t w = 6;  // one column more than stored: every later section moves
  patch(path, data::hdr::width, &w, 4);
  fix_checksums(path);
  expect_error([&] { open_dataset(dir / "store"); }, {path + " at byte 72", "labels offset"});
}

TEST(StoreErrors, BadLabelBehindValidChecksumsIsOutOfRange) {
  TempDir dir;
  std::string path = small_store(dir);
  auto b = tf::read_bytes(path);
  uint64_t labels_off;
  std::memcpy(&labels_off, b.data() + data::hdr::labels_offset, 8);
  int32_t bad = 7;
  patch(path, labels_off + 4 * 5, &bad, 4);
  expect_error([&] { open_dataset(dir / "store"); }, {"metadata checksum"});
  fix_checksums(path);
  expect_error([&] { open_dataset(dir / "store"); },
               {path + " at byte " + std::to_string(labels_off + 20), "label 7 of example 5"});
}

TEST(StoreErrors, DamagedRecordsAreFoundByVerify) {
  TempDir dir;
  std::string path = small_store(dir);
  auto b = tf::read_bytes(path);
  b[b.size() - 3] ^= 0x10;
  tf::write_bytes(path, b);
  EXPECT_NO_THROW(open_dataset(dir / "store"));  // pixels cannot make a read unsafe
  expect_error([&] { verify_store(path); }, {path, "records checksum"});
}
