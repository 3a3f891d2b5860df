// Datasets the server keeps: created from fashion-mnist / mnist, a folder or list file on the
// server under an allowed root, or an uploaded archive; packed into a store under
// DATA_DIR/datasets/ID by a background builder that reports progress as events.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "server/api.h"
#include "server/context.h"

namespace myelin::server {

// What a job needs to know of its dataset.
struct DatasetView {
  int64_t id = 0;
  std::string name, state;  // building | ready | failed
  std::string data_spec;    // what `myelin train --data` takes (the store's directory)
  Dims input;               // [C, H, W], once ready
  int64_t classes = 0;
  std::vector<std::string> class_names;
  int64_t owner = 0;
};

// The dataset, or ApiError 404.
DatasetView dataset_view(const Context& c, int64_t id);

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
