#include "data/io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace myelin::data {

std::string errno_text() {
  return std::strerror(errno);
}

namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int open_read(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(path, -1, "cannot open: " + errno_text());
  return fd;
}

size_t file_size(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throw DataError(path, -1, "cannot stat: " + errno_text());
  if (S_ISDIR(st.st_mode)) throw DataError(path, -1, "is a directory, expected a file");
  return static_cast<size_t>(st.st_size);
}

// Reads exactly n bytes unless the file ends; returns how many were read.
size_t read_fully(int fd, uint8_t* out, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, out + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw DataError(path, static_cast<int64_t>(got), "read failed: " + errno_text());
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

std::vector<uint8_t> read_file(const std::string& path) {
  Fd f{open_read(path)};
  size_t n = file_size(f.fd, path);
  std::vector<uint8_t> buf(n);
  size_t got = read_fully(f.fd, buf.data(), n, path);
  buf.resize(got);
  return buf;
}

void read_file_into(const std::string& path, std::vector<uint8_t>& buf) {
  Fd f{open_read(path)};
  size_t n = file_size(f.fd, path);
  buf.resize(n);
  buf.resize(read_fully(f.fd, buf.data(), n, path));
}

std::vector<uint8_t> read_head(const std::string& path, size_t n) {
  Fd f{open_read(path)};
  file_size(f.fd, path);  // rejects directories
  std::vector<uint8_t> buf(n);
  buf.resize(read_fully(f.fd, buf.data(), n, path));
  return buf;
}

std::string describe_bytes(const uint8_t* p, size_t n, size_t max) {
  if (n == 0) return "an empty file";
  size_t k = n < max ? n : max;
  std::string hex, text;
  static const char* digits = "0123456789abcdef";
  for (size_t i = 0; i < k; ++i) {
    if (i) hex += ' ';
    hex += digits[p[i] >> 4];
    hex += digits[p[i] & 15];
    text += (p[i] >= 32 && p[i] < 127) ? static_cast<char>(p[i]) : '.';
  }
  return hex + " ('" + text + "')";
}

bool is_gzip(const uint8_t* p, size_t n) {
  return n >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

// A zlib stream header: CMF/FLG with deflate, window <= 32K and the check bits right.
static bool is_zlib(const uint8_t* p, size_t n) {
  return n >= 2 && (p[0] & 0x0f) == 8 && (p[0] >> 4) <= 7 && ((p[0] << 8) | p[1]) % 31 == 0;
}

ByteReader::ByteReader(std::string path, const uint8_t* data, size_t size)
    : path_(std::move(path)), data_(data), size_(size) {
  if (!is_gzip(data, size) && !is_zlib(data, size)) return;
  auto* zs = new z_stream{};
  zs->next_in = const_cast<Bytef*>(data);
  zs->avail_in = 0;
  if (inflateInit2(zs, 15 + 32) != Z_OK) {  // +32: detect gzip or zlib headers
    delete zs;
    throw DataError(path_, 0, "cannot start zlib inflate");
  }
  zs_ = zs;
}

ByteReader::~ByteReader() {
  if (!zs_) return;
  auto* zs = static_cast<z_stream*>(zs_);
  inflateEnd(zs);
  delete zs;
}

size_t ByteReader::size_hint() const {
  if (!zs_) return size_;
  // gzip's trailer holds the uncompressed size modulo 2^32; a hint only.
  if (!is_gzip(data_, size_) || size_ < 18) return size_ * 4;
  const uint8_t* t = data_ + size_ - 4;
  size_t isize = static_cast<size_t>(t[0]) | static_cast<size_t>(t[1]) << 8 |
                 static_cast<size_t>(t[2]) << 16 | static_cast<size_t>(t[3]) << 24;
  // The trailer is the file's word only: deflate cannot expand more than ~1032:1.
  return std::min(isize, size_ * 1032);
}

size_t ByteReader::inflate_some(uint8_t* out, size_t n) {
  auto* zs = static_cast<z_stream*>(zs_);
  size_t got = 0;
  while (got < n && !ended_) {
    size_t in_pos = static_cast<size_t>(zs->next_in - data_);
    size_t chunk_in = std::min<size_t>(size_ - in_pos, std::numeric_limits<uInt>::max());
    zs->avail_in = static_cast<uInt>(chunk_in);
    zs->next_out = out + got;
    zs->avail_out = static_cast<uInt>(std::min<size_t>(n - got, std::numeric_limits<uInt>::max()));
    size_t before = zs->avail_out;
    int rc = inflate(zs, Z_NO_FLUSH);
    got += before - zs->avail_out;
    int64_t at = static_cast<int64_t>(zs->next_in - data_);
    if (rc == Z_STREAM_END) {
      size_t rest = size_ - static_cast<size_t>(at);
      if (rest == 0) {
        ended_ = true;
      } else if (is_gzip(zs->next_in, rest)) {
        inflateReset(zs);  // another gzip member follows
      } else {
        throw DataError(path_, at,
                        "unexpected bytes after the end of the compressed data (" +
                            describe_bytes(zs->next_in, rest) + ")");
      }
    } else if (rc == Z_BUF_ERROR && static_cast<size_t>(at) == size_) {
      throw DataError(path_, at, "compressed data ends early: the file is truncated");
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      std::string msg = zs->msg ? zs->msg : "error " + std::to_string(rc);
      throw DataError(path_, at, "corrupt compressed data (zlib: " + msg + ")");
    }
  }
  return got;
}

size_t ByteReader::read(uint8_t* out, size_t n) {
  size_t got;
  if (zs_) {
    got = inflate_some(out, n);
  } else {
    got = std::min(n, size_ - pos_);
    if (got) std::memcpy(out, data_ + pos_, got);
    pos_ += got;
  }
  offset_ += static_cast<int64_t>(got);
  return got;
}

void ByteReader::expect_end(const std::string& what_was_read) {
  uint8_t extra[16];
  size_t k = read(extra, sizeof extra);
  if (k == 0) return;
  throw DataError(path_, offset_ - static_cast<int64_t>(k),
                  "unexpected data after " + what_was_read + " (" + describe_bytes(extra, k) +
                      "): the header's sizes do not match the file");
}

MappedFile::MappedFile(const std::string& path) {
  Fd f{open_read(path)};
  size_ = file_size(f.fd, path);
  if (size_ == 0) return;
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, f.fd, 0);
  if (p == MAP_FAILED) throw DataError(path, -1, "cannot memory-map: " + errno_text());
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw DataError(tmp_, -1, "cannot create: " + errno_text());
}

AtomicFile::~AtomicFile() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* p, size_t n) {
  auto* c = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd_, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw DataError(tmp_, -1, "write failed: " + errno_text());
    c += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::pwrite(const void* p, size_t n, uint64_t offset) {
  auto* c = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, c, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw DataError(tmp_, static_cast<int64_t>(offset), "write failed: " + errno_text());
    c += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw DataError(tmp_, -1, "fsync failed: " + errno_text());
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::string why = errno_text();
    ::unlink(tmp_.c_str());
    throw DataError(path_, -1, "cannot rename the finished file into place: " + why);
  }
}

uint32_t crc32(uint32_t crc, const void* p, size_t n) {
  auto* c = static_cast<const Bytef*>(p);
  while (n > 0) {  // zlib takes uInt lengths
    uInt k = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = static_cast<uint32_t>(::crc32(crc, c, k));
    c += k;
    n -= k;
  }
  return crc;
}

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash3(uint64_t a, uint64_t b, uint64_t c) {
  return mix64(mix64(mix64(a) ^ b) ^ c);
}

uint64_t Rng::next() {
  state_ += 0x9e3779b97f4a7c15ull;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Rng::below(uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    uint64_t threshold = -n % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

}  // namespace myelin::data
