#include "data/batch_transform.h"

#include <algorithm>

#include "core/error.h"
#include "data/io.h"

namespace myelin::data {

BatchTransform::BatchTransform(const Transforms& t, const Shape& example, bool training,
                               uint64_t seed)
    : random_(training), seed_(seed), scale_(static_cast<float>(t.scale)) {
  if (example.rank() != 3)
    throw ShapeError("Loader: examples must be [C, H, W], got " + example.str());
  c_ = example[0];
  h_ = example[1];
  w_ = example[2];
  pad_ = t.pad;
  if (t.pad < 0 || t.crop < 0) throw Error("Loader: crop and pad must not be negative");
  oh_ = t.crop ? t.crop : h_;
  ow_ = t.crop ? t.crop : w_;
  if (oh_ > h_ + 2 * pad_ || ow_ > w_ + 2 * pad_)
    throw ShapeError("Loader: crop " + std::to_string(t.crop) + " is larger than the example " +
                     example.str() + " padded by " + std::to_string(pad_));
  mirror_ = t.mirror && training;
  if (t.cutout < 0) throw Error("Loader: cutout must not be negative");
  cutout_ = training ? t.cutout : 0;
  if (!t.mean.empty() && t.mean_image)
    throw Error("Loader: give a per-channel mean or a mean image, not both");
  if (t.mean_image) {
    if (static_cast<int64_t>(t.mean_image->size()) != example.numel())
      throw ShapeError("Loader: the mean image has " + std::to_string(t.mean_image->size()) +
                       " values but examples are " + example.str());
    mean_scaled_.resize(t.mean_image->size());
    for (size_t i = 0; i < mean_scaled_.size(); ++i) mean_scaled_[i] = (*t.mean_image)[i] * scale_;
    return;
  }
  if (!t.mean.empty() && t.mean.size() != 1 && static_cast<int64_t>(t.mean.size()) != c_)
    throw ShapeError("Loader: " + std::to_string(t.mean.size()) + " channel means for " +
                     std::to_string(c_) + " channels");
  lut_.resize(static_cast<size_t>(c_) * 256);
  for (int64_t c = 0; c < c_; ++c) {
    float m = t.mean.empty() ? 0.0f : t.mean[t.mean.size() == 1 ? 0 : static_cast<size_t>(c)];
    for (int p = 0; p < 256; ++p)
      lut_[static_cast<size_t>(c * 256 + p)] = (static_cast<float>(p) - m) * scale_;
  }
}

BatchTransform::Placement BatchTransform::place(int64_t epoch, int64_t index) const {
  Placement p;
  const uint64_t range_y = static_cast<uint64_t>(h_ + 2 * pad_ - oh_) + 1;
  const uint64_t range_x = static_cast<uint64_t>(w_ + 2 * pad_ - ow_) + 1;
  if (!random_) {
    p.y0 = static_cast<int64_t>((range_y - 1) / 2);  // the centre window, rounded up-left
    p.x0 = static_cast<int64_t>((range_x - 1) / 2);
    return p;
  }
  uint64_t r = hash3(seed_, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index));
  // Multiply-shift maps 32 random bits onto [0, range) without a division.
  p.y0 = static_cast<int64_t>(((r >> 32) * range_y) >> 32);
  p.x0 = static_cast<int64_t>(((r & 0xffffffffu) * range_x) >> 32);
  const uint64_t r2 = mix64(r);
  p.flip = mirror_ && (r2 & 1);
  if (cutout_) {  // centre uniform over the output; the square may hang over its edges
    const uint64_t r3 = mix64(r2);
    p.cut_y = static_cast<int64_t>(((r3 >> 32) * static_cast<uint64_t>(oh_)) >> 32) - cutout_ / 2;
    p.cut_x =
        static_cast<int64_t>(((r3 & 0xffffffffu) * static_cast<uint64_t>(ow_)) >> 32) - cutout_ / 2;
  }
  return p;
}

void BatchTransform::row(const uint8_t* src, float* out, int64_t c, int64_t sy,
                         const Placement& p) const {
  // Output column ox reads source column sx = x0 + ox - pad, or x0 + (ow-1-ox) - pad flipped;
  // [lo, hi) are the columns that land inside the image, the rest are padding (zero).
  const int64_t first = p.x0 - pad_;
  int64_t lo = std::clamp<int64_t>(-first, 0, ow_), hi = std::clamp<int64_t>(w_ - first, 0, ow_);
  if (p.flip) {
    lo = std::clamp<int64_t>(first + ow_ - w_, 0, ow_);
    hi = std::clamp<int64_t>(first + ow_, 0, ow_);
  }
  std::fill(out, out + lo, 0.0f);
  std::fill(out + std::max(lo, hi), out + ow_, 0.0f);
  const float* lut = lut_.empty() ? nullptr : lut_.data() + c * 256;
  const float* mean = mean_scaled_.empty() ? nullptr : mean_scaled_.data() + (c * h_ + sy) * w_;
  for (int64_t ox = lo; ox < hi; ++ox) {
    int64_t sx = p.flip ? first + (ow_ - 1 - ox) : first + ox;
    out[ox] = lut ? lut[src[sx]] : static_cast<float>(src[sx]) * scale_ - mean[sx];
  }
}

void BatchTransform::apply(const uint8_t* pixels, float* out, int64_t epoch, int64_t index) const {
  Placement p = place(epoch, index);
  for (int64_t c = 0; c < c_; ++c) {
    for (int64_t oy = 0; oy < oh_; ++oy) {
      float* o = out + (c * oh_ + oy) * ow_;
      int64_t sy = p.y0 + oy - pad_;
      if (sy < 0 || sy >= h_) {
        std::fill(o, o + ow_, 0.0f);
        continue;
      }
      row(pixels + (c * h_ + sy) * w_, o, c, sy, p);
    }
  }
  if (cutout_) cut(out, p);
}

void BatchTransform::cut(float* out, const Placement& p) const {
  const int64_t y0 = std::max<int64_t>(p.cut_y, 0), y1 = std::min(p.cut_y + cutout_, oh_);
  const int64_t x0 = std::max<int64_t>(p.cut_x, 0), x1 = std::min(p.cut_x + cutout_, ow_);
  for (int64_t c = 0; c < c_; ++c)
    for (int64_t y = y0; y < y1; ++y) {
      float* o = out + (c * oh_ + y) * ow_;
      std::fill(o + x0, o + std::max(x0, x1), 0.0f);
    }
}

}  // namespace myelin::data
