// The stem convolution's forward loops (stem_conv.h): tile by tile, inside the pooling's window
// loops, and the image's column moments. The gradient's loops are in stem_conv_grad.cpp.
#include "cpu/stem_conv.h"

#include <dnnl.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "cpu/bn_pool_window.h"
#include "cpu/stem_conv_window.h"

namespace myelin::cpu::bn_pool {

namespace {

constexpr int64_t kSumPixels = 256;  // pixels summed in float before going to double

// One tile of the fused stem convolution: x[pixel][k] = sum over taps t of wt[t][k] * the image
// element that tap reads for the pixel (pimg: the image zero-padded, so every tap reads inside
// it; off[t]: each tap's offset there). kPixels pixels of a row at a time, then the row's rest.
template <int64_t L>
[[gnu::always_inline]] inline void conv_tile_l(const float* pimg, const int64_t* off, int64_t taps,
                                               const float* wt, int64_t oh, int64_t ow, int64_t sh,
                                               int64_t sw, int64_t wp, float* x) {
  for (int64_t oy = 0; oy < oh; ++oy) {
    const float* row = pimg + oy * sh * wp;
    float* xr = x + oy * ow * L;
    int64_t ox = 0;
    for (; ox + kPixels <= ow; ox += kPixels) {
      Lanes<L> acc[kPixels] = {};
      for (int64_t t = 0; t < taps; ++t) {
        const Lanes<L> w = load<L>(wt + t * L);
        for (int64_t j = 0; j < kPixels; ++j) acc[j] += w * row[(ox + j) * sw + off[t]];
      }
      for (int64_t j = 0; j < kPixels; ++j) store<L>(xr + (ox + j) * L, acc[j]);
    }
    for (; ox < ow; ++ox) {
      Lanes<L> acc = {};
      for (int64_t t = 0; t < taps; ++t) acc += load<L>(wt + t * L) * row[ox * sw + off[t]];
      store<L>(xr + ox * L, acc);
    }
  }
}

// Sum of a row of floats: float lanes over blocks, the blocks added in double.
MYELIN_VECTOR_CLONES double row_total(const float* r, int64_t len) {
  double total = 0;
  for (int64_t b = 0; b < len; b += kSumPixels * 4) {
    // Four vector accumulators: one would wait on its own add every step.
    const int64_t end = std::min(len, b + kSumPixels * 4);
    Lanes<8> acc[4] = {};
    int64_t i = b;
    // No load<8>() here: its 256-bit return value in the clones without AVX is an error to clang
    // (the fuzz build), though always inlined.
    for (; i + 32 <= end; i += 32)
      for (int j = 0; j < 4; ++j) {
        Lanes<8> v;
        std::memcpy(&v, r + i + 8 * j, sizeof v);
        acc[j] += v;
      }
    float sum = 0;
    for (; i < end; ++i) sum += r[i];
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 8; ++k) sum += acc[j][k];
    total += sum;
  }
  return total;
}

// dst[i] = src[i * stride], i < len: vector copies where the stride is 1 (the small runs of a
// padded image and its columns, which std::copy sent to a memmove call each; inline, as a call
// per run cost as much).
[[gnu::always_inline]] inline void copy_run(const float* src, int64_t stride, int64_t len,
                                            float* dst) {
  int64_t i = 0;
  if (stride == 1)
    for (; i + 8 <= len; i += 8) store<8>(dst + i, load<8>(src + i));
  for (; i < len; ++i) dst[i] = src[i * stride];
}

// One image's column moments: cols holds its `taps` columns (rows of s pixels); sum[t] = their
// sums, co[t][u] = the sums of products about the image's own means (cols centred in place; the
// products by one SGEMM, `gram` its float result).
bool column_moments(float* cols, int64_t taps, int64_t s, float* gram, double* sum, double* co) {
  std::vector<double> shift(taps);
  for (int64_t t = 0; t < taps; ++t) {
    float* r = cols + t * s;
    sum[t] = row_total(r, s);
    const float mean = static_cast<float>(sum[t] / s);
    shift[t] = sum[t] / s - mean;  // what the float mean misses of the exact one
    for (int64_t i = 0; i < s; ++i) r[i] -= mean;
  }
  if (dnnl_sgemm('N', 'T', taps, taps, s, 1.0f, cols, s, cols, s, 0.0f, gram, taps) != dnnl_success)
    return false;
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t u = 0; u < taps; ++u)
      co[t * taps + u] = gram[t * taps + u] - s * shift[t] * shift[u];
  return true;
}

