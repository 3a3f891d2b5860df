// Every op case of tests/support/cases_*.cpp on the CUDA engine (cuda:0): fp32 forward and
// gradients at the case's own tolerances; tf32, bf16 and fp16 at the tolerances scaled by
// precision_factor() (with a floor per format, see reduced_tolerance()). Without a GPU every test
// reports itself SKIPPED, never passed. MYELIN_OP_PERF=1 also prints a timing table; each case
// prints its errors on one line
// ("[cuda fp32] conv2d/basic fwd 1.2e-07 grad 3.4e-06 ...") for gpu-check.sh's summary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <numeric>
#include <random>
#include <set>
#include <tuple>

#include "core/autodiff.h"
#include "core/backend.h"
#include "core/graph.h"
#include "core/op_registry.h"
#include "cuda/cuda_info.h"
#include "ops/fuse.h"
#include "ops/params.h"
#include "support/op_harness.h"

using namespace myelin;
using myelin::test::OpCase;

namespace {

std::string no_gpu_reason() {
  if (cuda_device_count() > 0) return "";
  return "no CUDA device on this machine (cudaGetDeviceCount reports none); run "
         "scripts/gpu-check.sh on a GPU machine";
}

class PerfTable : public ::testing::Environment {
 public:
  void TearDown() override {
    std::string table = test::perf_report();
    if (!table.empty()) std::cout << "\nCUDA op timings (median):\n" << table << std::flush;
  }
};
[[maybe_unused]] auto* const perf_table = ::testing::AddGlobalTestEnvironment(new PerfTable);

// The engine's batch-norm fusions are what the batch_norm_nhwc relu and residual cases check;
// MYELIN_CUDA_BN_FUSE=0 ops_cuda_test checks the unfused path instead.

void print_errors(const OpCase& c, const std::string& precision, const test::CaseResult& r) {
  std::printf("[cuda %s] %s fwd %.3g", precision.c_str(), c.name.c_str(), r.fwd_error);
  for (size_t i = 0; i < r.grad_errors.size(); ++i)
    std::printf(" grad%d %.3g", c.grad_inputs[i], r.grad_errors[i]);
  std::printf("\n");
}

// ---- batch norm as a network stores it ---------------------------------------------------------
// A case's operands are its graph's inputs and outputs, which the engine keeps fp32 NCHW, so the
// batch_norm/* cases run cuDNN's fp32 NCHW path only. These wrap batch norm (and a ReLU after it,
// which the engine fuses into it) between two 1x1 average pools, which take any storage on each
// operand: under bf16/fp16 the batch norm's x, y and their gradients are then stored 16-bit NHWC
// as in a ResNet, and run on the engine's own kernels (batch_norm.cu). Shapes cover 16-byte
// vectors of channels (24, 512: two column tiles), channel counts they do not divide (12: fp32
// vectors only; 5), and many rows per channel (8192: several row slices per channel).

std::vector<ValueId> expand_pooled_bn(Graph& g, const std::string& name,
                                      const std::vector<ValueId>& in, const Attrs& a) {
  const Attrs one{{"kernel", int64_t{1}}};
  std::vector<ValueId> bn_in = in;
  bn_in[0] = g.add1("avg_pool2d", name + ".in", {in[0]}, one);
  Attrs bn_attrs;
  for (const char* k : {"eps", "momentum"})
    if (a.has(k)) bn_attrs.set(k, a.items().at(k));
  bn_in.resize(5);
  std::vector<ValueId> out = g.add("batch_norm", name + ".bn", bn_in, bn_attrs);
  ValueId y = out[0];
  if (in.size() == 6)  // a residual block's end: the add that the engine fuses into batch norm
    y = g.add1("add", name + ".sum", {y, g.add1("avg_pool2d", name + ".res", {in[5]}, one)});
  if (in.size() == 10) {  // with a batch-normed shortcut (inputs 5-9), as ResNet-50's projections
    std::vector<ValueId> s_in(in.begin() + 5, in.end());
    s_in[0] = g.add1("avg_pool2d", name + ".res", {in[5]}, one);
    y = g.add1("add", name + ".sum", {y, g.add("batch_norm", name + ".sbn", s_in, bn_attrs)[0]});
  }
  if (a.i("relu", 0)) y = g.add1("relu", name + ".relu", {y});
  out[0] = g.add1("avg_pool2d", name + ".out", {y}, one);
  if (a.i("readers", 1) == 2)  // y read twice: its gradient is a sum
    out.push_back(g.add1("avg_pool2d", name + ".out2", {y}, one));
  return out;
}

[[maybe_unused]] const bool pooled_bn_op = [] {
  register_op({.name = "test_pooled_batch_norm",
               .min_inputs = 5,
               .max_inputs = 10,
               .expand = expand_pooled_bn,
               .doc = "(test) batch norm between two 1x1 average pools; a sixth input is added "
                      "to its output (with inputs 6-10, batch-normalized first), relu = 1 adds a "
                      "ReLU, and readers = 2 a second pool of the output (the second output)"});
  return true;
}();

using Doubles = std::vector<double>;

// Batch norm (plus the residual, the sixth input, then a ReLU when attrs relu = 1) in float64:
// y [, mean, invstd].
std::vector<Doubles> ref_pooled_bn(const std::vector<Doubles>& in, const Attrs& a,
                                   const std::vector<TensorType>& t, bool training) {
  std::vector<Doubles> out = test::reference_batch_norm(in, a, t, training);
  if (in.size() == 6)
    for (size_t i = 0; i < out[0].size(); ++i) out[0][i] += in[5][i];
  if (in.size() == 10) {
    const std::vector<Doubles> s_in(in.begin() + 5, in.end());
    const Doubles r = test::reference_batch_norm(s_in, a, {t.begin() + 5, t.end()}, training)[0];
    for (size_t i = 0; i < out[0].size(); ++i) out[0][i] += r[i];
  }
  if (a.i("relu", 0))
    for (double& y : out[0]) y = std::max(y, 0.0);
  if (a.i("readers", 1) == 2) out = {out[0], out[0]};  // the op's outputs: y twice
  return out;
}

[[maybe_unused]] const bool pooled_bn_cases = [] {
  // residual: 1 a sixth input added, 2 five inputs more, batch-normalized and added.
  auto add = [](const std::string& name, Dims x, bool training, std::vector<int> grads,
                std::vector<int> checked, Attrs attrs = {}, int residual = 0) {
    // With a ReLU, finite differences of gamma and beta move every row of a channel: at 8192 rows
    // some cross the ReLU's kink within a 1e-4 step (0.37% error in gamma's gradient on the CPU and
    // on an H100 alike); a 1e-6 step crosses none and is still far above double's rounding.
    const double fd_step = attrs.i("relu", 0) ? 1e-6 : 1e-4;
    Dims c{x[1]};
    auto f32 = [](Dims d) { return TensorType{Shape(d), DType::f32}; };
    std::vector<TensorType> inputs{f32(x), f32(c), f32(c), f32(c), f32(c)};
    if (residual) inputs.push_back(f32(x));
    if (residual == 2) inputs.insert(inputs.end(), {f32(c), f32(c), f32(c), f32(c)});
    test::register_case({.name = "batch_norm_nhwc/" + name,
                         .op = "test_pooled_batch_norm",
                         .attrs = attrs,
                         .inputs = inputs,
                         .training = training,
                         .reference =
                             [training](const std::vector<Doubles>& in, const Attrs& a,
                                        const std::vector<TensorType>& t) {
                               return ref_pooled_bn(in, a, t, training);
                             },
                         .grad_inputs = grads,
                         .checked_outputs = checked,
                         .fd_step = fd_step,
                         .prepare =
                             [](std::vector<Doubles>& in) {
                               for (double& v : in[4]) v = std::abs(v) + 0.1;
                               if (in.size() == 10)
                                 for (double& v : in[9]) v = std::abs(v) + 0.1;
                             }});
  };
  const Attrs relu{{"relu", int64_t{1}}};
  add("c24_outputs", {4, 24, 5, 6}, true, {}, {});
  add("c24_grad", {4, 24, 5, 6}, true, {0, 1, 2}, {0});
  add("c12_grad", {3, 12, 4, 5}, true, {0, 1, 2}, {0});
  add("c5_outputs", {4, 5, 3, 7}, true, {}, {});
  add("c5_grad", {4, 5, 3, 7}, true, {0, 1, 2}, {0});
  add("c512_grad", {2, 512, 2, 2}, true, {0, 1, 2}, {0});
  add("rows8192_outputs", {8, 64, 32, 32}, true, {}, {});
  add("rows8192_grad", {8, 64, 32, 32}, true, {1, 2}, {0});
  // With a ReLU the gradient's ReLU runs inside batch_norm_grad (its mask recomputed from x); with
  // a residual too, the add and ReLU run inside the batch norm's forward pass.
  add("c24_relu_grad", {4, 24, 5, 6}, true, {0, 1, 2}, {0}, relu);
  add("c5_relu_grad", {4, 5, 3, 7}, true, {0, 1, 2}, {0}, relu);
  add("rows8192_relu_grad", {8, 64, 32, 32}, true, {1, 2}, {0}, relu);
  add("c24_residual_relu_grad", {4, 24, 5, 6}, true, {0, 1, 2, 5}, {0}, relu, 1);
  add("c5_residual_relu_grad", {4, 5, 3, 7}, true, {0, 1, 2, 5}, {0}, relu, 1);
  add("c24_residual_grad", {4, 24, 5, 6}, true, {0, 5}, {0}, {}, 1);
  // A residual block's output read twice (the next block's convolution and its shortcut): the
  // ReLU's gradient of the two gradients' sum runs in their add, and the add in batch norm's
  // gradient (batch_norm_sum_grad), which writes the sum for the residual's gradient too.
  const Attrs twice{{"relu", int64_t{1}}, {"readers", int64_t{2}}};
  add("c24_residual_relu_sum_grad", {4, 24, 5, 6}, true, {0, 1, 2, 5}, {0, 1}, twice, 1);
  add("c5_residual_relu_sum_grad", {4, 5, 3, 7}, true, {0, 1, 2, 5}, {0, 1}, twice, 1);
  add("rows8192_residual_relu_sum_grad", {8, 64, 32, 32}, true, {1, 2}, {0, 1}, twice, 1);
  // A projection block's end: the shortcut's batch norm (inputs 5-9) normalized in the elementwise
  // pass of the batch norm it is added to (fuse_shortcut_batch_norms), in training only.
  add("c24_shortcut_bn_relu_grad", {4, 24, 5, 6}, true, {0, 1, 2, 5, 6, 7}, {0}, relu, 2);
  add("c5_shortcut_bn_relu_grad", {4, 5, 3, 7}, true, {0, 5, 6}, {0}, relu, 2);
  add("rows8192_shortcut_bn_relu", {8, 64, 32, 32}, true, {}, {}, relu, 2);
  add("c24_residual_relu_inference", {4, 24, 5, 6}, false, {}, {}, relu, 1);
  add("c24_inference", {4, 24, 5, 6}, false, {}, {});
  add("c24_relu_inference", {4, 24, 5, 6}, false, {}, {},
      Attrs{{"relu", int64_t{1}}, {"eps", 1e-3}});
  add("c24_eps_momentum_grad", {4, 24, 5, 6}, true, {0, 1, 2}, {0},
      Attrs{{"eps", 1e-3}, {"momentum", 0.8}});
  return true;
}();

// A residual block's end, add then ReLU (fused into the add), between 1x1 average pools likewise,
// its output read by attrs "readers" pools (1 or 2), each an output seeded with its own gradient.
// With 2, as a block's output read by the next block's convolution and its shortcut, the gradient
// reaching the ReLU is a sum, and the engine runs the ReLU's gradient inside that add (add(a, b,
// y), post relu_grad, ops/fuse.h).
std::vector<ValueId> expand_pooled_add_relu(Graph& g, const std::string& name,
                                            const std::vector<ValueId>& in, const Attrs& attrs) {
  const Attrs one{{"kernel", int64_t{1}}};
  ValueId a = g.add1("avg_pool2d", name + ".a", {in[0]}, one);
  ValueId b = g.add1("avg_pool2d", name + ".b", {in[1]}, one);
  ValueId y = g.add1("relu", name + ".relu", {g.add1("add", name, {a, b})});
  std::vector<ValueId> out;
  for (int64_t k = 0; k < attrs.i("readers", 1); ++k)
    out.push_back(g.add1("avg_pool2d", name + ".out" + std::to_string(k), {y}, one));
  return out;
}

// 16-byte vectors where the element count allows (2 x 24 x 5 x 6), one element at a time otherwise.
[[maybe_unused]] const bool pooled_add_relu = [] {
  register_op({.name = "test_pooled_add_relu",
               .min_inputs = 2,
               .max_inputs = 2,
               .expand = expand_pooled_add_relu,
               .doc = "(test) max(a + b, 0) between 1x1 average pools, read by `readers` pools"});
  for (int64_t readers : {1, 2})
    for (auto [name, x] :
         {std::pair{"n2c24", Dims{2, 24, 5, 6}}, std::pair{"n3c5", Dims{3, 5, 3, 7}}}) {
      TensorType t{Shape(x), DType::f32};
      test::register_case(
          {.name = std::string(readers == 1 ? "add_relu_nhwc/" : "add_relu_grad_nhwc/") + name,
           .op = "test_pooled_add_relu",
           .attrs = Attrs{{"readers", readers}},
           .inputs = {t, t},
           .reference =
               [readers](const std::vector<Doubles>& in, const Attrs&,
                         const std::vector<TensorType>&) {
                 Doubles y(in[0].size());
                 for (size_t i = 0; i < y.size(); ++i) y[i] = std::max(in[0][i] + in[1][i], 0.0);
                 return std::vector<Doubles>(readers, y);
               },
           .grad_inputs = {0, 1},
           .prepare =
               [](std::vector<Doubles>& in) {
                 // a + b away from the ReLU's kink, for the finite differences.
                 for (size_t i = 0; i < in[0].size(); ++i)
                   if (std::abs(in[0][i] + in[1][i]) < 0.05) in[1][i] = 0.1 - in[0][i];
               }});
    }
  return true;
}();

// Max pooling between 1x1 average pools, so that under bf16/fp16 its operands are stored 16-bit
// NHWC as in a ResNet: the gradient then gathers (pool.cu) where 16 bytes hold whole channels (8
// and 16 channels; 12 in fp32 only). The values are distinct and exact in bf16 (multiples of 1/128
// below 2 in magnitude), so no window holds a tie in any precision.
[[maybe_unused]] const bool pooled_max_pool = [] {
  register_op(
      {.name = "test_pooled_max_pool",
       .expand =
           [](Graph& g, const std::string& name, const std::vector<ValueId>& in, const Attrs& a) {
             const Attrs one{{"kernel", int64_t{1}}};
             ValueId x = g.add1("avg_pool2d", name + ".in", {in[0]}, one);
             ValueId y = g.add1("max_pool2d", name, {x}, a);
             return std::vector<ValueId>{g.add1("avg_pool2d", name + ".out", {y}, one)};
           },
       .doc = "(test) max pooling between two 1x1 average pools"});
  const Attrs k3s2p1{{"kernel", int64_t{3}}, {"stride", int64_t{2}}, {"pad", int64_t{1}}};
  const Attrs k3s2{{"kernel", int64_t{3}}, {"stride", int64_t{2}}};
  for (auto [name, x, attrs] : {std::tuple{"c8_k3s2p1", Dims{1, 8, 7, 7}, k3s2p1},
                                std::tuple{"c16_k3s2p1", Dims{1, 16, 5, 5}, k3s2p1},
                                std::tuple{"c12_k3s2p1", Dims{1, 12, 5, 5}, k3s2p1},
                                std::tuple{"c16_k3s2", Dims{1, 16, 5, 5}, k3s2}})
    test::register_case({.name = std::string("max_pool_nhwc/") + name,
                         .op = "test_pooled_max_pool",
                         .attrs = attrs,
                         .inputs = {TensorType{Shape(x), DType::f32}},
                         .reference = test::reference_max_pool,
                         .grad_inputs = {0},
                         .prepare = [](std::vector<Doubles>& in) {
                           Doubles& v = in[0];
                           std::vector<size_t> order(v.size());
                           std::iota(order.begin(), order.end(), size_t{0});
                           std::shuffle(order.begin(), order.end(), std::mt19937(17));
                           const double half = static_cast<double>(v.size() / 2);
                           for (size_t i = 0; i < v.size(); ++i)
                             v[order[i]] = (static_cast<double>(i) - half) / 128;
                         }});
  return true;
}();

// ResNet's stem, 7x7 at stride 2 over 3 channels: under bf16/fp16 the engine folds the stride
// into 12 channels and pads them to 16 (fold.cu) for the tensor cores.
std::vector<Doubles> ref_conv_s2p3(const std::vector<Doubles>& in, const Attrs&,
                                   const std::vector<TensorType>& t) {
  const Shape &xs = t[0].shape, &ws = t[1].shape;
  const int64_t n = xs[0], c = xs[1], h = xs[2], w = xs[3], o = ws[0], k = ws[2];
  const int64_t oh = (h + 6 - k) / 2 + 1, ow = (w + 6 - k) / 2 + 1;
  Doubles y(n * o * oh * ow, 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t f = 0; f < o; ++f)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double sum = 0;
          for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t iy = oy * 2 + ky - 3, ix = ox * 2 + kx - 3;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                sum += in[0][((b * c + ch) * h + iy) * w + ix] *
                       in[1][((f * c + ch) * k + ky) * k + kx];
              }
          y[((b * o + f) * oh + oy) * ow + ox] = sum;
        }
  return {y};
}

