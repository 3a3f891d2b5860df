// Typed errors. Every message says what was expected and where (op, file, line, offset).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace myelin {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A shape or dtype that does not fit an op; the message names the op and both shapes.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A malformed file the user wrote (network file, flags file): file, line and field.
class ParseError : public Error {
 public:
  ParseError(const std::string& file, int line, const std::string& field, const std::string& what)
      : Error(file + ":" + std::to_string(line) + ": " +
              (field.empty() ? "" : "'" + field + "': ") + what),
        file_(file),
        line_(line),
        field_(field) {}
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& field() const { return field_; }

 private:
  std::string file_;
  int line_;
  std::string field_;
};

// A malformed data file (IDX, image, checkpoint, packed store): path and byte offset.
class DataError : public Error {
 public:
  DataError(const std::string& path, int64_t offset, const std::string& what)
      : Error(path + (offset >= 0 ? " at byte " + std::to_string(offset) : std::string()) + ": " +
              what),
        path_(path),
        offset_(offset) {}
  const std::string& path() const { return path_; }
  int64_t offset() const { return offset_; }

 private:
  std::string path_;
  int64_t offset_;
};

// A failing device or library call (CUDA, cuDNN, cuBLAS, oneDNN); names the call.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// An op with no kernel on the requested device, or a feature not built in.
class UnsupportedError : public Error {
 public:
  using Error::Error;
};

// Bad command-line usage: the message says which flag and what to do.
class UsageError : public Error {
 public:
  using Error::Error;
};

}  // namespace myelin
