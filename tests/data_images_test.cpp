// Image folders and list files: PNG and JPEG written by the test with libpng/libjpeg, gray and
// color, several sizes, class names with a space and non-ASCII letters; resize modes; errors.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "support/data_files.h"
#include "support/expect_error.h"

using namespace myelin;
using myelin::testing::TempDir;
namespace tf = myelin::testing;
using myelin::testing::expect_error;

namespace {

// A smooth color gradient (JPEG keeps those nearly exact), offset by `seed`.
std::vector<uint8_t> gradient(int w, int h, int c, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        px[(static_cast<size_t>(y) * w + x) * c + k] =
            static_cast<uint8_t>(20 + (x * 150 / w + y * 60 / h + k * 10 + seed * 3) % 230);
  return px;
}

// HWC -> CHW.
std::vector<uint8_t> planar(const std::vector<uint8_t>& hwc, int w, int h, int c) {
  std::vector<uint8_t> out(hwc.size());
  for (int k = 0; k < c; ++k)
    for (int i = 0; i < w * h; ++i)
      out[static_cast<size_t>(k) * w * h + i] = hwc[static_cast<size_t>(i) * c + k];
  return out;
}

std::vector<uint8_t> read_example(const Dataset& d, int64_t i, int32_t* label = nullptr) {
  std::vector<uint8_t> px(static_cast<size_t>(d.example_shape().numel()));
  int32_t l;
  d.read(i, px.data(), label ? label : &l);
  return px;
}

// The folder most tests use: three classes, PNG and JPEG, gray and color, four sizes.
struct Folder {
  TempDir dir;
  std::string root = dir / "pets";
  Folder() {
    tf::write_png(root + "/cat/a.png", tf::random_pixels(12, 16, 3, 1), 12, 16, 3);
    tf::write_png(root + "/cat/b.png", tf::random_pixels(20, 10, 1, 2), 20, 10, 1);
    tf::write_jpeg(root + "/cat/c.jpg", gradient(30, 24, 3, 3), 30, 24, 3);
    tf::write_jpeg(root + "/dog house/d.jpeg", gradient(8, 8, 1, 4), 8, 8, 1);
    tf::write_png(root + "/dog house/e.png", tf::random_pixels(12, 16, 3, 5), 12, 16, 3);
    tf::write_png(root + "/\xc3\xa9lan/f.png", tf::random_pixels(12, 16, 1, 6), 12, 16, 1);
    tf::write_jpeg(root + "/\xc3\xa9lan/g h.jpg", gradient(40, 30, 3, 7), 40, 30, 3);
  }
};

}  // namespace

TEST(ImageFolder, ClassesAreSortedFolderNamesWithSpacesAndNonAscii) {
  Folder f;
  OpenOptions o;
  o.validation_percent = 0;
  DatasetSplits s = open_dataset(f.root, o);
  ASSERT_TRUE(s.train);
  EXPECT_FALSE(s.test);
  EXPECT_EQ(s.train->class_names(), (std::vector<std::string>{"cat", "dog house", "\xc3\xa9lan"}));
  EXPECT_EQ(s.train->size(), 7);
  EXPECT_EQ(s.train->class_counts(), (std::vector<int64_t>{3, 2, 2}));
  // Size and channels of the first image (cat/a.png: 12 wide, 16 high, color).
  EXPECT_EQ(s.train->example_shape(), (Shape{3, 16, 12}));
  for (int64_t i = 0; i < s.train->size(); ++i) read_example(*s.train, i);  // all decode
}