[[maybe_unused]] const bool stem_case = test::register_case(
    {.name = "conv2d_fold/resnet_stem",
     .op = "conv2d",
     .attrs = Attrs{{"stride", std::vector<int64_t>{2, 2}}, {"pad", std::vector<int64_t>{3, 3}}},
     .inputs = {TensorType{Shape{2, 3, 12, 11}, DType::f32},
                TensorType{Shape{8, 3, 7, 7}, DType::f32}},
     .reference = ref_conv_s2p3,
     .grad_inputs = {0, 1}});

}  // namespace

class OpCaseCuda : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpCaseCuda, Fp32MatchesReferenceAndFiniteDifferences) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  const OpCase& c = GetParam();
  test::CaseResult r = test::run_case(c, Device::cuda(0), "fp32");
  print_errors(c, "fp32", r);
  EXPECT_LT(r.fwd_error, c.fwd_tol) << c.name << " forward: " << r.detail;
  ASSERT_EQ(r.grad_errors.size(), c.grad_inputs.size()) << c.name << ": " << r.detail;
  for (size_t i = 0; i < r.grad_errors.size(); ++i)
    EXPECT_LT(r.grad_errors[i], c.grad_tol)
        << c.name << " gradient of input " << c.grad_inputs[i] << ": " << r.detail;
}

