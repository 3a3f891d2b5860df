#include "data/dataset_util.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/io.h"

namespace myelin::data {

SubsetDataset::SubsetDataset(std::shared_ptr<Dataset> parent, std::vector<int64_t> indices,
                             std::string name)
    : parent_(std::move(parent)), indices_(std::move(indices)), name_(std::move(name)) {}

int64_t SubsetDataset::at(int64_t index) const {
  check_index(index, size(), name_);
  return indices_[static_cast<size_t>(index)];
}

void SubsetDataset::read(int64_t index, uint8_t* pixels, int32_t* label) const {
  parent_->read(at(index), pixels, label);
}

int32_t SubsetDataset::label(int64_t index) const {
  return parent_->label(at(index));
}

std::string SubsetDataset::describe() const {
  return describe_dataset(name_, size(), example_shape(), num_classes());
}

DatasetSplits split_validation(std::shared_ptr<Dataset> all, double percent, uint64_t seed,
                               const std::string& name) {
  if (!(percent >= 0 && percent < 100))
    throw Error("validation percent " + std::to_string(percent) + " is out of range [0, 100)");
  if (percent == 0) return {all, nullptr};
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(all->num_classes()));
  for (int64_t i = 0; i < all->size(); ++i) {
    int32_t label = all->label(i);
    if (label < 0 || label >= all->num_classes())
      throw Error(all->describe() + ": label " + std::to_string(label) + " of example " +
                  std::to_string(i) + " is out of range");
    by_class[static_cast<size_t>(label)].push_back(i);
  }
  std::vector<int64_t> train, val;
  for (size_t c = 0; c < by_class.size(); ++c) {
    std::vector<int64_t>& members = by_class[c];
    Rng rng(hash3(seed, 0x5e1ec7, c));
    shuffle(members, rng);
    auto n_val =
        static_cast<size_t>(std::llround(static_cast<double>(members.size()) * percent / 100));
    val.insert(val.end(), members.begin(), members.begin() + static_cast<ptrdiff_t>(n_val));
    train.insert(train.end(), members.begin() + static_cast<ptrdiff_t>(n_val), members.end());
  }
  // File order within each split keeps reads sequential and the splits easy to inspect.
  std::sort(train.begin(), train.end());
  std::sort(val.begin(), val.end());
  if (train.empty())
    throw Error(name + ": a " + std::to_string(percent) +
                "% validation split leaves no training examples");
  DatasetSplits s;
  s.train = std::make_shared<SubsetDataset>(all, std::move(train), name + " train");
  if (!val.empty()) s.test = std::make_shared<SubsetDataset>(all, std::move(val), name + " val");
  return s;
}

std::string describe_dataset(const std::string& name, int64_t n, const Shape& s, int classes) {
  return name + ": " + std::to_string(n) + " x " + s.str() + ", " + std::to_string(classes) +
         " classes";
}

std::vector<std::string> numbered_classes(int k) {
  std::vector<std::string> v;
  for (int i = 0; i < k; ++i) v.push_back(std::to_string(i));
  return v;
}

std::vector<std::string> read_class_names_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return {};
  std::ifstream in(path);
  if (!in) throw DataError(path, -1, "cannot open: " + errno_text());
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    if (!line.empty()) names.push_back(line);  // blank lines (a trailing one) are not classes
  }
  return names;
}

void check_index(int64_t index, int64_t size, const std::string& name) {
  if (index < 0 || index >= size)
    throw Error(name + ": example index " + std::to_string(index) + " is out of range [0, " +
                std::to_string(size) + ")");
}

}  // namespace myelin::data
