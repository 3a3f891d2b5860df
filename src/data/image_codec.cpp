// libpng and libjpeg report errors through callbacks that must not return. We longjmp back to
// the function that called setjmp; to keep that well-defined, each decode function's own frame
// holds only C structs (in a state object owned by the caller) and plain values, and every C++
// object it touches lives in the caller.
#include "data/image_codec.h"

#include <png.h>
#include <setjmp.h>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "data/io.h"

namespace myelin::data {

namespace {

// A deflate stream expands at most ~1032:1, so a PNG's pixels cannot need more than this many
// times its file size; a header that claims more is truncated or lying, and is refused before
// any memory is spent on it.
constexpr uint64_t kPngMaxRatio = 1100;
// A JPEG needs at least ~2 bits per 8x8 block (about 256 pixels a byte); 8x that is a safe bound.
constexpr uint64_t kJpegMaxPixelsPerByte = 2048;
// libjpeg-turbo's own limit for TJFLAG_LIMITSCANS: more scans is a denial-of-service pattern.
constexpr int kJpegMaxScans = 500;

void copy_message(char* dst, size_t cap, const char* msg) {
  std::snprintf(dst, cap, "%s", msg ? msg : "unknown error");
}

// ---- PNG ----

struct PngState {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  char message[256] = {};
  jmp_buf jump;
  png_structp png = nullptr;
  png_infop info = nullptr;
};

void png_fail(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngState*>(png_get_error_ptr(png));
  copy_message(st->message, sizeof st->message, msg);
  longjmp(st->jump, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* st = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > st->size - st->pos) png_error(png, "the file ends early: the image is truncated");
  std::memcpy(out, st->data + st->pos, n);
  st->pos += n;
}

// Sets up the read transformations and returns the output channels (1 or 3), after checking the
// size is believable.
int png_setup(PngState& st) {
  png_structp png = st.png;
  png_infop info = st.info;
  png_read_info(png, info);
  uint64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (w * h > static_cast<uint64_t>(kMaxImagePixels)) png_error(png, "image is too large");
  if (h * (png_get_rowbytes(png, info) + 1) > kPngMaxRatio * st.size)
    png_error(png, "the header's size cannot fit in a file this small: truncated or corrupt");
  int color = png_get_color_type(png, info);
  if (png_get_bit_depth(png, info) == 16) png_set_scale_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int channels = png_get_channels(png, info);
  if ((channels != 1 && channels != 3) || png_get_bit_depth(png, info) != 8)
    png_error(png, "unexpected pixel layout after conversion");
  return channels;
}

bool png_decode(PngState& st, RawImage& out, png_bytep* rows, bool header_only) {
  st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_fail, png_ignore_warning);
  if (!st.png) return false;
  st.info = png_create_info_struct(st.png);
  if (setjmp(st.jump)) {
    png_destroy_read_struct(&st.png, &st.info, nullptr);
    return false;
  }
  if (!st.info) png_error(st.png, "out of memory");
  png_set_read_fn(st.png, &st, png_read_memory);
  out.channels = png_setup(st);
  out.width = static_cast<int>(png_get_image_width(st.png, st.info));
  out.height = static_cast<int>(png_get_image_height(st.png, st.info));
  if (!header_only) {
    size_t stride = static_cast<size_t>(out.width) * static_cast<size_t>(out.channels);
    for (int y = 0; y < out.height; ++y)
      rows[y] = out.pixels.data() + static_cast<size_t>(y) * stride;
    png_read_image(st.png, rows);
    png_read_end(st.png, nullptr);
  }
  png_destroy_read_struct(&st.png, &st.info, nullptr);
  return true;
}

void decode_png(const std::string& path, const uint8_t* data, size_t size, RawImage& out,
                bool header_only) {
  // Two passes over the header: the first learns the size, so the pixel buffer and the row
  // pointers are made here, outside the setjmp frame.
  PngState probe;
  probe.data = data;
  probe.size = size;
  RawImage dims;
  if (!png_decode(probe, dims, nullptr, true))
    throw DataError(path, static_cast<int64_t>(probe.pos),
                    std::string("corrupt PNG: ") + probe.message);
  out.width = dims.width;
  out.height = dims.height;
  out.channels = dims.channels;
  if (header_only) return;
  out.pixels.resize(static_cast<size_t>(dims.width) * dims.height * dims.channels);
  std::vector<png_bytep> rows(static_cast<size_t>(dims.height));
  PngState st;
  st.data = data;
  st.size = size;
  if (!png_decode(st, out, rows.data(), false))
    throw DataError(path, static_cast<int64_t>(st.pos), std::string("corrupt PNG: ") + st.message);
}

// ---- JPEG ----

struct JpegState {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
  size_t size = 0;
  int64_t error_offset = 0;  // taken before jpeg_destroy frees the source manager
};

JpegState* jpeg_state(j_common_ptr c) {
  return static_cast<JpegState*>(c->client_data);
}

void jpeg_fail(j_common_ptr c) {
  JpegState* st = jpeg_state(c);
  c->err->format_message(c, st->message);
  longjmp(st->jump, 1);
}

// Warnings (level -1) are corrupt data that libjpeg would paper over (gray fill for a truncated
// file, skipped garbage): for a training set that is an error, not a silently wrong example.
void jpeg_message(j_common_ptr c, int level) {
  if (level < 0) jpeg_fail(c);
}

void jpeg_check_scans(j_common_ptr c) {
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > kJpegMaxScans) {
    JpegState* st = jpeg_state(c);
    std::snprintf(st->message, sizeof st->message, "more than %d progressive scans", kJpegMaxScans);
    longjmp(st->jump, 1);
  }
}

