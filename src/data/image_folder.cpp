#include "data/image_folder.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/dataset_util.h"
#include "data/image_codec.h"
#include "data/io.h"
#include "data/resize.h"

namespace fs = std::filesystem;

namespace myelin::data {

namespace {

bool is_hidden(const fs::path& p) {
  std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

std::vector<fs::path> list_dir(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw DataError(dir.string(), -1, "cannot list the folder: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw DataError(dir.string(), -1, "cannot list the folder: " + ec.message());
    if (!is_hidden(it->path())) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());  // byte order of the names: UTF-8 sorts by code point
  return out;
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Throws unless the file starts like a PNG or JPEG.
void check_image_file(const std::string& path) {
  std::vector<uint8_t> head = read_head(path, 16);
  if (sniff_image(head.data(), head.size()) == ImageFormat::unknown)
    throw DataError(path, 0,
                    "not a PNG or JPEG image: it starts with " +
                        describe_bytes(head.data(), head.size()) +
                        " (class folders may hold only images)");
}

// Every image under `dir`, nested folders included, sorted by path. The depth limit stops a
// symlink that points back up the tree.
void collect_images(const fs::path& dir, int32_t label, std::vector<ImageEntry>& out,
                    int depth = 0) {
  if (depth > 32)
    throw DataError(dir.string(), -1, "folders nest more than 32 deep: a symbolic link loop?");
  for (const fs::path& p : list_dir(dir)) {
    if (is_dir(p)) {
      collect_images(p, label, out, depth + 1);
    } else {
      check_image_file(p.string());
      out.push_back({p.string(), label});
    }
  }
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

class ImageDataset : public Dataset {
 public:
  ImageDataset(ImageList list, Shape shape, ResizeMode mode)
      : list_(std::move(list)), shape_(std::move(shape)), mode_(mode) {}
  int64_t size() const override { return static_cast<int64_t>(list_.entries.size()); }
  Shape example_shape() const override { return shape_; }
  int num_classes() const override { return static_cast<int>(list_.classes.size()); }
  const std::vector<std::string>& class_names() const override { return list_.classes; }
  void read(int64_t index, uint8_t* pixels, int32_t* label) const override {
    const ImageEntry& e = entry(index);
    thread_local std::vector<uint8_t> file;
    thread_local RawImage image;
    read_file_into(e.path, file);
    int c = static_cast<int>(shape_[0]);
    decode_image(e.path, file.data(), file.size(), image, c);
    resize_to_chw(image, static_cast<int>(shape_[1]), static_cast<int>(shape_[2]), c, mode_,
                  pixels);
    *label = e.label;
  }
  int32_t label(int64_t index) const override { return entry(index).label; }
  std::string describe() const override {
    return describe_dataset(list_.name, size(), shape_, num_classes());
  }

 private:
  const ImageEntry& entry(int64_t index) const {
    check_index(index, size(), list_.name);
    return list_.entries[static_cast<size_t>(index)];
  }
  ImageList list_;
  Shape shape_;
  ResizeMode mode_;
};

// "image.png 3" -> {"image.png", 3}; ParseError naming file:line otherwise.
ImageEntry parse_list_line(const std::string& line, const std::string& file, int lineno,
                           const fs::path& base) {
  std::string t = trim(line);
  size_t split = t.find_last_of(" \t");
  if (split == std::string::npos)
    throw ParseError(file, lineno, "", "expected 'path label', found '" + t + "'");
  std::string path = trim(t.substr(0, split)), label_text = t.substr(split + 1);
  int32_t label = -1;
  auto [end, ec] = std::from_chars(label_text.data(), label_text.data() + label_text.size(), label);
  if (ec != std::errc() || end != label_text.data() + label_text.size() || label < 0 ||
      label > 1000000)
    throw ParseError(
        file, lineno, "label",
        "'" + label_text + "' is not a class number (0, 1, ...): expected 'path label'");
  fs::path p(path);
  if (p.is_relative()) p = base / p;
  return {p.string(), label};
}

}  // namespace

ImageList scan_image_folder(const std::string& dir) {
  ImageList list;
  list.name = fs::path(dir).filename().string();
  if (list.name.empty()) list.name = fs::path(dir).parent_path().filename().string();
  for (const fs::path& p : list_dir(dir)) {
    if (!is_dir(p))
      throw DataError(p.string(), -1,
                      "an image folder holds one subfolder per class; this is a file at its top");
    size_t before = list.entries.size();
    collect_images(p, static_cast<int32_t>(list.classes.size()), list.entries);
    if (list.entries.size() == before)
      throw DataError(p.string(), -1,
                      "class folder is empty: every class needs at least one image");
    list.classes.push_back(p.filename().string());
  }
  if (list.classes.empty())
    throw DataError(dir, -1, "no class folders: expected one subfolder of images per class");
  return list;
}

ImageList read_list_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path, -1, "cannot open: " + errno_text());
  ImageList list;
  list.name = fs::path(path).filename().string();
  fs::path base = fs::path(path).parent_path();
  std::string line;
  int lineno = 0;
  int32_t max_label = -1;
  while (std::getline(in, line)) {
    ++lineno;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    ImageEntry e = parse_list_line(t, path, lineno, base);
    try {
      check_image_file(e.path);
    } catch (const DataError& err) {
      throw ParseError(path, lineno, "", err.what());
    }
    max_label = std::max(max_label, e.label);
    list.entries.push_back(std::move(e));
  }
  if (list.entries.empty()) throw DataError(path, -1, "the list file names no images");
  list.classes = read_class_names_file((base / "labels.txt").string());
  if (list.classes.empty()) list.classes = numbered_classes(max_label + 1);
  if (max_label >= static_cast<int32_t>(list.classes.size()))
    throw DataError(path, -1,
                    "label " + std::to_string(max_label) + " is out of range: labels.txt names " +
                        std::to_string(list.classes.size()) + " classes");
  return list;
}

std::shared_ptr<Dataset> make_image_dataset(ImageList list, const OpenOptions& opts) {
  ResizeMode mode = parse_resize_mode(opts.resize_mode);
  if (opts.channels != 0 && opts.channels != 1 && opts.channels != 3)
    throw Error("channels must be 1 (gray), 3 (color) or 0 (from the images), got " +
                std::to_string(opts.channels));
  if (opts.resize_h < 0 || opts.resize_w < 0 || opts.resize_h > 65535 || opts.resize_w > 65535)
    throw Error("resize size " + std::to_string(opts.resize_h) + "x" +
                std::to_string(opts.resize_w) + " is out of range");
  int64_t h = opts.resize_h ? opts.resize_h : opts.resize_w;
  int64_t w = opts.resize_w ? opts.resize_w : opts.resize_h;
  int64_t c = opts.channels;
  if (h == 0 || c == 0) {
    const std::string& first = list.entries.at(0).path;
    std::vector<uint8_t> bytes = read_file(first);
    RawImage probe = probe_image(first, bytes.data(), bytes.size());
    if (h == 0) h = probe.height, w = probe.width;
    if (c == 0) c = probe.channels;
  }
  return std::make_shared<ImageDataset>(std::move(list), Shape{c, h, w}, mode);
}

DatasetSplits open_image_folder(const std::string& dir, const OpenOptions& opts) {
  fs::path root(dir);
  fs::path val = is_dir(root / "val") ? root / "val" : root / "test";
  if (is_dir(root / "train") && is_dir(val) && !list_dir(root / "train").empty() &&
      is_dir(list_dir(root / "train").front())) {
    ImageList train = scan_image_folder((root / "train").string());
    ImageList test = scan_image_folder(val.string());
    // The validation folder's classes are numbered as the training folder's.
    for (ImageEntry& e : test.entries) {
      const std::string& cls = test.classes[static_cast<size_t>(e.label)];
      auto it = std::find(train.classes.begin(), train.classes.end(), cls);
      if (it == train.classes.end())
        throw DataError((val / cls).string(), -1,
                        "class folder has no counterpart in " + (root / "train").string());
      e.label = static_cast<int32_t>(it - train.classes.begin());
    }
    test.classes = train.classes;
    std::string name = root.filename().string();
    train.name = name + " train";
    test.name = name + " " + val.filename().string();
    DatasetSplits s;
    s.train = make_image_dataset(std::move(train), opts);
    OpenOptions same = opts;  // the validation images take the training set's size and channels
    same.channels = static_cast<int>(s.train->example_shape()[0]);
    same.resize_h = s.train->example_shape()[1];
    same.resize_w = s.train->example_shape()[2];
    s.test = make_image_dataset(std::move(test), same);
    return s;
  }
  ImageList list = scan_image_folder(dir);
  std::string name = list.name;
  return split_validation(make_image_dataset(std::move(list), opts), opts.validation_percent,
                          opts.seed, name);
}

DatasetSplits open_list_file(const std::string& path, const OpenOptions& opts) {
  ImageList list = read_list_file(path);
  std::string name = list.name;
  return split_validation(make_image_dataset(std::move(list), opts), opts.validation_percent,
                          opts.seed, name);
}

}  // namespace myelin::data