// precision_factor() scales a case's fp32 tolerance. A K-term product whose operands are rounded
// to tf32 (unit roundoff 2^-11 = 4.9e-4) has a relative error near 3e-4 to 4e-4 on its own (the
// first H100 run measured 3.9e-4 for matmul/*), so each format also gets a floor of about two
// unit roundoffs.
double reduced_tolerance(double fp32_tol, const std::string& precision) {
  double floor = precision == "tf32" ? 1e-3 : precision == "bf16" ? 1e-2 : 2e-3;
  return std::max(fp32_tol * test::precision_factor(precision), floor);
}

// Reduced precision changes the matrix products and convolutions only: forward and gradients
// must stay within the scaled tolerances (the gradients check the 16-bit backward kernels).
TEST_P(OpCaseCuda, ReducedPrecision) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  const OpCase& c = GetParam();
  for (std::string precision : {"tf32", "bf16", "fp16"}) {
    test::CaseResult r = test::run_case(c, Device::cuda(0), precision);
    print_errors(c, precision, r);
    EXPECT_LT(r.fwd_error, reduced_tolerance(c.fwd_tol, precision))
        << c.name << " " << precision << " forward: " << r.detail;
    for (size_t i = 0; i < r.grad_errors.size(); ++i)
      EXPECT_LT(r.grad_errors[i], reduced_tolerance(c.grad_tol, precision))
          << c.name << " " << precision << " gradient of input " << c.grad_inputs[i] << ": "
          << r.detail;
  }
}

