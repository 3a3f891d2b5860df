// The stem convolution fused in front of the batch norm + ReLU + max pooling (bn_pool.cpp;
// fuse.cpp: "conv" = "stem" on both nodes, the image in x's place and the weights w[o, cin, kh,
// kw] as the last input): a convolution of few taps (a gray or RGB image's first layer), so x is
// cheaper to compute again tile by tile from the image, which stays in cache, than to store and
// read back. Each thread zero-pads the image it works on once, so that every tap reads inside the
// padded copy.
//
// x is linear in the image's columns (col_t: what tap t reads for each pixel), so its batch
// statistics follow from theirs: mean_c = w_c . mu and var_c = w_c' Cov w_c, mu and Cov the
// columns' mean and covariance over the batch, from one cheap pass over the image (T columns
// instead of C channels). The forward pass then computes x once (for the pooling), and the
// gradient's sum((x - mean) * col_t) = m * (Cov w_c)[t] + m * mu_t * (w_c . mu - mean) needs no
// pass at all.
//
// For kStemTaps taps (3x3 on one channel) the convolution runs inside the pooling's window loops
// themselves (pool, grad: each window's four x computed in registers and dropped), otherwise tile
// by tile (tile, grad_tile) into the thread's buffers. A dense stem (one channel, 3x3, stride 1)
// reads its taps at compile-time offsets, takes 8-lane blocks two at a time as 16 lanes
// (pool_pair, grad_pair), and its forward stores each window's pick, from which the gradient
// works without x (grad_picks).
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/bn_pool_tiles.h"
#include "ops/params.h"

namespace myelin::cpu::bn_pool {

constexpr int64_t kStemTaps = 9;  // the taps the fused window loops are compiled for

// The image columns' statistics over the batch.
struct ImageStats {
  std::vector<double> mu, cov;  // T, T x T
};

// One fused stem convolution of a batch_norm (image_input: the image, weight_input: w) or of its
// gradient node. on() is false where the node has none.
class StemConv {
 public:
  StemConv(const KernelSpec& s, int image_input, int weight_input);
  bool on() const { return on_; }
  Shape x_shape() const { return Shape{n_, o_, oh_, ow_}; }
  int64_t taps() const { return on_ ? cin_ * kh_ * kw_ : 0; }
  // A thread's scratch: the padded image, then its columns.
  int64_t image_floats() const { return on_ ? cin_ * hp_ * wp_ : 0; }
  int64_t scratch_floats() const { return image_floats() + taps() * oh_ * ow_ + taps() * taps(); }
  // The per-image moments: sums (T) and co-moments (T x T).
  int64_t moment_doubles() const { return n_ * (taps() + taps() * taps()); }

  // wt[block][tap][lane]: the weights of each channel block by tap, padding channels 0.
  void transpose_weights(const Geometry& g, const float* w, float* wt) const;
  // Image n of img, zero-padded, into pimg (cin x hp x wp).
  void pad(const float* img, int64_t n, float* pimg) const;
  // x's tile of channels from c0, from the padded image.
  void tile(const Geometry& g, const float* pimg, const float* wt, int64_t c0, float* x) const;
  // Whether the window loops with the convolution inside (pool, grad) apply: kStemTaps taps.
  bool windowed() const { return taps() == kStemTaps; }
  // One input channel, 3x3, stride 1, no dilation: the window loops read the taps at offsets known
  // at compile time.
  bool dense() const {
    return cin_ == 1 && kh_ == 3 && kw_ == 3 && cp_.stride_h == 1 && cp_.stride_w == 1 &&
           cp_.dil_h == 1 && cp_.dil_w == 1;
  }
  // The pooled z of unit c0 from the padded image.
  // picks (dense() only; else null): each window's pick per lane, a byte, from the unit's
  // picks_at, by blocks of 8 lanes (the forward's and the gradient's lanes may differ).
  void pool(const Geometry& g, const float* pimg, const float* wt, int64_t c0, const float* scale,
            const float* shift, float* p, uint8_t* picks = nullptr) const;
  // pool of the two 8-lane blocks from c0 as one unit of 16 lanes (dense() only), p the two
  // blocks' tiles one after the other: the same bits as pool on each block.
  void pool_pair(const Geometry& g, const float* pimg, const float* wt, int64_t c0,
                 const float* scale, const float* shift, float* p, uint8_t* picks = nullptr) const;
  // The gradient sums of unit c0 (`blocks` 2: a pair of 8-lane blocks) from the forward's picks
  // (dense() only), dp (and its addend where not null) as for grad_pair: the same sum(dz) and g1
  // as grad, sum(dz * (x - mean)) by another rounding.
  void grad_picks(const Geometry& g, const float* pimg, const float* wt, int64_t c0, int64_t blocks,
                  const float* dp, const float* addend, const uint8_t* picks, const float* mean,
                  double* sum_dz, double* sum_dxm, double* g1) const;
  // The gradient sums of unit c0 from the padded image: per lane sum(dz), sum(dz * (x - mean))
  // and per tap g1 = sum(dz * col_t), added to the running totals.
  void grad(const Geometry& g, const float* pimg, const float* wt, int64_t c0, const float* dp,
            const float* scale, const float* shift, const float* mean, double* sum_dz,
            double* sum_dxm, double* g1) const;
  // grad of the two 8-lane blocks from c0 as one unit of 16 lanes (dense() only): per-channel
  // sums and g1 of both, dp the two blocks' tiles one after the other, plus addend's alike where
  // not null (dp a sum). The same bits as grad on each block: the same operations lane by lane, in
  // half the instructions.
  void grad_pair(const Geometry& g, const float* pimg, const float* wt, int64_t c0, const float* dp,
                 const float* addend, const float* scale, const float* shift, const float* mean,
                 double* sum_dz, double* sum_dxm, double* g1) const;
  // The weight gradient term g1 of a dz tile, added to the running totals.
  void grad_tile(const Geometry& g, const float* pimg, const float* dz, double* g1) const;

