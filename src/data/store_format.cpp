#include "data/store_format.h"

#include <bit>
#include <cstring>

#include "core/error.h"
#include "data/io.h"

namespace myelin::data {

static_assert(std::endian::native == std::endian::little, "the store format is little-endian");

namespace {

constexpr uint64_t kMaxCount = uint64_t{1} << 40;
constexpr uint64_t kMaxNamesBytes = uint64_t{1} << 24;
constexpr uint32_t kMaxNameBytes = 4096;

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

template <class T>
T load(const uint8_t* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}

template <class T>
void store(std::vector<uint8_t>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

// a * b, or throws the DataError when it overflows 2^62 (no valid store is near that).
uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& path, size_t field) {
  unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  if (r > (uint64_t{1} << 62)) throw DataError(path, static_cast<int64_t>(field), "sizes overflow");
  return static_cast<uint64_t>(r);
}

void check_range(const std::string& path, size_t field, const char* what, uint64_t v, uint64_t lo,
                 uint64_t hi) {
  if (v < lo || v > hi)
    throw DataError(path, static_cast<int64_t>(field),
                    std::string(what) + " " + std::to_string(v) + " is out of range [" +
                        std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

void check_field(const std::string& path, size_t field, const char* what, uint64_t found,
                 uint64_t expected) {
  if (found != expected)
    throw DataError(path, static_cast<int64_t>(field),
                    std::string(what) + " is " + std::to_string(found) + ", expected " +
                        std::to_string(expected) + " from the sizes before it");
}

}  // namespace

void layout_store(StoreHeader& h) {
  h.names_offset = kStoreHeaderBytes;
  h.counts_offset = align_up(h.names_offset + h.names_bytes, 8);
  h.mean_offset = h.counts_offset + 8 * uint64_t{h.classes};
  h.labels_offset = h.mean_offset + 4 * h.example_bytes();
  h.records_offset = align_up(h.labels_end(), kStoreRecordAlign);
  h.file_bytes = h.records_offset + h.count * h.example_bytes();
}

std::vector<uint8_t> encode_store_header(const StoreHeader& h) {
  std::vector<uint8_t> b(kStoreHeaderBytes, 0);
  std::memcpy(b.data(), kStoreMagic, sizeof kStoreMagic);
  store(b, hdr::version, kStoreVersion);
  store(b, hdr::header_bytes, kStoreHeaderBytes);
  store(b, hdr::channels, h.channels);
  store(b, hdr::height, h.height);
  store(b, hdr::width, h.width);
  store(b, hdr::classes, h.classes);
  store(b, hdr::count, h.count);
  store(b, hdr::names_offset, h.names_offset);
  store(b, hdr::names_bytes, h.names_bytes);
  store(b, hdr::counts_offset, h.counts_offset);
  store(b, hdr::mean_offset, h.mean_offset);
  store(b, hdr::labels_offset, h.labels_offset);
  store(b, hdr::records_offset, h.records_offset);
  store(b, hdr::file_bytes, h.file_bytes);
  store(b, hdr::meta_crc, h.meta_crc);
  store(b, hdr::records_crc, h.records_crc);
  store(b, hdr::header_crc, crc32(0, b.data(), hdr::header_crc));
  return b;
}

StoreHeader decode_store_header(const std::string& path, const uint8_t* p, size_t file_size) {
  if (file_size < kStoreHeaderBytes)
    throw DataError(path, static_cast<int64_t>(file_size),
                    "file is " + std::to_string(file_size) + " bytes, shorter than the " +
                        std::to_string(kStoreHeaderBytes) + "-byte store header: truncated");
  if (std::memcmp(p, kStoreMagic, sizeof kStoreMagic) != 0)
    throw DataError(
        path, 0,
        "not a Myelin dataset store: expected magic 'MYELINDS', found " + describe_bytes(p, 8));
  uint32_t version = load<uint32_t>(p, hdr::version);
  if (version != kStoreVersion)
    throw DataError(path, hdr::version,
                    "store version " + std::to_string(version) +
                        " is not supported (this build reads version " +
                        std::to_string(kStoreVersion) + ")");
  check_field(path, hdr::header_bytes, "header size", load<uint32_t>(p, hdr::header_bytes),
              kStoreHeaderBytes);
  uint32_t crc = crc32(0, p, hdr::header_crc);
  if (crc != load<uint32_t>(p, hdr::header_crc))
    throw DataError(path, hdr::header_crc, "header checksum mismatch: the header is corrupt");

  StoreHeader h;
  h.channels = load<uint32_t>(p, hdr::channels);
  h.height = load<uint32_t>(p, hdr::height);
  h.width = load<uint32_t>(p, hdr::width);
  h.classes = load<uint32_t>(p, hdr::classes);
  h.count = load<uint64_t>(p, hdr::count);
  h.names_bytes = load<uint64_t>(p, hdr::names_bytes);
  check_range(path, hdr::channels, "channels", h.channels, 1, 4);
  check_range(path, hdr::height, "height", h.height, 1, 65535);
  check_range(path, hdr::width, "width", h.width, 1, 65535);
  check_range(path, hdr::classes, "class count", h.classes, 1, 1 << 20);
  check_range(path, hdr::count, "example count", h.count, 1, kMaxCount);
  check_range(path, hdr::names_bytes, "class names size", h.names_bytes, 4 * uint64_t{h.classes},
              kMaxNamesBytes);
  checked_mul(h.count, h.example_bytes(), path, hdr::count);

  StoreHeader expect = h;
  layout_store(expect);
  check_field(path, hdr::names_offset, "class names offset", load<uint64_t>(p, hdr::names_offset),
              expect.names_offset);
  check_field(path, hdr::counts_offset, "class counts offset",
              load<uint64_t>(p, hdr::counts_offset), expect.counts_offset);
  check_field(path, hdr::mean_offset, "mean offset", load<uint64_t>(p, hdr::mean_offset),
              expect.mean_offset);
  check_field(path, hdr::labels_offset, "labels offset", load<uint64_t>(p, hdr::labels_offset),
              expect.labels_offset);
  check_field(path, hdr::records_offset, "records offset", load<uint64_t>(p, hdr::records_offset),
              expect.records_offset);
  check_field(path, hdr::file_bytes, "file size", load<uint64_t>(p, hdr::file_bytes),
              expect.file_bytes);
  if (expect.file_bytes != file_size)
    throw DataError(
        path, static_cast<int64_t>(std::min<uint64_t>(file_size, expect.file_bytes)),
        "the header says the file is " + std::to_string(expect.file_bytes) + " bytes but it is " +
            std::to_string(file_size) +
            (file_size < expect.file_bytes ? ": truncated" : ": extra data at the end"));
  expect.meta_crc = load<uint32_t>(p, hdr::meta_crc);
  expect.records_crc = load<uint32_t>(p, hdr::records_crc);
  return expect;
}

std::vector<uint8_t> encode_class_names(const std::vector<std::string>& names) {
  std::vector<uint8_t> b;
  for (const std::string& n : names) {
    if (n.size() > kMaxNameBytes)
      throw Error("class name '" + n.substr(0, 40) + "...' is longer than " +
                  std::to_string(kMaxNameBytes) + " bytes");
    uint32_t len = static_cast<uint32_t>(n.size());
    const auto* l = reinterpret_cast<const uint8_t*>(&len);
    b.insert(b.end(), l, l + 4);
    b.insert(b.end(), n.begin(), n.end());
  }
  return b;
}

std::vector<std::string> decode_class_names(const std::string& path, const uint8_t* file,
                                            const StoreHeader& h) {
  std::vector<std::string> names;
  uint64_t pos = h.names_offset, end = h.names_offset + h.names_bytes;
  for (uint32_t i = 0; i < h.classes; ++i) {
    if (end - pos < 4)
      throw DataError(path, static_cast<int64_t>(pos),
                      "class names end after " + std::to_string(i) + " of " +
                          std::to_string(h.classes) + " names");
    uint32_t len = load<uint32_t>(file, pos);
    if (len > kMaxNameBytes || len > end - pos - 4)
      throw DataError(path, static_cast<int64_t>(pos),
                      "class name " + std::to_string(i) + " claims " + std::to_string(len) +
                          " bytes, more than its section holds");
    names.emplace_back(reinterpret_cast<const char*>(file + pos + 4), len);
    pos += 4 + uint64_t{len};
  }
  if (pos != end)
    throw DataError(path, static_cast<int64_t>(pos),
                    std::to_string(end - pos) + " unexpected bytes after the class names");
  return names;
}

}  // namespace myelin::data