// Runs the cases whose names contain `pattern` in every precision (fp32 on its own tolerance, the
// others on reduced_tolerance) under the environment settings `env` ({name, value}, unset
// afterwards); returns how many cases ran.
int run_in_every_precision(const std::string& pattern, const std::string& label,
                           const std::vector<std::pair<const char*, const char*>>& env) {
  for (auto [name, value] : env) setenv(name, value, 1);
  int ran = 0;
  for (const OpCase& c : test::all_cases()) {
    if (c.name.find(pattern) == std::string::npos) continue;
    for (std::string precision : {"fp32", "tf32", "bf16", "fp16"}) {
      auto tolerance = [&](double fp32_tol) {
        return precision == "fp32" ? fp32_tol : reduced_tolerance(fp32_tol, precision);
      };
      test::CaseResult r = test::run_case(c, Device::cuda(0), precision);
      print_errors(c, precision + "/" + label, r);
      EXPECT_LT(r.fwd_error, tolerance(c.fwd_tol))
          << c.name << " " << precision << ": " << r.detail;
      for (size_t i = 0; i < r.grad_errors.size(); ++i)
        EXPECT_LT(r.grad_errors[i], tolerance(c.grad_tol))
            << c.name << " " << precision << " gradient of input " << c.grad_inputs[i];
    }
    ++ran;
  }
  for (auto [name, value] : env) unsetenv(name);
  return ran;
}

