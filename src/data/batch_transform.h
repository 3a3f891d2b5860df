// The per-example transform of the loader: u8 CHW pixels -> f32 CHW, with mean subtraction,
// scaling, padding, a crop, a horizontal flip and a cutout (a square set to zero, DeVries and
// Taylor 2017: its centre anywhere in the image, clipped at the borders). The random choices come
// from hash(seed, epoch, example index), so they do not depend on which thread runs the example.
#pragma once
#include <cstdint>
#include <vector>

#include "data/loader.h"

namespace myelin::data {

class BatchTransform {
 public:
  BatchTransform() = default;
  // Error when the transforms do not fit the example shape [C, H, W] (crop larger than the
  // padded image, a mean of the wrong size).
  BatchTransform(const Transforms& t, const Shape& example, bool training, uint64_t seed);

  // Writes channels() x out_height() x out_width() floats to `out`.
  void apply(const uint8_t* pixels, float* out, int64_t epoch, int64_t index) const;

  int64_t channels() const { return c_; }
  int64_t out_height() const { return oh_; }
  int64_t out_width() const { return ow_; }
  size_t out_elems() const { return static_cast<size_t>(c_ * oh_ * ow_); }

 private:
  struct Placement {
    int64_t y0 = 0, x0 = 0;  // top-left of the window in padded coordinates
    bool flip = false;
    int64_t cut_y = 0, cut_x = 0;  // the cutout's top-left in output coordinates (may be < 0)
  };
  Placement place(int64_t epoch, int64_t index) const;
  void row(const uint8_t* src_row, float* out, int64_t c, int64_t sy, const Placement& p) const;
  void cut(float* out, const Placement& p) const;

  int64_t c_ = 0, h_ = 0, w_ = 0, oh_ = 0, ow_ = 0, pad_ = 0, cutout_ = 0;
  bool random_ = false, mirror_ = false;
  uint64_t seed_ = 0;
  float scale_ = 1;
  std::vector<float> lut_;          // [C][256]: (p - mean_c) * scale, without a mean image
  std::vector<float> mean_scaled_;  // [C*H*W]: mean image * scale, with one
};

}  // namespace myelin::data
