// Our AVX-512 direct 3x3 stride-1 convolution between nChw16c activations
// (cpu/conv_direct48.h): forward (bias, fused leaky ReLU), data gradient and weight gradient
// against a reference in double for 16 to 48 channels on each side, several runs of 7 in a row,
// a partial chunk of images; the weight gradient bit-identical for 1, 2 and 3 threads; and a
// training step of the small ResNet's stride-2 block, whose conv2 is 48 -> 48 at 7x7, gives the
// step of oneDNN's kernels (MYELIN_CPU_DIRECT48=0).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "cpu/conv_direct48.h"
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

// The largest difference from the double reference, relative to its largest magnitude.
constexpr double kTolerance = 1e-5;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Geometry {
  int64_t n, c, k, h, w;
};

cpu::ConvShape shape_of(const Geometry& g) {
  return {g.n, g.c, g.h, g.w, g.k, g.h, g.w, 3, 3, 1, 1, 1, 1, 1, 1, 1};
}

void check(const Geometry& g) {
  SCOPED_TRACE(testing::Message() << "n " << g.n << " c " << g.c << " k " << g.k << " " << g.h
                                  << "x" << g.w);
  const int64_t hw = g.h * g.w;
  ASSERT_TRUE(cpu::direct48_applies(shape_of(g), 16, 16));
  const std::vector<float> x = random_floats(g.n * g.c * hw, 1),
                           wt = random_floats(g.k * g.c * 9, 2),
                           dy = random_floats(g.n * g.k * hw, 3), bias = random_floats(g.k, 4);
  const float slope = 0.1f;
  const Conv3x3Ref ref = conv3x3_ref(x, wt, bias, dy, g.n, g.c, g.k, g.h, g.w, slope);

  const std::vector<float> xb = to_blocks(x, g.n, g.c, hw, 16),
                           dyb = to_blocks(dy, g.n, g.k, hw, 16);
  std::vector<float> yb(dy.size(), kNaN), dxb(x.size(), kNaN), dw(wt.size(), kNaN);
  cpu::direct48::forward(xb.data(), wt.data(), bias.data(), yb.data(), g.n, g.c, g.k, g.h, g.w,
                         true, slope, 2);
  expect_near(ref.y, from_blocks(yb, g.n, g.k, hw, 16), kTolerance, "forward");
  cpu::direct48::grad_input(dyb.data(), wt.data(), dxb.data(), g.n, g.c, g.k, g.h, g.w, 2);
  expect_near(ref.dx, from_blocks(dxb, g.n, g.c, hw, 16), kTolerance, "grad_input");
  std::vector<float> scratch(cpu::direct48::scratch_floats(g.n, g.c, g.k));
  cpu::direct48::grad_weight(dyb.data(), xb.data(), dw.data(), scratch.data(), g.n, g.c, g.k, g.h,
                             g.w, 2);
  expect_near(ref.dw, dw, kTolerance, "grad_weight");
  for (int threads : {1, 3}) {  // the same bits whatever the thread count
    std::vector<float> other(dw.size());
    cpu::direct48::grad_weight(dyb.data(), xb.data(), other.data(), scratch.data(), g.n, g.c, g.k,
                               g.h, g.w, threads);
    EXPECT_EQ(other, dw) << threads << " threads";
  }
}

}  // namespace

TEST(CpuDirect48, KernelsMatchTheReference) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  check({3, 48, 48, 7, 7});   // the small ResNet's res2_conv2
  check({10, 16, 48, 5, 7});  // 10 images: a partial chunk of the weight gradient
  check({2, 48, 32, 4, 14});  // two runs of 7 in a row
  check({2, 32, 16, 3, 21});  // three runs
  check({1, 16, 16, 1, 7});   // one row
}

TEST(CpuDirect48, OtherShapesNotTaken) {
  const cpu::ConvShape base = shape_of({4, 48, 48, 7, 7});
  EXPECT_TRUE(cpu::direct48_applies(base, 16, 16));
  EXPECT_FALSE(cpu::direct48_applies(base, 8, 16));  // x in 8c
  EXPECT_FALSE(cpu::direct48_applies(base, 16, 0));  // y plain
  cpu::ConvShape s = shape_of({4, 48, 48, 8, 8});    // width not a multiple of 7
  EXPECT_FALSE(cpu::direct48_applies(s, 16, 16));
  s = shape_of({4, 64, 48, 7, 7});  // 64 channels
  EXPECT_FALSE(cpu::direct48_applies(s, 16, 16));
  s = shape_of({4, 48, 24, 7, 7});  // 24 channels
  EXPECT_FALSE(cpu::direct48_applies(s, 16, 16));
  s = base, s.sh = s.sw = 2, s.oh = s.ow = 4;  // stride 2
  EXPECT_FALSE(cpu::direct48_applies(s, 16, 16));
}

TEST(CpuDirect48, TrainingStepMatchesOneDnn) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const StepNet net = stride2_block_net();
  const StepOptions opts{
      .switch_env = "MYELIN_CPU_DIRECT48", .bind_seed = 5, .label_classes = 6, .step_seed = 2};
  const StepResult off = run_step(net, false, opts);
  const int64_t before = cpu::direct48_kernels_made();
  const StepResult on = run_step(net, true, opts);
  EXPECT_EQ(cpu::direct48_kernels_made() - before, 3);  // conv2's three passes
  expect_steps_match(off, on, 1e-5, "direct and oneDNN steps differ");
}

// Standalone timing of each pass at res2_conv2's shape (batch 128, 2 threads): the fastest of
// 200 runs, since other work may share the cores. Run with --gtest_also_run_disabled_tests.
TEST(CpuDirect48, DISABLED_Timing) {
  if (!cpu::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512";
  const int64_t n = 128, c = 48, k = 48, h = 7, w = 7;
  // Buffers 64-byte aligned, as the graph's arena is: a std::vector's 16-byte alignment split
  // every dy load of the weight gradient across two cache lines (0.905-0.918 ms against
  // 0.85-0.866 aligned).
  std::vector<std::vector<float>> store;
  auto aligned = [&store](std::vector<float> v) {
    store.emplace_back(v.size() + 16);
    float* p = store.back().data();
    p += (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(float);
    std::copy(v.begin(), v.end(), p);
    return p;
  };
  const float *x = aligned(random_floats(n * c * h * w, 1)),
              *wt = aligned(random_floats(k * c * 9, 2)),
              *dy = aligned(random_floats(n * k * h * w, 3));
  float *y = aligned(std::vector<float>(n * k * h * w)),
        *dx = aligned(std::vector<float>(n * c * h * w)),
        *dw = aligned(std::vector<float>(k * c * 9)),
        *scratch = aligned(std::vector<float>(cpu::direct48::scratch_floats(n, c, k)));
  const double flop = 2.0 * n * k * h * w * c * 9;
  const double fwd =
      fastest_ms([&] { cpu::direct48::forward(x, wt, nullptr, y, n, c, k, h, w, false, 0, 2); });
  const double gin = fastest_ms([&] { cpu::direct48::grad_input(dy, wt, dx, n, c, k, h, w, 2); });
  const double gw =
      fastest_ms([&] { cpu::direct48::grad_weight(dy, x, dw, scratch, n, c, k, h, w, 2); });
  for (auto [name, ms] : {std::pair{"forward", fwd}, {"grad_input", gin}, {"grad_weight", gw}})
    std::printf("%-12s %.3f ms  %.0f GFLOP/s\n", name, ms, flop / ms * 1e-6);
}
