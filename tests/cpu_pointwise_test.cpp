// Our gradients of a strided 1x1 convolution on blocked operands (cpu/conv_pointwise.h): data
// and weight gradients against a reference in double for blocks of 8 and 16 on either side,
// channel counts that pad a block, strides 2 and 3; the weight gradient bit-identical for 1, 2
// and 3 threads; and a training step of a network with a stride-2 projection shortcut gives the
// step of oneDNN's kernels (MYELIN_CPU_POINTWISE=0).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "cpu/conv_pointwise.h"
#include "cpu/simd.h"
#include "support/expect_near.h"
#include "support/random_floats.h"
#include "support/step_compare.h"

using namespace myelin;
using namespace myelin::test;
using cpu::pointwise::Blocked;

namespace {

// The largest difference from the double reference, relative to its largest magnitude.
constexpr double kTolerance = 1e-5;

// A blocked buffer of n images with its padding lanes zero, and access by (image, channel,
// pixel) for the reference.
struct Buffer {
  Blocked b;
  int64_t n;
  std::vector<float> data;
  Buffer(int64_t n_, int64_t block, int64_t c, int64_t h, int64_t w)
      : b{nullptr, block, c, h, w}, n(n_), data(n_ * b.image(), 0.f) {
    b.data = data.data();
  }
  float& at(int64_t i, int64_t ch, int64_t p) {
    return data[i * b.image() + ((ch / b.block) * b.h * b.w + p) * b.block + ch % b.block];
  }
  void fill(uint64_t seed) {  // the real channels; padding lanes stay zero
    const std::vector<float> v = random_floats(n * b.c * b.h * b.w, seed);
    auto next = v.begin();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < b.c; ++ch)
        for (int64_t p = 0; p < b.h * b.w; ++p) at(i, ch, p) = *next++;
  }
};

struct Case {
  int64_t n, c, k, h, w, stride, bx, by;
};

void check(const Case& t) {
  SCOPED_TRACE(testing::Message() << "n " << t.n << " c " << t.c << "/" << t.bx << " k " << t.k
                                  << "/" << t.by << " " << t.h << "x" << t.w << " stride "
                                  << t.stride);
  const int64_t oh = (t.h - 1) / t.stride + 1, ow = (t.w - 1) / t.stride + 1;
  Buffer x(t.n, t.bx, t.c, t.h, t.w), dy(t.n, t.by, t.k, oh, ow), dx(t.n, t.bx, t.c, t.h, t.w);
  x.fill(1), dy.fill(2);
  std::fill(dx.data.begin(), dx.data.end(), 7.f);  // every element must be written
  const std::vector<float> w = random_floats(t.k * t.c, 3);

  // dx over every stored float (padding lanes and unread pixels zero), dw as [k][c].
  std::vector<double> dx_ref(dx.data.size(), 0.0), dw_ref(t.k * t.c, 0.0);
  Buffer index(t.n, t.bx, t.c, t.h, t.w);
  for (int64_t i = 0; i < t.n; ++i)
    for (int64_t q = 0; q < oh * ow; ++q) {
      const int64_t p = (q / ow) * t.stride * t.w + (q % ow) * t.stride;
      for (int64_t o = 0; o < t.k; ++o)
        for (int64_t ch = 0; ch < t.c; ++ch) {
          const double g = dy.at(i, o, q);
          dx_ref[&index.at(i, ch, p) - index.data.data()] += g * w[o * t.c + ch];
          dw_ref[o * t.c + ch] += g * x.at(i, ch, p);
        }
    }
  cpu::pointwise::grad_input(dy.b, w.data(), dx.b, t.n, t.stride, t.stride, 2);
  expect_near(dx_ref, dx.data, kTolerance, "grad_input");
  std::vector<float> dw(t.k * t.c), scratch(cpu::pointwise::scratch_floats(t.n, t.c, t.k));
  cpu::pointwise::grad_weight(dy.b, x.b, dw.data(), scratch.data(), t.n, t.stride, t.stride, 2);
  expect_near(dw_ref, dw, kTolerance, "grad_weight");
  for (int threads : {1, 3}) {  // the same bits whatever the thread count
    std::vector<float> other(dw.size());
    cpu::pointwise::grad_weight(dy.b, x.b, other.data(), scratch.data(), t.n, t.stride, t.stride,
                                threads);
    EXPECT_EQ(other, dw) << threads << " threads";
  }
}

}  // namespace

TEST(CpuPointwise, GradientsMatchTheReference) {
  if (!cpu::cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  check({3, 24, 48, 14, 14, 2, 8, 16});   // the small ResNet's projection
  check({10, 24, 48, 14, 14, 2, 8, 16});  // 10 images: a partial chunk of the weight gradient
  check({2, 20, 8, 9, 7, 2, 16, 8});      // 20 channels padded to 32; odd sizes
  check({2, 64, 40, 11, 12, 3, 16, 8});   // tiles of 24 channels and a shorter last one
  check({2, 8, 16, 6, 6, 2, 8, 16});
}

TEST(CpuPointwise, TrainingStepMatchesOneDnn) {
  if (!cpu::cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  const StepNet net = stride2_block_net();
  const StepOptions opts{
      .switch_env = "MYELIN_CPU_POINTWISE", .bind_seed = 5, .label_classes = 6, .step_seed = 2};
  const int64_t before = cpu::pointwise_kernels_made();
  const StepResult on = run_step(net, true, opts);
  EXPECT_EQ(cpu::pointwise_kernels_made() - before, 2);  // proj's data and weight gradients
  expect_steps_match(run_step(net, false, opts), on, 1e-5, "our and oneDNN's steps differ");
}
