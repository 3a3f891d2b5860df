// Our AVX-512 direct 3x3 stride-2 convolution from nChw8c to nChw16c (cpu/conv_direct_s2.h):
// forward (bias, fused leaky ReLU), data gradient and weight gradient against a reference in
// double for 8 to 24 input and 16 to 48 output channels, x also read in 16-channel blocks, odd
// heights, several runs of 7 in a row, a partial chunk of images; the forward of the 1x1
// stride-2 projection (the centre tap) against double; the weight gradient bit-identical for 1,
// 2 and 3 threads; and a training step of the small ResNet's stride-2 block (24 -> 48 channels
// at 14x14) gives the step of oneDNN's kernels (MYELIN_CPU_DIRECT_S2=0), which share an nChw16c
// copy of x with the projection (MYELIN_CPU_SHARE_X16) or not; ours keep none.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>

#include "cpu/conv_direct_s2.h"
#include "cpu/simd.h"
#include "support/blocks.h"
#include "support/expect_near.h"
#include "support/fastest_ms.h"
#include "support/random_floats.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;

namespace {

// The largest difference from the double reference, relative to its largest magnitude.
constexpr double kTolerance = 1e-5;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Geometry {
  int64_t n, c, k, h, w, bx;  // bx: x's block in the forward and weight gradient
};

// Calls f(y index, x index, w index) for every product of the padded stride-2 convolution.
template <class F>
void each_product(const Geometry& g, int64_t oh, int64_t ow, F f) {
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t o = 0; o < g.k; ++o)
      for (int64_t ci = 0; ci < g.c; ++ci)
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox)
            for (int64_t ky = 0; ky < 3; ++ky)
              for (int64_t kx = 0; kx < 3; ++kx) {
                const int64_t iy = 2 * oy + ky - 1, ix = 2 * ox + kx - 1;
                if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
                  f(((i * g.k + o) * oh + oy) * ow + ox, ((i * g.c + ci) * g.h + iy) * g.w + ix,
                    ((o * g.c + ci) * 3 + ky) * 3 + kx);
              }
}

void check(const Geometry& g) {
  SCOPED_TRACE(testing::Message() << "n " << g.n << " c " << g.c << " k " << g.k << " " << g.h
                                  << "x" << g.w << " x block " << g.bx);
  const int64_t oh = (g.h + 1) / 2, ow = g.w / 2, hw = g.h * g.w, ohw = oh * ow;
  ASSERT_TRUE(cpu::direct_s2_applies({g.n, g.c, g.h, g.w, g.k, oh, ow, 3, 3, 2, 2, 1, 1, 1, 1, 1},
                                     cpu::ConvPass::forward, g.bx, 16));
  std::vector<float> x = random_floats(g.n * g.c * hw, 1), wt = random_floats(g.k * g.c * 9, 2),
                     dy = random_floats(g.n * g.k * ohw, 3), bias = random_floats(g.k, 4);
  std::vector<double> y_ref(g.n * g.k * ohw), dx_ref(g.n * g.c * hw, 0), dw_ref(wt.size(), 0);
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t o = 0; o < g.k; ++o)
      for (int64_t p = 0; p < ohw; ++p) y_ref[(i * g.k + o) * ohw + p] = bias[o];
  each_product(g, oh, ow, [&](int64_t yi, int64_t xi, int64_t wi) {
    y_ref[yi] += double(x[xi]) * wt[wi];
    dx_ref[xi] += double(dy[yi]) * wt[wi];
    dw_ref[wi] += double(dy[yi]) * x[xi];
  });
  const float slope = 0.1f;
  for (double& v : y_ref) v = v < 0 ? v * slope : v;

  const std::vector<float> xb = to_blocks(x, g.n, g.c, hw, g.bx),
                           dyb = to_blocks(dy, g.n, g.k, ohw, 16);
  std::vector<float> yb(blocked_size(g.n, g.k, ohw, 16), kNaN);
  std::vector<float> dxb(blocked_size(g.n, g.c, hw, 8), kNaN), dw(wt.size(), kNaN);
  cpu::direct_s2::forward(xb.data(), g.bx, wt.data(), bias.data(), yb.data(), g.n, g.c, g.k, g.h,
                          g.w, 3, true, slope, 2);
  expect_near(y_ref, from_blocks(yb, g.n, g.k, ohw, 16), kTolerance, "forward");
  cpu::direct_s2::grad_input(dyb.data(), wt.data(), dxb.data(), g.n, g.c, g.k, g.h, g.w, 2);
  expect_near(dx_ref, from_blocks(dxb, g.n, g.c, hw, 8), kTolerance, "grad_input");
  std::vector<float> scratch(cpu::direct_s2::scratch_floats(g.n, g.c, g.k));
  cpu::direct_s2::grad_weight(dyb.data(), xb.data(), g.bx, dw.data(), scratch.data(), g.n, g.c, g.k,
                              g.h, g.w, 2);
  expect_near(dw_ref, dw, kTolerance, "grad_weight");
  for (int threads : {1, 3}) {  // the same bits whatever the thread count
    std::vector<float> other(dw.size());
    cpu::direct_s2::grad_weight(dyb.data(), xb.data(), g.bx, other.data(), scratch.data(), g.n, g.c,
                                g.k, g.h, g.w, threads);
    EXPECT_EQ(other, dw) << threads << " threads";
  }
}

