// The stem convolution's gradient loops (stem_conv.h): the weight gradient term tile by tile, and
// the gradient sums inside the pooling gradient's window loops, from x computed again or from the
// forward's picks; and the weight gradient's terms from the image's moments.
#include <algorithm>
#include <cstring>

#include "cpu/bn_pool_window.h"
#include "cpu/stem_conv.h"
#include "cpu/stem_conv_window.h"

namespace myelin::cpu::bn_pool {

namespace {

// The fused convolution's weight gradient term of one tile, added to the running totals: per tap
// t and lane k, g1 += sum(dz * col_t), col_t the image elements tap t reads. By linearity of
// dx = a * dz + b * (x - mean) + k', dW = a * g1 + b * sum((x - mean) * col) + k' * sum(col), and
// the last two come from the image's moments (StemConv), so dx itself is never formed.
template <int64_t L>
[[gnu::always_inline]] inline void conv_grad_tile_l(const float* pimg, const int64_t* off,
                                                    int64_t taps, const float* dz, int64_t oh,
                                                    int64_t ow, int64_t sh, int64_t sw, int64_t wp,
                                                    double* g1) {
  for (int64_t t = 0; t < taps; ++t) {
    Lanes<L> acc[kPixels] = {};
    for (int64_t oy = 0; oy < oh; ++oy) {
      const float* col = pimg + oy * sh * wp + off[t];
      const float* d = dz + oy * ow * L;
      int64_t ox = 0;
      for (; ox + kPixels <= ow; ox += kPixels)
        for (int64_t j = 0; j < kPixels; ++j)
          acc[j] += load<L>(d + (ox + j) * L) * col[(ox + j) * sw];
      for (; ox < ow; ++ox) acc[0] += load<L>(d + ox * L) * col[ox * sw];
    }
    for (int64_t j = 1; j < kPixels; ++j) acc[0] += acc[j];
    for (int64_t k = 0; k < L; ++k) g1[t * L + k] += acc[0][k];
  }
}

// The weight gradient term by tiles.
MYELIN_FMA_CLONES void conv_grad_tile(int64_t lanes, const float* pimg, const int64_t* off,
                                      int64_t taps, const float* dz, int64_t oh, int64_t ow,
                                      int64_t sh, int64_t sw, int64_t wp, double* g1) {
  MYELIN_BY_LANES(conv_grad_tile_l, lanes, pimg, off, taps, dz, oh, ow, sh, sw, wp, g1);
}

// The gradient: per lane sum(dz), sum(dz * (x - mean)) and per tap g1 = sum(dz * col_t) of one
// unit (tile_dz_l and conv_grad_tile_l in one loop), added to the running totals.
// Split: one unit of two 8-lane blocks as 16 lanes (StemConv::grad_pair): wt, dp and g1 by block
// (the second block's dp at dp + dp_hi, its weights and g1 terms T * 8 floats on). addend: dp's
// second addend (alike), or null.
template <int64_t L, int64_t T, bool Dense, bool Split = false>
[[gnu::always_inline]] inline void stem_grad_l(
    const float* pimg, const int64_t* off, const float* wt, const float* dp, int64_t oh, int64_t ow,
    int64_t sh, int64_t sw, int64_t wp, const float* scale, const float* shift, const float* mean,
    double* sum_dz, double* sum_dxm, double* g1, int64_t dp_hi = 0, const float* addend = nullptr) {
  constexpr int64_t B = Split ? 8 : L;  // the lanes of a stored block
  Lanes<L> w[T], g[T] = {};
#pragma GCC unroll 16
  for (int64_t t = 0; t < T; ++t) w[t] = load_halves<L, Split>(wt + t * B, T * B);
  const Lanes<L> sc = load<L>(scale), shv = load<L>(shift), mn = load<L>(mean);
  Lanes<L> sdz = {}, sdxm = {};
  // kRun windows at a time: their dz first, then their weight-gradient terms, in the same order as
  // one window at a time. In one loop the x, the picks, the weights, the T accumulators and the
  // taps it shares between both were more live vectors than registers, and GCC spilled the
  // accumulators every window. With dense taps and the two loops, the small ResNet's stem (bn1)
  // went from 1.095 to 0.938 ms backward and 0.729 to 0.679 ms forward (min of 10 alternating
  // `myelin time` runs, batch 128, 2 threads, Xeon shared with other benchmarks).
  constexpr int64_t kRun = 8;
  Lanes<L> dz_at[kRun][4];
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox0 = 0; ox0 < ow; ox0 += kRun) {
      const int64_t run = std::min(kRun, ow - ox0);
      for (int64_t i = 0; i < run; ++i) {
        const int64_t ox = ox0 + i;
        Lanes<L> x[4];
        window_x<L, T, Dense>(pimg, off, w, WindowPixels(oy, ox, sh, sw, wp), wp, x);
        const int64_t at = (oy * ow + ox) * B;
        Lanes<L> dpv = load_halves<L, Split>(dp + at, dp_hi);
        if (addend) dpv += load_halves<L, Split>(addend + at, dp_hi);  // as add_tiles adds them
        const WindowPick<L> p(Window<L>(x), dpv, sc, shv);
        sdz += p.dz;
        sdxm += p.dz * (p.x - mn);
        for (int j = 0; j < 4; ++j) dz_at[i][j] = p.dz_at[j];
      }
      for (int64_t i = 0; i < run; ++i) {
        const WindowPixels px(oy, ox0 + i, sh, sw, wp);
#pragma GCC unroll 16
        for (int64_t t = 0; t < T; ++t)
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) g[t] += dz_at[i][j] * tap_of<Dense>(pimg, off, px, wp, j, t);
      }
    }
  for (int64_t k = 0; k < L; ++k) sum_dz[k] += sdz[k], sum_dxm[k] += sdxm[k];
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < L; ++k) g1[k / B * T * B + t * B + k % B] += g[t][k];
}

