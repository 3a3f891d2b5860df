// libFuzzer target: a .mstore file opened through open_dataset, read back and verified. For
// even-sized inputs the harness rewrites the header and metadata CRCs first, so the fuzzer gets
// past them to the checks behind (offsets, names, counts, labels, mean).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/io.h"
#include "data/store.h"
#include "data/store_format.h"

namespace {

// Never freed: the atexit clean-up runs after static destructors would have run.
const std::string& scratch_dir() {
  static const std::string& dir = *new std::string([] {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string d = base + "/myelin-fuzz-store-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
    return d;
  }());
  return dir;
}

uint64_t u64_at(const std::vector<uint8_t>& b, size_t off) {
  uint64_t v;
  std::memcpy(&v, b.data() + off, 8);
  return v;
}

void fix_checksums(std::vector<uint8_t>& b) {
  namespace hdr = myelin::data::hdr;
  if (b.size() < myelin::data::kStoreHeaderBytes) return;
  uint64_t begin = u64_at(b, hdr::names_offset), labels = u64_at(b, hdr::labels_offset);
  uint64_t count = u64_at(b, hdr::count);
  if (begin <= labels && labels <= b.size() && count <= (b.size() - labels) / 4) {
    uint32_t meta = myelin::data::crc32(0, b.data() + begin, labels + 4 * count - begin);
    std::memcpy(b.data() + hdr::meta_crc, &meta, 4);
  }
  uint32_t head = myelin::data::crc32(0, b.data(), hdr::header_crc);
  std::memcpy(b.data() + hdr::header_crc, &head, 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (size % 2 == 0) fix_checksums(bytes);
  const std::string& dir = scratch_dir();
  const std::string path = dir + "/train.mstore";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  }
  try {
    myelin::DatasetSplits s = myelin::open_dataset(dir);
    std::vector<uint8_t> px(static_cast<size_t>(s.train->example_shape().numel()));
    int32_t label;
    for (int64_t i = 0; i < s.train->size() && i < 64; ++i) s.train->read(i, px.data(), &label);
    s.train->mean_image();
    s.train->class_counts();
    myelin::verify_store(path);
  } catch (const myelin::Error&) {
  }
  return 0;
}
