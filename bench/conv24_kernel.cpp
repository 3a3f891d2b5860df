// Microbenchmark: a hand-written AVX-512 direct 3x3 convolution (stride 1, pad 1, C = K = 24,
// 14x14, nChw8c in and out) against oneDNN's forward convolution on the same layout.
//
//   g++ -O3 -march=native -fopenmp -std=c++20 bench/conv24_kernel.cpp -ldnnl -o /tmp/conv24
//   OMP_NUM_THREADS=2 /tmp/conv24
//
// The kernel keeps one output row (14 pixels x 24 channels) in registers: per pixel one zmm
// (output channels 0-15) and one ymm (16-23), 28 accumulators; each input value is broadcast
// from memory into two FMAs. That uses 24 of 32 lanes per FMA pair, against oneDNN's AVX2
// kernel that fills its 8-lane FMAs but issues 3 of them for the same 24 products.
#include <immintrin.h>
#include <omp.h>
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace {

constexpr int N = 128, C = 24, K = 24, H = 14, W = 14, CB = C / 8;

// Weights packed [ic][ky][kx][oc] so that one tap's 24 output channels are contiguous.
std::vector<float> pack_weights(const std::vector<float>& oihw) {
  std::vector<float> p(C * 9 * K);
  for (int o = 0; o < K; ++o)
    for (int i = 0; i < C; ++i)
      for (int t = 0; t < 9; ++t) p[(i * 9 + t) * K + o] = oihw[(o * C + i) * 9 + t];
  return p;
}

// Half an output row (7 pixels starting at P0): 14 accumulators plus the 3 taps' weights (6
// registers) stay in registers; P0 and the pixel loop are compile-time so that the padding
// pixels are skipped without branches.
template <int P0>
inline void half_row(const float* src, const float* wp, const float* bias, float* dst, int n,
                     int oh) {
  constexpr int P = 7;
  __m512 a[P];
  __m256 b[P];
  const __m512 ba = _mm512_loadu_ps(bias);
  const __m256 bb = _mm256_loadu_ps(bias + 16);
  for (int p = 0; p < P; ++p) a[p] = ba, b[p] = bb;
  for (int ky = 0; ky < 3; ++ky) {
    const int ih = oh + ky - 1;
    if (ih < 0 || ih >= H) continue;
    for (int cb = 0; cb < CB; ++cb) {
      const float* in_row = src + ((size_t(n) * CB + cb) * H * W + ih * W) * 8;
#pragma GCC unroll 2
      for (int c = 0; c < 8; ++c) {
        const float* w = wp + ((cb * 8 + c) * 9 + ky * 3) * K;
        __m512 wa[3];
        __m256 wb[3];
        for (int kx = 0; kx < 3; ++kx)
          wa[kx] = _mm512_loadu_ps(w + kx * K), wb[kx] = _mm256_loadu_ps(w + kx * K + 16);
#pragma GCC unroll 7
        for (int p = 0; p < P; ++p) {
#pragma GCC unroll 3
          for (int kx = 0; kx < 3; ++kx) {
            const int iw = P0 + p + kx - 1;
            if (iw < 0 || iw >= W) continue;
            // One broadcast feeds both FMAs (the ymm one reads its low half for free).
            const __m512 x = _mm512_set1_ps(in_row[iw * 8 + c]);
            a[p] = _mm512_fmadd_ps(x, wa[kx], a[p]);
            b[p] = _mm256_fmadd_ps(_mm512_castps512_ps256(x), wb[kx], b[p]);
          }
        }
      }
    }
  }
  float* o0 = dst + ((size_t(n) * CB + 0) * H * W + oh * W + P0) * 8;
  float* o1 = o0 + H * W * 8;
  float* o2 = o1 + H * W * 8;
  for (int p = 0; p < P; ++p) {
    _mm256_storeu_ps(o0 + p * 8, _mm512_castps512_ps256(a[p]));
    _mm256_storeu_ps(o1 + p * 8, _mm512_extractf32x8_ps(a[p], 1));
    _mm256_storeu_ps(o2 + p * 8, b[p]);
  }
}

void direct_fwd(const float* src, const float* wp, const float* bias, float* dst) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N * H; ++r) {
    half_row<0>(src, wp, bias, dst, r / H, r % H);
    half_row<7>(src, wp, bias, dst, r / H, r % H);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(size_t(N) * C * H * W), w(K * C * 9), bias(K);
  for (float& v : x) v = u(rng);
  for (float& v : w) v = u(rng) * 0.2f;
  for (float& v : bias) v = u(rng);

  memory::desc xd({N, C, H, W}, dt::f32, tag::nChw8c), yd({N, K, H, W}, dt::f32, tag::nChw8c);
  memory::desc wd_any({K, C, 3, 3}, dt::f32, tag::any), bd({K}, dt::f32, tag::x);
  convolution_forward::desc cd(prop_kind::forward_training, algorithm::convolution_direct, xd,
                               wd_any, bd, yd, {1, 1}, {1, 1}, {1, 1});
  convolution_forward::primitive_desc pd(cd, eng);
  std::printf("oneDNN impl: %s\n", pd.impl_info_str());
  // x is given in nChw8c memory order directly (random data; layout only matters for the check).
  memory xm(xd, eng, x.data()), bm(bd, eng, bias.data());
  memory wplain({{K, C, 3, 3}, dt::f32, tag::oihw}, eng, w.data());
  memory wm(pd.weights_desc(), eng);
  reorder(wplain, wm).execute(s, wplain, wm);
  std::vector<float> y_ref(size_t(N) * K * H * W), y(y_ref.size());
  memory ym(yd, eng, y_ref.data());
  convolution_forward conv(pd);
  auto run_ref = [&] {
    conv.execute(
        s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, ym}});
    s.wait();
  };
  const std::vector<float> wp = pack_weights(w);
  auto run_mine = [&] { direct_fwd(x.data(), wp.data(), bias.data(), y.data()); };

  run_ref();
  run_mine();
  // Relative to max(|ref|, 1): outputs near zero differ by rounding of O(1) partial sums.
  double max_rel = 0, max_ref = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    max_ref = std::max(max_ref, double(std::fabs(y_ref[i])));
    max_rel =
        std::max(max_rel, double(std::fabs(y[i] - y_ref[i]) / std::max(1.f, std::fabs(y_ref[i]))));
  }
  std::printf("max |ref| %.3g, max relative difference %.3g\n", max_ref, max_rel);

  auto time = [](auto&& f) {
    for (int i = 0; i < 5; ++i) f();
    std::vector<double> t;
    for (int i = 0; i < 41; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      t.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return median(t);
  };
  for (int round = 0; round < 5; ++round) {
    const double r = time(run_ref), m = time(run_mine);
    std::printf("threads %d  oneDNN %.3f ms  direct %.3f ms  ratio %.2f\n", omp_get_max_threads(),
                r, m, r / m);
  }
  return max_rel < 1e-4 ? 0 : 1;
}