// The gradient from the forward's picks (store_picks): no x and z to compute again. dz_at[j] is
// dp where the lane's pick is 4 + j, so sum(dz) and g1 are the same floats in the same order as
// stem_grad_l's; sum(dz * (x - mean)) comes from them by linearity, x at the pick being
// sum_t w[t] * col_t: sum(dz * x) = sum_t w[t] * g1[t] (in double, per unit).
template <int64_t L, int64_t T, bool Dense, bool Split = false>
[[gnu::always_inline]] inline void stem_grad_picks_l(const float* pimg, const int64_t* off,
                                                     const float* wt, const float* dp,
                                                     const float* addend, const uint8_t* picks,
                                                     int64_t hi, int64_t oh, int64_t ow, int64_t wp,
                                                     const float* mean, double* sum_dz,
                                                     double* sum_dxm, double* g1) {
  constexpr int64_t B = Split ? 8 : L;
  using Codes = typename CodesOf<L>::type;
  using Bytes = typename CodesOf<L>::bytes;
  const Codes czero = {};
  const Lanes<L> zero = {};
  Lanes<L> g[T] = {}, sdz = {};
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t at = (oy * ow + ox) * B;
      Lanes<L> dpv = load_halves<L, Split>(dp + at, hi);
      if (addend) dpv += load_halves<L, Split>(addend + at, hi);  // as add_tiles adds them
      Bytes b;                                                    // by 8-lane blocks (store_picks)
      std::memcpy(&b, picks + (oy * ow + ox) * 8, 8);
      if constexpr (L == 16)
        std::memcpy(reinterpret_cast<uint8_t*>(&b) + 8, picks + (oy * ow + ox) * 8 + oh * ow * 8,
                    8);
      const Codes code = __builtin_convertvector(b, Codes);
      sdz += code != czero ? dpv : zero;
      Lanes<L> dz_at[4];
      for (int j = 0; j < 4; ++j) dz_at[j] = code == czero + (4 + j) ? dpv : zero;
      const WindowPixels px(oy, ox, 1, 1, wp);
#pragma GCC unroll 16
      for (int64_t t = 0; t < T; ++t)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) g[t] += dz_at[j] * tap_of<Dense>(pimg, off, px, wp, j, t);
    }
  for (int64_t k = 0; k < L; ++k) {
    const float* wk = wt + k / B * T * B + k % B;  // lane k's weights, by tap
    double dzx = 0;
    for (int64_t t = 0; t < T; ++t) dzx += static_cast<double>(wk[t * B]) * g[t][k];
    sum_dz[k] += sdz[k];
    sum_dxm[k] += dzx - static_cast<double>(mean[k]) * sdz[k];
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < L; ++k) g1[k / B * T * B + t * B + k % B] += g[t][k];
}

// dense: StemConv::dense(), the taps at compile-time offsets (tap_of).
MYELIN_FMA_CLONES void stem_grad(int64_t lanes, bool dense, const float* pimg, const int64_t* off,
                                 const float* wt, const float* dp, int64_t oh, int64_t ow,
                                 int64_t sh, int64_t sw, int64_t wp, const float* scale,
                                 const float* shift, const float* mean, double* sum_dz,
                                 double* sum_dxm, double* g1) {
#define MYELIN_STEM_GRAD(L, D)                                                                    \
  stem_grad_l<L, kStemTaps, D>(pimg, off, wt, dp, oh, ow, sh, sw, wp, scale, shift, mean, sum_dz, \
                               sum_dxm, g1)
  if (lanes == 8) return dense ? MYELIN_STEM_GRAD(8, true) : MYELIN_STEM_GRAD(8, false);
  dense ? MYELIN_STEM_GRAD(16, true) : MYELIN_STEM_GRAD(16, false);
#undef MYELIN_STEM_GRAD
}

