// Datasets: indexed collections of labelled examples stored as 8-bit pixels (C, H, W). The
// loader turns them into float batches. Implementations: IDX files (MNIST format), image folders,
// the packed store made by `myelin dataset create`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace myelin {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Shape example_shape() const = 0;  // [C, H, W]
  virtual int num_classes() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  // Copies example `index` (C*H*W bytes, CHW order) and its label. Thread-safe.
  // Throws DataError naming the file and offset when the stored data is corrupt.
  virtual void read(int64_t index, uint8_t* pixels, int32_t* label) const = 0;
  virtual std::string describe() const = 0;  // "fashion-mnist train: 60000 x [1, 28, 28], 10 classes"

  // The label of example `index` alone. Cheap for IDX, image folders and stores; the default
  // reads the whole example.
  virtual int32_t label(int64_t index) const;
  // Examples per class, label order.
  virtual std::vector<int64_t> class_counts() const;
  // The mean example, C*H*W floats in pixel units (0..255), for Transforms::mean_image or
  // mean per channel. Stores keep it precomputed; other datasets compute it on each call by
  // reading every example (with a few threads), so keep the result.
  virtual std::shared_ptr<std::vector<float>> mean_image() const;
};

struct DatasetSplits {
  std::shared_ptr<Dataset> train;
  std::shared_ptr<Dataset> test;  // may be a validation split carved from the training set
};

struct OpenOptions {
  int64_t resize_h = 0, resize_w = 0;  // image folders: target size (0 = the first image's)
  std::string resize_mode = "squash";  // crop | squash | fill
  int channels = 0;                    // image folders: 1 (gray) or 3 (color); 0 = from the images
  double validation_percent = 20;      // image folders without a separate test set
  uint64_t seed = 1;                   // for the validation split
};

// Per-channel means (pixel units) of a mean image of shape [C, H, W].
std::vector<float> channel_means(const std::vector<float>& mean_image, const Shape& chw);

// `spec` is "fashion-mnist" or "mnist" (Debian's dataset packages), a directory of IDX files, an
// image folder (one subfolder per class), a list file ("path label" per line), or a packed store
// made by `myelin dataset create`. Throws DataError / Error that say what was expected.
DatasetSplits open_dataset(const std::string& spec, const OpenOptions& opts = {});

}  // namespace myelin