TEST(ImageFolder, SameSizeImagesComeBackExactly) {
  Folder f;
  OpenOptions o;
  o.validation_percent = 0;
  o.channels = 3;
  DatasetSplits color = open_dataset(f.root, o);
  int32_t label = -1;
  EXPECT_EQ(read_example(*color.train, 0, &label),
            planar(tf::random_pixels(12, 16, 3, 1), 12, 16, 3));
  EXPECT_EQ(label, 0);
  EXPECT_EQ(read_example(*color.train, 4, &label),
            planar(tf::random_pixels(12, 16, 3, 5), 12, 16, 3));
  EXPECT_EQ(label, 1);
  // A gray image in a color dataset: the gray plane three times.
  std::vector<uint8_t> gray = tf::random_pixels(12, 16, 1, 6), g3;
  for (int k = 0; k < 3; ++k) g3.insert(g3.end(), gray.begin(), gray.end());
  EXPECT_EQ(read_example(*color.train, 5, &label), g3);
  EXPECT_EQ(label, 2);

  o.channels = 1;  // a color image in a gray dataset: 0.299 R + 0.587 G + 0.114 B
  DatasetSplits mono = open_dataset(f.root, o);
  std::vector<uint8_t> rgb = tf::random_pixels(12, 16, 3, 1), got = read_example(*mono.train, 0);
  ASSERT_EQ(got.size(), 12u * 16u);
  for (size_t i = 0; i < got.size(); ++i) {
    double y = 0.299 * rgb[i * 3] + 0.587 * rgb[i * 3 + 1] + 0.114 * rgb[i * 3 + 2];
    EXPECT_NEAR(got[i], y, 0.51) << i;
  }
}

TEST(ImageFolder, JpegDecodesCloseToItsSource) {
  Folder f;
  OpenOptions o;
  o.validation_percent = 0;
  o.resize_h = 24;
  o.resize_w = 30;
  DatasetSplits s = open_dataset(f.root, o);
  std::vector<uint8_t> want = planar(gradient(30, 24, 3, 3), 30, 24, 3),
                       got = read_example(*s.train, 2);
  double err = 0;
  for (size_t i = 0; i < want.size(); ++i) err += std::abs(int(want[i]) - int(got[i]));
  EXPECT_LT(err / want.size(), 3.0) << "mean absolute error of a quality-95 JPEG";
}

TEST(Resize, SquashFillAndCropPlaceThePictureAsDocumented) {
  TempDir dir;
  // 20 wide, 10 high: left half 50, right half 200.
  std::vector<uint8_t> px(200);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 20; ++x) px[static_cast<size_t>(y * 20 + x)] = x < 10 ? 50 : 200;
  tf::write_png(dir / "set/a/x.png", px, 20, 10, 1);
  OpenOptions o;
  o.validation_percent = 0;
  o.resize_h = o.resize_w = 10;

  o.resize_mode = "crop";  // scale 1 (covers), middle 10 columns: 5 of each half
  auto crop = read_example(*open_dataset(dir / "set", o).train, 0);
  for (int x = 0; x < 10; ++x)
    EXPECT_EQ(crop[static_cast<size_t>(3 * 10 + x)], x < 5 ? 50 : 200) << x;

  o.resize_mode = "fill";  // scale 0.5 to fit: 10x5 picture in rows 2..6, black bars around
  auto fill = read_example(*open_dataset(dir / "set", o).train, 0);
  for (int y = 0; y < 10; ++y) {
    bool inside = y >= 2 && y < 7;
    EXPECT_EQ(fill[static_cast<size_t>(y * 10 + 0)], inside ? 50 : 0) << y;
    EXPECT_EQ(fill[static_cast<size_t>(y * 10 + 9)], inside ? 200 : 0) << y;
  }

  o.resize_mode = "squash";  // stretched 2:1, pixel centres aligned: no column straddles the seam
  auto squash = read_example(*open_dataset(dir / "set", o).train, 0);
  for (int x = 0; x < 10; ++x)
    EXPECT_EQ(squash[static_cast<size_t>(4 * 10 + x)], x < 5 ? 50 : 200) << x;
  o.resize_w = 7;  // 20 -> 7: column 3's centre falls between source columns 9 and 10
  auto blend = read_example(*open_dataset(dir / "set", o).train, 0);
  EXPECT_EQ(blend[static_cast<size_t>(2 * 7 + 3)], 125)
      << "bilinear: the seam column blends both halves";
  EXPECT_EQ(blend[static_cast<size_t>(2 * 7 + 0)], 50);

  o.resize_mode = "stretch";
  expect_error([&] { open_dataset(dir / "set", o); }, {"stretch", "crop, squash or fill"});
}