// The gradient from the picks of a dense stem: blocks of `lanes`, or two 8-lane blocks as 16
// (pair).
MYELIN_FMA_CLONES void stem_grad_picks(int64_t lanes, bool pair, const float* pimg,
                                       const int64_t* off, const float* wt, const float* dp,
                                       const float* addend, const uint8_t* picks, int64_t hi,
                                       int64_t oh, int64_t ow, int64_t wp, const float* mean,
                                       double* sum_dz, double* sum_dxm, double* g1) {
#define MYELIN_STEM_PICKS(L, S)                                                                    \
  stem_grad_picks_l<L, kStemTaps, true, S>(pimg, off, wt, dp, addend, picks, hi, oh, ow, wp, mean, \
                                           sum_dz, sum_dxm, g1)
  if (pair) return MYELIN_STEM_PICKS(16, true);
  if (lanes == 8) return MYELIN_STEM_PICKS(8, false);
  MYELIN_STEM_PICKS(16, false);
#undef MYELIN_STEM_PICKS
}

// Two 8-lane blocks of a dense stem as one unit of 16 lanes (StemConv::grad_pair).
MYELIN_FMA_CLONES void stem_grad_pair(const float* pimg, const int64_t* off, const float* wt,
                                      const float* dp, const float* addend, int64_t dp_hi,
                                      int64_t oh, int64_t ow, int64_t wp, const float* scale,
                                      const float* shift, const float* mean, double* sum_dz,
                                      double* sum_dxm, double* g1) {
  stem_grad_l<16, kStemTaps, true, true>(pimg, off, wt, dp, oh, ow, 1, 1, wp, scale, shift, mean,
                                         sum_dz, sum_dxm, g1, dp_hi, addend);
}

}  // namespace

void StemConv::grad_picks(const Geometry& g, const float* pimg, const float* wt, int64_t c0,
                          int64_t blocks, const float* dp, const float* addend,
                          const uint8_t* picks, const float* mean, double* sum_dz, double* sum_dxm,
                          double* g1) const {
  stem_grad_picks(g.lanes, blocks == 2, pimg, off_.data(), wt + c0 * taps(), dp, addend, picks,
                  g.oh * g.ow * g.lanes, g.oh, g.ow, wp_, mean, sum_dz, sum_dxm, g1);
}

void StemConv::grad(const Geometry& g, const float* pimg, const float* wt, int64_t c0,
                    const float* dp, const float* scale, const float* shift, const float* mean,
                    double* sum_dz, double* sum_dxm, double* g1) const {
  stem_grad(g.lanes, dense(), pimg, off_.data(), wt + c0 * taps(), dp, g.oh, g.ow, cp_.stride_h,
            cp_.stride_w, wp_, scale, shift, mean, sum_dz, sum_dxm, g1);
}

void StemConv::grad_pair(const Geometry& g, const float* pimg, const float* wt, int64_t c0,
                         const float* dp, const float* addend, const float* scale,
                         const float* shift, const float* mean, double* sum_dz, double* sum_dxm,
                         double* g1) const {
  stem_grad_pair(pimg, off_.data(), wt + c0 * taps(), dp, addend, g.oh * g.ow * g.lanes, g.oh, g.ow,
                 wp_, scale, shift, mean, sum_dz, sum_dxm, g1);
}

void StemConv::grad_tile(const Geometry& g, const float* pimg, const float* dz, double* g1) const {
  conv_grad_tile(g.lanes, pimg, off_.data(), taps(), dz, oh_, ow_, cp_.stride_h, cp_.stride_w, wp_,
                 g1);
}

void StemConv::centred_sums(const ImageStats& st, const float* w, int64_t c, double mean, int64_t t,
                            double& g2, double& g3) const {
  const int64_t taps = this->taps();
  const float* wc = w + c * taps;
  const double m = static_cast<double>(oh_ * ow_ * n_);
  double cov_w = 0, w_mu = 0;
  for (int64_t u = 0; u < taps; ++u)
    cov_w += st.cov[t * taps + u] * wc[u], w_mu += wc[u] * st.mu[u];
  g2 = m * cov_w + m * st.mu[t] * (w_mu - mean);
  g3 = m * st.mu[t];
}

}  // namespace myelin::cpu::bn_pool
