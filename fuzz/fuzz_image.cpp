// libFuzzer target: one PNG or JPEG file in a class folder, opened through open_dataset (sniffing,
// header probe) and decoded, converted and resized by read(). The first byte picks the
// channels, resize mode and size.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"

namespace {

// Never freed: the atexit clean-up runs after static destructors would have run.
const std::string& scratch_dir() {
  static const std::string& dir = *new std::string([] {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string d = base + "/myelin-fuzz-image-" + std::to_string(::getpid());
    std::filesystem::create_directories(d + "/set/class");
    std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
    return d;
  }());
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t knobs = data[0];
  const std::string& dir = scratch_dir();
  {
    std::ofstream f(dir + "/set/class/image", std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  try {
    myelin::OpenOptions o;
    o.validation_percent = 0;
    o.channels = (knobs & 3) == 0 ? 0 : (knobs & 1) ? 1 : 3;
    static const char* modes[] = {"squash", "crop", "fill", "squash"};
    o.resize_mode = modes[(knobs >> 2) & 3];
    int size_code = knobs >> 4;  // 0: the image's own size
    o.resize_h = size_code ? size_code * 3 : 0;
    o.resize_w = size_code ? 1 + size_code * 2 : 0;
    myelin::DatasetSplits s = myelin::open_dataset(dir + "/set", o);
    std::vector<uint8_t> px(static_cast<size_t>(s.train->example_shape().numel()));
    int32_t label;
    s.train->read(0, px.data(), &label);
  } catch (const myelin::Error&) {
  }
  return 0;
}