TEST(ImageFolder, ValidationSplitIsStratifiedAndDeterministic) {
  TempDir dir;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 10; ++i)
      tf::write_png(dir / ("set/c" + std::to_string(c) + "/" + std::to_string(i) + ".png"),
                    tf::random_pixels(4, 4, 1, static_cast<uint32_t>(c * 100 + i)), 4, 4, 1);
  OpenOptions o;
  o.validation_percent = 30;
  o.seed = 11;
  DatasetSplits a = open_dataset(dir / "set", o), b = open_dataset(dir / "set", o);
  EXPECT_EQ(a.train->size(), 21);
  EXPECT_EQ(a.test->class_counts(), (std::vector<int64_t>{3, 3, 3}));
  std::vector<std::vector<uint8_t>> va, vb, vc;
  for (int64_t i = 0; i < 9; ++i)
    va.push_back(read_example(*a.test, i)), vb.push_back(read_example(*b.test, i));
  EXPECT_EQ(va, vb);
  o.seed = 12;
  DatasetSplits c = open_dataset(dir / "set", o);
  for (int64_t i = 0; i < 9; ++i) vc.push_back(read_example(*c.test, i));
  EXPECT_NE(va, vc) << "another seed should pick other validation images";
}

TEST(ImageFolder, TrainAndValFoldersAreUsedAsTheSplits) {
  TempDir dir;
  tf::write_png(dir / "set/train/b/1.png", tf::random_pixels(6, 6, 1, 1), 6, 6, 1);
  tf::write_png(dir / "set/train/a/2.png", tf::random_pixels(6, 6, 1, 2), 6, 6, 1);
  tf::write_png(dir / "set/val/b/3.png", tf::random_pixels(9, 9, 3, 3), 9, 9, 3);
  DatasetSplits s = open_dataset(dir / "set");
  EXPECT_EQ(s.train->size(), 2);
  ASSERT_TRUE(s.test);
  EXPECT_EQ(s.test->size(), 1);
  EXPECT_EQ(s.test->label(0), 1) << "val/b is numbered as train/b";
  EXPECT_EQ(s.test->example_shape(), (Shape{1, 6, 6})) << "validation takes the training shape";
}

TEST(ListFile, ReadsRelativeAbsoluteAndSpacedPathsWithClassNames) {
  TempDir dir;
  tf::write_png(dir / "imgs/one.png", tf::random_pixels(5, 5, 1, 1), 5, 5, 1);
  tf::write_png(dir / "imgs/two words.png", tf::random_pixels(5, 5, 1, 2), 5, 5, 1);
  tf::write_jpeg(dir / "elsewhere/three.jpg", gradient(5, 5, 1, 3), 5, 5, 1);
  std::string list = "# path label\nimgs/one.png 1\n\nimgs/two words.png\t0\n" +
                     (dir / "elsewhere/three.jpg") + " 2\r\n";
  tf::write_bytes(dir / "train.txt", std::vector<uint8_t>(list.begin(), list.end()));
  std::string names = "zero\none\ntwo\n";
  tf::write_bytes(dir / "labels.txt", std::vector<uint8_t>(names.begin(), names.end()));
  OpenOptions o;
  o.validation_percent = 0;
  DatasetSplits s = open_dataset(dir / "train.txt", o);
  ASSERT_EQ(s.train->size(), 3);
  EXPECT_EQ(s.train->class_names(), (std::vector<std::string>{"zero", "one", "two"}));
  int32_t label = -1;
  EXPECT_EQ(read_example(*s.train, 1, &label), tf::random_pixels(5, 5, 1, 2));
  EXPECT_EQ(label, 0);
  EXPECT_EQ(s.train->label(2), 2);
}

TEST(ImageErrors, NonImageFileInAClassFolderNamesItAndItsFirstBytes) {
  Folder f;
  std::string notes = f.root + "/cat/notes.txt";
  std::string text = "Hello, world";
  tf::write_bytes(notes, std::vector<uint8_t>(text.begin(), text.end()));
  expect_error([&] { open_dataset(f.root); },
               {notes, "not a PNG or JPEG", "48 65 6c 6c", "'Hello, w'"});
}

TEST(ImageErrors, EmptyClassFolderIsNamed) {
  Folder f;
  std::filesystem::create_directories(f.root + "/zebra");
  expect_error([&] { open_dataset(f.root); }, {f.root + "/zebra", "empty"});
}