  // The moments of image n's columns into moments (moment_doubles: sums, then co-moments, by
  // image), through the thread's scratch; the padded image stays there (`padded`: n). False where
  // the SGEMM failed.
  bool image_moments(const float* img, int64_t n, float* scratch, double* moments,
                     int64_t& padded) const;
  // The columns' mean and covariance over the batch: the images' moments combined in image order
  // (Chan et al.'s formula, as for the batch norm's own statistics).
  ImageStats batch_stats(const double* moments) const;
  // The statistics as the forward passes them to the gradient (bn_pool.h: stem_stats_floats, the
  // doubles' bytes), so the gradient gets the same doubles.
  void save_stats(const ImageStats& st, float* to) const;
  ImageStats load_stats(const float* from) const;
  // Channel c's batch mean and variance (w: the weights, [o][T]).
  void channel_stats(const ImageStats& st, const float* w, int64_t c, double& mean,
                     double& var) const;
  // sum((x_c - mean) * col_t) over the batch, and sum(col_t) (g2 and g3 of the weight gradient).
  void centred_sums(const ImageStats& st, const float* w, int64_t c, double mean, int64_t t,
                    double& g2, double& g3) const;

 private:
  bool on_;
  ConvParams cp_;
  int64_t n_ = 0, cin_ = 0, h_ = 0, w_ = 0, o_ = 0, kh_ = 0, kw_ = 0, oh_ = 0, ow_ = 0, hp_ = 0,
          wp_ = 0;
  std::vector<int64_t> off_;  // per tap: its offset in the padded image
};

// Unit (n, c0)'s byte offset in the picks (bn_pool.h: stem_picks_floats): images of the channels
// padded to 16, each of blocks of 8 channels by window.
inline int64_t picks_at(const Geometry& g, int64_t n, int64_t c0) {
  return (n * ((g.c + 15) / 16 * 16) + c0) * g.oh * g.ow;
}

// The x tile of unit (n, c0) for thread t: read (converted where x is plain), or computed by the
// fused convolution from image n, padded into pimg when the thread's image changes (`padded`).
struct XTiles {
  const Geometry& g;
  const StemConv& conv;
  Operand x;  // x itself, or the image where the convolution is fused
  const float* wt;
  const float* get(int64_t n, int64_t c0, float* buf, float* pimg, int64_t& padded) const {
    if (!conv.on()) return x.read(g, n, c0, buf);
    conv.tile(g, image(n, pimg, padded), wt, c0, buf);
    return buf;
  }
  // Image n padded in pimg (the fused convolution).
  const float* image(int64_t n, float* pimg, int64_t& padded) const {
    if (padded != n) conv.pad(x.base, n, pimg), padded = n;
    return pimg;
  }
};

}  // namespace myelin::cpu::bn_pool
