// Opening a .mstore file: map it, validate every section once, then reads are memcpy.
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "data/dataset_util.h"
#include "data/io.h"
#include "data/store.h"
#include "data/store_format.h"

namespace fs = std::filesystem;

namespace myelin {

using namespace data;

namespace {

class StoreDataset : public Dataset {
 public:
  explicit StoreDataset(const std::string& path) : path_(path), map_(path) {
    h_ = decode_store_header(path, map_.data(), map_.size());
    const uint8_t* p = map_.data();
    uint32_t crc = crc32(0, p + h_.names_offset, h_.labels_end() - h_.names_offset);
    if (crc != h_.meta_crc)
      throw DataError(
          path, hdr::meta_crc,
          "metadata checksum mismatch: class names, counts, mean or labels are corrupt");
    classes_ = decode_class_names(path, p, h_);
    load_counts();
    check_labels();
    check_mean();
    name_ = fs::path(path).parent_path().filename().string() + " " + fs::path(path).stem().string();
  }

  int64_t size() const override { return static_cast<int64_t>(h_.count); }
  Shape example_shape() const override { return {h_.channels, h_.height, h_.width}; }
  int num_classes() const override { return static_cast<int>(h_.classes); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  void read(int64_t index, uint8_t* pixels, int32_t* label) const override {
    check_index(index, size(), name_);
    size_t eb = h_.example_bytes();
    std::memcpy(pixels, map_.data() + h_.records_offset + static_cast<size_t>(index) * eb, eb);
    *label = labels()[index];
  }
  int32_t label(int64_t index) const override {
    check_index(index, size(), name_);
    return labels()[index];
  }
  std::string describe() const override {
    return describe_dataset(name_, size(), example_shape(), num_classes());
  }
  std::vector<int64_t> class_counts() const override { return counts_; }
  std::shared_ptr<std::vector<float>> mean_image() const override {
    auto m = std::make_shared<std::vector<float>>(h_.example_bytes());
    std::memcpy(m->data(), map_.data() + h_.mean_offset, m->size() * sizeof(float));
    return m;
  }
  const StoreHeader& header() const { return h_; }
  const uint8_t* records() const { return map_.data() + h_.records_offset; }

 private:
  const int32_t* labels() const {
    // labels_offset is a multiple of 4 by construction and mmap is page-aligned.
    return reinterpret_cast<const int32_t*>(map_.data() + h_.labels_offset);
  }
  void load_counts() {
    counts_.resize(h_.classes);
    std::memcpy(counts_.data(), map_.data() + h_.counts_offset, 8 * counts_.size());
    uint64_t sum = 0;
    for (size_t c = 0; c < counts_.size(); ++c) {
      if (counts_[c] < 0 || static_cast<uint64_t>(counts_[c]) > h_.count)
        throw DataError(path_, static_cast<int64_t>(h_.counts_offset + 8 * c),
                        "count of class " + std::to_string(c) + " is out of range");
      sum += static_cast<uint64_t>(counts_[c]);
    }
    if (sum != h_.count)
      throw DataError(path_, static_cast<int64_t>(h_.counts_offset),
                      "class counts add up to " + std::to_string(sum) + ", not the " +
                          std::to_string(h_.count) + " examples");
  }
  void check_labels() const {
    std::vector<int64_t> seen(h_.classes, 0);
    const int32_t* l = labels();
    for (uint64_t i = 0; i < h_.count; ++i) {
      if (l[i] < 0 || static_cast<uint32_t>(l[i]) >= h_.classes)
        throw DataError(path_, static_cast<int64_t>(h_.labels_offset + 4 * i),
                        "label " + std::to_string(l[i]) + " of example " + std::to_string(i) +
                            " is out of range [0, " + std::to_string(h_.classes) + ")");
      ++seen[static_cast<size_t>(l[i])];
    }
    for (size_t c = 0; c < seen.size(); ++c)
      if (seen[c] != counts_[c])
        throw DataError(path_, static_cast<int64_t>(h_.counts_offset + 8 * c),
                        "class " + std::to_string(c) + " has " + std::to_string(seen[c]) +
                            " labels but its count says " + std::to_string(counts_[c]));
  }
  void check_mean() const {
    for (uint64_t i = 0; i < h_.example_bytes(); ++i) {
      float v;
      std::memcpy(&v, map_.data() + h_.mean_offset + 4 * i, 4);
      if (!(v >= 0 && v <= 255))
        throw DataError(path_, static_cast<int64_t>(h_.mean_offset + 4 * i),
                        "mean pixel " + std::to_string(i) + " is not in [0, 255]");
    }
  }

  std::string path_, name_;
  MappedFile map_;
  StoreHeader h_;
  std::vector<std::string> classes_;
  std::vector<int64_t> counts_;
};

}  // namespace

std::shared_ptr<Dataset> open_store_file(const std::string& path) {
  return std::make_shared<StoreDataset>(path);
}

bool is_store_dir(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / "train.mstore", ec);
}

bool is_store_file(const std::string& path) {
  std::vector<uint8_t> head = read_head(path, sizeof kStoreMagic);
  return head.size() == sizeof kStoreMagic &&
         std::memcmp(head.data(), kStoreMagic, head.size()) == 0;
}

DatasetSplits open_store_dir(const std::string& dir) {
  DatasetSplits s;
  s.train = open_store_file((fs::path(dir) / "train.mstore").string());
  fs::path val = fs::path(dir) / "val.mstore";
  std::error_code ec;
  if (fs::is_regular_file(val, ec)) {
    s.test = open_store_file(val.string());
    if (s.test->example_shape() != s.train->example_shape() ||
        s.test->class_names() != s.train->class_names())
      throw DataError(val.string(), 16,
                      "shape " + s.test->example_shape().str() + " or classes differ from " +
                          "train.mstore's " + s.train->example_shape().str());
  }
  return s;
}

void verify_store(const std::string& path) {
  StoreDataset d(path);
  const StoreHeader& h = d.header();
  uint64_t n = h.count * h.example_bytes();
  uint32_t crc = crc32(0, d.records(), n);
  if (crc != h.records_crc)
    throw DataError(path, static_cast<int64_t>(h.records_offset),
                    "records checksum mismatch: example pixels are corrupt");
}

}  // namespace myelin