// The max_pool_nhwc/* cases on the max-pool kernels the default passes over, every precision. By
// default the forward takes 16 bytes of channels per thread, and the gradient finds each window's
// pick from x, then gathers by the picks. MYELIN_CUDA_POOL_VEC=0: one thread per element forward;
// with MYELIN_CUDA_POOL_ARGMAX=0 too, the gradient rescans each window of x instead.
TEST(MaxPoolFallbackCuda, ScalarForwardAndScanningGradientMatchReference) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_GT(
      run_in_every_precision("max_pool_nhwc/", "scalar+scan",
                             {{"MYELIN_CUDA_POOL_VEC", "0"}, {"MYELIN_CUDA_POOL_ARGMAX", "0"}}),
      3);
}

// The max-pool cases with the picks recorded by the forward pass and read by the gradient
// (MYELIN_CUDA_POOL_PICKS=1, pass_max_pool_picks): the 16-byte forward and the gathering gradient
// on channels-last operands, one thread per element and atomics on the fp32 NCHW max_pool2d/*
// cases; then the one-thread-per-element forward beside the gathering gradient (POOL_VEC=0).
TEST(MaxPoolPicksCuda, PicksFromTheForwardPassMatchReference) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_GT(run_in_every_precision("max_pool_nhwc/", "picks", {{"MYELIN_CUDA_POOL_PICKS", "1"}}),
            3);
  EXPECT_GT(run_in_every_precision("max_pool2d/", "picks", {{"MYELIN_CUDA_POOL_PICKS", "1"}}), 3);
  EXPECT_GT(
      run_in_every_precision("max_pool_nhwc/", "picks+scalar",
                             {{"MYELIN_CUDA_POOL_PICKS", "1"}, {"MYELIN_CUDA_POOL_VEC", "0"}}),
      3);
}

