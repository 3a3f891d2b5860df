#include "data/idx.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>

#include "core/error.h"
#include "data/dataset_util.h"
#include "data/io.h"

namespace fs = std::filesystem;

namespace myelin::data {

namespace {

// Images or labels larger than this are not plausible IDX files (MNIST's are 47 MB).
constexpr int64_t kMaxIdxBytes = int64_t{1} << 36;

const char* idx_type_name(uint8_t t) {
  switch (t) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "short";
    case 0x0C:
      return "int";
    case 0x0D:
      return "float";
    case 0x0E:
      return "double";
  }
  return "unknown";
}

void read_exact(ByteReader& in, uint8_t* out, size_t n, const std::string& what) {
  int64_t at = in.offset();
  size_t got = in.read(out, n);
  if (got != n)
    throw DataError(in.path(), at + static_cast<int64_t>(got),
                    "file ends inside the " + what + " (" + std::to_string(n - got) +
                        " more bytes expected): the file is truncated");
}

std::vector<int64_t> read_idx_header(ByteReader& in) {
  uint8_t magic[4];
  read_exact(in, magic, 4, "4-byte magic number");
  if (magic[0] != 0 || magic[1] != 0)
    throw DataError(
        in.path(), 0,
        "not an IDX file: expected magic 00 00 08 0N, found " + describe_bytes(magic, 4));
  if (magic[2] != 0x08)
    throw DataError(in.path(), 2,
                    "IDX element type 0x" + describe_bytes(magic + 2, 1).substr(0, 2) + " (" +
                        idx_type_name(magic[2]) +
                        ") is not supported: expected 0x08 (unsigned byte)");
  int rank = magic[3];
  if (rank < 1 || rank > 4)
    throw DataError(in.path(), 3, "IDX rank " + std::to_string(rank) + " is not in 1..4");
  std::vector<int64_t> dims(static_cast<size_t>(rank));
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) {
    uint8_t b[4];
    read_exact(in, b, 4, "size of dimension " + std::to_string(i));
    int64_t d = int64_t{b[0]} << 24 | int64_t{b[1]} << 16 | int64_t{b[2]} << 8 | b[3];
    if (d == 0) throw DataError(in.path(), 4 + 4 * i, "dimension " + std::to_string(i) + " is 0");
    dims[static_cast<size_t>(i)] = d;
    if (total > kMaxIdxBytes / d)
      throw DataError(in.path(), 4 + 4 * i,
                      "the sizes multiply to more than " + std::to_string(kMaxIdxBytes) + " bytes");
    total *= d;
  }
  return dims;
}

// Reads `total` payload bytes, growing the buffer as data arrives so a header that claims more
// than the file holds costs no more memory than the file's real contents.
std::vector<uint8_t> read_payload(ByteReader& in, int64_t total) {
  std::vector<uint8_t> data;
  size_t want = static_cast<size_t>(total);
  data.reserve(std::min(want, std::max<size_t>(in.size_hint(), size_t{1} << 20)));
  while (data.size() < want) {
    size_t chunk = std::min(want - data.size(), std::max<size_t>(data.size(), size_t{1} << 22));
    size_t at = data.size();
    data.resize(at + chunk);
    size_t got = in.read(data.data() + at, chunk);
    if (got < chunk)
      throw DataError(in.path(), in.offset(),
                      "file ends after " + std::to_string(at + got) + " of the " +
                          std::to_string(want) + " data bytes its header promises: truncated");
  }
  return data;
}