// The 1x1 stride-2 forward (no padding): y[o, oy, ox] = bias + sum x[ci, 2 oy, 2 ox] w[o, ci].
void check_1x1(const Geometry& g) {
  SCOPED_TRACE(testing::Message() << "1x1: n " << g.n << " c " << g.c << " k " << g.k << " " << g.h
                                  << "x" << g.w << " x block " << g.bx);
  const int64_t oh = (g.h + 1) / 2, ow = g.w / 2, hw = g.h * g.w, ohw = oh * ow;
  ASSERT_TRUE(cpu::direct_s2_applies({g.n, g.c, g.h, g.w, g.k, oh, ow, 1, 1, 2, 2, 0, 0, 1, 1, 1},
                                     cpu::ConvPass::forward, g.bx, 16));
  std::vector<float> x = random_floats(g.n * g.c * hw, 1), wt = random_floats(g.k * g.c, 2),
                     bias = random_floats(g.k, 4);
  std::vector<double> y_ref(g.n * g.k * ohw);
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t o = 0; o < g.k; ++o)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double v = bias[o];
          for (int64_t ci = 0; ci < g.c; ++ci)
            v += double(x[((i * g.c + ci) * g.h + 2 * oy) * g.w + 2 * ox]) * wt[o * g.c + ci];
          y_ref[((i * g.k + o) * oh + oy) * ow + ox] = v;
        }
  const std::vector<float> xb = to_blocks(x, g.n, g.c, hw, g.bx);
  std::vector<float> yb(blocked_size(g.n, g.k, ohw, 16), kNaN);
  cpu::direct_s2::forward(xb.data(), g.bx, wt.data(), bias.data(), yb.data(), g.n, g.c, g.k, g.h,
                          g.w, 1, false, 0.f, 2);
  expect_near(y_ref, from_blocks(yb, g.n, g.k, ohw, 16), kTolerance, "forward 1x1");
}

}  // namespace

TEST(CpuDirectS2, KernelsMatchTheReference) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check({3, 24, 48, 14, 14, 8});   // the small ResNet's res2_conv1
  check({3, 24, 48, 14, 14, 16});  // x read from its nChw16c copy (24 channels padded to 32)
  check({10, 8, 16, 13, 14, 8});   // odd height; 10 images: a partial chunk of the weight gradient
  check({2, 24, 32, 6, 28, 16});   // two runs of 7 in a row
  check({2, 16, 48, 5, 14, 8});
}

TEST(CpuDirectS2, Forward1x1MatchesTheReference) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_1x1({3, 24, 48, 14, 14, 8});  // the small ResNet's res2_proj
  check_1x1({2, 16, 32, 13, 28, 16});
}

