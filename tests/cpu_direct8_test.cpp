// Our AVX-512 direct 3x3 convolution on nChw8c operands (cpu/conv_direct8.h): forward (bias,
// fused leaky ReLU), data gradient and weight gradient against a scalar reference for 8 to 32
// channels; the weight gradient bit-identical for 1, 2 and 3 threads; and a training step of
// the small ResNet at 14x14 that runs it for its 24 -> 24 convolutions gives the step of
// oneDNN's kernels (MYELIN_CPU_DIRECT24=0).
#include <gtest/gtest.h>

#include <vector>

#include "cpu/conv_direct8.h"
#include "cpu/simd.h"
#include "support/expect_near.h"
#include "support/random_floats.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;

namespace {

// The largest difference from the double reference, relative to its largest magnitude.
constexpr double kTolerance = 1e-5;

// NCHW <-> nChw8c (channels a multiple of 8): each element's (NCHW index, nChw8c index).
template <class F>
void each_index8(int64_t n, int64_t c, int64_t hw, F f) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < hw; ++p)
        f((i * c + ch) * hw + p, ((i * (c / 8) + ch / 8) * hw + p) * 8 + ch % 8);
}
std::vector<float> to8(const std::vector<float>& x, int64_t n, int64_t c, int64_t hw) {
  std::vector<float> y(x.size());
  each_index8(n, c, hw, [&](int64_t plain, int64_t blocked) { y[blocked] = x[plain]; });
  return y;
}
std::vector<float> from8(const std::vector<float>& y, int64_t n, int64_t c, int64_t hw) {
  std::vector<float> x(y.size());
  each_index8(n, c, hw, [&](int64_t plain, int64_t blocked) { x[plain] = y[blocked]; });
  return x;
}

// Calls f(i, o, y, x, ky, kx, oh, ow, ih, iw) for every product of the padded 3x3 convolution.
template <class F>
void each_product(int64_t n, int64_t c, int64_t k, int64_t h, int64_t w, F f) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < k; ++o)
      for (int64_t ci = 0; ci < c; ++ci)
        for (int64_t oh = 0; oh < h; ++oh)
          for (int64_t ow = 0; ow < w; ++ow)
            for (int64_t ky = 0; ky < 3; ++ky)
              for (int64_t kx = 0; kx < 3; ++kx) {
                const int64_t ih = oh + ky - 1, iw = ow + kx - 1;
                if (ih >= 0 && ih < h && iw >= 0 && iw < w)
                  f(((i * k + o) * h + oh) * w + ow, ((i * c + ci) * h + ih) * w + iw,
                    ((o * c + ci) * 3 + ky) * 3 + kx);
              }
}

void check_geometry(int64_t n, int64_t c, int64_t k, int64_t h, int64_t w) {
  SCOPED_TRACE(testing::Message() << "n " << n << " c " << c << " k " << k << " " << h << "x" << w);
  const int64_t hw = h * w;
  std::vector<float> x = random_floats(n * c * hw, 1), wt = random_floats(k * c * 9, 2),
                     dy = random_floats(n * k * hw, 3), bias = random_floats(k, 4);
  std::vector<double> y_ref(n * k * hw), dx_ref(n * c * hw, 0), dw_ref(k * c * 9, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < k; ++o)
      for (int64_t p = 0; p < hw; ++p) y_ref[(i * k + o) * hw + p] = bias[o];
  each_product(n, c, k, h, w, [&](int64_t yi, int64_t xi, int64_t wi) {
    y_ref[yi] += double(x[xi]) * wt[wi];
    dx_ref[xi] += double(dy[yi]) * wt[wi];
    dw_ref[wi] += double(dy[yi]) * x[xi];
  });
  const float slope = 0.1f;
  for (double& v : y_ref) v = v < 0 ? v * slope : v;

  const std::vector<float> x8 = to8(x, n, c, hw), dy8 = to8(dy, n, k, hw);
  std::vector<float> y8(n * k * hw), dx8(n * c * hw), dw(k * c * 9);
  cpu::direct8::forward(x8.data(), wt.data(), bias.data(), y8.data(), n, c, k, h, w, true, slope,
                        2);
  expect_near(y_ref, from8(y8, n, k, hw), kTolerance, "forward");
  cpu::direct8::grad_input(dy8.data(), wt.data(), dx8.data(), n, c, k, h, w, 2);
  expect_near(dx_ref, from8(dx8, n, c, hw), kTolerance, "grad_input");
  std::vector<float> scratch(cpu::direct8::scratch_floats(n, c, k));
  cpu::direct8::grad_weight(dy8.data(), x8.data(), dw.data(), scratch.data(), n, c, k, h, w, 2);
  expect_near(dw_ref, dw, kTolerance, "grad_weight");
  for (int threads : {1, 3}) {  // the same bits whatever the thread count
    std::vector<float> other(dw.size());
    cpu::direct8::grad_weight(dy8.data(), x8.data(), other.data(), scratch.data(), n, c, k, h, w,
                              threads);
    EXPECT_EQ(other, dw) << threads << " threads";
  }
}

}  // namespace

TEST(CpuDirect8, KernelsMatchTheReference) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_geometry(3, 24, 24, 14, 14);
  check_geometry(10, 8, 16, 5, 21);  // 10 images: a partial chunk of the weight gradient
  check_geometry(2, 32, 8, 3, 14);
  check_geometry(2, 16, 32, 14, 28);
  check_geometry(9, 24, 16, 4, 14);  // 3 channel pairs per weight-gradient group, 16 outputs
  check_geometry(2, 24, 8, 3, 21);   // and 8
}

TEST(CpuDirect8, TrainingStepMatchesOneDnn) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const StepNet net = resnet14_net(true);
  const StepOptions opts{
      .switch_env = "MYELIN_CPU_DIRECT24", .bind_seed = 5, .label_classes = 6, .step_seed = 2};
  const StepResult off = run_step(net, false, opts);
  const int64_t before = cpu::direct8_kernels_made();
  const StepResult on = run_step(net, true, opts);
  EXPECT_EQ(cpu::direct8_kernels_made() - before, 6);  // res1_conv1, res1_conv2 x 3 passes
  expect_steps_match(off, on, 1e-5, "direct and oneDNN steps differ");
}

TEST(CpuDirect8, InferenceStepMatchesOneDnn) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const StepNet net = resnet14_net(false);
  const StepOptions opts{
      .switch_env = "MYELIN_CPU_DIRECT24", .bind_seed = 5, .label_classes = 6, .step_seed = 2};
  expect_steps_match(run_step(net, false, opts), run_step(net, true, opts), 1e-5,
                     "direct and oneDNN inference differs");
}