// One image's column moments for a dense stem (StemConv::dense: one channel, 3x3, stride 1),
// straight from its zero-padded copy pimg (hp x wp) without copying the columns out: the column of
// tap t is the oh x ow window of pimg at off[t]. The image less a constant c (its padded copy's
// mean) goes to q (hp * wp floats and 16 of slack); the covariance does not change by it, and the
// columns' means in q are small, so that co = sum(q_t * q_u) - S_t * S_u / s (S_t: column t's sum
// in q) cancels little. Sums run in 16 float lanes over the window's rows, then in double. The
// 45 products of each row's 9 taps go in 3 groups of 15 accumulators (the 9 taps and 15 sums fit
// the registers; one accumulator a product waited on its own multiply-add). The image's SGEMM on
// copied, centred columns took 0.35 ms of the small ResNet's stem forward (2 threads, batch 128),
// these 0.14 ms; bn1 forward 0.636 -> 0.484 ms (min of 8 alternating `myelin time` runs, Xeon
// shared with other benchmarks). Results change by rounding only; each image's own, so the same
// on any number of threads.
MYELIN_VECTOR_CLONES void dense_moments(const float* pimg, int64_t hp, int64_t wp, int64_t oh,
                                        int64_t ow, const int64_t* off, float* q, double* sum,
                                        double* co) {
  constexpr int64_t V = 16, T = kStemTaps, kPairs = T * (T + 1) / 2, kGroup = 15;
  static_assert(kPairs % kGroup == 0);
  typedef float Vec __attribute__((vector_size(V * sizeof(float))));
  static constexpr auto pairs = [] {
    std::array<std::array<int, 2>, kPairs> p{};
    int i = 0;
    for (int t = 0; t < T; ++t)
      for (int u = t; u < T; ++u) p[i++] = {t, u};
    return p;
  }();
  const int64_t size = hp * wp, s = oh * ow;
  const float c = static_cast<float>(row_total(pimg, size) / static_cast<double>(size));
  for (int64_t i = 0; i < size; ++i) q[i] = pimg[i] - c;
  std::fill_n(q + size, V, 0.0f);
  Vec index;
  for (int64_t k = 0; k < V; ++k) index[k] = static_cast<float>(k);
  const Vec zero = {};
  // A Vec's 16 lanes added in double, four at a time.
#define MYELIN_LANE_TOTAL(total, acc)                        \
  double total;                                              \
  {                                                          \
    double part[4] = {};                                     \
    for (int64_t k = 0; k < V; ++k) part[k % 4] += (acc)[k]; \
    total = (part[0] + part[1]) + (part[2] + part[3]);       \
  }
  // The taps' rows at (oy, ox); lanes at or past the row's end (the next row or the slack) are 0.
  // No helper takes or returns a Vec: clang (the fuzz build) rejects that in the clones without
  // AVX-512, though inlined.
#define MYELIN_TAP_ROWS(v, oy, ox)                                                 \
  Vec v[T];                                                                        \
  for (int64_t t = 0; t < T; ++t) {                                                \
    std::memcpy(&v[t], q + (oy)*wp + off[t] + (ox), sizeof(Vec));                  \
    if ((ox) + V > ow) v[t] = index < static_cast<float>(ow - (ox)) ? v[t] : zero; \
  }
  double qsum[T];
  {
    Vec acc[T] = {};
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ox += V) {
        MYELIN_TAP_ROWS(v, oy, ox);
        for (int64_t t = 0; t < T; ++t) acc[t] += v[t];
      }
    for (int64_t t = 0; t < T; ++t) {
      MYELIN_LANE_TOTAL(total, acc[t]);
      qsum[t] = total;
      sum[t] = total + static_cast<double>(s) * c;
    }
  }
