// PNG (libpng) and JPEG (libjpeg-turbo) decoding from memory, and PNG encoding for the mean
// image the web UI shows. Decoders never trust the file: bad data is a DataError naming the path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace myelin::data {

enum class ImageFormat { unknown, png, jpeg };

// From the first bytes (8 suffice).
ImageFormat sniff_image(const uint8_t* p, size_t n);

// Interleaved 8-bit pixels, row-major HWC; channels is 1 (gray) or 3 (RGB).
struct RawImage {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Images above this many pixels are refused before any memory is spent on them.
constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

// Decodes a PNG or JPEG into `out` (its buffer is reused). `want_channels` 1 lets a color JPEG
// decode straight to gray (cheaper); otherwise the file's own channels come out: gray stays 1,
// color 3, alpha is dropped. DataError(path, offset, ...) on anything malformed or truncated.
void decode_image(const std::string& path, const uint8_t* data, size_t size, RawImage& out,
                  int want_channels = 0);

// Only the header: width, height and channels (pixels left empty).
RawImage probe_image(const std::string& path, const uint8_t* data, size_t size);

// An 8-bit PNG of `channels` (1 or 3) interleaved rows.
std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels);

}  // namespace myelin::data