bool jpeg_decode(JpegState& st, const uint8_t* data, RawImage& out, bool header_only,
                 int want_channels) {
  j_decompress_ptr c = &st.cinfo;
  std::memset(c, 0, sizeof *c);
  c->err = jpeg_std_error(&st.err);
  c->client_data = &st;
  st.err.error_exit = jpeg_fail;
  st.err.emit_message = jpeg_message;
  if (setjmp(st.jump)) {
    if (c->src) st.error_offset = static_cast<int64_t>(st.size - c->src->bytes_in_buffer);
    jpeg_destroy_decompress(c);
    return false;
  }
  jpeg_create_decompress(c);
  c->client_data = &st;
  st.progress.progress_monitor = jpeg_check_scans;
  c->progress = &st.progress;
  jpeg_mem_src(c, data, static_cast<unsigned long>(st.size));
  jpeg_read_header(c, TRUE);
  uint64_t pixels = uint64_t{c->image_width} * c->image_height;
  if (pixels > static_cast<uint64_t>(kMaxImagePixels) ||
      pixels > kJpegMaxPixelsPerByte * st.size + (1u << 20)) {
    std::snprintf(st.message, sizeof st.message,
                  "a %ux%u image cannot fit in %zu bytes: truncated or corrupt", c->image_width,
                  c->image_height, st.size);
    longjmp(st.jump, 1);
  }
  if (c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK) {
    std::snprintf(st.message, sizeof st.message, "CMYK JPEGs are not supported (convert to RGB)");
    longjmp(st.jump, 1);
  }
  bool gray = c->num_components == 1 || want_channels == 1;
  c->out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  out.width = static_cast<int>(c->image_width);
  out.height = static_cast<int>(c->image_height);
  out.channels = gray ? 1 : 3;
  if (!header_only) {
    jpeg_start_decompress(c);
    // Pixels were sized by the caller from the header pass.
    size_t stride =
        static_cast<size_t>(c->output_width) * static_cast<size_t>(c->output_components);
    while (c->output_scanline < c->output_height) {
      JSAMPROW row = out.pixels.data() + c->output_scanline * stride;
      jpeg_read_scanlines(c, &row, 1);
    }
    jpeg_finish_decompress(c);
  }
  jpeg_destroy_decompress(c);
  return true;
}

void decode_jpeg(const std::string& path, const uint8_t* data, size_t size, RawImage& out,
                 bool header_only, int want_channels) {
  JpegState probe;
  probe.size = size;
  RawImage dims;
  if (!jpeg_decode(probe, data, dims, true, want_channels))
    throw DataError(path, probe.error_offset, std::string("corrupt JPEG: ") + probe.message);
  out.width = dims.width;
  out.height = dims.height;
  out.channels = dims.channels;
  if (header_only) return;
  out.pixels.resize(static_cast<size_t>(dims.width) * dims.height * dims.channels);
  JpegState st;
  st.size = size;
  if (!jpeg_decode(st, data, out, false, want_channels))
    throw DataError(path, st.error_offset, std::string("corrupt JPEG: ") + st.message);
}

// ---- PNG encoding ----

struct PngWriteState {
  std::vector<uint8_t>* out;
  jmp_buf jump;
  char message[256] = {};
};

void png_write_memory(png_structp png, png_bytep p, size_t n) {
  auto* st = static_cast<PngWriteState*>(png_get_io_ptr(png));
  st->out->insert(st->out->end(), p, p + n);
}

void png_write_fail(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngWriteState*>(png_get_error_ptr(png));
  copy_message(st->message, sizeof st->message, msg);
  longjmp(st->jump, 1);
}

bool png_encode(PngWriteState& st, png_bytep* rows, int width, int height, int channels) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, png_write_fail, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (setjmp(st.jump)) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, &st, png_write_memory, nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

ImageFormat sniff_image(const uint8_t* p, size_t n) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 8 && std::memcmp(p, png_sig, 8) == 0) return ImageFormat::png;
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return ImageFormat::jpeg;
  return ImageFormat::unknown;
}

void decode_image(const std::string& path, const uint8_t* data, size_t size, RawImage& out,
                  int want_channels) {
  switch (sniff_image(data, size)) {
    case ImageFormat::png:
      return decode_png(path, data, size, out, false);
    case ImageFormat::jpeg:
      return decode_jpeg(path, data, size, out, false, want_channels);
    case ImageFormat::unknown:
      break;
  }
  throw DataError(path, 0, "not a PNG or JPEG image: it starts with " + describe_bytes(data, size));
}

RawImage probe_image(const std::string& path, const uint8_t* data, size_t size) {
  RawImage out;
  switch (sniff_image(data, size)) {
    case ImageFormat::png:
      decode_png(path, data, size, out, true);
      return out;
    case ImageFormat::jpeg:
      decode_jpeg(path, data, size, out, true, 0);
      return out;
    case ImageFormat::unknown:
      break;
  }
  throw DataError(path, 0, "not a PNG or JPEG image: it starts with " + describe_bytes(data, size));
}

std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels) {
  if (channels != 1 && channels != 3)
    throw Error("encode_png: channels must be 1 or 3, got " + std::to_string(channels));
  std::vector<uint8_t> out;
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int y = 0; y < height; ++y)
    rows[static_cast<size_t>(y)] =
        const_cast<png_bytep>(pixels + static_cast<size_t>(y) * width * channels);
  PngWriteState st;
  st.out = &out;
  if (!png_encode(st, rows.data(), width, height, channels))
    throw Error(std::string("PNG encoding failed: ") + st.message);
  return out;
}

}  // namespace myelin::data