#pragma GCC unroll 4
  for (int64_t g = 0; g < kPairs; g += kGroup) {
    Vec acc[kGroup] = {};
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ox += V) {
        MYELIN_TAP_ROWS(v, oy, ox);
#pragma GCC unroll 16
        for (int64_t i = 0; i < kGroup; ++i) acc[i] += v[pairs[g + i][0]] * v[pairs[g + i][1]];
      }
    for (int64_t i = 0; i < kGroup; ++i) {
      const int t = pairs[g + i][0], u = pairs[g + i][1];
      MYELIN_LANE_TOTAL(total, acc[i]);
      co[t * T + u] = co[u * T + t] = total - qsum[t] * qsum[u] / s;
    }
  }
#undef MYELIN_TAP_ROWS
#undef MYELIN_LANE_TOTAL
}

// The convolution by tiles. Forward and gradient compute x by the same clone, so alike.
MYELIN_FMA_CLONES void conv_tile(int64_t lanes, const float* pimg, const int64_t* off, int64_t taps,
                                 const float* wt, int64_t oh, int64_t ow, int64_t sh, int64_t sw,
                                 int64_t wp, float* x) {
  MYELIN_BY_LANES(conv_tile_l, lanes, pimg, off, taps, wt, oh, ow, sh, sw, wp, x);
}

// The same for a store.
template <int64_t L, bool Split>
[[gnu::always_inline]] inline void store_halves(float* p, int64_t hi, Lanes<L> v) {
  if constexpr (Split) {
    static_assert(L == 16);
    store<8>(p, __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7));
    store<8>(p + hi, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
  } else {
    store<L>(p, v);
  }
}

// Stored by 8-lane blocks whatever the kernel's lanes (the gradient's may differ from the
// forward's): lanes 8 to 15 of a 16-lane unit at `hi` bytes on.
template <int64_t L>
[[gnu::always_inline]] inline void store_picks(uint8_t* to, int64_t hi, const Lanes<L> (&z)[4],
                                               Lanes<L> m) {
  using Codes = typename CodesOf<L>::type;
  const Codes zero = {}, four = zero + 4, five = zero + 5, six = zero + 6, seven = zero + 7;
  const Lanes<L> fzero = {};
  Codes code = z[2] == m ? six : seven;
  code = z[1] == m ? five : code;
  code = z[0] == m ? four : code;
  code = m > fzero ? code : zero;
  const typename CodesOf<L>::bytes b = __builtin_convertvector(code, typename CodesOf<L>::bytes);
  std::memcpy(to, &b, 8);
  if constexpr (L == 16) std::memcpy(to + hi, reinterpret_cast<const uint8_t*>(&b) + 8, 8);
}

// The forward: the pooled z of one unit straight from the image (conv_tile_l and tile_pool_l in
// one loop).
template <int64_t L, int64_t T, bool Dense, bool Split = false>
[[gnu::always_inline]] inline void stem_pool_l(const float* pimg, const int64_t* off,
                                               const float* wt, int64_t oh, int64_t ow, int64_t sh,
                                               int64_t sw, int64_t wp, const float* scale,
                                               const float* shift, float* p, int64_t p_hi = 0,
                                               uint8_t* picks = nullptr) {
  constexpr int64_t B = Split ? 8 : L;  // the lanes of a stored block
  Lanes<L> w[T];
#pragma GCC unroll 16
  for (int64_t t = 0; t < T; ++t) w[t] = load_halves<L, Split>(wt + t * B, T * B);
  const Lanes<L> sc = load<L>(scale), shv = load<L>(shift);
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      Lanes<L> x[4];
      window_x<L, T, Dense>(pimg, off, w, WindowPixels(oy, ox, sh, sw, wp), wp, x);
      Lanes<L> z[4];
      for (int j = 0; j < 4; ++j) z[j] = activated_v<L>(x[j], sc, shv);
      Lanes<L> m = z[0];
      for (int j = 1; j < 4; ++j) m = max_v<L>(m, z[j]);
      store_halves<L, Split>(p + (oy * ow + ox) * B, p_hi, m);
      if (picks) store_picks<L>(picks + (oy * ow + ox) * 8, oh * ow * 8, z, m);
    }
}

