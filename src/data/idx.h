// IDX files (the MNIST format), plain or gzipped: a 4-byte magic (0, 0, element type, rank), the
// rank's big-endian u32 sizes, then the elements. Only unsigned bytes (type 0x08) are read:
// images are [N, H, W], labels [N].
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace myelin::data {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // the elements only, header stripped
  int64_t header_bytes = 0;   // where the elements start in the (decompressed) file
};

// Reads a whole IDX file; DataError naming the path and byte offset when it is malformed.
IdxArray read_idx(const std::string& path);

// The four files of an IDX dataset in `dir` (test files may be missing: "" then).
struct IdxFiles {
  std::string train_images, train_labels, test_images, test_labels;
};
IdxFiles find_idx_files(const std::string& dir);
bool has_idx_files(const std::string& dir);

// An images file and a labels file as one Dataset. `class_names` empty: "0".."max label".
std::shared_ptr<Dataset> load_idx_pair(const std::string& images, const std::string& labels,
                                       const std::string& name,
                                       std::vector<std::string> class_names);

// Opens an IDX directory. `name` is how describe() calls it ("fashion-mnist" or the path).
DatasetSplits open_idx_dir(const std::string& dir, const std::string& name,
                           const OpenOptions& opts);

// The class names of Fashion-MNIST, label order.
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace myelin::data
