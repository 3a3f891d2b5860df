#include "data/preview.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "data/image_codec.h"
#include "data/io.h"

namespace myelin {

namespace {

constexpr uint8_t kGap = 255;           // between grid cells
constexpr int kMaxScale = 64;           // example_png
constexpr int kMaxGridExamples = 4096;  // a request for more is a mistake, not a wish

struct Geometry {
  int c = 0, h = 0, w = 0;
};

// The example shape as ints, checked to be something a PNG can show.
Geometry geometry(const Dataset& data) {
  Shape s = data.example_shape();
  if (s.rank() != 3 || (s[0] != 1 && s[0] != 3))
    throw Error(data.describe() + ": examples of " + s.str() +
                " cannot be drawn (a PNG needs 1 or 3 channels)");
  return {static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2])};
}

// A canvas of interleaved pixels (HWC), encoded once everything is drawn on it.
struct Canvas {
  int width, height, channels;
  std::vector<uint8_t> px;
  Canvas(int w, int h, int c, uint8_t fill) : width(w), height(h), channels(c) {
    if (static_cast<int64_t>(w) * h > data::kMaxImagePixels)
      throw Error("a preview of " + std::to_string(w) + "x" + std::to_string(h) +
                  " pixels is too large");
    px.assign(static_cast<size_t>(w) * h * c, fill);
  }
  // Draws a CHW example with its top-left corner at (x0, y0), each pixel scale x scale.
  void draw(const uint8_t* chw, const Geometry& g, int x0, int y0, int scale) {
    const size_t plane = static_cast<size_t>(g.h) * g.w;
    for (int y = 0; y < g.h * scale; ++y) {
      uint8_t* row = px.data() + (static_cast<size_t>(y0 + y) * width + x0) * channels;
      const size_t src_row = static_cast<size_t>(y / scale) * g.w;
      for (int x = 0; x < g.w * scale; ++x)
        for (int k = 0; k < g.c; ++k)
          row[static_cast<size_t>(x) * channels + k] = chw[k * plane + src_row + x / scale];
    }
  }
  std::vector<uint8_t> png() const { return data::encode_png(px.data(), width, height, channels); }
};

std::vector<uint8_t> read_pixels(const Dataset& data, int64_t index, const Geometry& g) {
  if (index < 0 || index >= data.size())
    throw Error(data.describe() + ": no example " + std::to_string(index) + " (it has " +
                std::to_string(data.size()) + ")");
  std::vector<uint8_t> px(static_cast<size_t>(g.c) * g.h * g.w);
  int32_t label = 0;
  data.read(index, px.data(), &label);
  return px;
}

void check_grid_request(int count, int columns) {
  if (count < 1 || count > kMaxGridExamples)
    throw Error("a grid holds 1 to " + std::to_string(kMaxGridExamples) + " examples, asked for " +
                std::to_string(count));
  if (columns < 1)
    throw Error("a grid needs at least 1 column, asked for " + std::to_string(columns));
}

}  // namespace

std::vector<uint8_t> mean_png(const Dataset& data) {
  Geometry g = geometry(data);
  std::shared_ptr<std::vector<float>> mean = data.mean_image();
  if (!mean || mean->size() != static_cast<size_t>(g.c) * g.h * g.w)
    throw Error(data.describe() + ": the mean image does not have the examples' shape");
  std::vector<uint8_t> chw(mean->size());
  for (size_t i = 0; i < chw.size(); ++i)
    chw[i] = static_cast<uint8_t>(std::clamp(std::lround((*mean)[i]), 0L, 255L));
  Canvas canvas(g.w, g.h, g.c, 0);
  canvas.draw(chw.data(), g, 0, 0, 1);
  return canvas.png();
}

std::vector<uint8_t> example_png(const Dataset& data, int64_t index, int scale) {
  Geometry g = geometry(data);
  if (scale < 1 || scale > kMaxScale)
    throw Error("scale must be 1 to " + std::to_string(kMaxScale) + ", got " +
                std::to_string(scale));
  std::vector<uint8_t> px = read_pixels(data, index, g);
  Canvas canvas(g.w * scale, g.h * scale, g.c, 0);
  canvas.draw(px.data(), g, 0, 0, scale);
  return canvas.png();
}

std::vector<int64_t> sample_examples(const Dataset& data, int label, int count, uint64_t seed) {
  if (label < -1 || label >= data.num_classes())
    throw Error(data.describe() + ": no class " + std::to_string(label) + " (it has " +
                std::to_string(data.num_classes()) + ")");
  std::vector<int64_t> pool;
  if (label < 0) {
    pool.resize(static_cast<size_t>(data.size()));
    std::iota(pool.begin(), pool.end(), 0);
  } else {
    for (int64_t i = 0; i < data.size(); ++i)
      if (data.label(i) == label) pool.push_back(i);
  }
  // The first `count` steps of a Fisher-Yates shuffle: a uniform sample without replacement.
  size_t k = std::min(pool.size(), static_cast<size_t>(std::max(count, 0)));
  data::Rng rng(data::mix64(seed));
  for (size_t i = 0; i < k; ++i) std::swap(pool[i], pool[i + rng.below(pool.size() - i)]);
  pool.resize(k);
  std::sort(pool.begin(), pool.end());  // and reads in file order
  return pool;
}

std::vector<uint8_t> grid_png(const Dataset& data, const std::vector<int64_t>& indices,
                              int columns) {
  check_grid_request(static_cast<int>(std::min<size_t>(indices.size(), kMaxGridExamples + 1)),
                     columns);
  Geometry g = geometry(data);
  const int n = static_cast<int>(indices.size());
  const int cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  Canvas canvas(cols * (g.w + 1) - 1, rows * (g.h + 1) - 1, g.c, kGap);
  for (int i = 0; i < n; ++i) {
    std::vector<uint8_t> px = read_pixels(data, indices[static_cast<size_t>(i)], g);
    canvas.draw(px.data(), g, (i % cols) * (g.w + 1), (i / cols) * (g.h + 1), 1);
  }
  return canvas.png();
}

std::vector<uint8_t> examples_grid_png(const Dataset& data, int label, int count, int columns,
                                       uint64_t seed) {
  check_grid_request(count, columns);
  std::vector<int64_t> picked = sample_examples(data, label, count, seed);
  if (picked.empty())
    throw Error(data.describe() + ": no examples" +
                (label < 0 ? std::string() : " of class " + std::to_string(label)));
  return grid_png(data, picked, columns);
}

std::vector<uint8_t> preview_source_png(const std::string& source_spec, const OpenOptions& opts,
                                        int count) {
  check_grid_request(count, 1);
  OpenOptions whole = opts;
  whole.validation_percent = 0;  // the source's own order, not a shuffled split
  DatasetSplits s = open_dataset(source_spec, whole);
  if (!s.train || s.train->size() == 0) throw Error(source_spec + " holds no images");
  std::vector<int64_t> first(static_cast<size_t>(std::min<int64_t>(count, s.train->size())));
  std::iota(first.begin(), first.end(), 0);
  int columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(first.size()))));
  return grid_png(*s.train, first, columns);
}

}  // namespace myelin
