// CPU-engine behaviour the op harness cannot see: batch norm's in-place running statistics, and
// the three convolution implementations (our im2col + SGEMM, oneDNN on plain layouts, oneDNN's
// blocked JIT) agreeing, on batches large enough for per-thread slices and chunks of images.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "core/autodiff.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/executor.h"

using namespace myelin;

namespace {

Tensor random_tensor(const Shape& s, std::mt19937& rng, float lo = -1, float hi = 1) {
  Tensor t = Tensor::empty(s);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(rng);
  return t;
}

}  // namespace

TEST(CpuBatchNorm, TrainingUpdatesRunningStatisticsWithUnbiasedVariance) {
  const int64_t n = 4, c = 3, hw = 5, m = n * hw;
  const double momentum = 0.8;
  Graph g(true);
  ValueId x = g.input("x", Shape{n, c, 1, hw});
  std::vector<ValueId> in{x};
  for (const char* p : {"gamma", "beta", "rmean", "rvar"}) in.push_back(g.input(p, Shape{c}));
  auto out = g.append_primitive("batch_norm", "bn", in, Attrs{{"momentum", momentum}});
  for (ValueId v : out) g.keep(v);
  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = 2});
  Program p(std::move(g), *backend);
  std::mt19937 rng(3);
  Tensor xt = random_tensor(Shape{n, c, 1, hw}, rng, -2, 3);
  Tensor gamma = random_tensor(Shape{c}, rng), beta = random_tensor(Shape{c}, rng);
  Tensor rmean = random_tensor(Shape{c}, rng), rvar = random_tensor(Shape{c}, rng, 0.5, 2);
  std::vector<float> rmean0(rmean.f32(), rmean.f32() + c), rvar0(rvar.f32(), rvar.f32() + c);
  p.bind("x", xt), p.bind("gamma", gamma), p.bind("beta", beta), p.bind("rmean", rmean),
      p.bind("rvar", rvar);
  p.run(StepContext{});
  for (int64_t k = 0; k < c; ++k) {
    double mean = 0, var = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < hw; ++i) mean += xt.f32()[(b * c + k) * hw + i] / m;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < hw; ++i) var += std::pow(xt.f32()[(b * c + k) * hw + i] - mean, 2);
    EXPECT_NEAR(rmean.f32()[k], momentum * rmean0[k] + (1 - momentum) * mean, 1e-5) << k;
    EXPECT_NEAR(rvar.f32()[k], momentum * rvar0[k] + (1 - momentum) * var / (m - 1), 1e-5) << k;
    EXPECT_NEAR(p.tensor(out[1]).f32()[k], mean, 1e-5);                           // batch mean
    EXPECT_NEAR(p.tensor(out[2]).f32()[k], 1 / std::sqrt(var / m + 1e-5), 1e-4);  // biased var
  }
}

// Conv forward and both gradients, with the implementation pinned by MYELIN_CPU_LAYOUT.
std::vector<std::vector<float>> conv_results(const char* layout, const Shape& xs, const Shape& ws,
                                             const Attrs& attrs) {
  setenv("MYELIN_CPU_LAYOUT", layout, 1);
  Graph g(true);
  ValueId x = g.param("x", xs, {});
  ValueId w = g.param("w", ws, {});
  ValueId y = g.add1("conv2d", "conv", {x, w}, attrs);
  ValueId dy = g.input("dy", g.value(y).shape);
  auto grads = differentiate(g, {{y, dy}}, {x, w});
  g.keep(y);
  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = 2});
  Program p(std::move(g), *backend);
  unsetenv("MYELIN_CPU_LAYOUT");
  std::mt19937 rng(7);
  Tensor xt = random_tensor(xs, rng), wt = random_tensor(ws, rng);
  Tensor dyt = random_tensor(p.graph().value(dy).shape, rng);
  p.bind("x", xt), p.bind("w", wt), p.bind("dy", dyt);
  p.run(StepContext{});
  std::vector<std::vector<float>> r;
  for (ValueId v : {y, grads.at(x), grads.at(w)}) {
    Tensor t = p.tensor(v);
    r.emplace_back(t.f32(), t.f32() + t.numel());
  }
  return r;
}

void expect_layouts_agree(const Shape& xs, const Shape& ws, const Attrs& attrs) {
  auto gemm = conv_results("gemm", xs, ws, attrs);
  const char* names[] = {"y", "dx", "dw"};
  for (const char* layout : {"plain", "blocked"}) {
    auto other = conv_results(layout, xs, ws, attrs);
    for (size_t k = 0; k < gemm.size(); ++k) {
      ASSERT_EQ(gemm[k].size(), other[k].size());
      double diff = 0, norm = 0;
      for (size_t i = 0; i < gemm[k].size(); ++i)
        diff += std::pow(gemm[k][i] - other[k][i], 2), norm += std::pow(gemm[k][i], 2);
      EXPECT_GT(norm, 0) << names[k];
      EXPECT_LT(std::sqrt(diff / norm), 1e-5) << names[k] << ": gemm and " << layout << " differ";
    }
  }
}

TEST(CpuConv, ImplementationsAgree) {
  // LeNet's conv1 and conv2 (odd batch: uneven thread slices, several images per product).
  expect_layouts_agree(Shape{8, 1, 28, 28}, Shape{20, 1, 5, 5}, {});
  expect_layouts_agree(Shape{5, 20, 12, 12}, Shape{50, 20, 5, 5}, {});
  // Strided, padded, grouped; one image (threaded SGEMMs instead of slices).
  Attrs strided{{"stride", int64_t{2}}, {"pad", int64_t{1}}, {"groups", int64_t{2}}};
  expect_layouts_agree(Shape{4, 8, 13, 13}, Shape{16, 4, 3, 3}, strided);
  expect_layouts_agree(Shape{1, 8, 13, 13}, Shape{16, 4, 3, 3}, strided);
  // Images too large to share a product: several chunks per thread accumulate dw.
  expect_layouts_agree(Shape{5, 16, 24, 24}, Shape{8, 16, 5, 5}, {{"pad", int64_t{2}}});
  // Pointwise (the image is its own column matrix), dilated, and strided 1x1 projections.
  expect_layouts_agree(Shape{3, 8, 6, 6}, Shape{4, 8, 1, 1}, {});
  expect_layouts_agree(Shape{3, 4, 9, 9}, Shape{6, 4, 3, 3},
                       Attrs{{"dilation", int64_t{2}}, {"pad", int64_t{2}}});
  expect_layouts_agree(Shape{3, 24, 14, 14}, Shape{48, 24, 1, 1}, {{"stride", int64_t{2}}});
}

TEST(CpuConv, UnknownLayoutIsAnError) {
  setenv("MYELIN_CPU_LAYOUT", "fastest", 1);
  Graph g(true);
  ValueId x = g.input("x", Shape{1, 1, 5, 5});
  ValueId w = g.input("w", Shape{1, 1, 3, 3});
  g.keep(g.add1("conv2d", "conv", {x, w}, {}));
  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = 2});
  EXPECT_THROW(Program(std::move(g), *backend), UnsupportedError);
  unsetenv("MYELIN_CPU_LAYOUT");
}
