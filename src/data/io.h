// File plumbing for the data layer: whole-file reads, gzip streams, read-only memory maps, atomic
// writes, CRC-32 and the counter-based random numbers that keep shuffles and augmentation
// independent of thread timing. Every failure is a DataError naming the path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace myelin::data {

// "No such file or directory" for the current errno.
std::string errno_text();

// The whole file; DataError naming the path when it cannot be read.
std::vector<uint8_t> read_file(const std::string& path);
// The same into `buf` (its capacity is reused: no allocation per file in a loop).
void read_file_into(const std::string& path, std::vector<uint8_t>& buf);
// The first `n` bytes (fewer when the file is shorter).
std::vector<uint8_t> read_head(const std::string& path, size_t n);
// Hex and printable characters of the first bytes: "47 49 46 38 39 61 ('GIF89a')".
std::string describe_bytes(const uint8_t* p, size_t n, size_t max = 8);

bool is_gzip(const uint8_t* p, size_t n);

// A sequential byte source over a file already in memory: plain, or gzip (several members and
// zlib-wrapped streams too) decompressed as it is read, so a payload is inflated exactly once,
// straight into its final buffer.
class ByteReader {
 public:
  ByteReader(std::string path, const uint8_t* data, size_t size);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data. DataError on corrupt gzip data.
  size_t read(uint8_t* out, size_t n);
  // Throws DataError unless the data has ended (nothing follows what was read).
  void expect_end(const std::string& what_was_read);
  bool compressed() const { return zs_ != nullptr; }
  // Bytes of the (decompressed) stream read so far: the offset that error messages name.
  int64_t offset() const { return offset_; }
  // A plausible decompressed size for reserving memory (file size, or gzip's trailer).
  size_t size_hint() const;
  const std::string& path() const { return path_; }

 private:
  size_t inflate_some(uint8_t* out, size_t n);
  std::string path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;      // plain: next byte
  void* zs_ = nullptr;  // z_stream when compressed
  bool ended_ = false;
  int64_t offset_ = 0;
};

// A read-only memory map of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Writes a file atomically: to `path.tmp-<pid>` first, then fsync and rename over `path`. Until
// commit() the file is removed again when the writer is destroyed.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* p, size_t n);                    // appends
  void pwrite(const void* p, size_t n, uint64_t offset);  // at an offset
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

uint32_t crc32(uint32_t crc, const void* p, size_t n);

// SplitMix64 finalizer: a bijective 64-bit mix. Randomness is derived as mix(seed, epoch, index)
// so the same inputs give the same numbers on every thread and every run.
uint64_t mix64(uint64_t x);
uint64_t hash3(uint64_t a, uint64_t b, uint64_t c);

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform in [0, n), unbiased (Lemire's method); n > 0.
  uint64_t below(uint64_t n);

 private:
  uint64_t state_;
};

// Fisher-Yates with our own Rng: std::shuffle's output differs between standard libraries.
template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace myelin::data