class IdxDataset : public Dataset {
 public:
  IdxDataset(IdxArray images, IdxArray labels, std::string name, std::vector<std::string> classes)
      : images_(std::move(images.data)),
        labels_(std::move(labels.data)),
        shape_{1, images.dims[1], images.dims[2]},
        name_(std::move(name)),
        classes_(std::move(classes)) {
    example_bytes_ = static_cast<size_t>(shape_.numel());
  }
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Shape example_shape() const override { return shape_; }
  int num_classes() const override { return static_cast<int>(classes_.size()); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  void read(int64_t index, uint8_t* pixels, int32_t* label) const override {
    check_index(index, size(), name_);
    std::memcpy(pixels, images_.data() + static_cast<size_t>(index) * example_bytes_,
                example_bytes_);
    *label = labels_[static_cast<size_t>(index)];
  }
  int32_t label(int64_t index) const override {
    check_index(index, size(), name_);
    return labels_[static_cast<size_t>(index)];
  }
  std::string describe() const override {
    return describe_dataset(name_, size(), shape_, num_classes());
  }
  // Numbered classes widen to the other split's when one split lacks the highest labels.
  void widen_classes(size_t k) {
    if (k > classes_.size()) classes_ = numbered_classes(static_cast<int>(k));
  }

 private:
  std::vector<uint8_t> images_, labels_;
  Shape shape_;
  std::string name_;
  std::vector<std::string> classes_;
  size_t example_bytes_ = 0;
};

struct Candidates {
  std::vector<std::string> train_images, train_labels, test_images, test_labels;
};

bool contains(const std::string& s, const char* part) {
  return s.find(part) != std::string::npos;
}

// Sorts IDX-looking files by role from their names: MNIST's "train-images-idx3-ubyte.gz",
// "t10k-labels-idx1-ubyte", and also "emnist-digits-test-images-idx3-ubyte".
Candidates scan_idx_files(const std::string& dir) {
  Candidates c;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw DataError(dir, -1, "cannot list the directory: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw DataError(dir, -1, "cannot list the directory: " + ec.message());
    std::string name = it->path().filename().string();
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (!contains(lower, "ubyte") && !contains(lower, "idx")) continue;
    if (!it->is_regular_file(ec)) continue;
    bool images = contains(lower, "idx3") || contains(lower, "images");
    bool labels = contains(lower, "idx1") || contains(lower, "labels");
    bool test = contains(lower, "t10k") || contains(lower, "test");
    bool train = contains(lower, "train");
    if (images == labels || test == train) continue;
    auto& list = train ? (images ? c.train_images : c.train_labels)
                       : (images ? c.test_images : c.test_labels);
    list.push_back(it->path().string());
  }
  return c;
}

// One file per role; the uncompressed copy when a directory holds both (it loads faster).
std::string pick(std::vector<std::string> files, const std::string& dir, const char* role) {
  if (files.empty()) return "";
  std::sort(files.begin(), files.end());
  auto stem = [](const std::string& f) {
    return f.size() > 3 && f.compare(f.size() - 3, 3, ".gz") == 0 ? f.substr(0, f.size() - 3) : f;
  };
  for (const auto& f : files)
    if (stem(f) != stem(files[0]))
      throw DataError(dir, -1,
                      std::string("several ") + role + " files (" + files[0] + ", " + f +
                          "): put each dataset in its own directory");
  return files[0];  // sorted: "x" before "x.gz"
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  std::vector<uint8_t> raw = read_file(path);
  ByteReader in(path, raw.data(), raw.size());
  IdxArray a;
  a.dims = read_idx_header(in);
  a.header_bytes = in.offset();
  int64_t total = 1;
  for (int64_t d : a.dims) total *= d;
  if (!in.compressed() &&
      static_cast<uint64_t>(total) > raw.size() - static_cast<size_t>(a.header_bytes))
    throw DataError(
        path, a.header_bytes,
        "the header promises " + std::to_string(total) + " data bytes but the file has " +
            std::to_string(raw.size() - static_cast<size_t>(a.header_bytes)) + ": truncated");
  a.data = read_payload(in, total);
  in.expect_end(std::to_string(total) + " data bytes");
  return a;
}

IdxFiles find_idx_files(const std::string& dir) {
  Candidates c = scan_idx_files(dir);
  IdxFiles f;
  f.train_images = pick(c.train_images, dir, "training-image");
  f.train_labels = pick(c.train_labels, dir, "training-label");
  f.test_images = pick(c.test_images, dir, "test-image");
  f.test_labels = pick(c.test_labels, dir, "test-label");
  if (f.train_images.empty() || f.train_labels.empty())
    throw DataError(dir, -1,
                    "expected IDX files train-images-idx3-ubyte[.gz] and "
                    "train-labels-idx1-ubyte[.gz] in this directory");
  if (f.test_images.empty() != f.test_labels.empty())
    throw DataError(dir, -1,
                    "has test " + std::string(f.test_images.empty() ? "labels" : "images") +
                        " but no test " + (f.test_images.empty() ? "images" : "labels") +
                        " (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])");
  return f;
}

bool has_idx_files(const std::string& dir) {
  Candidates c = scan_idx_files(dir);
  return !c.train_images.empty() || !c.train_labels.empty();
}

namespace {

std::shared_ptr<IdxDataset> load_pair(const std::string& images_path,
                                      const std::string& labels_path, const std::string& name,
                                      std::vector<std::string> class_names) {
  // The two files decompress in parallel: the images take nearly all the time.
  auto labels_future = std::async(std::launch::async, [&] { return read_idx(labels_path); });
  IdxArray images = read_idx(images_path);
  IdxArray labels = labels_future.get();
  if (images.dims.size() != 3)
    throw DataError(images_path, 3,
                    "expected images of rank 3 [count, height, width], found rank " +
                        std::to_string(images.dims.size()));
  if (labels.dims.size() != 1)
    throw DataError(
        labels_path, 3,
        "expected labels of rank 1 [count], found rank " + std::to_string(labels.dims.size()));
  if (images.dims[0] != labels.dims[0])
    throw DataError(labels_path, 4,
                    "has " + std::to_string(labels.dims[0]) + " labels but " + images_path +
                        " has " + std::to_string(images.dims[0]) +
                        " images: the counts must match");
  uint8_t max_label = *std::max_element(labels.data.begin(), labels.data.end());
  if (class_names.empty()) class_names = numbered_classes(max_label + 1);
  if (max_label >= class_names.size()) {
    size_t at =
        static_cast<size_t>(std::find_if(labels.data.begin(), labels.data.end(),
                                         [&](uint8_t l) { return l >= class_names.size(); }) -
                            labels.data.begin());
    throw DataError(labels_path, labels.header_bytes + static_cast<int64_t>(at),
                    "label " + std::to_string(labels.data[at]) +
                        " is out of range: this dataset has " + std::to_string(class_names.size()) +
                        " classes");
  }
  return std::make_shared<IdxDataset>(std::move(images), std::move(labels), name,
                                      std::move(class_names));
}

}  // namespace

std::shared_ptr<Dataset> load_idx_pair(const std::string& images_path,
                                       const std::string& labels_path, const std::string& name,
                                       std::vector<std::string> class_names) {
  return load_pair(images_path, labels_path, name, std::move(class_names));
}

DatasetSplits open_idx_dir(const std::string& dir, const std::string& name,
                           const OpenOptions& opts) {
  IdxFiles f = find_idx_files(dir);
  std::vector<std::string> classes = read_class_names_file((fs::path(dir) / "labels.txt").string());
  if (classes.empty() && fs::path(dir).filename() == "fashion-mnist")
    classes = fashion_mnist_classes();
  if (f.test_images.empty()) {
    auto all = load_pair(f.train_images, f.train_labels, name, classes);
    return split_validation(all, opts.validation_percent, opts.seed, name);
  }
  auto test_future = std::async(std::launch::async, [&] {
    return load_pair(f.test_images, f.test_labels, name + " test", classes);
  });
  auto train = load_pair(f.train_images, f.train_labels, name + " train", classes);
  auto test = test_future.get();
  if (train->example_shape() != test->example_shape())
    throw DataError(f.test_images, 8,
                    "test images are " + test->example_shape().str() + " but training images are " +
                        train->example_shape().str());
  if (classes.empty()) {
    size_t k = std::max<size_t>(train->class_names().size(), test->class_names().size());
    train->widen_classes(k);
    test->widen_classes(k);
  }
  return {train, test};
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

}  // namespace myelin::data
