// Our AVX-512 direct 3x3 convolution on nChw8c operands (cpu/conv_direct8.h): forward (bias,
// fused leaky ReLU), data gradient and weight gradient against a scalar reference for 8 to 32
// channels; the weight gradient bit-identical for 1, 2 and 3 threads; and a training step of
// the small ResNet at 14x14 that runs it for its 24 -> 24 convolutions gives the step of
// oneDNN's kernels (MYELIN_CPU_DIRECT24=0).
#include <gtest/gtest.h>

#include <vector>

#include "cpu/conv_direct8.h"
#include "cpu/simd.h"
#include "support/blocks.h"
#include "support/conv3x3_ref.h"
#include "support/expect_near.h"
#include "support/random_floats.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;

namespace {

// The largest difference from the double reference, relative to its largest magnitude.
constexpr double kTolerance = 1e-5;

void check_geometry(int64_t n, int64_t c, int64_t k, int64_t h, int64_t w) {
  SCOPED_TRACE(testing::Message() << "n " << n << " c " << c << " k " << k << " " << h << "x" << w);
  const int64_t hw = h * w;
  const std::vector<float> x = random_floats(n * c * hw, 1), wt = random_floats(k * c * 9, 2),
                           dy = random_floats(n * k * hw, 3), bias = random_floats(k, 4);
  const float slope = 0.1f;
  const Conv3x3Ref ref = conv3x3_ref(x, wt, bias, dy, n, c, k, h, w, slope);

  const std::vector<float> x8 = to_blocks(x, n, c, hw, 8), dy8 = to_blocks(dy, n, k, hw, 8);
  std::vector<float> y8(n * k * hw), dx8(n * c * hw), dw(k * c * 9);
  cpu::direct8::forward(x8.data(), wt.data(), bias.data(), y8.data(), n, c, k, h, w, true, slope,
                        2);
  expect_near(ref.y, from_blocks(y8, n, k, hw, 8), kTolerance, "forward");
  cpu::direct8::grad_input(dy8.data(), wt.data(), dx8.data(), n, c, k, h, w, 2);
  expect_near(ref.dx, from_blocks(dx8, n, c, hw, 8), kTolerance, "grad_input");
  std::vector<float> scratch(cpu::direct8::scratch_floats(n, c, k));
  cpu::direct8::grad_weight(dy8.data(), x8.data(), dw.data(), scratch.data(), n, c, k, h, w, 2);
  expect_near(ref.dw, dw, kTolerance, "grad_weight");
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
