#include "train/inspect.h"

#include <algorithm>
#include <cmath>

#include "core/backend.h"
#include "core/error.h"
#include "core/executor.h"
#include "data/image_codec.h"
#include "train/checkpoint.h"
#include "train/session.h"

namespace myelin {

namespace {

constexpr int kTileSide = 24;  // about this many pixels a side after upscaling
constexpr int64_t kMaxCanvasPixels = int64_t{64} << 20;

// A grid of tiles of th x tw pixels (1 or 3 channels), each upscaled by a whole factor, with
// 1-pixel white gaps between them.
class TileCanvas {
 public:
  TileCanvas(int64_t count, int64_t columns, int64_t th, int64_t tw, int channels)
      : columns_(columns), th_(th), tw_(tw), channels_(channels) {
    scale_ = std::max<int64_t>(1, (kTileSide + std::max(th, tw) - 1) / std::max(th, tw));
    int64_t rows = (count + columns - 1) / columns;
    width_ = columns * (tw_ * scale_ + 1) - 1;
    height_ = rows * (th_ * scale_ + 1) - 1;
    if (width_ * height_ > kMaxCanvasPixels)
      throw Error("a grid of " + std::to_string(count) + " tiles of " + std::to_string(th) + "x" +
                  std::to_string(tw) + " is too large a picture");
    pixels_.assign(static_cast<size_t>(width_ * height_ * channels_), 255);
  }

  // `tile`: th x tw x channels bytes, row-major HWC.
  void put(int64_t index, const uint8_t* tile) {
    int64_t x0 = (index % columns_) * (tw_ * scale_ + 1),
            y0 = (index / columns_) * (th_ * scale_ + 1);
    for (int64_t y = 0; y < th_ * scale_; ++y)
      for (int64_t x = 0; x < tw_ * scale_; ++x) {
        const uint8_t* src = tile + ((y / scale_) * tw_ + x / scale_) * channels_;
        uint8_t* dst = pixels_.data() + ((y0 + y) * width_ + x0 + x) * channels_;
        std::copy(src, src + channels_, dst);
      }
  }

  std::vector<uint8_t> png() const {
    return data::encode_png(pixels_.data(), static_cast<int>(width_), static_cast<int>(height_),
                            channels_);
  }

 private:
  int64_t columns_, th_, tw_, scale_ = 1, width_ = 0, height_ = 0;
  int channels_;
  std::vector<uint8_t> pixels_;
};

int64_t square_columns(int64_t count) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(double(count)))));
}

// [lo, hi] -> [0, 255]; a constant range is mid-gray.
uint8_t to_byte(float x, float lo, float hi) {
  if (!(hi > lo)) return 128;
  return static_cast<uint8_t>(std::lround(std::clamp((x - lo) / (hi - lo), 0.0f, 1.0f) * 255));
}

std::pair<float, float> range_of(const float* x, int64_t n) {
  auto [lo, hi] = std::minmax_element(x, x + n);
  return {*lo, *hi};
}

std::string conv_layer_names(const NetworkSpec& spec) {
  std::string names;
  for (const LayerSpec& l : spec.layers)
    if (l.type == "conv") names += (names.empty() ? "" : ", ") + l.name;
  return names.empty() ? "none" : names;
}

const LayerSpec& conv_layer(const NetworkSpec& spec, const std::string& layer) {
  for (const LayerSpec& l : spec.layers)
    if (l.type == "conv" && (layer.empty() || l.name == layer)) return l;
  if (layer.empty()) throw Error("network '" + spec.name + "' has no conv layer");
  throw Error("network '" + spec.name + "' has no conv layer '" + layer +
              "' (its conv layers: " + conv_layer_names(spec) + ")");
}

// Filters [F, C, kh, kw]: one color or gray tile per filter, or F rows of C gray tiles.
std::vector<uint8_t> tile_filters(const Tensor& w) {
  const int64_t f = w.shape()[0], c = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3];
  const int64_t per = c * kh * kw;
  const bool one_tile = c == 1 || c == 3;
  TileCanvas canvas(one_tile ? f : f * c, one_tile ? square_columns(f) : c, kh, kw, c == 3 ? 3 : 1);
  std::vector<uint8_t> tile(static_cast<size_t>(kh * kw * (c == 3 ? 3 : 1)));
  for (int64_t i = 0; i < f; ++i) {
    const float* x = w.f32() + i * per;
    auto [lo, hi] = range_of(x, per);
    if (one_tile) {  // CHW -> HWC
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t p = 0; p < kh * kw; ++p)
          tile[p * c + ch] = to_byte(x[ch * kh * kw + p], lo, hi);
      canvas.put(i, tile.data());
      continue;
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t p = 0; p < kh * kw; ++p) tile[p] = to_byte(x[ch * kh * kw + p], lo, hi);
      canvas.put(i * c + ch, tile.data());
    }
  }
  return canvas.png();
}

