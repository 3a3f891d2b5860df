// Dataset archives: .tar.gz, .zip and .tar written here with libarchive's writer, extracted and
// opened as image folders; and every way an archive can try to escape its directory, lie about
// its size or be broken.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "core/error.h"
#include "data/archive.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "support/data_files.h"
#include "support/expect_error.h"

using namespace myelin;
using myelin::testing::expect_error;
using myelin::testing::TempDir;
namespace fs = std::filesystem;
namespace tf = myelin::testing;

namespace {

struct Entry {
  std::string name;
  std::string data;
  unsigned type = AE_IFREG;
  std::string link;  // symlink target, or the hard link's original
  bool hardlink = false;
};

// Writes `entries` as "tar", "tar.gz" or "zip".
void write_archive(const std::string& path, const std::string& format,
                   const std::vector<Entry>& entries) {
  archive* a = archive_write_new();
  if (format == "zip") {
    archive_write_set_format_zip(a);
  } else {
    archive_write_set_format_pax_restricted(a);
    if (format == "tar.gz") archive_write_add_filter_gzip(a);
  }
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << archive_error_string(a);
  for (const Entry& e : entries) {
    archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.name.c_str());
    archive_entry_set_filetype(ae, e.type);
    archive_entry_set_perm(ae, e.type == AE_IFDIR ? 0755 : 0644);
    if (e.type == AE_IFLNK) archive_entry_set_symlink(ae, e.link.c_str());
    if (e.hardlink) archive_entry_set_hardlink(ae, e.link.c_str());
    archive_entry_set_size(
        ae, e.type == AE_IFREG && !e.hardlink ? static_cast<la_int64_t>(e.data.size()) : 0);
    ASSERT_EQ(archive_write_header(a, ae), ARCHIVE_OK) << archive_error_string(a);
    if (e.type == AE_IFREG && !e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
}

std::string png_bytes(int w, int h, int c, uint32_t seed) {
  std::vector<uint8_t> png = data::encode_png(tf::random_pixels(w, h, c, seed).data(), w, h, c);
  return {png.begin(), png.end()};
}

// Two classes of three 8x6 gray images under `prefix`, and the junk macOS adds to zips.
std::vector<Entry> class_tree(const std::string& prefix) {
  std::vector<Entry> v;
  if (!prefix.empty()) v.push_back({prefix, "", AE_IFDIR});
  uint32_t seed = 1;
  for (std::string cls : {"cat", "dog"}) {
    v.push_back({prefix + cls + "/", "", AE_IFDIR});
    for (std::string f : {"a.png", "b.png", "c.png"})
      v.push_back({prefix + cls + "/" + f, png_bytes(8, 6, 1, seed++)});
  }
  v.push_back({prefix + ".DS_Store", "junk"});
  v.push_back({"__MACOSX/" + prefix + "cat/._a.png", "resource fork"});
  return v;
}

void expect_cat_dog_dataset(const ExtractResult& r) {
  EXPECT_EQ(r.files, 7);  // 6 images and .DS_Store; __MACOSX skipped
  OpenOptions o;
  o.validation_percent = 0;
  DatasetSplits s = open_dataset(r.root, o);
  ASSERT_TRUE(s.train);
  EXPECT_EQ(s.train->class_names(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(s.train->class_counts(), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(s.train->example_shape(), (Shape{1, 6, 8}));
  std::vector<uint8_t> px(48);
  int32_t label = -1;
  s.train->read(4, px.data(), &label);  // dog/b.png, written with seed 5
  EXPECT_EQ(label, 1);
  EXPECT_EQ(px, tf::random_pixels(8, 6, 1, 5));
}

// The paths under `dir`, relative to it.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// Extraction into dir/box fails with `parts` in the message, leaves nothing in dir but the
// archive, and removes box (which it created).
void expect_refused(const std::vector<Entry>& entries, std::initializer_list<std::string> parts,
                    const std::string& format = "tar.gz", ExtractLimits limits = {}) {
  TempDir dir;
  std::string archive = dir / "upload.bin";
  write_archive(archive, format, entries);
  expect_error([&] { extract_archive(archive, dir / "box", limits); }, parts);
  EXPECT_EQ(tree(dir.str()), std::vector<std::string>{"upload.bin"});
}

}  // namespace

TEST(Archive, TarGzWrappedInOneFolderOpensAsImageFolder) {
  TempDir dir;
  write_archive(dir / "photos.tar.gz", "tar.gz", class_tree("photos/"));
  ExtractResult r = extract_archive(dir / "photos.tar.gz", dir / "out");
  EXPECT_EQ(r.root, dir / "out/photos");
  EXPECT_FALSE(fs::exists(dir / "out/__MACOSX"));
  expect_cat_dog_dataset(r);
}

TEST(Archive, ZipWithoutWrapperIsItsOwnRoot) {
  TempDir dir;
  write_archive(dir / "photos.zip", "zip", class_tree(""));
  ExtractResult r = extract_archive(dir / "photos.zip", dir / "out");
  EXPECT_EQ(r.root, dir / "out");
  expect_cat_dog_dataset(r);
}

TEST(Archive, FormatComesFromContentNotName) {
  TempDir dir;
  write_archive(dir / "really-a-tar.zip", "tar", class_tree("x/"));
  write_archive(dir / "really-a-zip.tar.gz", "zip", class_tree("y/"));
  expect_cat_dog_dataset(extract_archive(dir / "really-a-tar.zip", dir / "a"));
  expect_cat_dog_dataset(extract_archive(dir / "really-a-zip.tar.gz", dir / "b"));
}

TEST(Archive, DotSlashPrefixesAsGnuTarWritesThem) {
  TempDir dir;
  std::vector<Entry> entries = {{"./", "", AE_IFDIR}};
  for (const Entry& e : class_tree("./photos/"))
    if (e.name.rfind("__MACOSX", 0) != 0) entries.push_back(e);
  write_archive(dir / "dot.tgz", "tar.gz", entries);
  ExtractResult r = extract_archive(dir / "dot.tgz", dir / "out");
  EXPECT_EQ(r.root, dir / "out/photos");
  expect_cat_dog_dataset(r);
}

TEST(Archive, SingleClassFolderIsNotTakenAsTheWrapper) {
  TempDir dir;
  write_archive(dir / "one.tar", "tar", {{"cat/a.png", png_bytes(4, 4, 1, 1)}});
  EXPECT_EQ(extract_archive(dir / "one.tar", dir / "out").root, dir / "out");
}

TEST(Archive, DotDotEntryIsRefused) {
  expect_refused({{"photos/cat/a.png", "x"}, {"photos/../../evil.txt", "gotcha"}},
                 {"upload.bin", "'photos/../../evil.txt'", ".."});
  expect_refused({{"..", "", AE_IFDIR}}, {"'..'"}, "zip");
}

TEST(Archive, AbsolutePathIsRefused) {
  std::string target = "/tmp/myelin-archive-evil-" + std::to_string(::getpid());
  expect_refused({{target, "gotcha"}}, {target, "absolute path"});
  EXPECT_FALSE(fs::exists(target));
}

TEST(Archive, LinksAndDevicesAreRefused) {
  // A symlink out of the box followed by a file written through it: the first is refused.
  expect_refused({{"photos/link", "", AE_IFLNK, "/tmp"}, {"photos/link/evil.txt", "gotcha"}},
                 {"'photos/link'", "symbolic link"});
  expect_refused({{"a.txt", "x"}, {"b.txt", "", AE_IFREG, "/etc/passwd", true}},
                 {"'b.txt'", "hard link"});
  expect_refused({{"fifo", "", AE_IFIFO}}, {"'fifo'", "FIFO"});
  expect_refused({{"dev", "", AE_IFCHR}}, {"'dev'", "device"});
  expect_refused({{"photos/link", "", AE_IFLNK, "../.."}}, {"symbolic link"}, "zip");
}

TEST(Archive, TruncatedArchivesAreCorrupt) {
  for (std::string format : {"tar.gz", "zip", "tar"}) {
    TempDir dir;
    std::vector<Entry> big = class_tree("p/");
    std::vector<uint8_t> noise = tf::random_pixels(200000, 1, 1, 9);  // incompressible
    big.push_back({"p/big.bin", std::string(noise.begin(), noise.end())});
    write_archive(dir / "full", format, big);
    std::vector<uint8_t> bytes = tf::read_bytes(dir / "full");
    bytes.resize(bytes.size() * 2 / 3);
    tf::write_bytes(dir / "cut", bytes);
    std::string msg = expect_error([&] { extract_archive(dir / "cut", dir / "out"); }, {"cut"});
    EXPECT_FALSE(fs::exists(dir / "out")) << format << ": " << msg;
  }
}

TEST(Archive, RandomBytesAndEmptyFilesAreNoArchive) {
  TempDir dir;
  std::vector<uint8_t> noise(5000);
  std::mt19937 rng(7);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  tf::write_bytes(dir / "noise.zip", noise);
  expect_error([&] { extract_archive(dir / "noise.zip", dir / "out"); },
               {"noise.zip", "not a readable .zip, .tar or .tar.gz archive"});
  tf::write_bytes(dir / "empty.tar", {});
  expect_error([&] { extract_archive(dir / "empty.tar", dir / "out"); }, {"empty.tar"});
  expect_error([&] { extract_archive(dir / "missing.zip", dir / "out"); },
               {"missing.zip", "no such file"});
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(Archive, ZipBombStopsAtTheByteLimit) {
  // 16 MB of zeros compresses to about 16 KB; the limit stops it after 1 MB is written.
  std::string zeros(16 << 20, '\0');
  ExtractLimits small;
  small.max_bytes = 1 << 20;
  expect_refused({{"bomb.bin", zeros}}, {"'bomb.bin'", "limit of 1048576 bytes"}, "zip", small);
  expect_refused({{"bomb.bin", zeros}}, {"'bomb.bin'", "limit of 1048576 bytes"}, "tar.gz", small);
}

TEST(Archive, FileCountLimit) {
  std::vector<Entry> many;
  for (int i = 0; i < 20; ++i) many.push_back({"f" + std::to_string(i), "x"});
  ExtractLimits limits;
  limits.max_files = 10;
  expect_refused(many, {"more than 10 entries", "'f10'"}, "tar", limits);
}

TEST(Archive, OutputDirectoryMustBeEmptyAndIsLeftAsFound) {
  TempDir dir;
  write_archive(dir / "ok.tar", "tar", class_tree(""));
  write_archive(dir / "bad.tar", "tar", {{"a.txt", "x"}, {"../b.txt", "y"}});
  fs::create_directories(dir / "full");
  tf::write_bytes(dir / "full/keep.txt", {1});
  expect_error([&] { extract_archive(dir / "ok.tar", dir / "full"); }, {"not empty"});
  EXPECT_TRUE(fs::exists(dir / "full/keep.txt"));
  fs::create_directories(dir / "empty");
  expect_error([&] { extract_archive(dir / "bad.tar", dir / "empty"); }, {"'../b.txt'"});
  EXPECT_TRUE(fs::is_directory(dir / "empty"));
  EXPECT_TRUE(fs::is_empty(dir / "empty"));
  EXPECT_FALSE(fs::exists(dir / "b.txt"));
  expect_cat_dog_dataset(extract_archive(dir / "ok.tar", dir / "empty"));
}

TEST(Archive, DuplicateEntryIsAnError) {
  expect_refused({{"a.txt", "x"}, {"a.txt", "y"}}, {"'a.txt'", "twice"}, "tar");
}
