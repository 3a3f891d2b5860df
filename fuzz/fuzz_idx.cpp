// libFuzzer target: IDX files (plain or gzipped) as a pair in a directory, opened through
// open_dataset and read back. The first two bytes split the input into images and labels.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/idx.h"

namespace {

// Never freed: the atexit clean-up runs after static destructors would have run.
const std::string& scratch_dir() {
  static const std::string& dir = *new std::string([] {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string d = base + "/myelin-fuzz-idx-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
    return d;
  }());
  return dir;
}

void write(const std::string& path, const uint8_t* p, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t split = std::min<size_t>(size - 2, (size_t{data[0]} << 8) | data[1]);
  const uint8_t* images = data + 2;
  const uint8_t* labels = images + split;
  const std::string& dir = scratch_dir();
  write(dir + "/train-images-idx3-ubyte", images, split);
  write(dir + "/train-labels-idx1-ubyte", labels, size - 2 - split);
  try {
    myelin::data::read_idx(dir + "/train-images-idx3-ubyte");
  } catch (const myelin::Error&) {
  }
  try {
    myelin::OpenOptions o;
    o.validation_percent = 25;
    myelin::DatasetSplits s = myelin::open_dataset(dir, o);
    for (const auto& d : {s.train, s.test}) {
      if (!d) continue;
      std::vector<uint8_t> px(static_cast<size_t>(d->example_shape().numel()));
      int32_t label;
      for (int64_t i = 0; i < d->size() && i < 64; ++i) d->read(i, px.data(), &label);
      d->class_counts();
    }
  } catch (const myelin::Error&) {
  }
  return 0;
}