// The residual cases whose output is read twice, with the gradient of the sum computed in batch
// norm's gradient (MYELIN_CUDA_BN_SUM_GRAD=1, batch_norm_sum_grad): cuDNN's fp32 NCHW path after
// an add of its own under fp32, the own kernels in fp32 NHWC under tf32 and in 16 bits under
// bf16/fp16 (16 bytes of channels at 24 and 64 channels, one channel at a time at 5).
// The projection blocks' ends with the shortcut's batch norm applied inside the other's
// (MYELIN_CUDA_BN_SHORTCUT=1): cuDNN's fp32 path blending the two, the own kernels in fp32 NHWC and
// in 16 bits; outputs (y, both statistics) and gradients.
TEST(BatchNormShortcutCuda, ShortcutInTheElementwisePassMatchesReference) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_EQ(run_in_every_precision("_shortcut_bn", "shortcut", {{"MYELIN_CUDA_BN_SHORTCUT", "1"}}),
            3);
}

TEST(BatchNormSumGradCuda, SumInTheGradientMatchesReference) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_EQ(run_in_every_precision("relu_sum_grad", "sum-grad", {{"MYELIN_CUDA_BN_SUM_GRAD", "1"}}),
            3);
}

// The batch_norm_nhwc/* cases with 16-bit storage off: batch norm on fp32 NHWC (the own kernels
// in fp32, 4 channels per 16-byte load), under bf16 convolution precision.
TEST(BatchNormNhwcCuda, Fp32ChannelsLastMatchesReference) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  setenv("MYELIN_CUDA_BF16_STORAGE", "0", 1);
  int ran = 0;
  for (const OpCase& c : test::all_cases()) {
    if (!c.name.starts_with("batch_norm_nhwc/")) continue;
    test::CaseResult r = test::run_case(c, Device::cuda(0), "bf16");
    print_errors(c, "bf16/fp32-storage", r);
    EXPECT_LT(r.fwd_error, c.fwd_tol * 10) << c.name << ": " << r.detail;
    for (size_t i = 0; i < r.grad_errors.size(); ++i)
      EXPECT_LT(r.grad_errors[i], c.grad_tol * 10) << c.name << ": " << r.detail;
    ++ran;
  }
  unsetenv("MYELIN_CUDA_BF16_STORAGE");
  EXPECT_GT(ran, 10);
}

