// The .mstore header and section layout (described in store.h), shared by the writer, the reader
// and the fuzz target.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace myelin::data {

constexpr char kStoreMagic[8] = {'M', 'Y', 'E', 'L', 'I', 'N', 'D', 'S'};
constexpr uint32_t kStoreVersion = 1;
constexpr uint32_t kStoreHeaderBytes = 128;
constexpr uint64_t kStoreRecordAlign = 4096;

// Byte offsets of the header fields.
namespace hdr {
constexpr size_t magic = 0, version = 8, header_bytes = 12, channels = 16, height = 20, width = 24,
                 classes = 28, count = 32, names_offset = 40, names_bytes = 48, counts_offset = 56,
                 mean_offset = 64, labels_offset = 72, records_offset = 80, file_bytes = 88,
                 meta_crc = 96, records_crc = 100, header_crc = 124;
}

struct StoreHeader {
  uint32_t channels = 0, height = 0, width = 0, classes = 0;
  uint64_t count = 0;
  uint64_t names_offset = 0, names_bytes = 0, counts_offset = 0, mean_offset = 0, labels_offset = 0,
           records_offset = 0, file_bytes = 0;
  uint32_t meta_crc = 0, records_crc = 0;

  uint64_t example_bytes() const { return uint64_t{channels} * height * width; }
  uint64_t labels_end() const { return labels_offset + 4 * count; }
};

// Fills the offsets from the shape, class count, example count and names size.
void layout_store(StoreHeader& h);

// The 128 header bytes, header CRC included.
std::vector<uint8_t> encode_store_header(const StoreHeader& h);

// Parses and checks the header against a file of `file_size` bytes: magic, version, header CRC,
// ranges, that the offsets are those layout_store() gives and that the sizes add up to the file.
// DataError(path, offset of the bad field, ...) otherwise.
StoreHeader decode_store_header(const std::string& path, const uint8_t* p, size_t file_size);

// The class names section: u32 length + bytes per name.
std::vector<uint8_t> encode_class_names(const std::vector<std::string>& names);
std::vector<std::string> decode_class_names(const std::string& path, const uint8_t* file,
                                            const StoreHeader& h);

}  // namespace myelin::data
