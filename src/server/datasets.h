// Datasets the server keeps: created from fashion-mnist / mnist, a folder or list file on the
// server under an allowed root, or an uploaded archive; packed into a store under
// DATA_DIR/datasets/ID by a background builder that reports progress as events. A text dataset
// (a text file or folder, or an uploaded text file or archive of them) is a token stream over a
// character or word vocabulary instead (data/text.h), saved in the same place.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/network.h"
#include "server/api.h"
#include "server/context.h"

namespace myelin::server {

// What a job needs to know of its dataset.
struct DatasetView {
  int64_t id = 0;
  std::string name, state;     // building | ready | failed
  std::string data_spec;       // what `myelin train --data` takes (the store's directory)
  std::string kind = "image";  // image | text (known from the request, before the build)
  Dims input;                  // images: [C, H, W], once ready
  int64_t classes = 0;         // images: classes; text: the vocabulary's size, once ready
  std::vector<std::string> class_names;
  int64_t owner = 0;
  bool is_text() const { return kind == "text"; }
};

// The dataset, or ApiError 404.
DatasetView dataset_view(const Context& c, int64_t id);

// ApiError 400 when `net` cannot read the dataset's kind: an image network (input_type image)
// on text, a text network (input_type tokens) on images.
void check_network_kind(const NetworkSpec& net, const DatasetView& ds);
// `net` fitted to a ready dataset: images give their shape and class count, text its vocabulary
// (the network keeps its own steps). Checks the kind first; ShapeError when it cannot be fitted.
NetworkSpec fit_network(const NetworkSpec& net, const DatasetView& ds);

// Builds datasets one after another on a thread of its own; datasets left 'building' by a
// killed server are built again at start.
class DatasetBuilder {
 public:
  explicit DatasetBuilder(Context& c);
  ~DatasetBuilder();  // stops after the current build's next progress report
  void wake();        // a dataset was queued

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

void add_dataset_routes(Router& r, Context& c, DatasetBuilder& builder);
void add_upload_routes(Router& r, Context& c);

}  // namespace myelin::server