// The convolution cases on cuDNN's graph API (MYELIN_CUDA_CONV_API=graph: tuned engine
// configurations, cuda/conv_graph.h) instead of the legacy API's algorithms, in every precision
// (fp32 on engines without tensor cores).
TEST(ConvGraphCuda, ConvolutionsMatchReference) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_GT(run_in_every_precision("conv2d", "graph", {{"MYELIN_CUDA_CONV_API", "graph"}}), 5);
}

INSTANTIATE_TEST_SUITE_P(Ops, OpCaseCuda, ::testing::ValuesIn(test::all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return test::case_test_name(info.param);
                         });

// Every primitive op (and so every op with a CPU kernel) has a CUDA kernel; needs no GPU, the
// registry is static.
TEST(CudaCoverage, EveryPrimitiveOpHasACudaKernel) {
  std::string missing;
  for (const std::string& name : op_names()) {
    const OpDef& def = op_def(name);
    bool primitive = def.infer && !def.is_view;
    if ((primitive || find_kernel(name, DeviceKind::cpu)) && !find_kernel(name, DeviceKind::cuda))
      missing += (missing.empty() ? "" : ", ") + name;
  }
  EXPECT_TRUE(missing.empty()) << "ops with no CUDA kernel: " << missing;
}
// The cases the opt-in fusions' tests run take those fusions (a graph check: no GPU needed). Each
// case's graph is built as the harness builds it (its grad inputs parameters, a seed per checked
// output, differentiated), then fused as the engine would under the flag.
TEST(FusionCases, OptInCasesTakeTheirFusions) {
  auto fused = [](const OpCase& c, const CudaFusions& f) {
    Graph g(c.training);
    std::vector<ValueId> in, params;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      const bool param =
          std::find(c.grad_inputs.begin(), c.grad_inputs.end(), i) != c.grad_inputs.end();
      const std::string name = "x" + std::to_string(i);
      in.push_back(param ? g.param(name, c.inputs[i].shape, Init{})
                         : g.input(name, c.inputs[i].shape));
      if (param) params.push_back(in.back());
    }
    std::vector<ValueId> out = g.add(c.op, "op", in, c.attrs);
    std::vector<std::pair<ValueId, ValueId>> seeds;
    for (size_t k = 0; k < out.size(); ++k) {
      g.keep(out[k]);
      const auto& checked = c.checked_outputs;
      if (checked.empty() || std::find(checked.begin(), checked.end(), k) != checked.end())
        seeds.push_back({out[k], g.input("dy" + std::to_string(k), g.value(out[k]).shape)});
    }
    if (!params.empty()) differentiate(g, seeds, params);
    fuse_for_cuda(g, f);
    return g;
  };
  auto count = [](const Graph& g, const std::function<bool(const Node&)>& is) {
    return std::count_if(g.nodes().begin(), g.nodes().end(), is);
  };
  int checked = 0;
  for (const OpCase& c : test::all_cases()) {
    SCOPED_TRACE(c.name);
    if (c.name.find("relu_sum_grad") != std::string::npos) {
      auto is = [](const Node& n) { return n.op == "batch_norm_sum_grad"; };
      EXPECT_EQ(count(fused(c, {.bn_sum_grads = true}), is), 1);
      EXPECT_EQ(count(fused(c, {}), is), 0);
      ++checked;
    } else if (c.name.find("_shortcut_bn") != std::string::npos) {
      auto is = [](const Node& n) { return n.op == "batch_norm" && n.inputs.size() == 10; };
      EXPECT_EQ(count(fused(c, {.bn_shortcuts = true}), is), 1);
      EXPECT_EQ(count(fused(c, {}), is), 0);
      ++checked;
    } else if (c.name.starts_with("max_pool_nhwc/") || c.name.starts_with("max_pool2d/")) {
      auto is = [](const Node& n) { return n.op == "max_pool2d_grad" && n.inputs.size() == 2; };
      EXPECT_EQ(count(fused(c, {.pool_picks = true}), is), 1);
      EXPECT_EQ(count(fused(c, {}), is), 0);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 + 3 + 4 + 9);
}
