// Our Winograd F(2x2, 3x3) kernel (cpu/conv_winograd24.h): forward (bias, fused leaky ReLU), data
// gradient and weight gradient against a double reference for 8 to 32 channels, the same bits for
// 1, 2 and 3 threads; a training step of the small ResNet at 14x14 that runs it for its 24 -> 24
// convolutions gives the step of conv_direct8 (MYELIN_CPU_WINOGRAD24=0); and a standalone timing
// beside conv_direct8's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "cpu/conv_direct8.h"
#include "cpu/conv_winograd24.h"
#include "cpu/simd.h"
#include "support/blocks.h"
#include "support/conv3x3_ref.h"
#include "support/expect_near.h"
#include "support/fastest_ms.h"
#include "support/random_floats.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;

namespace {

// Winograd's transforms add a few roundings to each product: 1e-5 of the output's scale.
constexpr double kTolerance = 1e-5;

void check_geometry(int64_t n, int64_t c, int64_t k, int64_t h, int64_t w) {
  SCOPED_TRACE(testing::Message() << "n " << n << " c " << c << " k " << k << " " << h << "x" << w);
  const int64_t hw = h * w;
  const std::vector<float> x = random_floats(n * c * hw, 1), wt = random_floats(k * c * 9, 2),
                           dy = random_floats(n * k * hw, 3), bias = random_floats(k, 4);
  const float slope = 0.1f;
  const Conv3x3Ref ref = conv3x3_ref(x, wt, bias, dy, n, c, k, h, w, slope);
  const std::vector<float> x8 = to_blocks(x, n, c, hw, 8), dy8 = to_blocks(dy, n, k, hw, 8);
  std::vector<float> y8(n * k * hw), dx8(n * c * hw);
  cpu::winograd24::forward(x8.data(), wt.data(), bias.data(), y8.data(), n, c, k, h, w, true, slope,
                           2);
  expect_near(ref.y, from_blocks(y8, n, k, hw, 8), kTolerance, "forward");
  cpu::winograd24::grad_input(dy8.data(), wt.data(), dx8.data(), n, c, k, h, w, 2);
  expect_near(ref.dx, from_blocks(dx8, n, c, hw, 8), kTolerance, "grad_input");
  std::vector<float> dw(k * c * 9), scratch(cpu::winograd24::scratch_floats(n, c, k));
  cpu::winograd24::grad_weight(dy8.data(), x8.data(), dw.data(), scratch.data(), n, c, k, h, w, 2);
  expect_near(ref.dw, dw, kTolerance, "grad_weight");
  for (int threads : {1, 3}) {  // the same bits whatever the thread count
    std::vector<float> y_other(y8.size()), dx_other(dx8.size());
    cpu::winograd24::forward(x8.data(), wt.data(), bias.data(), y_other.data(), n, c, k, h, w, true,
                             slope, threads);
    EXPECT_EQ(y_other, y8) << threads << " threads";
    cpu::winograd24::grad_input(dy8.data(), wt.data(), dx_other.data(), n, c, k, h, w, threads);
    EXPECT_EQ(dx_other, dx8) << threads << " threads";
    std::vector<float> dw_other(dw.size());
    cpu::winograd24::grad_weight(dy8.data(), x8.data(), dw_other.data(), scratch.data(), n, c, k, h,
                                 w, threads);
    EXPECT_EQ(dw_other, dw) << threads << " threads";
  }
}

}  // namespace

TEST(CpuWinograd24, KernelsMatchTheReference) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check_geometry(3, 24, 24, 14, 14);  // 147 tiles: a short last block
  check_geometry(10, 8, 16, 6, 2);    // one tile a row: both columns of padding
  check_geometry(2, 32, 8, 4, 14);
  check_geometry(2, 16, 32, 14, 28);
  check_geometry(5, 24, 16, 8, 10);
  check_geometry(10, 24, 24, 14, 14);  // 10 images: a short chunk of the weight gradient
}

TEST(CpuWinograd24, TrainingStepMatchesDirect) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const StepNet net = resnet14_net(true);
  const StepOptions opts{
      .switch_env = "MYELIN_CPU_WINOGRAD24", .bind_seed = 5, .label_classes = 6, .step_seed = 2};
  const int64_t before_off = cpu::winograd24_passes_made();
  const StepResult off = run_step(net, false, opts);
  EXPECT_EQ(cpu::winograd24_passes_made(), before_off);
  const StepResult on = run_step(net, true, opts);
  // res1_conv1, res1_conv2: forward, data gradient and weight gradient
  EXPECT_EQ(cpu::winograd24_passes_made() - before_off, 6);
  expect_steps_match(off, on, 1e-5, "Winograd and direct steps differ");
}

TEST(CpuWinograd24, InferenceStepMatchesDirect) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const StepNet net = resnet14_net(false);
  const StepOptions opts{
      .switch_env = "MYELIN_CPU_WINOGRAD24", .bind_seed = 5, .label_classes = 6, .step_seed = 2};
  expect_steps_match(run_step(net, false, opts), run_step(net, true, opts), 1e-5,
                     "Winograd and direct inference differs");
}

// Standalone timings of the three passes at res1_conv1's shape (batch 128, 24 -> 24, 14x14, 2
// threads, the fastest of 200 runs), beside conv_direct8's, in alternating rounds:
// --gtest_also_run_disabled_tests --gtest_filter='*Timing*'.
TEST(CpuWinograd24, DISABLED_Timing) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const int64_t n = 128, c = 24, k = 24, h = 14, w = 14;
  const std::vector<float> x = random_floats(n * c * h * w, 1), wt = random_floats(k * c * 9, 2),
                           dy = random_floats(n * k * h * w, 3);
  std::vector<float> y(dy.size()), dx(x.size()), dw(wt.size()),
      scratch(std::max(cpu::direct8::scratch_floats(n, c, k),
                       cpu::winograd24::scratch_floats(n, c, k)));
  const double flop = 2.0 * n * k * h * w * c * 9;  // of the direct convolution
  for (int round = 0; round < 3; ++round) {
    const double d_fwd = fastest_ms([&] {
      cpu::direct8::forward(x.data(), wt.data(), nullptr, y.data(), n, c, k, h, w, false, 0, 2);
    });
    const double w_fwd = fastest_ms([&] {
      cpu::winograd24::forward(x.data(), wt.data(), nullptr, y.data(), n, c, k, h, w, false, 0, 2);
    });
    const double d_gin = fastest_ms(
        [&] { cpu::direct8::grad_input(dy.data(), wt.data(), dx.data(), n, c, k, h, w, 2); });
    const double w_gin = fastest_ms(
        [&] { cpu::winograd24::grad_input(dy.data(), wt.data(), dx.data(), n, c, k, h, w, 2); });
    const double d_gw = fastest_ms([&] {
      cpu::direct8::grad_weight(dy.data(), x.data(), dw.data(), scratch.data(), n, c, k, h, w, 2);
    });
    const double w_gw = fastest_ms([&] {
      cpu::winograd24::grad_weight(dy.data(), x.data(), dw.data(), scratch.data(), n, c, k, h, w,
                                   2);
    });
    std::printf("round %d\n", round);
    for (auto [name, ms] : {std::pair{"direct8 forward", d_fwd},
                            {"winograd forward", w_fwd},
                            {"direct8 grad_input", d_gin},
                            {"winograd grad_input", w_gin},
                            {"direct8 grad_weight", d_gw},
                            {"winograd grad_weight", w_gw}})
      std::printf("  %-20s %.3f ms  %.0f direct GFLOP/s\n", name, ms, flop / ms * 1e-6);
  }
}