// dense: StemConv::dense(), the taps at compile-time offsets (tap_of).
MYELIN_FMA_CLONES void stem_pool(int64_t lanes, bool dense, const float* pimg, const int64_t* off,
                                 const float* wt, int64_t oh, int64_t ow, int64_t sh, int64_t sw,
                                 int64_t wp, const float* scale, const float* shift, float* p,
                                 uint8_t* picks) {
#define MYELIN_STEM_POOL(L, D)                                                        \
  stem_pool_l<L, kStemTaps, D>(pimg, off, wt, oh, ow, sh, sw, wp, scale, shift, p, 0, \
                               D ? picks : nullptr)
  if (lanes == 8) return dense ? MYELIN_STEM_POOL(8, true) : MYELIN_STEM_POOL(8, false);
  dense ? MYELIN_STEM_POOL(16, true) : MYELIN_STEM_POOL(16, false);
#undef MYELIN_STEM_POOL
}

// Two 8-lane blocks of a dense stem as one unit of 16 lanes (StemConv::pool_pair).
MYELIN_FMA_CLONES void stem_pool_pair(const float* pimg, const int64_t* off, const float* wt,
                                      int64_t oh, int64_t ow, int64_t wp, const float* scale,
                                      const float* shift, float* p, int64_t p_hi, uint8_t* picks) {
  stem_pool_l<16, kStemTaps, true, true>(pimg, off, wt, oh, ow, 1, 1, wp, scale, shift, p, p_hi,
                                         picks);
}

}  // namespace

StemConv::StemConv(const KernelSpec& s, int image_input, int weight_input)
    : on_(s.node.attrs.s("conv", "") == "stem"), cp_(s.node.attrs) {
  if (!on_) return;
  const Shape &img = s.input(image_input).shape, &w = s.input(weight_input).shape;
  n_ = img[0], cin_ = img[1], h_ = img[2], w_ = img[3], o_ = w[0], kh_ = w[2], kw_ = w[3];
  oh_ = (h_ + 2 * cp_.pad_h - cp_.dil_h * (kh_ - 1) - 1) / cp_.stride_h + 1;
  ow_ = (w_ + 2 * cp_.pad_w - cp_.dil_w * (kw_ - 1) - 1) / cp_.stride_w + 1;
  hp_ = (oh_ - 1) * cp_.stride_h + (kh_ - 1) * cp_.dil_h + 1;
  wp_ = (ow_ - 1) * cp_.stride_w + (kw_ - 1) * cp_.dil_w + 1;
  for (int64_t ci = 0; ci < cin_; ++ci)
    for (int64_t ky = 0; ky < kh_; ++ky)
      for (int64_t kx = 0; kx < kw_; ++kx)
        off_.push_back((ci * hp_ + ky * cp_.dil_h) * wp_ + kx * cp_.dil_w);
}

void StemConv::transpose_weights(const Geometry& g, const float* w, float* wt) const {
  const int64_t taps = this->taps();
  for (int64_t c = 0; c < g.padded(); ++c)
    for (int64_t t = 0; t < taps; ++t)
      wt[(c / g.lanes * taps + t) * g.lanes + c % g.lanes] = c < g.c ? w[c * taps + t] : 0.0f;
}

void StemConv::pad(const float* img, int64_t n, float* pimg) const {
  std::fill_n(pimg, image_floats(), 0.0f);
  const int64_t x1 = std::min(w_, wp_ - cp_.pad_w);
  for (int64_t ci = 0; ci < cin_; ++ci)
    for (int64_t y = 0; y < h_ && y + cp_.pad_h < hp_; ++y) {
      const float* row = img + ((n * cin_ + ci) * h_ + y) * w_;
      copy_run(row, 1, x1, pimg + (ci * hp_ + y + cp_.pad_h) * wp_ + cp_.pad_w);
    }
}