TEST(ImageErrors, CorruptPngIsADataErrorNamingTheFile) {
  TempDir dir;
  std::string path = dir / "set/a/x.png";
  tf::write_png(path, tf::random_pixels(16, 16, 3, 1), 16, 16, 3);
  auto bytes = tf::read_bytes(path);
  bytes[bytes.size() / 2] ^= 0x5a;  // inside the compressed pixels: the chunk CRC fails
  tf::write_bytes(path, bytes);
  OpenOptions o;
  o.validation_percent = 0;
  DatasetSplits s = open_dataset(dir / "set", o);  // the header is intact: opening works
  try {
    read_example(*s.train, 0);
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_GT(e.offset(), 0);
    EXPECT_NE(std::string(e.what()).find("corrupt PNG"), std::string::npos) << e.what();
  }
}

TEST(ImageErrors, TruncatedJpegAndPngAreErrorsNotGrayFill) {
  TempDir dir;
  std::string jpg = dir / "set/a/x.jpg", png = dir / "set/b/y.png";
  tf::write_jpeg(jpg, gradient(32, 32, 3, 1), 32, 32, 3);
  tf::write_png(png, tf::random_pixels(32, 32, 3, 2), 32, 32, 3);
  for (const std::string& p : {jpg, png}) {
    auto bytes = tf::read_bytes(p);
    bytes.resize(bytes.size() * 2 / 3);
    tf::write_bytes(p, bytes);
  }
  OpenOptions o;
  o.validation_percent = 0;
  o.resize_h = o.resize_w = 32;
  o.channels = 3;
  DatasetSplits s = open_dataset(dir / "set", o);
  expect_error([&] { read_example(*s.train, 0); }, {jpg, "corrupt JPEG"});
  expect_error([&] { read_example(*s.train, 1); }, {png, "corrupt PNG", "truncated"});
}

TEST(ImageErrors, MalformedListLinesNameFileAndLine) {
  TempDir dir;
  tf::write_png(dir / "a.png", tf::random_pixels(5, 5, 1, 1), 5, 5, 1);
  auto write_list = [&](const std::string& text) {
    tf::write_bytes(dir / "list.txt", std::vector<uint8_t>(text.begin(), text.end()));
  };
  write_list("a.png 0\na.png 1\njust-a-path\n");
  expect_error([&] { open_dataset(dir / "list.txt"); },
               {dir / "list.txt" + ":3", "expected 'path label'"});
  write_list("a.png 0\na.png cat\n");
  expect_error([&] { open_dataset(dir / "list.txt"); }, {dir / "list.txt" + ":2", "'cat'"});
  write_list("a.png 0\nmissing.png 1\n");
  expect_error([&] { open_dataset(dir / "list.txt"); },
               {dir / "list.txt" + ":2", "missing.png", "cannot open"});
}

TEST(ImageErrors, ProbingRejectsImpossibleSizesBeforeAllocating) {
  // A PNG header claiming 60000 x 60000 pixels in a 60-byte file.
  TempDir dir;
  std::string path = dir / "huge.png";
  tf::write_png(path, tf::random_pixels(4, 4, 1, 1), 4, 4, 1);
  auto bytes = tf::read_bytes(path);
  // IHDR width/height at 16..23; fix the chunk CRC so only the size is wrong.
  for (int i : {16, 20}) bytes[i] = 0, bytes[i + 1] = 0, bytes[i + 2] = 0xea, bytes[i + 3] = 0x60;
  uLong crc = crc32(0, bytes.data() + 12, 17);
  for (int k = 0; k < 4; ++k) bytes[29 + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
  data::RawImage img;
  expect_error([&] { data::decode_image(path, bytes.data(), bytes.size(), img); },
               {path, "corrupt PNG"});
}

TEST(ImageErrors, ASymlinkLoopIsAnErrorNotAStackOverflow) {
  TempDir dir;
  tf::write_png(dir / "set/a/x.png", tf::random_pixels(4, 4, 1, 1), 4, 4, 1);
  std::filesystem::create_directory_symlink("..", dir / "set/a/loop");
  expect_error([&] { open_dataset(dir / "set"); }, {"symbolic link loop"});
}