// The value a layer's output is named by, or an Error listing the layers.
ValueId layer_output(const BuiltNetwork& net, const NetworkSpec& spec, const std::string& layer) {
  bool known =
      std::find(net.layer_names.begin(), net.layer_names.end(), layer) != net.layer_names.end();
  ValueId v = known ? net.graph.find(layer) : kNoValue;
  if (v != kNoValue) return v;
  std::string names;
  for (const std::string& n : net.layer_names) names += (names.empty() ? "" : ", ") + n;
  throw Error("network '" + spec.name + "' has no layer '" + layer + "' (its layers: " + names +
              ")");
}

// Runs `net` (batch 1, the wanted value kept) on the session's device with the session's
// parameters and states, on the prepared image; returns the kept value on the host.
Tensor run_kept(Session& s, const BuiltNetwork& net, ValueId wanted, const std::vector<float>& x) {
  Backend& b = s.backend();
  Program p(net.graph, b);
  const Graph& g = p.graph();
  for (size_t i = 0; i < g.values().size(); ++i) {
    const Value& v = g.values()[i];
    if (v.kind == ValueKind::param || v.kind == ValueKind::state)
      p.bind(static_cast<ValueId>(i), s.eval_program().tensor(v.name));
  }
  const Value& data = g.value(net.data);
  const Value& label = g.value(net.label);
  Buffer data_buf(b, x.size() * sizeof(float)), label_buf(b, sizeof(int32_t));
  b.copy_from_host(data_buf.data(), x.data(), x.size() * sizeof(float));
  b.fill_zero(label_buf.data(), sizeof(int32_t));
  p.bind(net.data, Tensor(data_buf.data(), data.shape, data.dtype, b.device()));
  p.bind(net.label, Tensor(label_buf.data(), label.shape, label.dtype, b.device()));
  p.run(StepContext{s.options().seed, 0});
  Tensor out = p.tensor(wanted);
  Tensor host = Tensor::empty(out.shape(), out.dtype());
  b.copy_to_host(host.data(), out.data(), out.nbytes());
  b.synchronize();
  return host;
}

// [1, C, H, W] (or [1, C, W], [1, F]) as C gray tiles, normalised together.
std::vector<uint8_t> tile_channels(const Tensor& y) {
  const Dims& d = y.shape().dims;
  const int64_t c = d.size() > 1 ? d[1] : 1;
  const int64_t h = d.size() > 3 ? d[2] : 1, w = y.numel() / std::max<int64_t>(1, c * h);
  auto [lo, hi] = range_of(y.f32(), y.numel());
  TileCanvas canvas(c, square_columns(c), h, w, 1);
  std::vector<uint8_t> tile(static_cast<size_t>(h * w));
  for (int64_t ch = 0; ch < c; ++ch) {
    const float* x = y.f32() + ch * h * w;
    for (int64_t p = 0; p < h * w; ++p) tile[p] = to_byte(x[p], lo, hi);
    canvas.put(ch, tile.data());
  }
  return canvas.png();
}

}  // namespace

std::vector<uint8_t> filters_png(const NetworkSpec& spec, const std::string& weights,
                                 const std::string& layer) {
  const LayerSpec& conv = conv_layer(spec, layer);
  std::string path = resolve_weights_path(weights);
  TensorFile file = read_safetensors(path);
  const Tensor* w = file.find(conv.name + ".weight");
  if (!w) throw DataError(path, -1, "no tensor '" + conv.name + ".weight' in the weights");
  if (w->dtype() != DType::f32 || w->shape().rank() != 4 || w->numel() == 0)
    throw DataError(path, -1,
                    "'" + conv.name + ".weight' is " + w->shape().str() + " " +
                        dtype_name(w->dtype()) + ", not f32 [filters, channels, kh, kw]");
  return tile_filters(*w);
}

std::vector<uint8_t> activations_png(const ClassifyOptions& o,
                                     const std::vector<uint8_t>& encoded_image,
                                     const std::string& layer) {
  NetworkSpec spec = resolve_spec(o.spec, o.model, o.weights);
  BuiltNetwork net = build_network(spec, 1, false, spec.recipe.label_smoothing);
  ValueId wanted = layer_output(net, spec, layer);
  net.graph.keep(wanted);  // so no engine fuses it away (a conv's output before its ReLU)
  std::vector<float> x(static_cast<size_t>(Shape(spec.input).numel()));
  prepare_image(spec, o.resize_mode, "image", encoded_image, x.data());
  auto session = inference_session(spec, o.device, o.threads, o.precision, 1, o.weights);
  return tile_channels(run_kept(*session, net, wanted, x));
}

}  // namespace myelin