void StemConv::tile(const Geometry& g, const float* pimg, const float* wt, int64_t c0,
                    float* x) const {
  conv_tile(g.lanes, pimg, off_.data(), taps(), wt + c0 * taps(), oh_, ow_, cp_.stride_h,
            cp_.stride_w, wp_, x);
}

void StemConv::pool(const Geometry& g, const float* pimg, const float* wt, int64_t c0,
                    const float* scale, const float* shift, float* p, uint8_t* picks) const {
  stem_pool(g.lanes, dense(), pimg, off_.data(), wt + c0 * taps(), g.oh, g.ow, cp_.stride_h,
            cp_.stride_w, wp_, scale, shift, p, picks);
}

void StemConv::pool_pair(const Geometry& g, const float* pimg, const float* wt, int64_t c0,
                         const float* scale, const float* shift, float* p, uint8_t* picks) const {
  stem_pool_pair(pimg, off_.data(), wt + c0 * taps(), g.oh, g.ow, wp_, scale, shift, p,
                 g.oh * g.ow * g.lanes, picks);
}

bool StemConv::image_moments(const float* img, int64_t n, float* scratch, double* moments,
                             int64_t& padded) const {
  const int64_t taps = this->taps(), s = oh_ * ow_;
  float *pimg = scratch, *cols = scratch + image_floats(), *gram = cols + taps * s;
  pad(img, n, pimg);
  padded = n;
  if (dense()) {
    dense_moments(pimg, hp_, wp_, oh_, ow_, off_.data(), cols, moments + n * taps,
                  moments + n_ * taps + n * taps * taps);
    return true;
  }
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t oy = 0; oy < oh_; ++oy) {
      copy_run(pimg + oy * cp_.stride_h * wp_ + off_[t], cp_.stride_w, ow_,
               cols + t * s + oy * ow_);
    }
  return column_moments(cols, taps, s, gram, moments + n * taps,
                        moments + n_ * taps + n * taps * taps);
}

ImageStats StemConv::batch_stats(const double* moments) const {
  const int64_t taps = this->taps();
  const double s = static_cast<double>(oh_ * ow_), m = s * n_;
  ImageStats st{std::vector<double>(taps, 0.0), std::vector<double>(taps * taps, 0.0)};
  for (int64_t n = 0; n < n_; ++n)
    for (int64_t t = 0; t < taps; ++t) st.mu[t] += moments[n * taps + t];
  for (double& v : st.mu) v /= m;
  for (int64_t n = 0; n < n_; ++n) {
    const double *sum = moments + n * taps, *co = moments + n_ * taps + n * taps * taps;
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t u = 0; u < taps; ++u)
        st.cov[t * taps + u] +=
            co[t * taps + u] + s * (sum[t] / s - st.mu[t]) * (sum[u] / s - st.mu[u]);
  }
  for (double& v : st.cov) v /= m;
  return st;
}

void StemConv::save_stats(const ImageStats& st, float* to) const {
  std::memcpy(to, st.mu.data(), st.mu.size() * sizeof(double));
  std::memcpy(to + 2 * st.mu.size(), st.cov.data(), st.cov.size() * sizeof(double));
}

ImageStats StemConv::load_stats(const float* from) const {
  const int64_t taps = this->taps();
  ImageStats st{std::vector<double>(taps), std::vector<double>(taps * taps)};
  std::memcpy(st.mu.data(), from, st.mu.size() * sizeof(double));
  std::memcpy(st.cov.data(), from + 2 * taps, st.cov.size() * sizeof(double));
  return st;
}

void StemConv::channel_stats(const ImageStats& st, const float* w, int64_t c, double& mean,
                             double& var) const {
  const int64_t taps = this->taps();
  const float* wc = w + c * taps;
  mean = var = 0;
  for (int64_t t = 0; t < taps; ++t) {
    mean += wc[t] * st.mu[t];
    for (int64_t u = 0; u < taps; ++u) var += wc[t] * st.cov[t * taps + u] * wc[u];
  }
  var = std::max(var, 0.0);
}

}  // namespace myelin::cpu::bn_pool
