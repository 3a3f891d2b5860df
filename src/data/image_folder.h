// Image datasets: a folder with one subfolder per class (the folder names, sorted, are the
// classes), or a list file of "path label" lines. Images (PNG or JPEG) are decoded, converted to
// the dataset's channels and resized on each read; `myelin dataset create` packs them once.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace myelin::data {

struct ImageEntry {
  std::string path;
  int32_t label = 0;
};

struct ImageList {
  std::string name;  // for describe()
  std::vector<ImageEntry> entries;
  std::vector<std::string> classes;
};

// Lists a class-per-subfolder image folder. Every file must be a PNG or JPEG (checked from its
// first bytes; hidden files are skipped); an empty class folder is an error.
ImageList scan_image_folder(const std::string& dir);

// Reads a list file: one "path label" a line (the path may hold spaces; relative paths are
// relative to the list file; '#' starts a comment line). Class names come from labels.txt beside
// it when present, else "0".."max label". ParseError with file:line for a malformed line.
ImageList read_list_file(const std::string& path);

// A dataset over the images: size and channels from `opts`, or the first image's.
std::shared_ptr<Dataset> make_image_dataset(ImageList list, const OpenOptions& opts);

// A folder holding train/ and val/ (or test/) folders of classes is split that way; any other
// folder is one set of classes, split by opts.validation_percent.
DatasetSplits open_image_folder(const std::string& dir, const OpenOptions& opts);
DatasetSplits open_list_file(const std::string& path, const OpenOptions& opts);

}  // namespace myelin::data