TEST(CpuDirectS2, OtherShapesNotTaken) {
  auto shape = [](int64_t h, int64_t w, int64_t c, int64_t k) {
    const int64_t oh = (h + 1) / 2, ow = (w + 1) / 2;
    return cpu::ConvShape{4, c, h, w, k, oh, ow, 3, 3, 2, 2, 1, 1, 1, 1, 1};
  };
  const auto fwd = cpu::ConvPass::forward, gin = cpu::ConvPass::grad_input;
  EXPECT_TRUE(cpu::direct_s2_applies(shape(14, 14, 24, 48), gin, 8, 16));
  EXPECT_FALSE(cpu::direct_s2_applies(shape(14, 14, 24, 48), gin, 16, 16));  // dx in 16c
  EXPECT_FALSE(cpu::direct_s2_applies(shape(13, 13, 24, 48), fwd, 8, 16));   // odd width
  EXPECT_FALSE(cpu::direct_s2_applies(shape(10, 10, 24, 48), fwd, 8, 16));   // 5 columns
  EXPECT_FALSE(cpu::direct_s2_applies(shape(14, 14, 24, 40), fwd, 8, 16));   // 40 channels
  EXPECT_FALSE(cpu::direct_s2_applies(shape(14, 14, 32, 48), fwd, 8, 16));   // 32 channels
  EXPECT_FALSE(cpu::direct_s2_applies(shape(14, 14, 24, 48), fwd, 8, 8));    // y in 8c
  cpu::ConvShape pointwise = shape(14, 14, 24, 48);
  pointwise.kh = pointwise.kw = 1, pointwise.ph = pointwise.pw = 0;
  EXPECT_TRUE(cpu::direct_s2_applies(pointwise, fwd, 8, 16));
  EXPECT_FALSE(cpu::direct_s2_applies(pointwise, gin, 8, 16));  // 1x1 gradients: not ours
}

TEST(CpuDirectS2, TrainingStepMatchesOneDnn) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const StepNet net = stride2_block_net();
  const StepOptions opts{
      .switch_env = "MYELIN_CPU_DIRECT_S2", .bind_seed = 5, .label_classes = 6, .step_seed = 2};
  for (const char* share : {"1", "0"}) {
    SCOPED_TRACE(testing::Message() << "MYELIN_CPU_SHARE_X16=" << share);
    setenv("MYELIN_CPU_SHARE_X16", share, 1);
    const StepResult off = run_step(net, false, opts);
    const int64_t before = cpu::direct_s2_kernels_made();
    const StepResult on = run_step(net, true, opts);
    EXPECT_EQ(cpu::direct_s2_kernels_made() - before, 4);  // conv1's three passes, proj's forward
    for (const Node& node : on.graph.nodes())              // no nChw16c copy of x (fuse_x16.cpp)
      EXPECT_FALSE(node.attrs.has("x16_out")) << node.name;
    expect_steps_match(off, on, 1e-5, "direct and oneDNN steps differ");
  }
  unsetenv("MYELIN_CPU_SHARE_X16");
}

// Standalone timing of each pass at res2_conv1's shape (batch 128, 2 threads): the fastest of
// 200 runs, since other work may share the cores. Run with --gtest_also_run_disabled_tests.
TEST(CpuDirectS2, DISABLED_Timing) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const int64_t n = 128, c = 24, k = 48, h = 14, w = 14;
  const std::vector<float> x = random_floats(n * c * h * w, 1), wt = random_floats(k * c * 9, 2),
                           dy = random_floats(n * k * 49, 3);
  std::vector<float> y(n * k * 49), dx(x.size()), dw(wt.size()),
      scratch(cpu::direct_s2::scratch_floats(n, c, k));
  const double flop = 2.0 * n * k * 49 * c * 9;
  const double fwd = fastest_ms([&] {
    cpu::direct_s2::forward(x.data(), 8, wt.data(), nullptr, y.data(), n, c, k, h, w, 3, false, 0,
                            2);
  });
  const double gin = fastest_ms(
      [&] { cpu::direct_s2::grad_input(dy.data(), wt.data(), dx.data(), n, c, k, h, w, 2); });
  const double gw = fastest_ms([&] {
    cpu::direct_s2::grad_weight(dy.data(), x.data(), 8, dw.data(), scratch.data(), n, c, k, h, w,
                                2);
  });
  for (auto [name, ms] : {std::pair{"forward", fwd}, {"grad_input", gin}, {"grad_weight", gw}})
    std::printf("%-12s %.3f ms  %.0f GFLOP/s\n", name, ms, flop / ms * 1e-6);
  const double fwd1 = fastest_ms([&] {  // res2_proj: 1x1, the weights' first k x c
    cpu::direct_s2::forward(x.data(), 8, wt.data(), nullptr, y.data(), n, c, k, h, w, 1, false, 0,
                            2);
  });
  std::printf("forward 1x1  %.3f ms  %.0f GFLOP/s\n", fwd1, flop / 9 / fwd1 * 1e-6);
}
