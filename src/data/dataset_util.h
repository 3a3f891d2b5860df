// Pieces every dataset kind shares: views of a subset (validation splits), the stratified split
// itself, describe() text and class-name files.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace myelin::data {

// Examples `indices` of `parent`, renumbered 0..n-1.
class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<Dataset> parent, std::vector<int64_t> indices, std::string name);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Shape example_shape() const override { return parent_->example_shape(); }
  int num_classes() const override { return parent_->num_classes(); }
  const std::vector<std::string>& class_names() const override { return parent_->class_names(); }
  void read(int64_t index, uint8_t* pixels, int32_t* label) const override;
  int32_t label(int64_t index) const override;
  std::string describe() const override;

 private:
  int64_t at(int64_t index) const;
  std::shared_ptr<Dataset> parent_;
  std::vector<int64_t> indices_;
  std::string name_;
};

// Carves `percent` of each class out of `all` as the validation split (rounded per class; the
// rest is training), the same for the same seed. percent <= 0: no validation split.
DatasetSplits split_validation(std::shared_ptr<Dataset> all, double percent, uint64_t seed,
                               const std::string& name);

// "NAME: 60000 x [1, 28, 28], 10 classes"
std::string describe_dataset(const std::string& name, int64_t n, const Shape& s, int classes);

// "0", "1", ... "k-1".
std::vector<std::string> numbered_classes(int k);

// A class-name file beside a dataset (labels.txt, one name a line, label order), or empty when
// there is none. Blank lines are skipped.
std::vector<std::string> read_class_names_file(const std::string& path);

// Throws Error unless 0 <= index < size.
void check_index(int64_t index, int64_t size, const std::string& name);

}  // namespace myelin::data
